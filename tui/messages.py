"""Typed messages: thread workers post them, screens and the app handle them (the only way work
reports back to the UI thread, and the way screens ask the app for app-wide work)."""

from __future__ import annotations

from textual.message import Message

from tui.view import GpuSample, RunSummary, SeriesStore


class RunsScanned(Message):
    """A fresh summary of every run in the workspace."""

    def __init__(self, runs: list[RunSummary]):
        super().__init__()
        self.runs = runs


class MetricsHistory(Message):
    """A run's whole history so far, as a store that replaces the shown one (a preview, then exact)."""

    def __init__(self, run_id: str, store: SeriesStore, exact: bool):
        super().__init__()
        self.run_id, self.store, self.exact = run_id, store, exact


class MetricsChunk(Message):
    """New metric columns for one run."""

    def __init__(self, run_id: str, columns: dict, rows: int, caught_up: bool = False):
        super().__init__()
        self.run_id, self.columns, self.rows = run_id, columns, rows
        self.caught_up = caught_up  # the file has been read to its end


class LogLines(Message):
    """New log lines for one run."""

    def __init__(self, run_id: str, lines: list[str]):
        super().__init__()
        self.run_id, self.lines = run_id, lines


class ResultsLoaded(Message):
    """Result tables (eval / ablation) of one run."""

    def __init__(self, run_id: str, tables: list, beta: float | None):
        super().__init__()
        self.run_id, self.tables, self.beta = run_id, tables, beta


class GpuPolled(Message):
    """One nvidia-smi sample."""

    def __init__(self, gpus: list[GpuSample]):
        super().__init__()
        self.gpus = gpus


class ChartsReady(Message):
    """textual_plotext is imported: chart widgets can be mounted."""


class LaunchDone(Message):
    """A start request ended: a run id, or an error message for the user."""

    def __init__(self, stage: str, run_id: str | None, error: str | None):
        super().__init__()
        self.stage, self.run_id, self.error = stage, run_id, error


class SyncProgress(Message, bubble=False):
    """A line of progress from the sync worker about one offline run (shown as is, never parsed).

    The sync messages do not bubble: the app forwards a copy to the sync screen, not back to itself.
    """

    def __init__(self, key: str, text: str):
        super().__init__()
        self.key, self.text = key, text


class SyncRunDone(Message, bubble=False):
    """One offline run's sync outcome is final (the engine's `result_cb`)."""

    def __init__(self, result):
        super().__init__()
        self.result = result


class SyncFinished(Message, bubble=False):
    """The sync worker ended (results, or the error that stopped it; the receipt it wrote, if any)."""

    def __init__(self, results: list, error: str | None, receipt=None):
        super().__init__()
        self.results, self.error, self.receipt = results, error, receipt


class StopDone(Message):
    """A stop request ended with this status (or error)."""

    def __init__(self, run_id: str, status: str | None, error: str | None):
        super().__init__()
        self.run_id, self.status, self.error = run_id, status, error


class LaunchRequested(Message):
    """A screen asks the app to start a stage with a given (validated) config and command line."""

    def __init__(self, stage: str, cfg, args: dict, argv: list[str]):
        super().__init__()
        self.stage, self.cfg, self.args, self.argv = stage, cfg, args, argv


class SyncRequested(Message):
    """The sync screen asks the app to sync these offline runs."""

    def __init__(self, runs: list):
        super().__init__()
        self.runs = runs


class RunDeleted(Message):
    """A delete worker ended: what it removed, or why it did not."""

    def __init__(self, run_id: str, removed: bool, note: str):
        super().__init__()
        self.run_id, self.removed, self.note = run_id, removed, note


class StopRequested(Message):
    """A screen asks the app to stop a run gracefully."""

    def __init__(self, run_id: str):
        super().__init__()
        self.run_id = run_id


class RowsLoaded(Message):
    """Fresh rows for the runs browser."""

    def __init__(self, rows: list):
        super().__init__()
        self.rows = rows


class DetailLoaded(Message):
    """A run detail's files, read in a worker: config diff, artifacts, result tables, log tail."""

    def __init__(self, diff: str, artifacts: list, tables: list, log: list[str], lineage: list[str] | None = None):
        super().__init__()
        self.diff, self.artifacts, self.tables, self.log = diff, artifacts, tables, log
        self.lineage = lineage or []


