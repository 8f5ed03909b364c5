"""Replay: what the row rules say about a run recorded before the sentinel existed (or before a rule
did). A workspace upgraded from an older ftmodel has finished runs with a metrics.jsonl and no
alerts.jsonl: their NaN loss or zero-variance GRPO was never said.

`replay_alerts` feeds a run's metric rows, streamed (a sentinel keeps bounded windows, so a huge file
costs time, ~17 µs a row of GRPO metrics here, not memory), to `Sentinel(stage, *settings_for(run))` and returns the
alerts with `source = "replay"`. It records nothing: `ftmodel alerts RUN --replay --record` does
that through the one recording path, keyed like the trainer's alerts, so an alert the trainer
already recorded is not written twice. A run still queued or running is never replayed: its own
sentinel is watching, and its file is still growing.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

from ftmodel.errors import FtmodelError
from ftmodel.i18n import t
from ftmodel.rundir import Run, parse_metric_lines
from ftmodel.sentinel.alerts import Alert
from ftmodel.sentinel.rules import Sentinel
from ftmodel.sentinel.watch import settings_for
from ftmodel.words import ACTIVE_STATES

REPLAY_SOURCE = "replay"  # an alert's `source` when a replay, not a live reader, saw it
# The console's bound: a worker replays this many GRPO rows in ~0.35 s here (17 µs a row); a huge file
# is cut there, and says so (`Replay.whole`).
REPLAY_ROWS = 20_000
_BATCH = 1000  # lines parsed at once


class StillActive(FtmodelError, ValueError):
    """A run still queued or running: its own sentinel watches it, it is not replayed."""


@dataclass
class Replay:
    """What a replay saw: the alerts, how many rows it fed, and whether that was every row."""

    alerts: list[Alert] = field(default_factory=list)
    rows: int = 0
    whole: bool = True  # False when `max_rows` stopped it before the end of metrics.jsonl


def watched_live(run: Run) -> bool:
    """Whether the sentinel watched this run as it trained: its config snapshot has the `[alerts]`
    table, which came with the sentinel. Such a run without an alerts.jsonl had no alert (the file is
    written with the first one); a run whose snapshot lacks the table (or cannot be read) predates it."""
    try:
        snapshot = tomllib.loads(run.config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return isinstance(snapshot.get("alerts"), dict)


def replay_alerts(run: Run, status: str | None = None, *, max_rows: int | None = None) -> Replay:
    """Feed a finished run's metric rows (at most `max_rows`) to its stage's rules; record nothing.

    `status` is the run's state as the caller knows it (the scheduler's for a Slurm run); without it
    the recorded state is read. Raises `StillActive` for a queued or running run. Rows are untrusted
    (NaN, wrong types, torn or corrupt lines): the rules skip what they cannot read.
    """
    status = status if status is not None else run.status()
    if status in ACTIVE_STATES:
        raise StillActive(t("{run} is still {status}: its own sentinel is watching it", run=run.id, status=status))
    stage = run.read_state().get("stage")
    sentinel = Sentinel(stage if isinstance(stage, str) else "", *settings_for(run))
    out = Replay()
    try:
        fh = open(run.metrics_path, "rb")
    except OSError:
        return out
    with fh:
        batch: list[bytes] = []
        for line in fh:
            if not line.endswith(b"\n"):
                break  # a torn last line (a run killed while writing): not a row
            batch.append(line)
            if len(batch) >= _BATCH:
                _feed(sentinel, batch, out, max_rows)
                batch = []
                if max_rows is not None and out.rows >= max_rows:
                    # Cut short only if something follows (a blank tail is no row).
                    out.whole = out.whole and next((x for x in fh if x.strip()), None) is None
                    return out
        _feed(sentinel, batch, out, max_rows)
    return out


def _feed(sentinel: Sentinel, lines: list[bytes], out: Replay, max_rows: int | None) -> None:
    """Feed these lines' rows, up to `max_rows` in all (`out.whole` is False when some are left)."""
    rows = parse_metric_lines(lines)
    if max_rows is not None and out.rows + len(rows) > max_rows:
        rows, out.whole = rows[: max(0, max_rows - out.rows)], False
    for row in rows:
        for alert in sentinel.feed(row):
            alert.source = REPLAY_SOURCE
            out.alerts.append(alert)
    out.rows += len(rows)
