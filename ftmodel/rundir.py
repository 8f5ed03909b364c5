"""The run directory: the one contract between stages and the console.

`<workspace>/runs/<run-id>/` holds `config.toml` (snapshot), `state.json` (atomic), `metrics.jsonl`
(one JSON object per logged step), `stage.log` and the stage's artifacts. Everything here is
stdlib only, so the console can read runs without importing the ML stack. (Over 400 lines: it is
the one place that knows the contract — state shape and trust, partial marks, creation, listing,
lookup, metrics tailing — so no caller re-implements a piece of it.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftmodel.errors import FtmodelError
from ftmodel.i18n import t
from ftmodel.words import ACTIVE_STATES, FINAL_STATES, STAGES  # noqa: F401 - re-exported, the old home

BROKEN = "broken"  # the status of a run whose state.json is missing, unreadable or not a JSON object

STATE_FILE = "state.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "stage.log"
CONFIG_FILE = "config.toml"
ADAPTER_DIR = "adapter"  # the LoRA adapter a training run saves (and later stages load)


def runs_root(workspace: str | Path) -> Path:
    """Return the folder that holds every run of a workspace."""
    return Path(workspace) / "runs"


def new_run_id(stage: str) -> str:
    """Make a sortable, unique run id such as `sft-20260120-143022-a1b2`."""
    return f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"


class BrokenRun(FtmodelError, LookupError):
    """A run directory whose state cannot be trusted (missing, corrupt or wrong-shaped state.json)."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so readers see the old or the new content, never a torn one (and no temp file on failure)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk must not leave a stray temp file behind
            tmp.unlink()
        raise


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
    fields = raw[raw.rfind(")") + 2 :].split()
    if fields and fields[0] in ("Z", "X"):  # a zombie has exited already
        return None
    return int(fields[19])