class OverlayLoaded(Message):
    """The overlay's metric names and every run's points of the shown metric, read in a worker."""

    def __init__(self, metric: str, metrics: list[str], series: list):
        super().__init__()
        self.metric, self.metrics, self.series = metric, metrics, series


class OfflineListed(Message):
    """The workspace's offline wandb runs with their ledger state; `behind`: keys of runs a receipt
    says reached the server that have grown since (read in the worker: it stats files)."""

    def __init__(self, runs: list, behind: set[str] | None = None):
        super().__init__()
        self.runs, self.behind = runs, behind or set()


class BundlePlanned(Message):
    """What a bundle of the chosen runs would carry (`ftmodel.bundle.BundlePlan`), or why not."""

    def __init__(self, plan, new_only: bool, error: str | None):
        super().__init__()
        self.plan, self.new_only, self.error = plan, new_only, error


class PackRequested(Message):
    """The sync screen asks the app to pack a planned bundle into `out` (the app's worker outlives the screen)."""

    def __init__(self, plan, out, new_only: bool):
        super().__init__()
        self.plan, self.out, self.new_only = plan, out, new_only


class BundlePacked(Message, bubble=False):
    """The pack worker ended: the bundle written (`ftmodel.bundle.BundleInfo`), or the error."""

    def __init__(self, info, out, error: str | None):
        super().__init__()
        self.info, self.out, self.error = info, out, error


class BundleChecked(Message):
    """A bundle file was verified against its manifest: its header, or the engine's refusal."""

    def __init__(self, path, header: dict | None, error: str | None):
        super().__init__()
        self.path, self.header, self.error = path, header, error


class BundleImported(Message):
    """An import ended: `ftmodel.bundle.ImportResult`, or the engine's refusal (nothing changed)."""

    def __init__(self, path, result, error: str | None):
        super().__init__()
        self.path, self.result, self.error = path, result, error


class ReceiptsListed(Message):
    """The workspace's sync receipts (`ftmodel.receipts.Receipt`), oldest first."""

    def __init__(self, receipts: list):
        super().__init__()
        self.receipts = receipts


class ReceiptImported(Message):
    """A receipt file was checked and kept in the workspace, or refused with the reason."""

    def __init__(self, path, receipt, error: str | None):
        super().__init__()
        self.path, self.receipt, self.error = path, receipt, error


class CompletionsLoaded(Message):
    """A GRPO run's completions, read in a worker."""

    def __init__(self, run_id: str | None, rows: list):
        super().__init__()
        self.run_id, self.rows = run_id, rows


class QueueRead(Message):
    """The queue as read in a worker: its content (or the error), whether a runner drains it, the sweeps."""

    def __init__(
        self, data: dict | None, runner: bool, sweeps: list[str], error: str | None = None, started: int | None = None
    ):
        super().__init__()
        self.data, self.runner, self.sweeps, self.error, self.started = data, runner, sweeps, error, started


class QueueEdited(Message):
    """A queue edit (move, remove, pause, retry) done in a worker: what to tell the user, or the error."""

    def __init__(self, note: str | None, error: str | None = None):
        super().__init__()
        self.note, self.error = note, error


class SweepTableRead(Message):
    """A sweep's comparison table (sweep.comparison), read in a worker."""

    def __init__(self, sweep_id: str, columns: list, rows: list, best: int | None, error: str | None = None):
        super().__init__()
        self.sweep_id, self.columns, self.rows, self.best, self.error = sweep_id, columns, rows, best, error


class SweepPlanned(Message):
    """A sweep planned in a worker: the points (sweep.Point) and stages, or the engine's error."""

    def __init__(self, points: list, stages: list[str], error: str | None = None):
        super().__init__()
        self.points, self.stages, self.error = points, stages, error


class SweepQueued(Message):
    """A sweep queued (and the runner started) in a worker, or why not."""

    def __init__(self, sweep_id: str | None, jobs: int, error: str | None = None):
        super().__init__()
        self.sweep_id, self.jobs, self.error = sweep_id, jobs, error
