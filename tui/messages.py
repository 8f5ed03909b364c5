"""Typed messages: thread workers post them, screens and the app handle them (the only way work
reports back to the UI thread, and the way screens ask the app for app-wide work).

Each message is a dataclass (Textual calls `__post_init__` for them), so its fields are named and
typed in one place. Messages that a poll posts over and over say so with `can_replace`: a newer
one replaces an older one still waiting in the queue, so a busy UI thread never works through a
backlog of stale scans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message

from ftmodel.gpus import Gpu
from tui.rundata.series import SeriesStore
from tui.rundata.summary import RunSummary


class _Latest:
    """A message whose newer copy makes an older, still queued one pointless (a poll's snapshot)."""

    def can_replace(self, message: Message) -> bool:
        return type(message) is type(self)


# ---------------------------------------------------------------- the main console's polls


@dataclass(eq=False)
class RunsScanned(_Latest, Message):
    """A fresh summary of every run in the workspace."""

    runs: list[RunSummary]


@dataclass(eq=False)
class MetricsHistory(Message):
    """A run's whole history so far, as a store that replaces the shown one (a preview, then exact)."""

    run_id: str
    store: SeriesStore
    exact: bool


@dataclass(eq=False)
class MetricsChunk(Message):
    """New metric columns for one run (never replaced: every chunk adds points)."""

    run_id: str
    columns: dict[str, tuple[list[float], list[float]]]
    rows: int
    caught_up: bool = False  # the file has been read to its end


@dataclass(eq=False)
class LogLines(Message):
    """New log lines for one run."""

    run_id: str
    lines: list[str]


@dataclass(eq=False)
class ResultsLoaded(Message):
    """Result tables (eval / ablation) of one run, and the config facts its notes come from
    (`ftmodel.sentinel.Facts` from its config snapshot: "no KL: grpo.beta is 0")."""

    run_id: str
    tables: list
    facts: Any = None


@dataclass(eq=False)
class AlertsRead(Message):
    """Alerts of the followed run read since the last poll (`ftmodel.sentinel.Alert`, oldest first);
    `reset`: they replace what was read before (its alerts.jsonl was truncated or replaced)."""

    run_id: str
    alerts: list
    reset: bool = False


@dataclass(eq=False)
class AlertsRaised(Message):
    """Alerts recorded since the console opened, in any run: (run id, Alert), each told once."""

    alerts: list


@dataclass(eq=False)
class GpuPolled(_Latest, Message):
    """One nvidia-smi sample."""

    gpus: list[Gpu]


class ChartsReady(Message):
    """textual_plotext is imported: chart widgets can be mounted."""


# ---------------------------------------------------------------- app-wide work: launch, stop, sync, bundles


@dataclass(eq=False)
class ResumeFactsRead(Message):
    """Where a run's last checkpoint would continue (`facts`: ftmodel.resume.ResumeFacts), or why it cannot."""

    stage: str
    run_id: str
    facts: Any = None
    error: str | None = None


@dataclass(eq=False)
class LaunchRequested(Message):
    """A screen asks the app to start a stage with a given (validated) config and command line."""

    stage: str
    cfg: Any  # ftmodel.config.Config, or None: the app reads the config file again
    args: dict
    argv: list[str]


@dataclass(eq=False)
class LaunchDone(Message):
    """A start request ended: a run id, or an error message for the user."""

    stage: str
    run_id: str | None
    error: str | None


@dataclass(eq=False)
class StopRequested(Message):
    """A screen asks the app to stop a run gracefully."""

    run_id: str


@dataclass(eq=False)
class StopDone(Message):
    """A stop request ended with this status (or error)."""

    run_id: str
    status: str | None
    error: str | None


@dataclass(eq=False)
class SyncRequested(Message):
    """The sync screen asks the app to sync these offline runs."""

    runs: list


@dataclass(eq=False)
class SyncProgress(Message, bubble=False):
    """A line of progress from the sync worker about one offline run (shown as is, never parsed).

    The sync messages do not bubble: the app forwards a copy to the sync screen, not back to itself.
    """

    key: str
    text: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SyncProgress) and message.key == self.key  # the latest line per run


@dataclass(eq=False)
class SyncRunDone(Message, bubble=False):
    """One offline run's sync outcome is final (the engine's `result_cb`)."""

    result: Any  # ftmodel.sync.Result


@dataclass(eq=False)
class SyncFinished(Message, bubble=False):
    """The sync worker ended (results, or the error that stopped it; the receipt it wrote, if any)."""

    results: list
    error: str | None
    receipt: Path | None = None


