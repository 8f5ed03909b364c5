"""ftmodel-tui: launch stages and watch loss, reward and KL live from run directories.

Stages run detached, so closing the console, killing tmux or losing SSH leaves them running;
opening the console again re-attaches purely from `<workspace>/runs/*`. Background work (scanning
runs, tailing metrics and logs, polling nvidia-smi, starting and stopping runs) happens in named
thread workers that only post messages; the handlers own all state and widgets.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Log, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from ftmodel import config as config_mod
from ftmodel.rundir import STAGES
from tui.model import (PIPELINE, REWARD_PARTS, GpuSample, RunFollower, RunSummary, SeriesStore,
                       columns_from_rows, config_beta, fmt_duration, health_hints, parse_nvidia_smi,
                       read_results, scan_workspace, speed_and_eta, stage_rows)

DEFAULT_CONFIG = "configs/default.toml"
STAGE_ITEMS = (*STAGES, PIPELINE)
POLL_SECONDS = 0.5
GPU_POLL_SECONDS = 2.0
NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used,memory.total",
                    "--format=csv,noheader,nounits"]

# A glyph per state, so states read without colour (NO_COLOR, monochrome terminals).
STATUS_GLYPH = {"running": "●", "queued": "…", "finished": "✓", "failed": "✗", "cancelled": "■",
                "lost": "!", "unknown": "?"}
STATUS_STYLE = {"running": "$success", "queued": "$warning", "finished": "$primary", "failed": "$error",
                "cancelled": "$warning", "lost": "$error"}


@dataclass(frozen=True)
class ChartSpec:
    """One chart panel: which metrics it draws (first one found on the left axis)."""

    key: str
    title: str
    metrics: tuple[str, ...]
    right: tuple[str, ...] = ()


CHARTS = (
    ChartSpec("loss", "loss", ("loss",)),
    ChartSpec("reward", "reward", REWARD_PARTS),
    ChartSpec("kl", "KL", ("kl_divergence", "kl")),
    ChartSpec("lr", "learning rate · grad norm (right)", ("learning_rate",), ("grad_norm",)),
)
PANELS = {"loss": "1", "reward": "2", "kl": "3", "lr": "4", "log": "5", "results": "6", "gpu": "7"}


# ---------------------------------------------------------------- messages (workers -> handlers)

class RunsScanned(Message):
    """A fresh summary of every run in the workspace."""

    def __init__(self, runs: list[RunSummary]):
        super().__init__()
        self.runs = runs


def _set_text(widget: Static, text: str) -> None:
    """Update a Static only when its text changed: every update lays the screen out again, and the
    status is refreshed on every chunk of metrics a live run writes."""
    if getattr(widget, "_shown_text", None) != text:
        widget._shown_text = text
        widget.update(text)


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


class SyncProgress(Message):
    """A line of progress from the sync worker about one offline run."""

    def __init__(self, key: str, text: str):
        super().__init__()
        self.key, self.text = key, text


class SyncFinished(Message):
    """The sync worker ended (results, or the error that stopped it)."""

    def __init__(self, results: list, error: str | None):
        super().__init__()
        self.results, self.error = results, error


class StopDone(Message):
    """A stop request ended with this status (or error)."""

    def __init__(self, run_id: str, status: str | None, error: str | None):
        super().__init__()
        self.run_id, self.status, self.error = run_id, status, error


# ---------------------------------------------------------------- screens

class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; `y` confirms, `n` or escape cancels."""

    BINDINGS = [Binding("y", "answer(True)", "Yes", id="confirm.yes"),
                Binding("n,escape", "answer(False)", "No", id="confirm.no")]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Static { width: 60; max-width: 90%; height: auto; border: thick $error; padding: 1 2;
                             background: $surface; }
    """

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(f"{self.question}\n\n[b]y[/b] yes    [b]n[/b] no", id="question")

    def action_answer(self, yes: bool) -> None:
        """Close the dialog with the answer."""
        self.dismiss(yes)


class HelpScreen(ModalScreen[None]):
    """List every key and what it does."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close help", id="help.close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 72; max-width: 100%; height: auto; max-height: 100%;
                                  border: thick $primary; background: $surface; padding: 0 1; }
    """

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.text, markup=False)

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)


# ---------------------------------------------------------------- panels

class ChartPanel(Vertical):
    """A bordered chart of one or more metrics; the plot widget arrives once plotext is imported."""

    def __init__(self, spec: ChartSpec):
        super().__init__(id=f"panel-{spec.key}", classes="panel chart")
        self.spec = spec
        self.border_title = f"{PANELS[spec.key]} {spec.title}"
        self.drawn_version = -1
        self.plot = None

    def compose(self) -> ComposeResult:
        yield Static("loading charts…", classes="placeholder")

    def has_data(self, store: SeriesStore) -> bool:
        """Tell whether any of this chart's metrics has points."""
        return any(m in store for m in (*self.spec.metrics, *self.spec.right))

    def draw(self, store: SeriesStore) -> None:
        """Redraw from the store, downsampled to about twice the chart's width."""
        if self.plot is None:
            return
        width = max(20, self.size.width)
        plt = self.plot.plt
        plt.clear_data()
        plt.clear_figure()
        left = [m for m in self.spec.metrics if m in store]
        if self.spec.key == "kl":
            left = left[:1]  # kl_divergence and kl are the same number under two names
        for name in left:
            xs, ys = store.get(name).points(2 * width)
            plt.plot(xs, ys, label=name if len(left) > 1 or self.spec.right else None, marker="braille")
        for name in self.spec.right:
            if name in store:
                xs, ys = store.get(name).points(2 * width)
                plt.plot(xs, ys, label=name, yside="right", marker="braille")
        plt.xlabel("step")
        self.plot.refresh()
        self.drawn_version = store.version


