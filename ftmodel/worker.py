"""Run one stage inside its run directory: `python -m ftmodel.worker RUN_DIR`.

The worker reads the run's config snapshot and arguments from the run directory (the snapshot is
exactly what runs), records `running`, runs the stage, and always records how it ended.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

from ftmodel import config as config_mod
from ftmodel.context import Cancelled, StageContext, StageError
from ftmodel.i18n import set_language, t
from ftmodel.launcher import job_module, launch, preflight, stage_contract
from ftmodel.rundir import Run, process_start_time
from ftmodel.watchdog import start_watchdog, stop_watchdog
from ftmodel.workspace import OutputBusy, Workspace, writing_outputs

EXIT_OK, EXIT_FAILED, EXIT_USER_ERROR, EXIT_CANCELLED = 0, 1, 2, 130
DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # EFBIG: a file-size limit, the same fault in one process


def _install_signal_handlers(ctx: StageContext) -> None:
    """First SIGINT asks the stage to save and stop; SIGTERM stops it now.

    A second SIGINT stops at once only when nobody recorded a stop request in state.json (a
    terminal's Ctrl-C pressed twice). `ftmodel stop` and the console record theirs and never send a
    second SIGINT; one that arrives anyway (two stoppers racing) must not throw away the checkpoint
    being saved, so it is logged and ignored: the stopper escalates with SIGTERM when it means "now".
    """

    def on_int(signum, frame):
        if ctx.stop_requested:
            request = ctx.run.read_state().get("stop_request")
            if not request:
                raise Cancelled()
            ctx.log(
                f"another stop request while saving ({request.get('by', 'a stopper')} asked first): "
                "still saving (SIGTERM stops at once)"
            )
            return
        ctx.stop_requested = True
        ctx.log("stop requested: saving and exiting (Ctrl-C again, or SIGTERM, stops at once)")

    def on_term(signum, frame):
        raise Cancelled()

    signal.signal(signal.SIGINT, on_int)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # detached: a vanished terminal is no reason to stop


class _RankPrefix:
    """A text stream that starts every line with `[rank N] ` (ranks share one stage.log)."""

    def __init__(self, stream, rank: int):
        self._stream, self._prefix, self._at_line_start = stream, f"[rank {rank}] ", True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self._at_line_start:
                out.append(self._prefix)
            out.append(piece)
            self._at_line_start = piece.endswith("\n")
        self._stream.write("".join(out))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def run_stage(run: Run) -> int:
    """Run the stage recorded in `run`'s state.json; return the process exit code.

    Under accelerate or torchrun every rank runs this; only rank 0 records the run.
    """
    rank = int(os.environ.get("RANK", "0"))
    if rank:
        sys.stdout, sys.stderr = _RankPrefix(sys.stdout, rank), _RankPrefix(sys.stderr, rank)
        print(f"rank {rank} of {os.environ.get('WORLD_SIZE', '?')} started (rank 0 records the run)", flush=True)
        return _run(run, rank)
    state = run.read_state()
    mine = {"worker_pid": os.getpid()}
    # Started without the launcher (e.g. directly): we are the process to watch. Under Slurm the job,
    # not a pid, is watched.
    if not state.get("pid") and not state.get("slurm_job_id"):
        mine.update(pid=os.getpid(), pgid=os.getpgrp(), proc_start=process_start_time(os.getpid()))
    run.update_state(state="running", started=time.time(), **mine)
    return _run(run, rank)


def _run(run: Run, rank: int) -> int:
    state = run.read_state()
    stage = state["stage"]
    args = state.get("args", {})
    ctx = watchdog = None
    code, status, error = EXIT_FAILED, "failed", None
    try:
        cfg = config_mod.load(run.config_path)
        if cfg.ui.language != "auto":  # the run's [ui] language speaks for its errors, as in the CLI
            set_language(cfg.ui.language)
        ctx = StageContext(
            run=run,
            cfg=cfg,
            ws=Workspace(Path(args.get("workspace", "workspace"))),
            stage=stage,
            args=args,
            rank=rank,
            launch=launch,
            contract_of=stage_contract,
        )
        _install_signal_handlers(ctx)
        if rank == 0:  # looks for a stall from outside: a frozen process cannot see its own
            watchdog = start_watchdog(run, cfg)
        module = job_module(stage)
        preflight(stage, ctx)
        # Shared workspace outputs (data/distilled.jsonl, …) have one writer at a time.
        outputs_written = module.CONTRACT.shared_outputs
        with writing_outputs(ctx.ws.root, outputs_written, run.id) if rank == 0 else contextlib.nullcontext():
            outputs = module.run(ctx) or {}
            if rank == 0 and not ctx.stop_requested:
                _record_outputs(run, module.CONTRACT, ctx.ws.root)  # under the output lock: what this run wrote
        if ctx.stop_requested:
            raise Cancelled()
        if outputs:
            ctx.output(**outputs)
        code, status = EXIT_OK, "finished"
    except Cancelled:
        code, status, error = EXIT_CANCELLED, "cancelled", getattr(ctx, "stop_reason", None) or t("stopped on request")
        print(f"{stage}: cancelled", flush=True)
    except (StageError, config_mod.ConfigError, OutputBusy) as e:  # phrased for the user, in their language
        code, status, error = EXIT_USER_ERROR, "failed", str(e)
        print(t("error: {message}", message=e), flush=True)
    except KeyboardInterrupt:
        code, status, error = EXIT_CANCELLED, "cancelled", t("interrupted")
    except OSError as e:
        if e.errno not in DISK_FULL:
            traceback.print_exc()
            error = f"{type(e).__name__}: {e}"
        else:  # not a bug: say what ran out; appended outputs keep every whole row written so far
            error = t("disk full: cannot write {path}: {reason}", path=e.filename or t("a file"), reason=e.strerror)
            print(t("error: {message}", message=error), flush=True)
    except BaseException as e:  # a bug or a library failure: keep the traceback in stage.log
        traceback.print_exc()
        error = f"{type(e).__name__}: {e}"
    finally:
        stop_watchdog(watchdog)
        if ctx is not None:
            try:
                ctx.close_trackers(code)
            except BaseException as e:  # closing wandb must never hide how the stage ended
                print(t("warning: closing trackers failed: {reason}", reason=e), flush=True)
        if rank == 0:
            try:
                run.update_state(state=status, exit_code=code, ended=time.time(), error=error)
            except OSError as e:  # a full disk: the run will show as lost; say why where we still can
                print(
                    t(
                        "error: could not record how the run ended in {path}: {reason}",
                        path=run.state_path,
                        reason=e.strerror or e,
                    ),
                    file=sys.stderr,
                    flush=True,
                )
                code = code or EXIT_FAILED
    return code


def _record_outputs(run: Run, contract, root: Path) -> None:
    """Record the content hashes of the shared workspace files the stage wrote (reuse checks them)."""
    from ftmodel.fingerprint import output_hashes

    if contract.shared_outputs:
        run.update_state(fingerprint={"outputs": output_hashes(contract, root)})


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m ftmodel.worker RUN_DIR`."""
    argv = sys.argv[1:] if argv is None else argv
    # Per-dataset progress bars are noise in a stage log (and repeat once per rank).
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    # The libraries' deprecation notices about their own internals are noise in a user's stage log.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|peft|accelerate)\b")
    if len(argv) != 1:
        print("usage: python -m ftmodel.worker RUN_DIR", file=sys.stderr)
        return EXIT_USER_ERROR
    set_language()  # the launcher passes the starter's language (FTMODEL_LANG); the config may override it
    return run_stage(Run(Path(argv[0])))


if __name__ == "__main__":
    sys.exit(main())