@dataclass(eq=False)
class PackRequested(Message):
    """The sync screen asks the app to pack a planned bundle into `out` (the app's worker outlives the screen)."""

    plan: Any  # ftmodel.bundle.BundlePlan
    out: Path
    new_only: bool


@dataclass(eq=False)
class BundlePacked(Message, bubble=False):
    """The pack worker ended: the bundle written (`ftmodel.bundle.BundleInfo`), or the error."""

    info: Any
    out: Path
    error: str | None


# ---------------------------------------------------------------- workbench screens


@dataclass(eq=False)
class RunDeleted(Message):
    """A delete worker ended: what it removed, or why it did not."""

    run_id: str
    removed: bool
    note: str


@dataclass(eq=False)
class RowsLoaded(_Latest, Message):
    """Fresh rows for the runs browser."""

    rows: list


@dataclass(eq=False)
class DetailLoaded(Message):
    """A run detail's files, read in a worker: config diff, artifacts, result tables, log tail, lineage,
    alerts."""

    diff: str
    artifacts: list
    tables: list
    log: list[str]
    lineage: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)  # its partial note and alerts with their evidence


@dataclass(eq=False)
class OverlayLoaded(Message):
    """The overlay's metric names and every run's points of the shown metric, read in a worker."""

    metric: str
    metrics: list[str]
    series: list


@dataclass(eq=False)
class OfflineListed(_Latest, Message):
    """The workspace's offline wandb runs with their ledger state; `behind`: keys of runs a receipt
    says reached the server that have grown since (read in the worker: it stats files)."""

    runs: list
    behind: set[str] = field(default_factory=set)


@dataclass(eq=False)
class BundlePlanned(Message):
    """What a bundle of the chosen runs would carry (`ftmodel.bundle.BundlePlan`), or why not."""

    plan: Any
    new_only: bool
    error: str | None


@dataclass(eq=False)
class BundleChecked(Message):
    """A bundle file was verified against its manifest: its header, or the engine's refusal."""

    path: Path
    header: dict | None
    error: str | None


@dataclass(eq=False)
class BundleImported(Message):
    """An import ended: `ftmodel.bundle.ImportResult`, or the engine's refusal (nothing changed)."""

    path: Path
    result: Any
    error: str | None


@dataclass(eq=False)
class ReceiptsListed(_Latest, Message):
    """The workspace's sync receipts (`ftmodel.receipts.Receipt`), oldest first."""

    receipts: list


@dataclass(eq=False)
class ReceiptImported(Message):
    """A receipt file was checked and kept in the workspace, or refused with the reason."""

    path: Path
    receipt: Any
    error: str | None


@dataclass(eq=False)
class ConfigDiskChecked(Message):
    """The config editor's file was read again in a worker: whether it changed since `doc` read it."""

    doc: Any  # tui.configdoc.ConfigDocument
    changed: bool


@dataclass(eq=False)
class AblationRead(Message):
    """An ablation run's summary read in a worker: its matrix (reports.AblationMatrix), or why there is none."""

    run_id: str
    matrix: Any
    why: str | None


@dataclass(eq=False)
class AblationExported(Message):
    """The ablation matrix was written as Markdown to `path`, or the error."""

    path: Path
    error: str | None


@dataclass(eq=False)
class CompletionsLoaded(Message):
    """A GRPO run's completions, read in a worker."""

    run_id: str | None
    rows: list


@dataclass(eq=False)
class QueueRead(_Latest, Message):
    """The queue as read in a worker: its content (or the error), whether a runner drains it, the sweeps."""

    data: dict | None
    runner: bool
    sweeps: list[str]
    error: str | None = None
    started: int | None = None


@dataclass(eq=False)
class QueueEdited(Message):
    """A queue edit (move, remove, pause, retry) done in a worker: what to tell the user, or the error."""

    note: str | None
    error: str | None = None


@dataclass(eq=False)
class SweepTableRead(Message):
    """A sweep's comparison table (sweep.comparison), read in a worker."""

    sweep_id: str
    columns: list
    rows: list
    best: int | None
    error: str | None = None


@dataclass(eq=False)
class SweepPlanned(Message):
    """A sweep planned in a worker: the points (sweep.Point) and stages, or the engine's error."""

    points: list
    stages: list[str]
    error: str | None = None


@dataclass(eq=False)
class SweepQueued(Message):
    """A sweep queued (and the runner started) in a worker, or why not."""

    sweep_id: str | None
    jobs: int
    error: str | None = None
