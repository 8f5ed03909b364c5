"""The run sentinel's alerts as the console shows them: a marker per run, one line per alert, which
alerts are new (for a notification) and the console's own stall check. No Textual here.

Everything is read through the engine's sentinel (`ftmodel.sentinel`: stdlib only): alerts.jsonl is
the sentinel's file, and what it holds is a run's text (untrusted: wrong types are dropped by
`Alert.from_json`, control characters are shown by the widgets that show the lines).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from ftmodel.i18n import t
from ftmodel.rundir import Run
from ftmodel.sentinel import (
    ALERTS_FILE,
    REPLAY_ROWS,
    REPLAY_SOURCE,
    Alert,
    AlertsReader,
    Facts,
    Replay,
    StillActive,
    check_stall,
    describe,
    read_alerts,
    replay_alerts,
    settings_for,
    watched_live,
)
from ftmodel.words import ACTIVE_STATES, NONFINITE_RULES

# Rules that say a run is broken (it diverged, it stopped moving): shown as errors, the rest as warnings.
SEVERE_RULES = frozenset((*NONFINITE_RULES, "stall"))
# A marker never takes more cells than this (`⚠99+`): the stage list is 28 cells wide at 80x24.
MARKER_MAX = 99
# How often the console checks its running runs for a stall (the CLI's `follow` does it every 5 s too).
STALL_CHECK_SECONDS = 5.0


def severity(rule: str) -> str:
    """`error` for a rule that says the run is broken, `warning` for the others (a notify severity)."""
    return "error" if rule in SEVERE_RULES else "warning"


def any_error(alerts) -> bool:
    """Whether any of these alerts is an error (a red marker rather than an orange one)."""
    return any(alert.rule in SEVERE_RULES for alert in alerts)


def marker(count: int) -> str:
    """A run's alert marker: `⚠3` (`⚠99+` for more), empty when it has none."""
    if count <= 0:
        return ""
    return f"⚠{count}" if count <= MARKER_MAX else f"⚠{MARKER_MAX}+"


def alert_line(alert: Alert) -> str:
    """One alert on one line, in the UI language: `stall @ step 12: no new step for …`."""
    step = "?" if alert.step is None else alert.step
    return t("{rule} @ step {step}: {message}", rule=alert.rule, step=step, message=alert.text())


def alert_block(alert: Alert) -> list[str]:
    """An alert with its evidence and what to try (the run detail), in the UI language."""
    try:
        when = time.strftime("%m-%d %H:%M:%S", time.localtime(alert.time)) if alert.time > 0 else "?"
    except (OverflowError, OSError, ValueError):  # a time from a run's file: 1e308
        when = "?"
    step = "?" if alert.step is None else alert.step
    if alert.source == REPLAY_SOURCE:
        head = t("{rule} at step {step} ({time}, replayed from its metrics)", rule=alert.rule, step=step, time=when)
    else:
        head = t(
            "{rule} at step {step} ({time}, seen by {source})",
            rule=alert.rule,
            step=step,
            time=when,
            source=alert.source or "?",
        )
    return [head, *("  " + line for line in describe(alert, evidence=True))]


def run_facts(run_path: Path) -> Facts:
    """The config facts of a run (from its config snapshot) that its config notes read ("no KL: grpo.beta
    is 0"); empty facts when the snapshot cannot be read. Reads a file: call it in a worker."""
    try:
        return settings_for(Run(Path(run_path)))[1]
    except (OSError, ValueError, TypeError, AttributeError):  # a state.json of any shape
        return Facts()


def alert_notes(run: Run, status: str | None = None) -> list[str]:
    """What the run detail says under "alerts": the run's partial note (it ended with less than it was
    asked for), then each alert, newest first, with its evidence and what to try. A run that ended
    without an alerts.jsonl (recorded before the sentinel existed) gets what the rules say about its
    metric rows instead, labelled as replayed (`status`: the run's state now; an active run, an
    unknown state or a run the sentinel watched is never replayed). Reads files, may replay
    ~REPLAY_ROWS rows: call it in a worker."""
    try:
        note = run.partial_note()
    except (OSError, ValueError, TypeError, AttributeError):
        note = None
    lines = [t("partial: {reason}", reason=note)] if note else []
    alerts = read_alerts(run)
    if (
        not alerts
        and status is not None
        and status not in ACTIVE_STATES
        and not (run.path / ALERTS_FILE).exists()
        and not watched_live(run)  # the sentinel watched it and nothing fired: nothing to replay
    ):
        return lines + replayed_notes(run, status)
    for alert in reversed(alerts):
        lines.extend(alert_block(alert))
    return lines


# run dir -> (metrics.jsonl's inode, mtime and size; what replaying it said): a run detail opened again
# is not replayed again. A few runs: the detail is opened one run at a time.
_REPLAYS: dict[Path, tuple[tuple[int, int, int], Replay]] = {}
_REPLAYS_KEPT = 16