# ---------------------------------------------------------------- the app

class FtmodelConsole(App[None]):
    """The ftmodel console: stages on the left, the selected run's live panels on the right."""

    TITLE = "ftmodel"
    CSS = """
    #top { height: 1; background: $primary-muted; color: $text; padding: 0 1; }
    #body { height: 1fr; }
    #left { width: 28; }
    #stages { height: auto; max-height: 13; border: round $secondary; }
    #runs { height: 1fr; border: round $secondary; }
    #stages:focus, #runs:focus { border: round $accent; }
    #right { width: 1fr; }
    #status { height: auto; padding: 0 1; }
    #progress-row { height: 1; padding: 0 1; }
    #progress-text { width: auto; margin-right: 1; }
    #progress { width: 1fr; }
    #progress Bar { width: 1fr; }
    #hints { height: auto; padding: 0 1; color: $warning; }
    .panel { border: round $secondary; height: auto; }
    .chart { height: 12; }
    .chart PlotextPlot { height: 1fr; }
    #panel-log { height: 12; }
    #panel-log Log { height: 1fr; }
    #panel-results DataTable { height: auto; max-height: 16; }
    #panel-gpu Static { height: auto; }
    .placeholder { color: $text-muted; }
    """

    BINDINGS = [
        Binding("s", "start_stage", "Start stage", id="run.start_stage", tooltip="Start the selected stage"),
        Binding("p", "start_pipeline", "Pipeline", id="run.start_pipeline", tooltip="Start the whole pipeline"),
        Binding("x", "stop_run", "Stop run", id="run.stop", tooltip="Stop the selected run gracefully"),
        Binding("left", "focus_stages", "Stages", id="nav.stages", show=False),
        Binding("right", "focus_runs", "Runs", id="nav.runs", show=False),
        Binding("left_square_bracket", "cycle_run(-1)", "Newer run", id="nav.newer_run", key_display="[",
                show=False),
        Binding("right_square_bracket", "cycle_run(1)", "Older run", id="nav.older_run", key_display="]",
                show=False),
        *[Binding(key, f"toggle_panel('{panel}')", f"Toggle {panel}", id=f"panel.{panel}", show=False)
          for panel, key in PANELS.items()],
        Binding("c", "open_screen('config')", "Config", id="screen.config", tooltip="Edit the config as a form"),
        Binding("r", "open_screen('runs')", "Runs", id="screen.runs",
                tooltip="Browse, compare, clone and delete runs"),
        Binding("w", "open_screen('sync')", "Sync", id="screen.sync", tooltip="Sync offline wandb runs"),
        Binding("a", "open_screen('ablation')", "Ablation", id="screen.ablation",
                tooltip="Launch an ablation and read its matrix"),
        Binding("g", "open_screen('completions')", "Completions", id="screen.completions",
                tooltip="Browse GRPO completions and their rewards"),
        Binding("question_mark", "help", "Help", id="app.help", key_display="?"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit; running stages keep running"),
    ]

    selected_stage: reactive[str] = reactive(STAGES[0])
    """The stage highlighted in the stage list."""

    selected_run: reactive[str | None] = reactive(None)
    """Id of the run whose panels are shown (None: the stage has no runs)."""

    hidden_panels: reactive[frozenset] = reactive(frozenset())
    """Panels the user switched off (keys of PANELS)."""

    def __init__(self, cfg, config_path: str, workspace: Path, *, watch_terminal: bool | None = None,
                 gpu: bool | None = None):
        super().__init__()
        self.cfg = cfg
        self.config_path = config_path
        self.workspace = Path(workspace)
        self.runs: list[RunSummary] = []
        self.runs_by_id: dict[str, RunSummary] = {}
        self.store = SeriesStore()
        self.history_complete = True  # False while a long history is shown from a sample
        self.beta: float | None = None
        self.results_for: str | None = None
        self.follower: RunFollower | None = None
        self.charts_ready = False
        self._backfilling = False  # the selected run's history is still being read in chunks
        self.gpu_enabled = shutil.which("nvidia-smi") is not None if gpu is None else gpu
        self.gpus: list[GpuSample] = []
        self._watch_terminal = watch_terminal
        self._pending_run: str | None = None
        self.quit_message: str | None = None
        self._wake = threading.Event()
        self._stage_prompts: list[str] = []
        self._run_ids: list[str] = []
        self._launched = []  # Popen handles kept only so finished children get reaped, never read
        self.sync_env: dict | None = None
        """Environment for `wandb sync` (None: this process's); tests point it at a fake server."""
        self.sync_busy: str | None = None
        """What the sync worker is doing (None: idle)."""
        self.sync_messages: dict[str, str] = {}
        """The latest progress line per offline run key."""

    @property
    def main(self):
        """The console's own screen (queries must not land on a dialog pushed over it)."""
        return self.screen_stack[0] if self.screen_stack else self.screen

    def _showing(self) -> bool:
        """Tell whether the console's widgets exist (worker messages can outlive them at exit)."""
        try:
            return bool(self.screen_stack) and bool(self.main.query("#stages"))
        except NoMatches:
            return False

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        from ftmodel.tracking import wandb_mode

        yield Static(f"ftmodel · config {self.config_path} · workspace {self.workspace} · "
                     f"wandb {wandb_mode(self.cfg)}", id="top", markup=False)
        with Horizontal(id="body"):
            with Vertical(id="left"):
                stages = OptionList(*[Option(s, id=s) for s in STAGE_ITEMS], id="stages")
                stages.border_title = "stages"
                yield stages
                runs = OptionList(id="runs")
                runs.border_title = "runs"
                yield runs
            with VerticalScroll(id="right"):
                yield Static("", id="status")
                with Horizontal(id="progress-row"):
                    yield Static("", id="progress-text", markup=False)
                    yield ProgressBar(total=None, show_eta=False, show_percentage=True, id="progress")
                yield Static("", id="hints", markup=False)
                if self.gpu_enabled:
                    gpu = Vertical(Static("waiting for nvidia-smi…", id="gpu-text", markup=False),
                                   id="panel-gpu", classes="panel")
                    gpu.border_title = f"{PANELS['gpu']} GPU"
                    yield gpu
                for spec in CHARTS:
                    yield ChartPanel(spec)
                results = Vertical(id="panel-results", classes="panel")
                results.border_title = f"{PANELS['results']} results"
                yield results
                log = Vertical(Log(max_lines=2000, id="log"), id="panel-log", classes="panel")
                log.border_title = f"{PANELS['log']} log"
                yield log
        yield Footer()

    def on_mount(self) -> None:
        self.main.query_one("#stages", OptionList).highlighted = 0
        self.main.query_one("#stages").focus()
        self._import_charts()
        self._poll_runs()
        if self.gpu_enabled:
            self._poll_gpu()
        self.set_interval(1.0, self._redraw)
        self._apply_visibility()
        watch = self._watch_terminal
        if watch is None:
            watch = not self.is_headless and sys.stdin.isatty()
        if watch:
            # A vanished terminal must end the console, not leave it spinning at 100% CPU.
            self.set_interval(1.0, self._check_terminal)
            try:
                signal.signal(signal.SIGHUP, self._on_sighup)
            except ValueError:
                pass  # not the main thread (embedded use): the isatty timer still covers it

    # ---------------------------------------------------------------- terminal watch

    def _check_terminal(self) -> None:
        try:
            alive = sys.stdin.isatty() and os.isatty(sys.__stdout__.fileno())
        except (ValueError, OSError):
            alive = False
        if not alive:
            self._hard_exit_soon()
            self.exit(return_code=129)

    def _on_sighup(self, signum, frame) -> None:
        self._hard_exit_soon()
        self.call_later(self.exit, None, 129)

    def _hard_exit_soon(self) -> None:
        # Restoring a terminal that no longer exists can block; the runs live on regardless.
        timer = threading.Timer(3.0, os._exit, args=(129,))
        timer.daemon = True
        timer.start()

    # ---------------------------------------------------------------- workers

    @work(thread=True, exclusive=True, group="charts", name="import-plotext")
    def _import_charts(self) -> None:
        """Import textual_plotext off the main thread (it costs ~0.35 s) so the first frame is fast."""
        import textual_plotext  # noqa: F401

        self.post_message(ChartsReady())

    @work(thread=True, exclusive=True, group="poll", name="poll-runs")
    def _poll_runs(self) -> None:
        """Scan the workspace's runs and tail the selected run's metrics and log, forever."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        while not worker.is_cancelled:
            self._wake.clear()
            self.post_message(RunsScanned(scan_workspace(self.workspace)))
            follower = self.follower
            if follower is not None:
                self._follow_once(follower, worker)
            self._wake.wait(POLL_SECONDS)

    def _follow_once(self, follower: RunFollower, worker) -> None:
        run_id = follower.run.id
        if follower.history_pending():
            follower.read_history(lambda store, exact: self.post_message(MetricsHistory(run_id, store, exact)),
                                  lambda: worker.is_cancelled or self.follower is not follower)
        while not worker.is_cancelled and self.follower is follower:
            rows = follower.read_metrics()
            if not rows:
                break
            caught_up = follower.caught_up()
            self.post_message(MetricsChunk(run_id, columns_from_rows(rows), len(rows), caught_up))
        lines = follower.read_log()
        if lines:
            self.post_message(LogLines(run_id, lines))
        if self.results_for != run_id:
            summary = self.runs_by_id.get(run_id)
            if summary is not None and not summary.active:
                self.post_message(ResultsLoaded(run_id, read_results(follower.run.path),
                                                config_beta(follower.run.path)))
            elif self.beta is None:
                self.post_message(ResultsLoaded(run_id, [], config_beta(follower.run.path)))

    @work(thread=True, exclusive=True, group="gpu", name="poll-gpu")
    def _poll_gpu(self) -> None:
        """Sample nvidia-smi every couple of seconds."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                out = subprocess.run(NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=10).stdout
                self.post_message(GpuPolled(parse_nvidia_smi(out)))
            except (OSError, subprocess.SubprocessError):
                self.post_message(GpuPolled([]))
            time.sleep(GPU_POLL_SECONDS)

    @work(thread=True, group="launch", name="start-stage")
    def _launch(self, stage: str) -> None:
        """Preflight and start a stage (or the pipeline) detached; report how it went."""
        from ftmodel.context import StageError
        from ftmodel.launcher import LaunchError, start_stage

        try:
            # Reload the file so edits made since the console opened apply to this run.
            cfg = config_mod.load(self.config_path)
            argv = ["ftmodel", stage, "--config", self.config_path, "--workspace", str(self.workspace)]
            run, proc = start_stage(stage, cfg, self.workspace, {}, argv=argv)
        except (StageError, LaunchError, config_mod.ConfigError, OSError) as e:
            self.post_message(LaunchDone(stage, None, str(e)))
            return
        self._launched.append(proc)
        self.post_message(LaunchDone(stage, run.id, None))

    @work(thread=True, group="launch", name="start-stage-with-config")
    def launch_config(self, stage: str, cfg, args: dict, argv: list[str]) -> None:
        """Start a stage with a given (validated) config, e.g. unsaved edits or a clone with one change."""
        from ftmodel.context import StageError
        from ftmodel.launcher import LaunchError, start_stage

        try:
            run, proc = start_stage(stage, cfg, self.workspace, args, argv=argv)
        except (StageError, LaunchError, config_mod.ConfigError, OSError, LookupError) as e:
            self.post_message(LaunchDone(stage, None, str(e)))
            return
        self._launched.append(proc)
        self.post_message(LaunchDone(stage, run.id, None))

    def start_sync(self, runs: list) -> None:
        """Sync these offline runs in the background (one sync at a time)."""
        self.sync_busy = f"{len(runs)} run(s)"
        self._sync(runs)

    @work(thread=True, exclusive=True, group="sync", name="sync-runs")
    def _sync(self, runs: list) -> None:
        """Upload and verify offline runs; every step of progress is posted as a message."""
        from ftmodel.sync import SyncError, sync_runs

        try:
            results = sync_runs(self.workspace, runs, env=self.sync_env,
                                progress_cb=lambda key, text: self.post_message(SyncProgress(key, text)))
        except (SyncError, OSError) as e:
            self.post_message(SyncFinished([], str(e)))
            return
        self.post_message(SyncFinished(results, None))

    @work(thread=True, group="stop", name="stop-run")
    def _stop(self, run_id: str) -> None:
        """Stop a run (SIGINT, then SIGTERM, then SIGKILL; may take a minute)."""
        from ftmodel.launcher import LaunchError, stop
        from ftmodel.rundir import find_run

        try:
            status = stop(find_run(self.workspace, run_id))
        except (LaunchError, LookupError, OSError) as e:
            self.post_message(StopDone(run_id, None, str(e)))
            return
        self.post_message(StopDone(run_id, status, None))

    # ---------------------------------------------------------------- message handlers

    def on_runs_scanned(self, message: RunsScanned) -> None:
        if not self._showing():
            return
        self.runs = message.runs
        self.runs_by_id = {r.id: r for r in message.runs}
        for proc in list(self._launched):
            if proc.poll() is not None:  # reap, so finished children do not linger as zombies
                self._launched.remove(proc)
        self._refresh_stage_list()
        self._refresh_run_list()
        if self._pending_run and self._pending_run in self.runs_by_id:
            run_id, self._pending_run = self._pending_run, None
            self._select_run(run_id)
        elif self.selected_run is None and self._run_ids:
            self._select_run(self._run_ids[0])  # the stage's first run appeared (or the first scan landed)
        self._refresh_status()

    def on_metrics_chunk(self, message: MetricsChunk) -> None:
        if not self._showing():
            return
        if message.run_id != self.selected_run:
            return
        self.store.add_columns(message.columns, message.rows)
        self._refresh_status()
        if not message.caught_up:
            self._backfilling = True
        elif self._backfilling or any(p.drawn_version == -1 for p in self.main.query(ChartPanel)):
            self._backfilling = False
            self._redraw()  # a run's history just finished loading: draw it now, not at the next 1 Hz tick

    def on_metrics_history(self, message: MetricsHistory) -> None:
        if not self._showing() or message.run_id != self.selected_run:
            return
        message.store.version = self.store.version + 1
        self.store = message.store
        self.history_complete = message.exact
        self._refresh_status()
        self._redraw()

    def on_log_lines(self, message: LogLines) -> None:
        if not self._showing():
            return
        if message.run_id == self.selected_run:
            self.main.query_one("#log", Log).write_lines(message.lines)

    def on_results_loaded(self, message: ResultsLoaded) -> None:
        if not self._showing():
            return
        if message.run_id != self.selected_run:
            return
        self.beta = message.beta
        summary = self.runs_by_id.get(message.run_id)
        if summary is None or summary.active:
            return
        self.results_for = message.run_id
        panel = self.main.query_one("#panel-results")
        panel.remove_children()
        tables = []
        for title, cols, rows in message.tables:
            table = DataTable(show_cursor=False, zebra_stripes=True)
            table.add_columns(*cols)
            table.add_rows(rows)
            tables.append(Static(title, classes="placeholder", markup=False))
            tables.append(table)
        if tables:
            panel.mount_all(tables)
        self._apply_visibility(has_results=bool(tables))
        self._refresh_status()

    def on_gpu_polled(self, message: GpuPolled) -> None:
        if not self._showing():
            return
        self.gpus = message.gpus
        text = "\n".join(f"GPU{g.index} util {g.util:3.0f}%  mem {g.mem_used:,.0f}/{g.mem_total:,.0f} MiB"
                         for g in message.gpus) or "nvidia-smi returned no GPUs"
        self.main.query_one("#gpu-text", Static).update(text)

    def on_charts_ready(self, message: ChartsReady) -> None:
        if not self._showing():
            return
        from textual_plotext import PlotextPlot

        for panel in self.main.query(ChartPanel):
            panel.remove_children()
            panel.plot = PlotextPlot()
            panel.mount(panel.plot)
        self.charts_ready = True
        self.call_after_refresh(self._redraw, True)

    def on_launch_done(self, message: LaunchDone) -> None:
        if message.error:
            self.notify(message.error, title=f"cannot start {message.stage}", severity="error", timeout=10)
            return
        self.notify(f"{message.stage}: run {message.run_id} started (it keeps running if you quit)",
                    title="started")
        self._pending_run = message.run_id
        self._wake.set()

    def _sync_screen(self):
        from tui.screens import SyncScreen

        return next((s for s in self.screen_stack if isinstance(s, SyncScreen)), None)

    def on_sync_progress(self, message: SyncProgress) -> None:
        self.sync_messages[message.key] = message.text
        final = message.text.split(":", 1)[0] in ("synced", "failed", "skipped", "dry-run")
        screen = self._sync_screen()
        if screen is not None:
            screen.progressed(message.key, final)

    def on_sync_finished(self, message: SyncFinished) -> None:
        self.sync_busy = None
        if message.error:
            self.notify(message.error, title="sync failed", severity="error", timeout=10)
        else:
            ok = sum(r.state == "synced" for r in message.results)
            bad = sum(r.state == "failed" for r in message.results)
            self.notify(f"{ok} synced and verified, {bad} failed", title="sync done",
                        severity="error" if bad else "information")
        screen = self._sync_screen()
        if screen is not None:
            screen.finished()

    def on_stop_done(self, message: StopDone) -> None:
        if message.error:
            self.notify(message.error, title=f"cannot stop {message.run_id}", severity="error", timeout=10)
        else:
            self.notify(f"{message.run_id}: {message.status}", title="stopped")
        self._wake.set()

    @on(OptionList.OptionHighlighted, "#stages")
    def _stage_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.selected_stage = event.option.id

    @on(OptionList.OptionHighlighted, "#runs")
    def _run_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if not self._showing():
            return  # the list can still post while the app shuts down
        if event.option.id != self.selected_run:
            self._select_run(event.option.id)

    @on(OptionList.OptionSelected, "#stages")
    def _stage_selected(self, event: OptionList.OptionSelected) -> None:
        self.main.query_one("#runs").focus()

    # ---------------------------------------------------------------- state changes

    def watch_selected_stage(self, stage: str) -> None:
        self._run_ids = []  # force the run list to rebuild
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
        self.history_complete = True  # False while a long history is shown from a sample
        self.beta = None
        self.results_for = None
        for panel in self.main.query(ChartPanel):
            panel.drawn_version = -1
        self.main.query_one("#log", Log).clear()
        self.main.query_one("#panel-results").remove_children()
        summary = self.runs_by_id.get(run_id) if run_id else None
        self.follower = RunFollower(summary.path if summary else self.workspace / "runs" / run_id) if run_id else None
        runs_list = self.main.query_one("#runs", OptionList)
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
        rows = stage_rows(STAGE_ITEMS, self.runs)
        stages = self.main.query_one("#stages", OptionList)
        prompts = []
        for row in rows:
            status = row.latest.status if row.latest else "—"
            glyph = STATUS_GLYPH.get(status, " ")
            style = STATUS_STYLE.get(status)
            label = f"{glyph} {status}"
            prompts.append(f"{row.stage:<9}[{style}]{label}[/]" if style else f"{row.stage:<9}{label}")
        if prompts != self._stage_prompts:
            for i, prompt in enumerate(prompts):
                stages.replace_option_prompt_at_index(i, prompt)
            self._stage_prompts = prompts

    def _refresh_run_list(self) -> None:
        runs = self._stage_runs(self.selected_stage)
        ids = [r.id for r in runs]
        runs_list = self.main.query_one("#runs", OptionList)
        prompts = [self._run_prompt(r) for r in runs]
        if ids != self._run_ids:
            runs_list.clear_options()
            runs_list.add_options([Option(p, id=i) for p, i in zip(prompts, ids)])
            self._run_ids = ids
            if self.selected_run in ids:
                runs_list.highlighted = ids.index(self.selected_run)
        else:
            for i, prompt in enumerate(prompts):
                runs_list.replace_option_prompt_at_index(i, prompt)
        runs_list.border_title = f"runs of {self.selected_stage}"

    @staticmethod
    def _run_prompt(run: RunSummary) -> str:
        when = time.strftime("%m-%d %H:%M", time.localtime(run.created or run.started or 0))
        style = STATUS_STYLE.get(run.status)
        label = f"{STATUS_GLYPH.get(run.status, ' ')} {run.status}"
        return f"{when} [{style}]{label}[/]" if style else f"{when} {label}"

    def _refresh_status(self) -> None:
        status = self.main.query_one("#status", Static)
        bar = self.main.query_one("#progress", ProgressBar)
        text = self.main.query_one("#progress-text", Static)
        hints = self.main.query_one("#hints", Static)
        summary = self.runs_by_id.get(self.selected_run) if self.selected_run else None
        if summary is None:
            _set_text(status, f"[b]{self.selected_stage}[/b]: no runs yet — press [b]s[/b] to start it"
                      if not self.selected_run else f"{self.selected_run}: reading…")
            bar.update(total=None, progress=0)
            _set_text(text, "")
            _set_text(hints, "")
            hints.display = False
            return
        style = STATUS_STYLE.get(summary.status, "")
        glyph = STATUS_GLYPH.get(summary.status, "?")
        parts = [f"[b]{summary.id}[/b]", f"[{style}]{glyph} {summary.status}[/]" if style else summary.status]
        if summary.exit_code is not None:
            parts.append(f"exit {summary.exit_code}")
        if summary.current:
            parts.append(f"now: {summary.current}")
        lines = [" · ".join(parts)]
        if summary.error:
            lines.append(f"[$error]error:[/] {_escape(summary.error)}")
        if summary.status == "lost":
            lines.append("[$error]its process is gone[/] (killed, machine rebooted?) — last log lines below")
        _set_text(status, "\n".join(lines))
        # A finished stage that never counted steps has no progress to show, not an endless spinner.
        bar.display = summary.active or bool(summary.total)
        bar.update(total=summary.total or None, progress=summary.step)
        rate, eta = speed_and_eta(summary, self.store)
        total = summary.total if summary.total is not None else "?"
        bits = [f"{summary.step}/{total}"] if summary.step or summary.total or summary.active else []
        if rate:
            bits.append(f"{rate:.2f} steps/s" if rate < 10 else f"{rate:.0f} steps/s")
        if summary.active:
            bits.append(f"ETA {fmt_duration(eta)}")
        elif summary.started and summary.ended:
            bits.append(f"took {fmt_duration(summary.ended - summary.started)}")
        _set_text(text, "  ".join(bits))
        hint_lines = health_hints(summary.stage, self.store, self.beta)
        _set_text(hints, "\n".join(f"⚠ {h}" for h in hint_lines))
        hints.display = bool(hint_lines)

    def _apply_visibility(self, has_results: bool | None = None) -> None:
        hidden = self.hidden_panels
        for panel in self.main.query(ChartPanel):
            panel.display = panel.spec.key not in hidden and panel.has_data(self.store)
        results = self.main.query_one("#panel-results")
        if has_results is None:
            has_results = bool(results.children)
        results.display = "results" not in hidden and has_results
        self.main.query_one("#panel-log").display = "log" not in hidden and self.selected_run is not None
        if self.gpu_enabled:
            self.main.query_one("#panel-gpu").display = "gpu" not in hidden

    def _redraw(self, force: bool = False) -> None:
        """Redraw charts whose data changed (about once a second), and only visible ones."""
        if not self._showing():
            return
        before = {p.id: p.display for p in self.main.query(ChartPanel)}
        self._apply_visibility()
        if not self.charts_ready:
            return
        for panel in self.main.query(ChartPanel):
            if not panel.display:
                continue
            if force or panel.drawn_version != self.store.version or not before.get(panel.id):
                panel.draw(self.store)

    # ---------------------------------------------------------------- actions

    def action_start_stage(self) -> None:
        """Start the selected stage (the pipeline item starts the pipeline)."""
        self.notify(f"starting {self.selected_stage}…", timeout=3)
        self._launch(self.selected_stage)

    def action_start_pipeline(self) -> None:
        """Start the whole pipeline as one detached job."""
        self.notify("starting the pipeline…", timeout=3)
        self._launch(PIPELINE)

    def action_stop_run(self) -> None:
        """Ask to stop the selected run, then stop it gracefully in the background."""
        summary = self.runs_by_id.get(self.selected_run) if self.selected_run else None
        if summary is None or not summary.active:
            state = summary.status if summary else "no run selected"
            self.notify(f"nothing to stop ({state})", severity="warning")
            return
        run_id = summary.id

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"stopping {run_id}: it saves and exits (up to a minute)…")
                self._stop(run_id)

        self.push_screen(ConfirmScreen(f"Stop run {run_id}?\nIt saves a checkpoint and exits."), answered)

    def action_focus_stages(self) -> None:
        """Focus the stage list."""
        self.main.query_one("#stages").focus()

    def action_focus_runs(self) -> None:
        """Focus the run list."""
        self.main.query_one("#runs").focus()

    def action_cycle_run(self, delta: int) -> None:
        """Show the next newer (-1) or older (+1) run of the selected stage."""
        if not self._run_ids:
            return
        index = self._run_ids.index(self.selected_run) if self.selected_run in self._run_ids else 0
        self._select_run(self._run_ids[max(0, min(len(self._run_ids) - 1, index + delta))])

    def action_toggle_panel(self, panel: str) -> None:
        """Show or hide one panel."""
        self.hidden_panels = self.hidden_panels ^ {panel}
        shown = "hidden" if panel in self.hidden_panels else "shown"
        self.notify(f"{panel} panel {shown}", timeout=2)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """The console's own keys work only on the console (not under a workbench screen or dialog)."""
        if action in ("help", "command_palette", "quit") or action.startswith("app."):
            return True if action != "quit" or len(self.screen_stack) <= 1 else None
        console_actions = {b.action.split("(")[0] for b in self.BINDINGS}
        if action.split("(")[0] in console_actions and len(self.screen_stack) > 1:
            return False
        return True

    def action_open_screen(self, name: str) -> None:
        """Open a workbench screen: config, runs, sync, ablation or completions."""
        from tui import screens

        if len(self.screen_stack) > 1:
            return  # one workbench at a time, over the console
        factory = {"config": screens.ConfigScreen, "runs": screens.RunsScreen, "sync": screens.SyncScreen,
                   "ablation": screens.AblationScreen, "completions": self._completions_screen}[name]
        self.push_screen(factory())

    def _completions_screen(self):
        from tui.screens import CompletionsScreen

        summary = self.runs_by_id.get(self.selected_run) if self.selected_run else None
        return CompletionsScreen(summary.id if summary and summary.stage == "grpo" else None)

    def action_help(self) -> None:
        """Show every key and what it does."""
        self.push_screen(HelpScreen(self.help_text()))

    async def action_quit(self) -> None:
        """Quit the console; runs in progress keep running (it says which)."""
        active = [r for r in self.runs if r.active]
        message = None
        if active:
            ids = ", ".join(r.id for r in active[:3]) + (" …" if len(active) > 3 else "")
            message = (f"ftmodel-tui: {len(active)} run(s) keep running in the background: {ids}\n"
                       f"reopen the console to watch them; `ftmodel stop RUN --workspace {self.workspace}` "
                       f"stops one")
        self.quit_message = message
        self.exit(message=message)

    def help_text(self) -> str:
        """The help screen's text: every binding and what it does."""
        lines = ["ftmodel-tui — keys", ""]
        lines.append(f"  {'up/down':12} move in the focused list (stages or runs)")
        lines.append(f"  {'tab':12} switch focus between stages and runs")
        for b in self.BINDINGS:
            key = b.key_display or b.key
            lines.append(f"  {key:12} {b.description}{' — ' + b.tooltip if b.tooltip else ''}")
        lines.append(f"  {'ctrl+p':12} command palette (every action)")
        from tui import screens

        for title, cls in (("config editor (c)", screens.ConfigScreen), ("runs browser (r)", screens.RunsScreen),
                           ("sync (w)", screens.SyncScreen), ("ablation (a)", screens.AblationScreen),
                           ("GRPO completions (g)", screens.CompletionsScreen)):
            lines += ["", title]
            for b in [*cls.BINDINGS, *screens.Workbench.BINDINGS]:
                key = b.key_display or b.key
                lines.append(f"  {key:12} {b.description}{' — ' + b.tooltip if b.tooltip else ''}")
        lines += ["", "Stages run detached: quitting, closing tmux or losing SSH leaves them",
                  "running. Reopen the console to re-attach; a run whose process died shows",
                  "as lost. Panels 1-4 appear once the run has logged those metrics."]
        return "\n".join(lines)

    def get_system_commands(self, screen):
        """Offer every action in the command palette."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("Start stage", "Start the selected stage (s)", self.action_start_stage)
        yield SystemCommand("Start pipeline", "Start the whole pipeline (p)", self.action_start_pipeline)
        yield SystemCommand("Stop run", "Stop the selected run gracefully (x)", self.action_stop_run)
        yield SystemCommand("Focus stages", "Move to the stage list (left)", self.action_focus_stages)
        yield SystemCommand("Focus runs", "Move to the run list (right)", self.action_focus_runs)
        yield SystemCommand("Newer run", "Show the next newer run ([)", partial(self.action_cycle_run, -1))
        yield SystemCommand("Older run", "Show the next older run (])", partial(self.action_cycle_run, 1))
        for panel, key in PANELS.items():
            yield SystemCommand(f"Toggle {panel} panel", f"Show or hide the {panel} panel ({key})",
                                partial(self.action_toggle_panel, panel))
        for name, key, what in (("config", "c", "Edit the config as a form"),
                                ("runs", "r", "Browse, compare, clone and delete runs"),
                                ("sync", "w", "Sync offline wandb runs"),
                                ("ablation", "a", "Launch an ablation and read its matrix"),
                                ("completions", "g", "Browse GRPO completions")):
            yield SystemCommand(f"Open {name}", f"{what} ({key})", partial(self.action_open_screen, name))
        yield SystemCommand("Keys", "Show every key (?)", self.action_help)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def build_parser() -> argparse.ArgumentParser:
    """Build the `ftmodel-tui` argument parser."""
    p = argparse.ArgumentParser(prog="ftmodel-tui", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"TOML config (default: {DEFAULT_CONFIG})")
    p.add_argument("--workspace", help="workspace directory (default: launch.workspace from the config)")
    p.add_argument("--no-mouse", action="store_true", help="do not capture the mouse (keys do everything)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ftmodel-tui`."""
    ns = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cfg = config_mod.load(ns.config)
    except config_mod.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    workspace = Path(ns.workspace or cfg.launch.workspace)
    app = FtmodelConsole(cfg, ns.config, workspace)
    app.run(mouse=not ns.no_mouse)
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
