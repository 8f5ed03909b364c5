"""The main console: stages on the left, the selected run's live panels on the right.

Thread workers of this screen scan the workspace, tail the selected run's metrics and log and
poll nvidia-smi; they only post messages (tui.messages) and the handlers here own all state and
widgets. Starting, resuming and stopping runs is app-wide work: this screen asks for it with
messages. About 540 lines: layout, handlers and actions of one screen that share its state (the
thread workers, the alert handlers and the status text already live in console_workers.py,
console_alerts.py and tui/status.py, the resume dialog in tui/dialogs/resume.py).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from ftmodel.i18n import t
from ftmodel.words import JOBS, PIPELINE, STAGES
from tui import actions
from tui.actions import PANELS
from tui.messages import (
    ChartsReady,
    GpuPolled,
    LaunchRequested,
    LogLines,
    MetricsChunk,
    MetricsHistory,
    ResultsLoaded,
    ResumeFactsRead,
    RunsScanned,
    StopRequested,
)
from tui.plain import Plain
from tui.rundata.alerts import NewAlerts, StallChecks
from tui.rundata.argv import stage_argv
from tui.rundata.follower import RunFollower
from tui.rundata.series import SeriesStore
from tui.rundata.summary import RunSummary, WorkspaceScanner, clock, stage_rows
from tui.screens.console_alerts import ConsoleAlerts
from tui.screens.console_workers import ConsoleWorkers
from tui.status import alert_marker, status_label, status_view
from tui.widgets.charts import CHARTS, ChartPanel, chart_widget
from tui.widgets.log import LogPanel, set_text
from tui.widgets.progress import RunProgressBar

STAGE_ITEMS = JOBS
RUN_LIST_CELLS = 24  # what a line of the run list holds (the left column is 28 cells wide, less its border)
RESUMABLE = ("sft", "grpo")  # the stages that save checkpoints
# How long the first frame waits for the first scan of the workspace, so that it already shows the runs (a
# slow disk is not waited for: its runs appear when the scan lands).
FIRST_SCAN_WAIT = 0.25


@actions.bind("console")
class ConsoleScreen(ConsoleWorkers, ConsoleAlerts, Screen):
    """Stages and their runs on the left; status, progress, charts, results and log on the right."""

    selected_stage: reactive[str] = reactive(STAGES[0])
    """The stage highlighted in the stage list."""

    selected_run: reactive[str | None] = reactive(None)
    """Id of the run whose panels are shown (None: the stage has no runs)."""

    hidden_panels: reactive[frozenset] = reactive(frozenset())
    """Panels the user switched off (keys of PANELS)."""

    def __init__(self, workspace: Path, *, gpu: bool | None = None):
        super().__init__(id="console")
        self.workspace = Path(workspace)
        self.runs: list[RunSummary] = []
        self.runs_by_id: dict[str, RunSummary] = {}
        self.store = SeriesStore()
        self.history_complete = True  # False while a long history is shown from a sample
        self.facts = None  # the selected run's config facts (ftmodel.sentinel.Facts), for its config notes
        self.alerts = []  # the selected run's alerts (ftmodel.sentinel.Alert), oldest first
        self.new_alerts = NewAlerts()  # the poller's: which alerts to notify
        self.stall_checks = StallChecks()  # the poller's: its own look for a stalled run
        self.results_for: str | None = None
        self.follower: RunFollower | None = None
        self.charts_ready = False
        self._backfilling = False  # the selected run's history is still being read in chunks
        self.gpu_enabled = shutil.which("nvidia-smi") is not None if gpu is None else gpu
        self.gpus = []
        self._pending_run: str | None = None
        self._wake = threading.Event()
        self.scanner = WorkspaceScanner(self.workspace)  # it keeps what it read last time
        self._first_runs: list[RunSummary] | None = None
        # Scan while Textual starts (a few ms of work): the first frame can then show the runs.
        self._first_scan = threading.Thread(target=self._scan_first, name="first-scan", daemon=True)
        self._first_scan.start()
        self._stage_prompts: list[str] = []
        self._run_ids: list[str] = []
        self._run_list_for: str | None = None  # the stage (and language) the run list was built for
        self._run_prompts: list[str] = []
        self._status_summary: RunSummary | None = None  # the summary and metrics the status block shows
        self._status_version: int | None = None

    # ---------------------------------------------------------------- layout

    def _top_line(self) -> str:
        from ftmodel.tracking import wandb_mode

        app = self.app
        return t(
            "ftmodel · config {config} · workspace {workspace} · wandb {mode}",
            config=app.config_path,
            workspace=self.workspace,
            mode=wandb_mode(app.cfg),
        )

    def relabel(self) -> None:
        """Say everything again in the current language (after a language switch)."""
        self.query_one("#top", Static).update(self._top_line())
        self.query_one("#stages").border_title = t("stages")
        for panel in self.query(ChartPanel):
            panel.border_title = f"{PANELS[panel.spec.key]} {t(panel.spec.title)}"
        for key in ("gpu", "results", "log"):
            for panel in self.query(f"#panel-{key}"):
                panel.border_title = f"{PANELS[key]} {t(key if key != 'gpu' else 'GPU')}"
        self._stage_prompts = []
        self._refresh_stage_list()
        self._run_list_for = None
        self._refresh_run_list()
        self._refresh_status()

    def compose(self) -> ComposeResult:
        yield Plain(self._top_line(), id="top")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                stages = OptionList(*[Option(s, id=s) for s in STAGE_ITEMS], id="stages")
                stages.border_title = t("stages")
                yield stages
                runs = OptionList(id="runs")
                runs.border_title = t("runs")
                yield runs
            with VerticalScroll(id="right"):
                yield Static("", id="status")
                with Horizontal(id="progress-row"):
                    yield Plain("", id="progress-text")
                    yield RunProgressBar(total=None, show_eta=False, show_percentage=True, id="progress")
                yield Static("", id="alerts")
                yield Plain("", id="hints")
                if self.gpu_enabled:
                    gpu = Vertical(
                        Plain(t("waiting for nvidia-smi…"), id="gpu-text"),
                        id="panel-gpu",
                        classes="panel",
                    )
                    gpu.border_title = f"{PANELS['gpu']} {t('GPU')}"
                    yield gpu
                for spec in CHARTS:
                    yield ChartPanel(spec)
                results = Vertical(id="panel-results", classes="panel")
                results.border_title = f"{PANELS['results']} {t('results')}"
                yield results
                log = Vertical(LogPanel(id="log"), id="panel-log", classes="panel")
                log.border_title = f"{PANELS['log']} {t('log')}"
                yield log
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#stages", OptionList).highlighted = 0
        self.query_one("#stages").focus()
        self.set_interval(1.0, self._redraw)
        # One frame that shows the runs instead of an empty one redrawn a moment later (a slow disk
        # is waited for only briefly: then the poller's scan shows them).
        self._first_scan.join(FIRST_SCAN_WAIT)
        if not self._first_scan.is_alive() and self._first_runs is not None:
            self._show_runs(self._first_runs)
        self._apply_visibility()
        self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        """Start the threads the first frame does not need: the poller (it reads the selected run's
        log, metrics and results), the GPU poll and the imports the frame left out (dialogs, the
        results table, the charts). Before the frame is painted they would only take the
        interpreter away from it."""
        self._poll_runs()
        if self.gpu_enabled:
            self._poll_gpu()
        self._warm_up()

    def wake(self) -> None:
        """Scan again now (after a launch or a stop) instead of at the next poll."""
        self._wake.set()

    def follow(self, run_id: str) -> None:
        """Show this run as soon as a scan finds it (a run just started)."""
        self._pending_run = run_id
        self._wake.set()

    # ---------------------------------------------------------------- message handlers

    def on_runs_scanned(self, message: RunsScanned) -> None:
        self._show_runs(message.runs)

    def _show_runs(self, runs: list[RunSummary]) -> None:
        """Show a scan of the workspace: stage and run lists, the selected run (it may be gone), its status."""
        self.runs = runs
        self.runs_by_id = {r.id: r for r in runs}
        self._refresh_stage_list()
        self._refresh_run_list()
        if self._pending_run and self._pending_run in self.runs_by_id:
            run_id, self._pending_run = self._pending_run, None
            self._select_run(run_id)
        elif self.selected_run is not None and self.selected_run not in self.runs_by_id:
            # Its directory is gone (deleted, moved): show the stage's newest run, or nothing.
            self._select_run(self._run_ids[0] if self._run_ids else None)
        elif self.selected_run is None and self._run_ids:
            self._select_run(self._run_ids[0])  # the stage's first run appeared (or the first scan landed)
        summary = self.runs_by_id.get(self.selected_run) if self.selected_run else None
        if summary != self._status_summary:  # new metrics alone wait for the 1 Hz tick (see _redraw)
            self._refresh_status()

    def on_metrics_chunk(self, message: MetricsChunk) -> None:
        if message.run_id != self.selected_run:
            return
        self.store.add_columns(message.columns, message.rows)
        if not message.caught_up:
            self._backfilling = True
        elif self._backfilling or any(p.drawn_version == -1 and p.has_data(self.store) for p in self.query(ChartPanel)):
            self._backfilling = False
            self._redraw()  # a run's history just finished loading: draw it now, not at the next 1 Hz tick

    def on_metrics_history(self, message: MetricsHistory) -> None:
        if message.run_id != self.selected_run:
            return
        message.store.version = self.store.version + 1
        self.store = message.store
        self.history_complete = message.exact
        self._refresh_status()
        self._redraw()

    def on_log_lines(self, message: LogLines) -> None:
        if message.run_id == self.selected_run:
            self.query_one("#log", LogPanel).write_lines(message.lines)

    def on_results_loaded(self, message: ResultsLoaded) -> None:
        if message.run_id != self.selected_run:
            return
        self.facts = message.facts
        summary = self.runs_by_id.get(message.run_id)
        if summary is None or summary.active:
            return
        self.results_for = message.run_id
        panel = self.query_one("#panel-results")
        panel.remove_children()
        from tui.widgets.tables import Table  # warmed after the first frame (ConsoleWorkers._warm_up)

        tables = []
        for title, cols, rows in message.tables:
            table = Table(show_cursor=False, zebra_stripes=True)
            table.add_columns(*cols)
            table.add_rows(rows)
            tables.append(Plain(title, classes="placeholder"))
            tables.append(table)
        if tables:
            panel.mount_all(tables)
        self._apply_visibility(has_results=bool(tables))
        self._refresh_status()

    def on_gpu_polled(self, message: GpuPolled) -> None:
        self.gpus = message.gpus
        text = "\n".join(
            t(
                "GPU{index} util {util}%  mem {used}/{total} MiB",
                index=g.index,
                util=_gpu_number(g.util_pct, "{:3.0f}"),
                used=_gpu_number(g.used_mib, "{:,.0f}"),
                total=_gpu_number(g.total_mib, "{:,.0f}"),
            )
            for g in message.gpus
        ) or t("nvidia-smi returned no GPUs")
        self.query_one("#gpu-text", Static).update(text)

    def on_charts_ready(self, message: ChartsReady) -> None:
        for panel in self.query(ChartPanel):
            if not panel.is_attached:  # the console is closing (quit before the import ended)
                continue
            panel.remove_children()
            panel.plot = chart_widget()
            panel.mount(panel.plot)
        self.charts_ready = True
        self.call_after_refresh(self._redraw, True)

    @on(OptionList.OptionHighlighted, "#stages")
    def _stage_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.selected_stage = event.option.id

    @on(OptionList.OptionHighlighted, "#runs")
    def _run_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id != self.selected_run:
            self._select_run(event.option.id)

    @on(OptionList.OptionSelected, "#stages")
    def _stage_selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#runs").focus()

    # ---------------------------------------------------------------- state changes

    def watch_selected_stage(self, stage: str) -> None:
        self._run_list_for = None  # force the run list to rebuild (also when the new stage has no runs)
        self._refresh_run_list()
        runs = self._stage_runs(stage)
        self._select_run(runs[0].id if runs else None)

    def watch_hidden_panels(self, hidden: frozenset) -> None:
        self._apply_visibility()

    def _select_run(self, run_id: str | None) -> None:
        """Show a run: fresh metric store, log and results, and a follower for the poller."""
        if run_id == self.selected_run and self.follower is not None:
            return
        self.selected_run = run_id
        self.store = SeriesStore()
        self.history_complete = True
        self.facts = None
        self.alerts = []
        self.results_for = None
        for panel in self.query(ChartPanel):
            panel.clear()
        self.query_one("#log", LogPanel).clear()
        self.query_one("#panel-results").remove_children()
        summary = self.runs_by_id.get(run_id) if run_id else None
        self.follower = RunFollower(summary.path if summary else self.workspace / "runs" / run_id) if run_id else None
        runs_list = self.query_one("#runs", OptionList)
        if run_id in self._run_ids:
            index = self._run_ids.index(run_id)
            if runs_list.highlighted != index:
                runs_list.highlighted = index
        self._apply_visibility()
        self._refresh_status()
        self._wake.set()

    def _stage_runs(self, stage: str) -> list[RunSummary]:
        return [r for r in reversed(self.runs) if r.stage == stage]

    def _refresh_stage_list(self) -> None:
        from tui.cells import pad

        stages = self.query_one("#stages", OptionList)
        prompts = []
        for row in stage_rows(STAGE_ITEMS, self.runs):
            status = row.latest.status if row.latest else None
            label = (
                status_label(status) + alert_marker(row.latest.marker_alerts, severe=row.latest.marker_severe)
                if status
                else Content("  —")
            )
            prompts.append(Content(pad(row.stage, 9)) + label)
        if prompts != self._stage_prompts:
            for i, prompt in enumerate(prompts):
                stages.replace_option_prompt_at_index(i, prompt)
            self._stage_prompts = prompts

    def _refresh_run_list(self) -> None:
        runs = self._stage_runs(self.selected_stage)
        ids = [r.id for r in runs]
        runs_list = self.query_one("#runs", OptionList)
        prompts = [self._run_prompt(r) for r in runs]
        if ids != self._run_ids or self._run_list_for != self.selected_stage:
            self._run_list_for = self.selected_stage
            runs_list.clear_options()
            runs_list.add_options([Option(p, id=i) for p, i in zip(prompts, ids, strict=True)])
            self._run_ids = ids
            if self.selected_run in ids:
                runs_list.highlighted = ids.index(self.selected_run)
        else:
            # Every scan lands here: touch only what changed (each replaced prompt redraws the list).
            for i, (prompt, shown) in enumerate(zip(prompts, self._run_prompts)):
                if prompt != shown:
                    runs_list.replace_option_prompt_at_index(i, prompt)
        self._run_prompts = prompts
        title = t("runs of {stage}", stage=self.selected_stage)
        if runs_list.border_title != title:  # setting a title redraws the list, even the same title
            runs_list.border_title = title

    @staticmethod
    def _run_prompt(run: RunSummary) -> Content:
        prompt = Content(f"{clock(run.created or run.started)} ") + status_label(run.status)
        return prompt + alert_marker(run.marker_alerts, RUN_LIST_CELLS - prompt.cell_length, run.marker_severe)

    def _refresh_status(self) -> None:
        summary = self.runs_by_id.get(self.selected_run) if self.selected_run else None
        self._status_summary, self._status_version = summary, self.store.version
        children = (
            [self.runs_by_id[c] for c in summary.children if c != summary.id and c in self.runs_by_id]
            if summary
            else []
        )
        shown = status_view(
            summary, self.store, self.facts, self.selected_stage, self.selected_run, self.alerts, children
        )
        set_text(self.query_one("#status", Static), shown.status)
        bar = self.query_one("#progress", ProgressBar)
        if shown.bar is not None:
            bar.display = shown.bar
        bar.update(total=shown.total, progress=shown.step)
        set_text(self.query_one("#progress-text", Static), shown.progress)
        alerts = self.query_one("#alerts", Static)
        set_text(alerts, shown.alerts)
        alerts.display = bool(shown.alerts)
        hints = self.query_one("#hints", Static)
        set_text(hints, shown.hints)
        hints.display = bool(shown.hints)

    def _apply_visibility(self, has_results: bool | None = None) -> None:
        hidden = self.hidden_panels
        for panel in self.query(ChartPanel):
            panel.display = panel.spec.key not in hidden and panel.has_data(self.store)
        results = self.query_one("#panel-results")
        if has_results is None:
            has_results = bool(results.children)
        results.display = "results" not in hidden and has_results
        self.query_one("#panel-log").display = "log" not in hidden and self.selected_run is not None
        if self.gpu_enabled:
            self.query_one("#panel-gpu").display = "gpu" not in hidden

    def _redraw(self, force: bool = False) -> None:
        """Redraw charts whose data changed (about once a second), and only visible ones; and the
        status block's numbers (steps, speed, ETA, hints), which follow the same tick: a live run
        sends new rows on every poll, and each new status text lays the screen out again."""
        if not self.is_mounted:
            return
        if self._status_version != self.store.version:
            self._refresh_status()
        before = {p.id: p.display for p in self.query(ChartPanel)}
        self._apply_visibility()
        if not self.charts_ready:
            return
        for panel in self.query(ChartPanel):
            if not panel.display:
                continue
            if force or panel.drawn_version != self.store.version or not before.get(panel.id):
                panel.draw(self.store)
        if not self.history_complete and self.follower is not None:
            # A long history's preview is drawn (on screen after this refresh): the poller may now
            # parse every row, which it holds back so that this first chart is not.
            self.call_after_refresh(self.follower.preview_drawn.set)

    # ---------------------------------------------------------------- actions

    def _start(self, stage: str) -> None:
        app = self.app
        # No config: the app reloads the file, so edits made since the console opened apply to this run.
        self.post_message(LaunchRequested(stage, None, {}, stage_argv(stage, app.config_path, self.workspace)))

    def action_start_stage(self) -> None:
        """Start the selected stage (the pipeline item starts the pipeline)."""
        self.notify(t("starting {stage}…", stage=self.selected_stage), timeout=3)
        self._start(self.selected_stage)

    def action_start_pipeline(self) -> None:
        """Start the whole pipeline as one detached job."""
        self.notify(t("starting the pipeline…"), timeout=3)
        self._start(PIPELINE)

    def action_stop_run(self) -> None:
        """Ask to stop the selected run, then stop it gracefully in the background."""
        summary = self.runs_by_id.get(self.selected_run) if self.selected_run else None
        if summary is None or not summary.active:
            state = t(summary.status) if summary else t("no run selected")
            self.notify(t("nothing to stop ({state})", state=state), severity="warning")
            return
        run_id = summary.id

        from tui.dialogs import ConfirmScreen  # warmed after the first frame, as every dialog

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(t("stopping {run}: it saves and exits (up to a minute)…", run=run_id))
                self.post_message(StopRequested(run_id))

        self.app.push_screen(
            ConfirmScreen(t("Stop run {run}?\nIt saves a checkpoint and exits.", run=run_id)), answered
        )

    def action_resume_run(self) -> None:
        """Read where the selected run's last checkpoint continues; the dialog then asks to resume it."""
        summary = self.runs_by_id.get(self.selected_run) if self.selected_run else None
        if summary is None or summary.stage not in RESUMABLE or summary.active:
            self.notify(t("select a finished, stopped or failed sft or grpo run to resume"), severity="warning")
            return
        self._read_resume_facts(summary.stage, summary.id, self.app.config_path)

    def on_resume_facts_read(self, message: ResumeFactsRead) -> None:
        from tui.dialogs import ResumeScreen, TextScreen

        if message.error:
            self.app.push_screen(TextScreen(t("resume {run}", run=message.run_id), message.error))
            return
        dialog = ResumeScreen(message.facts)
        stage, run_id, force = message.stage, message.run_id, dialog.force

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            extra = ["--resume", run_id, *(["--force"] if force else [])]
            args = {"resume": run_id, **({"force": True} if force else {})}
            argv = stage_argv(stage, self.app.config_path, self.workspace, extra=extra)
            self.notify(t("resuming {run}…", run=run_id), timeout=3)
            self.post_message(LaunchRequested(stage, None, args, argv))

        self.app.push_screen(dialog, answered)

    def action_focus_stages(self) -> None:
        """Focus the stage list."""
        self.query_one("#stages").focus()

    def action_focus_runs(self) -> None:
        """Focus the run list."""
        self.query_one("#runs").focus()

    def action_cycle_run(self, delta: int) -> None:
        """Show the next newer (-1) or older (+1) run of the selected stage."""
        if not self._run_ids:
            return
        index = self._run_ids.index(self.selected_run) if self.selected_run in self._run_ids else 0
        self._select_run(self._run_ids[max(0, min(len(self._run_ids) - 1, index + delta))])

    def action_toggle_panel(self, panel: str) -> None:
        """Show or hide one panel."""
        self.hidden_panels = self.hidden_panels ^ {panel}
        shown = t("hidden") if panel in self.hidden_panels else t("shown")
        self.notify(t("{panel} panel {shown}", panel=t(panel), shown=shown), timeout=2)

    def action_open_screen(self, name: str) -> None:
        """Open a workbench screen: config, runs, sync, ablation, completions or the queue."""
        from tui import screens

        if self.app.screen is not self:
            return  # one workbench at a time, over the console
        if name == "completions":
            summary = self.runs_by_id.get(self.selected_run) if self.selected_run else None
            screen = screens.CompletionsScreen(summary.id if summary and summary.stage == "grpo" else None)
        else:
            screen = {
                "config": screens.ConfigScreen,
                "runs": screens.RunsScreen,
                "sync": screens.SyncScreen,
                "ablation": screens.AblationScreen,
                "queue": screens.QueueScreen,
            }[name]()
        self.app.push_screen(screen)


def _gpu_number(value: float | None, fmt: str) -> str:
    """A number nvidia-smi gave, or `?` where the board reports none (`[N/A]`)."""
    return "?" if value is None else fmt.format(value)
