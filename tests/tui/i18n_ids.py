"""Every message id the console and the CLI translate: the literal `t("…")` calls in tui/ and in the
CLI's modules, words used as ids, and the run sentinel's messages."""

from __future__ import annotations

import ast
from pathlib import Path

from ftmodel.queue import JOB_STATES
from ftmodel.sentinel import message_ids
from ftmodel.words import JOBS, STATES
from tui.actions import ACTIONS, PANELS, SCREEN_HELP
from tui.screens.queue import JOB_COLUMNS
from tui.widgets.charts import CHARTS

ROOT = Path(__file__).resolve().parents[2]
TUI = ROOT / "tui"
CLI_FILES = (
    *sorted((ROOT / "ftmodel" / "cli").glob("*.py")),
    ROOT / "ftmodel" / "profiles" / "__init__.py",
    # Engine messages the CLI and the console print as they are: the reuse note, `partial: …` in lineage.
    ROOT / "ftmodel" / "launcher.py",
    ROOT / "ftmodel" / "fingerprint.py",
    # What a resume continues from: printed by `ftmodel <stage> --resume` and shown in the console's dialog.
    ROOT / "ftmodel" / "resume.py",
)
HINTS = (
    "little signal left: most groups are all right (these prompts are learned)",
    "no learning signal: most groups are all wrong (SFT more, or easier prompts)",
    "no learning signal: most groups have identical rewards",
    "many completions clipped: raise grpo.max_completion_length",
    "no KL: grpo.beta is 0",
)
WORDS = (
    *STATES,
    *PANELS,
    "bool",
    "int",
    "number",
    "text",
    "list",
    "*",
    "run",
    "state",
    "size",
    "detail",
    "stage",
    "start",
    "time",
    "loss",
    "reward",
    "wandb",
    "sync",
    "ans acc",
    "qtype",
    "format",
    "accuracy",
    "judge",
    "total",
    "completion",
    "never",
    "synced",
    *JOB_STATES,
    *JOB_COLUMNS,
    "best",
    "removed",
)


def literal_ids() -> set[str]:
    """The first argument of every `t("literal", …)` call in tui/ and the CLI, and what each worker
    does (the second argument of `background("name", "what", …)`, said when it fails)."""
    ids = set()
    for path in (*TUI.rglob("*.py"), *CLI_FILES):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            position = {"t": 0, "background": 1}.get(node.func.id)
            if (
                position is not None
                and len(node.args) > position
                and isinstance(node.args[position], ast.Constant)
                and isinstance(node.args[position].value, str)
            ):
                ids.add(node.args[position].value)
    return ids


def all_ids() -> set[str]:
    """Every id the console may pass to t()."""
    ids = literal_ids() | set(HINTS) | set(WORDS) | {c.title for c in CHARTS} | {s[0] for s in SCREEN_HELP}
    ids |= message_ids()  # the run sentinel's messages and hints: the CLI and the console show them
    for a in ACTIONS:
        if not a.id.startswith("panel."):
            ids.add(a.label)
        if a.help:
            ids.add(a.help)
    return ids - set(JOBS) - {"*"}
