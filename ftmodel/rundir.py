"""The run directory: the one contract between stages and the console.

`<workspace>/runs/<run-id>/` holds `config.toml` (snapshot), `state.json` (atomic), `metrics.jsonl`
(one JSON object per logged step), `stage.log` and the stage's artifacts. Everything here is
stdlib only, so the console can read runs without importing the ML stack.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ftmodel.words import ACTIVE_STATES, FINAL_STATES, STAGES  # noqa: F401 - re-exported, the old home

STATE_FILE = "state.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "stage.log"
CONFIG_FILE = "config.toml"


def runs_root(workspace: str | Path) -> Path:
    """Return the folder that holds every run of a workspace."""
    return Path(workspace) / "runs"


def new_run_id(stage: str) -> str:
    """Make a sortable, unique run id such as `sft-20260120-143022-a1b2`."""
    return f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so readers see the old or the new content, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) across processes."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def process_start_time(pid: int) -> int | None:
    """Return the kernel start time (clock ticks since boot) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    fields = raw[raw.rfind(")") + 2:].split()
    if fields and fields[0] in ("Z", "X"):  # a zombie has exited already
        return None
    return int(fields[19])


def process_alive(pid: int | None, start_time: int | None) -> bool:
    """Tell whether `pid` is still the process that was recorded (guards against pid reuse)."""
    if not pid:
        return False
    now = process_start_time(pid)
    if now is None:
        if not Path("/proc").is_dir():  # no procfs (macOS): fall back to a signal probe
            try:
                os.kill(pid, 0)
                return True
            except OSError:
                return False
        return False
    return start_time is None or now == start_time


@dataclass
class Run:
    """A handle on one run directory."""

    path: Path

    @property
    def id(self) -> str:
        """The run id (the directory's name)."""
        return self.path.name

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    def read_state(self) -> dict:
        """Return state.json (an empty dict if it is missing or unreadable)."""
        try:
            return json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def update_state(self, **changes: Any) -> dict:
        """Merge `changes` into state.json atomically and return the new state."""
        # The launcher and the stage both update state.json: serialise read-modify-write cycles.
        with file_lock(self.path / ".state.lock"):
            state = self.read_state()
            for key, value in changes.items():
                if isinstance(value, dict) and isinstance(state.get(key), dict):
                    state[key] = {**state[key], **value}
                else:
                    state[key] = value
            state["updated"] = time.time()
            atomic_write_text(self.state_path, json.dumps(state, indent=2, sort_keys=True) + "\n")
            return state

    def status(self) -> str:
        """Return the state to show: the recorded one, or `lost` when an active run's process is gone."""
        state = self.read_state()
        recorded = state.get("state", "unknown")
        if recorded in ACTIVE_STATES and state.get("pid"):
            if not process_alive(state.get("pid"), state.get("proc_start")):
                return "lost"
        return recorded

    def metrics(self) -> list[dict]:
        """Read every metrics row logged so far."""
        return MetricsReader(self.metrics_path).read_new()

    def log_tail(self, lines: int = 20) -> list[str]:
        """Return the last `lines` lines of stage.log."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 64 * 1024))
                data = fh.read().decode("utf-8", "replace")
        except OSError:
            return []
        return data.splitlines()[-lines:]


def create_run(workspace: str | Path, stage: str, *, config_toml: str, argv: list[str],
               args: dict | None = None, group: str | None = None) -> Run:
    """Create a new run directory in state `queued`, with its config snapshot."""
    root = runs_root(workspace)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        path = root / new_run_id(stage)
        try:
            path.mkdir()
            break
        except FileExistsError:
            continue
    run = Run(path)
    atomic_write_text(run.config_path, config_toml)
    run.update_state(run_id=run.id, stage=stage, state="queued", argv=argv, args=args or {},
                     host=socket.gethostname(), created=time.time(), group=group,
                     progress={"step": 0, "total": None})
    return run


def list_runs(workspace: str | Path, stage: str | None = None) -> list[Run]:
    """List a workspace's runs, oldest first (run ids sort by creation time)."""
    root = runs_root(workspace)
    if not root.is_dir():
        return []
    states = {}
    for p in root.iterdir():
        if p.is_dir() and (p / STATE_FILE).exists():
            states[p] = Run(p).read_state()
    # The id's timestamp has one-second resolution; `created` orders runs started within a second.
    order = sorted(states, key=lambda p: (p.name.split("-", 1)[-1][:15], states[p].get("created") or 0, p.name))
    return [Run(p) for p in order if not stage or states[p].get("stage") == stage]


def latest_run(workspace: str | Path, stage: str, *, state: str | None = "finished") -> Run | None:
    """Return the newest run of `stage` (by default the newest finished one)."""
    for run in reversed(list_runs(workspace, stage)):
        if state is None or run.read_state().get("state") == state:
            return run
    return None


def find_run(workspace: str | Path, run_id: str) -> Run:
    """Return the run with this id (or unique id prefix); raise LookupError naming the problem."""
    root = runs_root(workspace)
    exact = root / run_id
    if (exact / STATE_FILE).exists():
        return Run(exact)
    matches = [r for r in list_runs(workspace) if r.id.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LookupError(f"no run {run_id!r} in {root}")
    raise LookupError(f"run id {run_id!r} is ambiguous: {', '.join(r.id for r in matches[:5])}")


class MetricsWriter:
    """Append metric rows to metrics.jsonl, one flushed line per logged step."""

    def __init__(self, path: Path):
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        """Append one row and flush it, so readers see whole lines as soon as they exist."""
        self._fh.write(json.dumps(row, allow_nan=True, separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class MetricsReader:
    """Tail metrics.jsonl by byte offset: keeps a partial last line and survives truncation."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self._partial = b""
        self.resets = 0

    def read_new(self, max_bytes: int | None = None) -> list[dict]:
        """Return the rows appended since the last call (at most about `max_bytes` read at once)."""
        return parse_metric_lines(self.read_new_lines(max_bytes))

    def read_new_lines(self, max_bytes: int | None = None) -> list[bytes]:
        """Return the complete lines appended since the last call, unparsed (see `parse_metric_lines`)."""
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < self.offset:  # truncated or replaced: start over
                    self.offset, self._partial = 0, b""
                    self.resets += 1
                fh.seek(self.offset)
                data = fh.read() if max_bytes is None else fh.read(max_bytes)
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return lines


def parse_metric_lines(lines: list[bytes]) -> list[dict]:
    """Parse JSONL lines (metrics.jsonl, completions.jsonl) into dict rows, skipping blank and corrupt ones."""
    rows = []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a corrupt line never stops the reader
        if isinstance(row, dict):
            rows.append(row)
    return rows
