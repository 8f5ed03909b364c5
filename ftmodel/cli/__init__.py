"""The `ftmodel` command: every stage, the pipeline, config checks and run management, headless.

One module per family of commands, each registering its own parsers: `runs` (stages, the pipeline,
run management), `alerts` (what the run sentinel saw), `start` (init, data check, model import),
`sync` (W&B sync and bundles), `queue` (the overnight queue and sweeps). Every action the console
offers exists here too.
"""

from __future__ import annotations

import argparse
import os
import sys

from ftmodel.arguments import Parser
from ftmodel.cli import alerts as alert_cmds
from ftmodel.cli import queue as queue_cmds
from ftmodel.cli import runs, start
from ftmodel.cli import sync as sync_cmds
from ftmodel.errors import FtmodelError
from ftmodel.i18n import set_language, t
from ftmodel.textio import show_controls_on_terminals
from ftmodel.words import PIPELINE, STAGES

__all__ = ["build_parser", "main"]
DESCRIPTION = "The `ftmodel` command: every stage, the pipeline, config checks and run management, headless."


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (stage flags keep the original scripts' names)."""
    parser = Parser(prog="ftmodel", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    runs.add_parsers(sub)
    alert_cmds.add_parsers(sub)
    sync_cmds.add_parsers(sub)
    start.add_parsers(sub)
    queue_cmds.add_parsers(sub)
    return parser


COMMANDS = {
    **dict.fromkeys((*STAGES, PIPELINE), runs.cmd_stage),
    "config": runs.cmd_config,
    "runs": runs.cmd_runs,
    **dict.fromkeys(runs.RUN_COMMANDS, runs.cmd_run),
    "alerts": alert_cmds.cmd_alerts,
    "init": start.cmd_init,
    "data": start.cmd_data,
    "model": start.cmd_model,
    "sync": sync_cmds.cmd_sync,
    "bundle": sync_cmds.cmd_bundle,
    "queue": queue_cmds.cmd_queue,
    "sweep": queue_cmds.cmd_queue,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ftmodel` command: errors the engine phrased for the user are one line, exit 2."""
    argv = sys.argv[1:] if argv is None else argv
    show_controls_on_terminals()  # whatever a run's files hold reaches a terminal shown, not obeyed
    set_language()  # FTMODEL_LANG / LC_ALL / LANG; a config's [ui] language may change it once loaded
    ns = build_parser().parse_args(argv)
    try:
        return COMMANDS[ns.command](ns, argv)
    except (FtmodelError, LookupError) as e:  # StageError, LaunchError… are FtmodelErrors
        msg = e.args[0] if isinstance(e, LookupError) and e.args else e
        print(t("error: {message}", message=msg), file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`ftmodel runs | head`): stop quietly, as cat does, with SIGPIPE's
        # status; stdout goes to /dev/null so that Python's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
