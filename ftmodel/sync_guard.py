"""What keeps a sync honest: one syncer per run at a time, and a run called whole only when it is.

- `run_lock`: an exclusive, non-blocking lock per offline run (`<ws>/.wandb/sync-locks/<id>.lock`,
  holding the syncer's pid). Two syncs at once (two terminals, console + CLI) would otherwise
  remove each other's staged copy; the second one is told who holds the run instead.
- `incomplete_reason`: the offline wandb record against what the run dir says was logged. A stage
  killed with SIGKILL, or a `.wandb` file cut short, leaves a record that syncs and verifies
  against itself perfectly while rows and artifacts are missing: metrics.jsonl, the exit record
  and state.json tell.

Stdlib only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ftmodel.errors import FtmodelError
from ftmodel.i18n import t
from ftmodel.rundir import ACTIVE_STATES, METRICS_FILE, Run, parse_metric_lines

LOCK_DIR = "sync-locks"
IMPORT_MARK = ".ftmodel-import.json"  # in an imported run dir: the bundles that brought it (ftmodel.bundle)


class RunBusy(FtmodelError):
    """Another process is syncing this run."""

    def __init__(self, key: str, pid: int | None):
        self.key, self.pid = key, pid
        who = t("pid {pid}", pid=pid) if pid else t("another process")
        super().__init__(t("run {run} is being synced by {who}; try again when it is done", run=key, who=who))


@contextlib.contextmanager
def run_lock(wandb_home: Path, wandb_id: str, key: str) -> Iterator[None]:
    """Hold the sync lock of one offline run, or raise RunBusy naming the pid that holds it."""
    folder = wandb_home / LOCK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{wandb_id}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = int(os.pread(fd, 32, 0).decode().strip() or 0) or None
            except (OSError, ValueError):
                pid = None
            raise RunBusy(key, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def metrics_steps(run_dir: Path) -> list[int]:
    """The steps metrics.jsonl recorded (what the stage logged, wandb or not)."""
    try:
        raw = (run_dir / METRICS_FILE).read_bytes()
    except OSError:
        return []
    steps = []
    for row in parse_metric_lines(raw.split(b"\n")):
        step = row.get("step")
        if isinstance(step, (int, float)) and not isinstance(step, bool):
            steps.append(int(step))
    return steps


def import_marks(run_dir: Path) -> list[dict]:
    """The bundles that brought this run dir here (see ftmodel.bundle), newest last."""
    try:
        data = json.loads((run_dir / IMPORT_MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def still_running_here(run_dir: Path) -> bool:
    """Whether the run's stage is running on THIS machine (an imported run never is: its pid
    belongs to the box it came from)."""
    if import_marks(run_dir):
        return False
    return Run(run_dir).status() in ACTIVE_STATES


def incomplete_reason(run_dir: Path, history_steps: list[int], exited: bool) -> str:
    """Why the offline record is not the whole run ("" when it is): no exit record (crashed, cut
    short, or still running when bundled), or metrics.jsonl rows the record lacks."""
    rows = len(history_steps)
    marks = sorted(import_marks(run_dir), key=lambda m: float(m.get("created") or 0))
    state = Run(run_dir).read_state()
    recorded = state.get("state") if isinstance(state, dict) else None
    parts = []
    if not exited:
        when_bundled = marks[-1].get("state_when_bundled") if marks else None
        if when_bundled in ACTIVE_STATES:
            host = marks[-1].get("host") or "the box"
            parts.append(f"run was still running on {host} when bundled: {rows} rows so far, no exit record")
        elif recorded == "finished":
            parts.append(f".wandb file cut short: {rows} rows, no exit record")
        else:
            parts.append(f"run crashed: {rows} rows, no exit record")
    logged = metrics_steps(run_dir)
    have = set(history_steps)
    lacking = [s for s in logged if s not in have]
    if lacking:
        parts.append(
            f"metrics.jsonl has {len(lacking)} row(s) the wandb record lacks (steps {lacking[0]}"
            + (f"..{lacking[-1]}" if len(lacking) > 1 else "")
            + ")"
        )
    return "; ".join(parts)
