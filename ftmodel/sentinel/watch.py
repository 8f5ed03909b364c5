"""The sentinel at work: `RunWatch` inside the process that logs a run's rows, and `check_stall`,
which looks at a run from outside (a frozen process cannot see its own stall)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftmodel.rundir import METRICS_FILE, Run, parse_metric_lines
from ftmodel.sentinel.alerts import Alert, AlertsReader, default_settings, record_alerts, stops_on
from ftmodel.sentinel.messages import clean_text, finite, fmt, seconds
from ftmodel.sentinel.rules import Facts, Sentinel
from ftmodel.words import PIPELINE

LOG_TAIL_LINES = 8  # a stall alert carries this many of the stage's last log lines


class RunWatch:
    """The sentinel in the process that logs a run's rows (the tracker): feed each row to `observe`.

    It records new alerts, runs the alert command, and asks the stage to stop (`request_stop`) on a
    rule named in `[alerts] stop_on`. `observe` returns the alerts that appeared in alerts.jsonl since
    the last call, its own and those another process recorded (a stall seen by the watchdog), so the
    tracker can mirror each to wandb once.
    """

    def __init__(
        self,
        run: Run,
        stage: str,
        settings,
        facts: Facts,
        *,
        log: Callable[[str], None],
        request_stop: Callable[[str], None] | None = None,
    ):
        self.run, self.settings, self.log, self.request_stop = run, settings, log, request_stop
        self.sentinel = Sentinel(stage, settings, facts)
        self._reader = AlertsReader(run)
        self._broken = False

    def observe(self, row: dict) -> list[Alert]:
        """Feed one logged row; return the alerts new in the run's file. Never raises: the sentinel
        must not take a training run down (a failure is logged once and the sentinel goes quiet)."""
        if self._broken:
            return []
        try:
            fired = self.sentinel.feed(row)
            for alert in record_alerts(self.run, fired, self.settings, source="trainer", log=self.log) if fired else []:
                if self.request_stop is not None and stops_on(self.settings, alert.rule):
                    self.request_stop(f"stopped by the sentinel ({alert.rule}): {alert.message}")
            return self._reader.read_new()
        except Exception as e:  # noqa: BLE001 - a full disk or a bug here must not end the training
            self._broken = True
            self.log(f"warning: the run sentinel stopped watching: {type(e).__name__}: {e}")
            return []

    def pending(self) -> list[Alert]:
        """Alerts recorded since the last `observe` (by another process), e.g. before wandb closes."""
        if self._broken:
            return []
        try:
            return self._reader.read_new()
        except OSError:
            return []


def _tail_rows(path: Path, max_bytes: int = 64 * 1024) -> list[dict]:
    """The last whole rows of a metrics.jsonl (only its tail is read: a long run's file is large)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    lines = data.split(b"\n")
    if size > max_bytes:
        lines = lines[1:]  # the first line is cut by the seek
    if not data.endswith(b"\n"):
        lines = lines[:-1]
    return parse_metric_lines(lines)


_PROC_STATES = {
    "T": "stopped (SIGSTOP)",
    "t": "stopped (SIGSTOP)",
    "S": "sleeping",
    "R": "running",
    "D": "waiting on disk",
}


def process_state(pid: Any) -> str:
    """What the kernel says a process is doing: `stopped (SIGSTOP)`, `sleeping`, `running`, … (`unknown`)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return "unknown"
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return "unknown"
    code = raw[raw.rfind(")") + 2 :][:1]
    return _PROC_STATES.get(code, "alive")


@dataclass
class StallClock:
    """When a run last moved, and how long it may stay still (what `check_stall` decides on)."""

    last_move: float  # the newest of: started, the last metrics row, the last progress update
    last_step: int | None
    interval: float | None  # median seconds between logged rows (None: fewer than two)
    steps_per_row: float | None
    window: float  # seconds without a move that count as a stall
    started_steps: bool  # a first step or progress was seen

    def idle(self, now: float) -> float:
        return max(0.0, now - self.last_move)


def stall_clock(state: dict, rows: list[dict], settings) -> StallClock:
    """Read a run's clock from its state and its last metric rows.

    Before the first step (no row, no progress) a stage may take `stall_startup_s` (loading a model,
    a teacher slow to start); after it, max(`stall_floor_s`, `stall_factor` × the median time between
    logged rows). The median is over the tail of metrics.jsonl, so a run that slows down gradually
    widens its own window.
    """
    started = state.get("started") or state.get("launched") or state.get("created") or 0.0
    times = [(r["step"], float(r["time"])) for r in rows if isinstance(r.get("step"), int) and finite(r.get("time"))]
    prog = state.get("progress") if isinstance(state.get("progress"), dict) else {}
    prog_time = finite(state.get("progress_at"))
    prog_step = prog.get("step") if isinstance(prog.get("step"), int) else 0
    last_move = max([started, *(t for _, t in times[-1:]), *([prog_time] if prog_time else [])])
    last_step = times[-1][0] if times else (prog_step or None)
    if prog_step and (last_step is None or prog_step > last_step):
        last_step = prog_step
    gaps = [(b[1] - a[1], b[0] - a[0]) for a, b in zip(times, times[1:]) if b[1] >= a[1]]
    interval = statistics.median(g for g, _ in gaps) if gaps else None
    steps = statistics.median(s for _, s in gaps) if gaps else None
    started_steps = bool(times) or prog_step > 0
    if not started_steps:
        window = settings.stall_startup_s
    else:
        window = max(settings.stall_floor_s, settings.stall_factor * (interval or 0.0))
    return StallClock(last_move, last_step, interval, steps, window, started_steps)


def check_stall(
    run: Run,
    *,
    status: str,
    settings=None,
    now: float | None = None,
    record: bool = True,
    source: str,
    log: Callable[[str], None] | None = None,
) -> Alert | None:
    """Say whether a running stage has stalled, and record it (once per stall) unless `record` is off.

    `status` is the run's status as its backend tells it (`launcher.run_status`; the console's own
    reading): only a `running` run whose process is alive can stall. The pipeline driver is not
    checked (its stage in flight is). Returns the alert (also when it was already recorded) or None.
    """
    if status != "running":
        return None
    state = run.read_state()
    stage = state.get("stage") or "?"
    if state.get("state") != "running" or stage == PIPELINE:
        return None
    if settings is None:
        settings, _ = settings_for(run)
    if not settings.enabled:
        return None
    now = time.time() if now is None else now
    clock = stall_clock(state, _tail_rows(run.path / METRICS_FILE), settings)
    idle = clock.idle(now)
    if idle < clock.window:
        return None
    pid = state.get("worker_pid") or state.get("pid")
    host = state.get("slurm_node") or state.get("host")  # a Slurm worker runs on its node, not the submitter
    process = process_state(pid) if host in (None, _hostname()) else "unknown"
    per_step = clock.interval / clock.steps_per_row if clock.interval and clock.steps_per_row else None
    params = {
        "idle": seconds(idle),
        "window": seconds(clock.window),
        "step": fmt(clock.last_step),
        "interval": seconds(per_step) if per_step else "?",
        "process": process,
        "pid": str(pid) if pid else "?",
        "run": run.id,
    }
    alert = Alert(
        rule="stall",
        stage=stage,
        step=clock.last_step,
        time=now,
        key=f"stall@{clock.last_move:.3f}",  # the same stall gives the same key to every checker
        values={
            "idle_s": round(idle, 1),
            "window_s": round(clock.window, 1),
            "step_interval_s": per_step,
            "last_move": clock.last_move,
        },
        params=params,
        variant="" if clock.started_steps else "startup",
        hint_variant="stopped" if process.startswith("stopped") else "",
        log_tail=[clean_text(line) for line in run.log_tail(LOG_TAIL_LINES)],
    )
    if record:
        record_alerts(run, [alert], settings, source=source, log=log)
    return alert


def _hostname() -> str:
    import socket

    return socket.gethostname()


_SETTINGS_CACHE: dict[Path, tuple[float, Any, Facts]] = {}


def settings_for(run: Run) -> tuple[Any, Facts]:
    """The `[alerts]` settings and the facts of a run, from its config snapshot (the defaults when the
    snapshot cannot be read: an alert is still worth raising). Cached by the snapshot's mtime."""
    path = run.config_path
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = -1.0
    cached = _SETTINGS_CACHE.get(path)
    if cached and cached[0] == mtime:
        return cached[1], cached[2]
    stage = run.read_state().get("stage") or ""
    try:
        from ftmodel import config as config_mod

        cfg = config_mod.load(path)
        settings, facts = cfg.alerts, Facts.from_config(cfg, stage)
    except Exception:  # noqa: BLE001 - a snapshot from another version or a broken file: defaults
        settings, facts = default_settings(), Facts()
    _SETTINGS_CACHE[path] = (mtime, settings, facts)
    return settings, facts
