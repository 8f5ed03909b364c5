"""What every `ftmodel` command shares: the config and workspace options, and the one rule that
finds the config a command uses (the console uses the same rule)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftmodel import config as config_mod
from ftmodel.i18n import set_language

CONFIG_HELP = "TOML config (default: ./ftmodel.toml, else ./configs/default.toml, else the packaged default)"


def add_config(p: argparse.ArgumentParser, *, overrides: bool = True) -> None:
    p.add_argument("--config", default=None, help=CONFIG_HELP)
    if overrides:
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="SECTION.KEY=VALUE",
            help="override one config value for this run (repeatable)",
        )


def add_workspace(p: argparse.ArgumentParser) -> None:
    add_config(p, overrides=False)
    p.add_argument("--workspace", help="workspace directory (default: launch.workspace from the config)")


def add_common(p: argparse.ArgumentParser) -> None:
    add_config(p)
    p.add_argument("--workspace", help="workspace directory (default: launch.workspace from the config)")
    p.add_argument("--detach", action="store_true", help="start the run and return; it keeps running")
    p.add_argument(
        "--force",
        action="store_true",
        help="run even when a finished run had the same inputs (default: reuse that run); "
        "with --resume: continue although the data changed since the checkpoint",
    )


def load_config(ns: argparse.Namespace):
    """The config a command uses (named, local, checkout or packaged); says which when it was not named."""
    from ftmodel.profiles import resolve_config

    choice = resolve_config(getattr(ns, "config", None))
    cfg = config_mod.load(choice.path, getattr(ns, "overrides", []) or [])
    if cfg.ui.language != "auto":  # [ui] language speaks for the CLI as for the console
        set_language(cfg.ui.language)
    if choice.reason != "given":
        print(choice.describe(), file=sys.stderr)
    return cfg


def workspace_of(ns: argparse.Namespace) -> Path:
    """The workspace a command acts on: --workspace, else the config's launch.workspace (as the console)."""
    if getattr(ns, "workspace", None) and not getattr(ns, "config", None):
        return Path(ns.workspace)
    cfg = load_config(ns)  # a named config is read even with --workspace: its [ui] language applies
    return Path(getattr(ns, "workspace", None) or cfg.launch.workspace)