def replayed_notes(run: Run, status: str) -> list[str]:
    """The rules over a finished run's metric rows (at most REPLAY_ROWS, once per version of the file),
    labelled as replayed: nothing is recorded. Empty when the run has no metric rows."""
    try:
        st = os.stat(run.metrics_path)
    except OSError:
        return []
    key = (st.st_ino, st.st_mtime_ns, st.st_size)
    known = _REPLAYS.get(run.path)
    if known is not None and known[0] == key:
        replay = known[1]
    else:
        try:
            replay = replay_alerts(run, status, max_rows=REPLAY_ROWS)
        except StillActive:
            return []
        except (OSError, ValueError, TypeError, AttributeError) as e:  # a state.json or config of any shape
            return [t("could not replay its metrics: {error}", error=e)]
        while len(_REPLAYS) >= _REPLAYS_KEPT:
            del _REPLAYS[next(iter(_REPLAYS))]
        _REPLAYS[run.path] = (key, replay)
    if not replay.rows:
        return []
    if replay.whole:
        head = t("replayed (recorded before the sentinel existed), its {rows} metric rows:", rows=replay.rows)
    else:
        head = t(
            "replayed (recorded before the sentinel existed), its first {rows} metric rows only:",
            rows=replay.rows,
        )
    lines = [head]
    if not replay.alerts:
        lines.append("  " + t("no rule fires"))
    for alert in reversed(replay.alerts):
        lines.extend(alert_block(alert))
    return lines


class AlertCounter:
    """How many alerts each run has, and whether any is an error, for the workspace scanner's summaries.

    It counts the alerts that read (`read_alerts`), so a marker never counts a torn or foreign line
    the status block does not show (`ftmodel runs` counts them the same way), and it reads a file
    again only when its stat changed. The scanner asks it to look (`recheck`) only for active runs
    and runs whose state.json changed: alerts are recorded while a run is active, and its end
    rewrites state.json, so a finished run costs nothing per scan. Whether an alert is an error
    (`severity`: the marker is red then) is taken from the same read, so it costs nothing more.
    """

    def __init__(self):
        self._known: dict[Path, tuple[tuple[int, int, int] | None, int, bool]] = {}

    def look(self, run_path: Path, recheck: bool = True) -> tuple[int, bool]:
        """(how many alerts, whether any of them is an error) for a run."""
        known = self._known.get(run_path)
        if known is not None and not recheck:
            return known[1], known[2]
        try:
            st = os.stat(os.path.join(run_path, ALERTS_FILE))
        except OSError:
            self._known[run_path] = (None, 0, False)
            return 0, False
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if known is not None and known[0] == key:
            return known[1], known[2]
        alerts = read_alerts(Path(run_path))  # what the status block and detail list, not every line
        count, severe = len(alerts), any_error(alerts)
        self._known[run_path] = (key, count, severe)
        return count, severe

    def forget_except(self, paths: set[Path]) -> None:
        """Drop runs no longer in the workspace."""
        for path in set(self._known) - paths:
            del self._known[path]


class NewAlerts:
    """The alerts recorded since the console opened, across every run (owned by the poll worker).

    The first call only takes note of what is there (those alerts show in the status block, they are
    no news); after it, each alert is returned once, by its episode key: a run whose alerts.jsonl is
    truncated or rewritten is read again without telling its old alerts again.
    """

    def __init__(self):
        self._readers: dict[str, AlertsReader] = {}
        self._counts: dict[str, int] = {}
        self._told: dict[str, set[str]] = {}
        self.primed = False  # the first poll, which only takes note, is done

    def poll(self, runs) -> list[tuple[str, Alert]]:
        """Return (run id, alert) for each alert new since the last call; `runs` are RunSummary."""
        out: list[tuple[str, Alert]] = []
        for run in runs:
            count = run.alerts
            if count == self._counts.get(run.id, 0) and run.id in self._readers:
                continue
            self._counts[run.id] = count
            if not count and run.id not in self._readers:
                continue
            reader = self._readers.setdefault(run.id, AlertsReader(run.path))
            told = self._told.setdefault(run.id, set())
            for alert in reader.read_new():
                if alert.key in told:
                    continue
                told.add(alert.key)
                if self.primed:
                    out.append((run.id, alert))
        self.primed = True
        return out


class StallChecks:
    """The console's own stall check of its running runs, every few seconds (owned by the poll
    worker): a stage frozen with SIGSTOP, or whose watchdog died, still gets its `stall` alert. The
    engine's `check_stall` records each stall once whoever sees it (a key per stall, under a lock)."""

    def __init__(self, every: float = STALL_CHECK_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.every, self._clock, self._next = every, clock, 0.0

    def check(self, runs) -> None:
        """Check each running run (RunSummary) for a stall, at most every `every` seconds."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self.every
        for run in runs:
            if run.status != "running":
                continue
            try:
                check_stall(Run(run.path), status=run.status, source="console")
            except OSError:
                continue  # a run directory we may only read: the watchdog or the CLI records it
            except (ValueError, TypeError, AttributeError):
                continue  # a state.json of a shape the check cannot read (a time that is text): no stall to tell
