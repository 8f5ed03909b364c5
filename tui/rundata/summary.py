"""Run summaries: one run's state as the stage list, the status block and the runs browser show it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ftmodel.rundir import ACTIVE_STATES, STATE_FILE, Run, load_state, runs_root, status_of
from ftmodel.sentinel import read_alerts
from tui.rundata.alerts import AlertCounter, any_error
from tui.rundata.series import SeriesStore


@dataclass
class RunSummary:
    """What the stage and run lists show about one run (read from its directory)."""

    id: str
    path: Path
    stage: str
    status: str
    step: int = 0
    total: int | None = None
    created: float | None = None
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    error: str | None = None
    group: str | None = None
    current: str | None = None
    alerts: int = 0  # how many alerts the run sentinel recorded (its alerts.jsonl)
    alerts_severe: bool = False  # whether any of them is an error (non-finite, stall): a red marker
    children: tuple[str, ...] = ()  # the runs it started (a pipeline's, a sweep's stage runs): state.json
    child_alerts: int = 0  # their alerts, as the scan that summarised them counted them
    child_severe: bool = False

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATES

    @property
    def marker_alerts(self) -> int:
        """What the stage and run lists' `⚠N` counts: its own alerts and those of the runs it started."""
        return self.alerts + self.child_alerts

    @property
    def marker_severe(self) -> bool:
        return self.alerts_severe or self.child_severe


def summarize(run: Run) -> RunSummary:
    """Read one run's state.json (and whether its process lives) and its alert count into a RunSummary."""
    alerts = read_alerts(run)
    summary = summary_of(run, *load_state(run.state_path), alerts=len(alerts))
    summary.alerts_severe = any_error(alerts)
    return summary


def summary_of(run: Run, state: dict, problem: str | None, alerts: int = 0) -> RunSummary:
    """Make a run's RunSummary from its state.json as `load_state` read it (and whether its process lives)."""
    if state.get("slurm_job_id"):  # the scheduler, not a local pid, knows whether it runs (or killed it)
        from ftmodel.launcher import run_status

        status = run_status(run)
    else:
        status = status_of(state, problem)
    progress = state.get("progress") or {}
    return RunSummary(
        id=run.id,
        path=run.path,
        stage=state.get("stage", "?"),
        status=status,
        step=_count(progress.get("step")) or 0,
        total=_count(progress.get("total")),
        created=state.get("created"),
        started=state.get("started"),
        ended=state.get("ended"),
        exit_code=state.get("exit_code"),
        error=state.get("error"),
        group=state.get("group"),
        current=state.get("current"),
        alerts=alerts,
        children=tuple(state.get("children") or ()),  # coerce_state kept only names (text)
    )


