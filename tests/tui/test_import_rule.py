"""The console never imports the ML stack, and the engine never imports Textual."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "wandb")


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_tui_app_does_not_import_the_ml_stack():
    # Importing the module and building the app (compose runs imports of its own) must stay light.
    out = _run(
        "import sys, tui.app, tui.rundata.table, tui.configdoc\n"
        "from ftmodel import config\n"
        "tui.app.FtmodelConsole(config.load('configs/default.toml'), 'configs/default.toml', '/tmp/none')\n"
        "import ftmodel.tracking, ftmodel.launcher, ftmodel.stages\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    assert out == "", f"tui imports {out}"


def test_stage_modules_preflight_imports_stay_light():
    # The console runs preflight and reads contracts in-process through the launcher's job table: stage
    # modules must stay light too (the import contract lists this edge as its one allowance for stages).
    out = _run(
        "import sys\n"
        "from ftmodel.launcher import job_modules\n"
        "[module.CONTRACT for module in job_modules().values()]\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    assert out == "", f"stage modules import {out}"


def test_engine_does_not_import_textual():
    out = _run(
        "import sys, pkgutil, importlib, ftmodel\n"
        "for m in pkgutil.walk_packages(ftmodel.__path__, 'ftmodel.'):\n"
        "    if m.name != 'ftmodel.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "print(','.join(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))))"
    )
    assert out == "", f"the engine imports {out}"
