"""The main console's thread workers: scan the workspace (with its alerts and stalls), tail the
selected run, poll nvidia-smi.

They run off the UI thread and only post messages (tui.messages); the console screen's handlers
own every widget and all state. A mixin so the screen module stays about layout and handlers.
"""

from __future__ import annotations

import importlib
import time

from ftmodel.gpus import query_gpus
from ftmodel.reports import result_tables
from tui.messages import (
    AlertsRaised,
    AlertsRead,
    ChartsReady,
    GpuPolled,
    LogLines,
    MetricsChunk,
    MetricsHistory,
    ResultsLoaded,
    ResumeFactsRead,
    RunsScanned,
)
from tui.rundata.alerts import run_facts
from tui.rundata.follower import RunFollower
from tui.rundata.series import SeriesStore, columns_from_rows
from tui.workers import background

POLL_SECONDS = 0.5
GPU_POLL_SECONDS = 2.0


class ConsoleWorkers:
    """Workers of ConsoleScreen; they read its `workspace`, `follower`, `runs_by_id`, `results_for`
    and `_wake` and write nothing but messages. The poller owns the screen's `scanner` (once the
    first scan, made while Textual starts, is done), the followers it is handed, `new_alerts` (what
    to notify) and `stall_checks` (the console's own look for a stalled run)."""

    def _scan_first(self) -> None:
        """Scan the workspace once, in a plain thread started before the app runs (a Textual worker
        would only start once the first frame is under way)."""
        try:
            self._first_runs = self.scanner.scan()
        except Exception:  # a plain thread has no worker to tell: the poller scans again and says what is wrong
            pass

    @background("resume-facts", "reading the checkpoint to resume", group="resume", exclusive=True)
    def _read_resume_facts(self, stage: str, run_id: str, config_path) -> None:
        """Read where a run's last checkpoint continues under the config file as it is now (no torch:
        trainer_state.json and the saved configs)."""
        from ftmodel import config as config_mod
        from ftmodel.resume import ResumeError, resume_facts

        try:
            cfg = config_mod.load(config_path)
            facts = resume_facts(self.workspace, stage, run_id, cfg.to_dict())
        except (ResumeError, config_mod.ConfigError, OSError, LookupError) as e:
            self.post_message(ResumeFactsRead(stage, run_id, error=str(e)))
            return
        self.post_message(ResumeFactsRead(stage, run_id, facts=facts))

    @background("warm-up", "loading the charts and dialogs", group="charts", exclusive=True)
    def _warm_up(self) -> None:
        """After the first frame, import what it did not need, off the main thread: the dialogs and the
        results table (a few ms, here before a key can ask for one), then textual_plotext (~0.35 s)."""
        for name in ("tui.dialogs", "tui.widgets.tables", "textual_plotext"):  # in this order
            importlib.import_module(name)
        self.post_message(ChartsReady())

    @background("poll-runs", "following the runs", group="poll", exclusive=True, restart_after=2.0)
    def _poll_runs(self) -> None:
        """Scan the workspace's runs, check the running ones for a stall, tell new alerts, and tail the
        selected run's metrics, log and alerts, forever."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        self._first_scan.join()  # the scanner is the first scan's until it is done
        while not worker.is_cancelled:
            self._wake.clear()
            runs = self.scanner.scan()
            self.post_message(RunsScanned(runs))
            # A stall is recorded here (once, whoever sees it first) and counted by the next scan.
            self.stall_checks.check(runs)
            raised = self.new_alerts.poll(runs)
            if raised:
                self.post_message(AlertsRaised(raised))
            follower = self.follower
            if follower is not None:
                self._follow_once(follower, worker)
            self._wake.wait(POLL_SECONDS)

    def _follow_once(self, follower: RunFollower, worker) -> None:
        run_id = follower.run.id
        if follower.history_pending():
            follower.read_history(
                lambda store, exact: self.post_message(MetricsHistory(run_id, store, exact)),
                lambda: worker.is_cancelled or self.follower is not follower,
                preview_drawn=follower.preview_drawn,
            )
        while not worker.is_cancelled and self.follower is follower:
            rows = follower.read_metrics()
            if follower.truncated():  # the file was cut or replaced: what is shown is gone, start again
                self.post_message(MetricsHistory(run_id, SeriesStore(), True))
            if not rows:
                break
            caught_up = follower.caught_up()
            self.post_message(MetricsChunk(run_id, columns_from_rows(rows), len(rows), caught_up))
        lines = follower.read_log()
        if lines:
            self.post_message(LogLines(run_id, lines))
        alerts, reset = follower.read_alerts()
        if alerts or reset:
            self.post_message(AlertsRead(run_id, alerts, reset))
        if self.results_for != run_id:
            summary = self.runs_by_id.get(run_id)
            if summary is not None and not summary.active:
                self.post_message(ResultsLoaded(run_id, result_tables(follower.run.path), run_facts(follower.run.path)))
            elif not follower.config_read:
                # The config snapshot never changes: read its facts once per run, not on every poll.
                follower.config_read = True
                self.post_message(ResultsLoaded(run_id, [], run_facts(follower.run.path)))

    @background("poll-gpu", "polling nvidia-smi", group="gpu", exclusive=True, restart_after=5.0)
    def _poll_gpu(self) -> None:
        """Sample nvidia-smi every couple of seconds."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        while not worker.is_cancelled:
            self.post_message(GpuPolled(query_gpus(timeout=10)))  # [] when nvidia-smi fails or hangs
            time.sleep(GPU_POLL_SECONDS)