def _count(value) -> int | None:
    """A step count from state.json as a number a progress bar can take (10**30 steps is no count)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_STEPS:
        return None
    return value


MAX_STEPS = 10**15


def scan_workspace(workspace: Path) -> list[RunSummary]:
    """Summarise every run of a workspace, oldest first."""
    return WorkspaceScanner(workspace).scan()


class WorkspaceScanner:
    """Summarise a workspace's runs scan after scan, reading a run's state.json again only when it changed.

    The console scans every half second; most runs finished long ago, so a scan costs a stat per run
    (state.json is replaced by rename, so a new version has a new inode and mtime) instead of reading
    and parsing every state.json. Whether an active run's process still lives is asked every scan.
    Its alerts are counted the same way (tui.rundata.alerts.AlertCounter: for an active run or a
    changed state.json, a second stat, and a read only when alerts.jsonl changed); a run that lists
    `children` in its state.json (a pipeline) adds theirs to its marker (`marker_alerts`).
    One thread at a time uses a scanner.
    """

    def __init__(self, workspace: Path):
        self.workspace = Path(workspace)
        # run dir -> (state.json's inode, mtime and size; its content as load_state read it; its problem)
        self._read: dict[Path, tuple[tuple[int, int, int], dict, str | None]] = {}
        self._alerts = AlertCounter()  # alerts.jsonl is counted again only when it changed

    def scan(self) -> list[RunSummary]:
        """Summarise every run of the workspace, oldest first (the runs `rundir.list_runs` lists)."""
        root = runs_root(self.workspace)
        if not root.is_dir():
            self._read.clear()
            self._alerts.forget_except(set())
            return []
        read, changed = {}, set()
        with os.scandir(root) as entries:
            for entry in entries:
                path = Path(entry.path)
                try:
                    if entry.name.startswith(".") or not entry.is_dir():
                        continue
                    st = os.stat(path / STATE_FILE)
                except OSError:
                    continue  # no state.json (yet): not a run; or the directory went away
                key = (st.st_ino, st.st_mtime_ns, st.st_size)
                known = self._read.get(path)
                if known is not None and known[0] == key:
                    read[path] = known
                else:
                    read[path] = (key, *load_state(path / STATE_FILE))
                    changed.add(path)
        self._read = read
        self._alerts.forget_except(set(read))
        # The id's timestamp has one-second resolution; `created` orders runs started within a second.
        order = sorted(read, key=lambda p: (p.name.split("-", 1)[-1][:15], read[p][1].get("created") or 0, p.name))
        out = []
        for path in order:
            _, state, problem = read[path]
            try:
                summary = summary_of(Run(path), state, problem)
            except (OSError, ValueError, TypeError):
                continue  # a run directory being created or removed right now
            summary.alerts, summary.alerts_severe = self._alerts.look(path, recheck=summary.active or path in changed)
            out.append(summary)
        # A pipeline's (or a sweep's) marker counts the alerts of the runs it started, from the summaries
        # this scan just made: no file more is read. One level: a child's own children are not added.
        parents = [s for s in out if s.children]
        by_id = {s.id: s for s in out} if parents else {}
        for summary in parents:
            for child in summary.children:
                found = by_id.get(child)
                if found is not None and found is not summary:
                    summary.child_alerts += found.alerts
                    summary.child_severe = summary.child_severe or found.alerts_severe
        return out


@dataclass
class StageRow:
    """One line of the stage list: a stage and its latest run."""

    stage: str
    latest: RunSummary | None = None
    runs: list[RunSummary] = field(default_factory=list)


def stage_rows(stages: tuple[str, ...], runs: list[RunSummary]) -> list[StageRow]:
    """Group runs by stage (newest first within each stage)."""
    rows = {s: StageRow(s) for s in stages}
    for run in runs:
        row = rows.get(run.stage)
        if row is not None:
            row.runs.insert(0, run)
    for row in rows.values():
        row.latest = row.runs[0] if row.runs else None
    return list(rows.values())


def speed_and_eta(
    summary: RunSummary, store: SeriesStore, now: float | None = None
) -> tuple[float | None, float | None]:
    """Return (steps per second, seconds left) from logged step times, else from state progress."""
    now = time.time() if now is None else now
    rate = None
    times = store.get("time")
    if times is not None and len(times) >= 2 and times.last is not None:
        # Rate over the recent stored window: stored points are spread evenly over the run.
        k = max(0, len(times.xs) - 16)
        x0, t0 = times.xs[k], times.ys[k]
        x1, t1 = times.last
        if t1 > t0 and x1 > x0:
            rate = (x1 - x0) / (t1 - t0)
    if rate is None and summary.started and summary.step:
        end = summary.ended or now
        if end > summary.started:
            rate = summary.step / (end - summary.started)
    eta = None
    if rate and summary.total and summary.active:
        eta = max(0.0, (summary.total - summary.step) / rate)
    return rate, eta


def clock(timestamp: float | None, fmt: str = "%m-%d %H:%M") -> str:
    """Format a time from a run's files as local time, `—` when there is none or it is not a time
    (NaN, 1e308: a state.json may hold anything)."""
    if not timestamp:
        return "—"
    try:
        return time.strftime(fmt, time.localtime(timestamp))
    except (OverflowError, OSError, ValueError, TypeError):
        return "—"


def fmt_duration(seconds: float | None) -> str:
    """Format seconds as `1h02m`, `3m05s` or `42s` (`—` for none, NaN or an endless time)."""
    if seconds is None or seconds - seconds != 0:
        return "—"
    seconds = int(seconds)
    if seconds >= 100 * 3600 * 24 * 365:  # a century: not a real duration
        return "—"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
