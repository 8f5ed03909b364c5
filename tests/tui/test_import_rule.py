"""The console never imports the ML stack, and the engine never imports Textual."""

import ast
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


# Imported after the console's first frame by its warm-up worker, never before it: each is time the
# first frame would wait for (bench.tui_startup measures the whole start).
AFTER_FIRST_FRAME = ("tui.dialogs", "tui.widgets.tables", "textual_plotext", "ftmodel.answers")


def test_the_console_start_imports_only_what_its_first_frame_draws_and_the_rest_after_it():
    # A headless console in its own process: what is imported when the first frame is painted, and
    # after the warm-up worker has run (it posts ChartsReady last).
    out = _run(
        "import asyncio, sys, time, tui.app\n"
        "from ftmodel import config\n"
        "from tui.screens import console\n"
        f"names = {AFTER_FIRST_FRAME!r}\n"
        "seen = {}\n"
        "first = console.ConsoleScreen._after_first_frame\n"
        "def after(self):\n"
        "    seen['first frame'] = [m for m in names if m in sys.modules]\n"
        "    first(self)\n"
        "console.ConsoleScreen._after_first_frame = after\n"
        "async def main():\n"
        "    app = tui.app.FtmodelConsole(config.load('configs/default.toml'), 'configs/default.toml', '/tmp/none')\n"
        "    async with app.run_test(size=(100, 30)) as pilot:\n"
        "        deadline = time.monotonic() + 60\n"
        "        while not app.main.charts_ready and time.monotonic() < deadline:\n"
        "            await pilot.pause(0.05)\n"
        "        seen['warmed'] = [m for m in names if m in sys.modules]\n"
        "asyncio.run(main())\n"
        "print(seen)"
    )
    seen = ast.literal_eval(out.splitlines()[-1])
    assert seen["first frame"] == [], f"the console's first frame waited for {seen['first frame']}"
    assert seen["warmed"] == ["tui.dialogs", "tui.widgets.tables", "textual_plotext"]


def test_the_console_entry_point_pauses_the_collector_until_the_first_frame():
    # `python -m tui --help` goes through tui/__main__.py and returns: the collector is on again after.
    out = _run(
        "import gc, sys\n"
        "from tui.__main__ import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(gc.isenabled(), 'tui.app' in sys.modules)"
    )
    assert out.splitlines()[-1] == "True True"
