"""Every message id the console, the CLI and the engine translate: the literal `t("…")` calls in tui/
and ftmodel/ (the engine's errors among them), words used as ids, and the run sentinel's messages."""

from __future__ import annotations

import ast
from pathlib import Path

from ftmodel.config import all_field_docs
from ftmodel.queue import JOB_STATES
from ftmodel.sentinel import message_ids
from ftmodel.words import JOBS, STATES
from tui.actions import ACTIONS, PANELS, SCREEN_HELP
from tui.screens.queue import JOB_COLUMNS
from tui.widgets.charts import CHARTS

ROOT = Path(__file__).resolve().parents[2]
TUI = ROOT / "tui"
ENGINE = ROOT / "ftmodel"
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
    "alerts",
)


def literal_ids() -> set[str]:
    """The first argument of every `t("literal", …)` call in tui/ and ftmodel/, and what each worker
    does (the second argument of `background("name", "what", …)`, said when it fails)."""
    ids = set()
    for path in (*TUI.rglob("*.py"), *ENGINE.rglob("*.py")):
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
    ids = literal_ids() | set(WORDS) | {c.title for c in CHARTS} | {s[0] for s in SCREEN_HELP}
    ids |= message_ids()  # the run sentinel's messages and hints: the CLI and the console show them
    ids |= help_ids()
    ids |= all_field_docs()  # each config field's documentation, shown in the config editor
    for a in ACTIONS:
        if not a.id.startswith("panel."):
            ids.add(a.label)
        if a.help:
            ids.add(a.help)
    return ids - set(JOBS) - {"*"}


def help_ids() -> set[str]:
    """What `ftmodel --help` and `ftmodel-tui --help` show, each sub-command's too, and argparse's own
    words and errors: translated when the help is formatted (ftmodel.arguments)."""
    from ftmodel.arguments import ARGPARSE_ERRORS, ARGPARSE_WORDS, help_texts
    from ftmodel.cli import build_parser
    from ftmodel.profiles import PROFILES
    from tui.app import build_parser as console_parser

    ids = help_texts(build_parser()) | help_texts(console_parser()) | set(ARGPARSE_WORDS)
    ids |= {text for _, text in PROFILES.values()}  # `ftmodel init --profile`'s help lists them
    return ids | {template for _, template in ARGPARSE_ERRORS}