def _is_pid(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 1


def process_alive(pid: int | None, start_time: int | None) -> bool:
    """Tell whether `pid` is still the process that was recorded (guards against pid reuse).

    With procfs, a pid recorded without its start time is not trusted: the pid may belong to
    another process by now, so it does not count as the run's process.
    """
    if not _is_pid(pid):
        return False
    if not Path("/proc").is_dir():  # no procfs (macOS): no start times, fall back to a signal probe
        try:
            os.kill(pid, 0)
            return True
        except PermissionError:
            return True
        except OSError:
            return False
    now = process_start_time(pid)
    return now is not None and start_time is not None and now == start_time


# The shape of state.json, key by key: a value of another type is dropped when read (a hand-edited or
# foreign state.json must not crash `runs` or the console).
_INT_KEYS = ("pid", "pgid", "proc_start", "exit_code", "worker_pid")
_FLOAT_KEYS = ("created", "started", "ended", "updated", "launched")
_STR_KEYS = ("run_id", "stage", "state", "host", "error", "group", "current", "slurm_job_id")
_DICT_KEYS = ("args", "outputs", "wandb", "stop_request", "fingerprint", "lineage")
_LIST_KEYS = ("argv", "worker_argv")
_REQUIRED = ("run_id", "stage", "state", "host")  # null is no value for these (the others may be null)


def _int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def coerce_state(raw: Any) -> dict:
    """Return state.json's content with every known key of the right type (wrong ones dropped)."""
    if not isinstance(raw, dict):
        return {}
    state = dict(raw)
    for key in _INT_KEYS:
        if key in state and _int(state[key]) is None:
            del state[key]
    for key in _FLOAT_KEYS:  # times: a NaN or infinite one is no time at all
        value = state.get(key)
        if key in state and (isinstance(value, bool) or not isinstance(value, (int, float)) or value - value != 0):
            del state[key]
    for key, kind in [
        *((k, str) for k in _STR_KEYS),
        *((k, dict) for k in _DICT_KEYS),
        *((k, list) for k in _LIST_KEYS),
    ]:
        if key in state and not isinstance(state[key], kind) and (state[key] is not None or key in _REQUIRED):
            del state[key]
    if "children" in state:
        children = state["children"]
        # Run names only, each once: readers build `runs/<child>` from them (never `../x`).
        state["children"] = (
            list(dict.fromkeys(c for c in children if is_run_name(c))) if isinstance(children, list) else []
        )
    if "progress" in state:
        prog = state["progress"] if isinstance(state["progress"], dict) else {}
        step, total = _int(prog.get("step")), _int(prog.get("total"))
        state["progress"] = {**prog, "step": max(step or 0, 0), "total": total if total and total > 0 else None}
    return state


def load_state(path: Path) -> tuple[dict, str | None]:
    """Read a state.json: (its content coerced to the expected shape, what is wrong with it or None)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, f"no {STATE_FILE}"
    except (OSError, UnicodeDecodeError) as e:
        return {}, f"{STATE_FILE} is unreadable ({getattr(e, 'strerror', None) or e})"
    try:
        raw = json.loads(text)
    except ValueError as e:
        return {}, f"{STATE_FILE} is corrupt ({e})"
    if not isinstance(raw, dict):
        return {}, f"{STATE_FILE} is not a JSON object (it holds a {type(raw).__name__})"
    return coerce_state(raw), None


def status_of(state: dict, problem: str | None) -> str:
    """Say what state to show for a run from its `load_state` result (a reader that already holds
    the state need not read it again): the recorded one, `broken`, or `lost` when an active run's
    process is gone."""
    if problem:
        return BROKEN
    recorded = state.get("state", "unknown")
    if recorded in ACTIVE_STATES and state.get("pid"):
        if not process_alive(state.get("pid"), state.get("proc_start")):
            return "lost"
    return recorded


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
        """Return state.json coerced to its expected shape (an empty dict if missing, corrupt or not an object)."""
        return load_state(self.state_path)[0]

    def problem(self) -> str | None:
        """Say what is wrong with this run's state.json (missing, corrupt, not an object), or None."""
        return load_state(self.state_path)[1]

    def check_state(self) -> dict:
        """Return the state, or raise BrokenRun naming the run and what is wrong with its state.json."""
        state, problem = load_state(self.state_path)
        if problem:
            raise BrokenRun(
                t("run {run} is broken: {problem} ({path})", run=self.id, problem=problem, path=self.state_path)
            )
        return state

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
            atomic_write_text(self.state_path, dumps_strict(state, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
            return state

    def partial_note(self) -> str | None:
        """Say why this run is partial (it ended with less than it was asked for), or None when it is whole."""
        return partial_note(self.read_state())

    def status(self) -> str:
        """Return the state to show: the recorded one, or `lost` when an active run's process is gone."""
        return status_of(*load_state(self.state_path))

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


def partial_note(state: dict) -> str | None:
    """Say why a run is partial — it recorded a `partial` mark: items that failed, scores the judge never
    gave — or None when it is whole. Such a run is never reused as whole (`fingerprint.find_reusable`).

    A mark of the wrong shape still counts: a damaged state.json must never make a partial run look whole.
    """
    mark = state.get("partial")
    if mark is None or mark is False or mark == {}:
        return None
    reason = mark.get("reason") if isinstance(mark, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        return "its partial mark in state.json does not say what is missing"
    return _printable(reason, 300)


def partial_retry(state: dict) -> str:
    """What rerunning a partial run does about what it lacks (its mark's `retry`), in words."""
    mark = state.get("partial")
    retry = mark.get("retry") if isinstance(mark, dict) else None
    return _printable(retry, 200) if isinstance(retry, str) and retry.strip() else "redo what is missing"


def _printable(text: str, limit: int) -> str:
    """Untrusted text made safe for a terminal line: control characters become spaces, and it is cut at `limit`."""
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def create_run(
    workspace: str | Path,
    stage: str,
    *,
    config_toml: str,
    argv: list[str],
    args: dict | None = None,
    group: str | None = None,
) -> Run:
    """Create a new run directory in state `queued`, with its config snapshot.

    The directory is assembled under a hidden temporary name and renamed into place once its
    config and state are written, so nobody ever sees a run without a state.json, and a failure
    (unwritable or full disk) leaves nothing behind. Raises OSError on such a failure.
    """
    root = runs_root(workspace)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        run_id = new_run_id(stage)
        final = root / run_id
        if final.exists():
            continue
        tmp = root / f".creating-{run_id}-{os.getpid()}"
        try:
            tmp.mkdir()
            building = Run(tmp)
            atomic_write_text(building.config_path, config_toml)
            building.update_state(
                run_id=run_id,
                stage=stage,
                state="queued",
                argv=argv,
                args=args or {},
                host=socket.gethostname(),
                created=time.time(),
                group=group,
                progress={"step": 0, "total": None},
            )
            os.rename(tmp, final)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY) and final.exists():
                continue  # another process took the same id within the same second: pick another
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Run(final)


def _is_run_dir(path: Path, root: Path) -> bool:
    """A visible directory of the runs folder that really lies inside it (a symlink out does not count)."""
    if path.name.startswith(".") or not path.is_dir():
        return False
    try:
        return path.resolve().parent == root.resolve()
    except OSError:
        return False


def list_runs(workspace: str | Path, stage: str | None = None, *, include_broken: bool = False) -> list[Run]:
    """List a workspace's runs, oldest first (run ids sort by creation time).

    Directories without a state.json are left out unless `include_broken` (then they come with
    `status() == "broken"`; `Run.problem()` says why).
    """
    root = runs_root(workspace)
    if not root.is_dir():
        return []
    states = {}
    for p in root.iterdir():
        # Symlinked run dirs are listed (reading is harmless); find_run refuses them for acting on.
        if not p.name.startswith(".") and p.is_dir() and (include_broken or (p / STATE_FILE).exists()):
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


def is_run_name(value: object) -> bool:
    """Whether `value` can name a run directory of `<workspace>/runs`: a plain name, not a path (`../x`,
    `a/b`, `/tmp/x`), not hidden. Names read from files (a state.json's `children`, best.json's `run`)
    are checked with it before a path is built from them."""
    return (
        isinstance(value, str)
        and bool(value)
        and not value.startswith(".")
        and "/" not in value
        and os.sep not in value
        and "\0" not in value
    )


def find_run(workspace: str | Path, run_id: str) -> Run:
    """Return the run with this id (or unique id prefix); raise LookupError naming the problem.

    Only directories inside `<workspace>/runs` are runs: a path (`../x`, `/tmp/x`, `a/b`) is refused,
    so no command acts on a state.json outside the workspace.
    """
    root = runs_root(workspace)
    if not is_run_name(run_id):
        raise LookupError(
            t(
                "{run!r} is not a run id: give a run's name as `ftmodel runs` lists it (a directory in {root}), "
                "not a path",
                run=run_id,
                root=root,
            )
        )
    exact = root / run_id
    if _is_run_dir(exact, root):
        return Run(exact)
    if exact.is_symlink() or (exact.exists() and not exact.is_dir()):
        raise LookupError(t("{path} is not a run directory inside {root}", path=exact, root=root))
    matches = [r for r in list_runs(workspace, include_broken=True) if r.id.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LookupError(t("no run {run!r} in {root}", run=run_id, root=root))
    raise LookupError(
        t("run id {run!r} is ambiguous: {matches}", run=run_id, matches=", ".join(r.id for r in matches[:5]))
    )


# RFC 8259 has no NaN or Infinity: the bare tokens Python's json writes are rejected by jq, pandas and
# strict readers. A non-finite number is written as one of these strings and read back as the float.
NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_NONFINITE_BYTES = (b'"NaN"', b'Infinity"')


def _nonfinite_as_text(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _nonfinite_as_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nonfinite_as_text(v) for v in value]
    return value


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """JSON text that strict readers accept: NaN and ±Infinity become the strings of `NONFINITE`."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:  # rare (a diverged run): convert only then, so the common row costs nothing more
        return json.dumps(_nonfinite_as_text(obj), allow_nan=False, **kwargs)


def restore_nonfinite(value: Any) -> Any:
    """Turn a number slot written by `dumps_strict` back into a float (`"NaN"` -> nan); others as they are."""
    return NONFINITE.get(value, value) if isinstance(value, str) else value


class MetricsWriter:
    """Append metric rows to metrics.jsonl, one flushed line per logged step (strict JSON)."""

    def __init__(self, path: Path):
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        """Append one row and flush it, so readers see whole lines as soon as they exist."""
        self._fh.write(dumps_strict(row, separators=(",", ":"), ensure_ascii=False) + "\n")
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
    """Parse JSONL lines (metrics.jsonl, completions.jsonl) into dict rows, skipping blank and corrupt ones.

    A top-level value written as `"NaN"`, `"Infinity"` or `"-Infinity"` comes back as that float (old
    files holding the bare tokens read the same). Nothing else is checked: rows are untrusted input
    and may hold any JSON type.
    """
    rows = []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a corrupt line (torn, not UTF-8, not JSON) never stops the reader
        if isinstance(row, dict):
            if _NONFINITE_BYTES[0] in line or _NONFINITE_BYTES[1] in line:
                row = {k: restore_nonfinite(v) for k, v in row.items()}
            rows.append(row)
    return rows
