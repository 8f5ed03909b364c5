"""The runs browser: every run of the workspace as a table (filter, mark, overlay, clone, delete),
a run's detail and an overlay of several runs' curves. Files are read and removed in workers.

A little over 400 lines: three screens that share one stylesheet, the row model and its actions
(the rows, files and alerts they show are read in tui/rundata/table.py and tui/rundata/alerts.py)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Input, Static

from ftmodel import config as config_mod
from ftmodel.i18n import t
from ftmodel.reports import result_tables
from ftmodel.textio import printable
from ftmodel.words import JOBS, STATES
from tui import actions
from tui.cells import cut
from tui.configdoc import snapshot_diff
from tui.dialogs import AskScreen, TextScreen
from tui.messages import DetailLoaded, LaunchDone, LaunchRequested, OverlayLoaded, RowsLoaded, RunDeleted
from tui.plain import Plain
from tui.rundata.alerts import alert_notes
from tui.rundata.argv import stage_argv
from tui.rundata.summary import scan_workspace, summary_of
from tui.rundata.table import KEY_METRICS, RunRow, artifacts, metric_series, remove_run_dir, run_rows
from tui.screens.base import FilteredTable, Workbench
from tui.widgets.charts import chart_widget
from tui.widgets.log import LogPanel
from tui.widgets.tables import Table
from tui.workers import WorkerFailed, background

ALERTS_CELLS = 10  # the runs table's alerts column: at 80 columns the start and time still show


@actions.bind("runs")
class RunsScreen(FilteredTable):
    """Every run of the workspace as a table: filter, details, overlay curves, clone, delete."""

    CSS_PATH = "../styles/runs.tcss"

    FILTER_INPUT, TABLE = "runs-text", "runs-table"

    # The run id comes first so it stays visible at 80 columns (the rest scrolls sideways).
    COLUMNS = ("*", "run", "stage", "state", "alerts", "start", "time", *KEY_METRICS, "wandb", "sync")

    def __init__(self):
        super().__init__()
        self.rows: list[RunRow] = []
        self.shown: list[RunRow] = []
        self.marked: set[str] = set()
        self.stage_filter: str | None = None
        self.state_filter: str | None = None

    def compose(self) -> ComposeResult:
        yield Plain("", id="runs-filters")
        yield Input(placeholder=t("filter text (/ to focus, escape to leave)"), id="runs-text")
        table = Table(cursor_type="row", zebra_stripes=True, id="runs-table")
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        for col in self.COLUMNS:
            width = ALERTS_CELLS if col == "alerts" else None  # `⚠2 stall`; a long rule is cut, not the columns after
            table.add_column(t("ans acc" if col == "answer_accuracy" else col), key=col, width=width)
        table.focus()
        self._refresh_filters()
        self.load_rows()
        self.set_interval(2.0, self.load_rows, name="runs-refresh")

    @background("runs-rows", "reading the runs browser's rows", exclusive=True, skip_if_running=True)
    def load_rows(self) -> None:
        """Read every run's summary, final metrics and sync state."""
        ws = self.app.workspace
        self.post_message(RowsLoaded(run_rows(scan_workspace(ws), ws)))

    def on_rows_loaded(self, message: RowsLoaded) -> None:
        self.rows = message.rows
        self.fill()

    def fill(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        text = self.query_one("#runs-text", Input).value
        current = self.cursor_run()
        self.shown = [r for r in self.rows if r.matches(self.stage_filter, self.state_filter, text)]
        theme = self.app.current_theme
        warn, error = theme.warning or "yellow", theme.error or "red"
        cells = [(r.id, ("*" if r.id in self.marked else " ", *_shown_cells(r, warn, error))) for r in self.shown]
        table.clear()
        for key, row in cells:
            table.add_row(*row, key=key)
        if current and current.id in {r.id for r in self.shown}:
            table.move_cursor(row=table.get_row_index(current.id), animate=False)
        self._refresh_filters()

    def _refresh_filters(self) -> None:
        self.query_one("#runs-filters", Static).update(
            t(
                "stage: {stage} (f) · state: {state} (t) · {shown}/{total} runs · {marked} marked",
                stage=self.stage_filter or t("all"),
                state=t(self.state_filter) if self.state_filter else t("all"),
                shown=len(self.shown),
                total=len(self.rows),
                marked=len(self.marked),
            )
        )

    def cursor_run(self) -> RunRow | None:
        table = self.query_one("#runs-table", DataTable)
        if not self.shown or table.cursor_row is None or table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        except Exception:  # noqa: BLE001 - the table was just refilled
            return None
        return next((r for r in self.shown if r.id == key), None)

    def action_cycle_stage(self) -> None:
        """Cycle the stage filter: all, then each stage."""
        order = [None, *JOBS]
        self.stage_filter = order[(order.index(self.stage_filter) + 1) % len(order)]
        self.fill()

    def action_cycle_state(self) -> None:
        """Cycle the state filter: all, then each state."""
        order = [None, *STATES]
        self.state_filter = order[(order.index(self.state_filter) + 1) % len(order)]
        self.fill()

    def action_mark(self) -> None:
        """Mark or unmark the run under the cursor."""
        row = self.cursor_run()
        if row is None:
            return
        self.marked ^= {row.id}
        table = self.query_one("#runs-table", DataTable)
        table.update_cell(row.id, "*", "*" if row.id in self.marked else " ")
        if table.cursor_row is not None and table.cursor_row + 1 < table.row_count:
            table.move_cursor(row=table.cursor_row + 1)
        self._refresh_filters()

    @on(DataTable.RowSelected, "#runs-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        row = next((r for r in self.shown if r.id == event.row_key.value), None)
        if row is not None:
            self.app.push_screen(RunDetailScreen(row))

    def action_overlay(self) -> None:
        """Overlay the marked runs' curves (the run under the cursor when none is marked)."""
        ids = [r.id for r in self.rows if r.id in self.marked]
        if not ids and self.cursor_run():
            ids = [self.cursor_run().id]
        if not ids:
            self.notify(t("mark runs with space first"), severity="warning")
            return
        by_id = {r.id: r for r in self.rows}
        self.app.push_screen(OverlayScreen([by_id[i].summary.path for i in ids]))

    def action_clone(self) -> None:
        """Re-launch the run's stage from its config snapshot with one changed key."""
        row = self.cursor_run()
        if row is None:
            return
        if row.summary.stage not in JOBS:
            self.notify(t("cannot clone a {stage} run", stage=row.summary.stage), severity="warning")
            return
        snapshot = row.summary.path / "config.toml"

        def check(spec: str) -> str | None:
            try:
                section, key, value = config_mod.parse_override(spec)
                config_mod.validate_value(section, key, value)
                config_mod.load(snapshot, [spec])
            except config_mod.ConfigError as e:
                return str(e)
            return None

        def answered(spec: str | None) -> None:
            if spec:
                self.clone_run(row.summary.path, row.summary.stage, spec)

        self.app.push_screen(
            AskScreen(
                t("clone {run}", run=row.id),
                t("One change, as section.key=value (e.g. sft.learning_rate=1e-3):"),
                check,
            ),
            answered,
        )

    @background("runs-clone", "cloning a run")
    def clone_run(self, path: Path, stage: str, spec: str) -> None:
        """Load the run's config snapshot with the change and its stage flags, then ask the app to start it."""
        from ftmodel.rundir import Run

        snapshot = path / "config.toml"
        try:
            cfg = config_mod.load(snapshot, [spec])
        except config_mod.ConfigError as e:
            self.post_message(LaunchDone(stage, None, str(e)))
            return
        args = {k: v for k, v in (Run(path).read_state().get("args") or {}).items() if k != "workspace"}
        argv = stage_argv(stage, snapshot, self.app.workspace, [spec])
        self.post_message(LaunchRequested(stage, cfg, args, argv))

    def action_delete(self) -> None:
        """Delete the run under the cursor after confirmation (never an active one)."""
        row = self.cursor_run()
        if row is None:
            return
        if row.summary.active:
            self.notify(
                t("{run} is {state}: stop it before deleting it", run=row.id, state=t(row.summary.status)),
                severity="error",
            )
            return
        path = row.summary.path

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            self.delete_run(row.id, path)

        what = t("{path}\n({stage}, {state})", path=path, stage=row.summary.stage, state=t(row.summary.status))
        if row.link_target:  # found when the rows were read (in a worker), not stat-ed here
            what += "\n" + t("it is a link to {target}: only the link is removed", target=row.link_target)
        self.app.push_screen(
            TextScreen(t("delete"), what, t("Delete run {run} and all its files?", run=row.id)), answered
        )

    @background("runs-delete", "deleting a run")
    def delete_run(self, run_id: str, path: Path) -> None:
        """Remove a run directory off the UI thread (a big run takes a while); a link loses only itself."""
        self.post_message(RunDeleted(run_id, *remove_run_dir(path)))

    def on_run_deleted(self, message: RunDeleted) -> None:
        if message.removed:
            self.marked.discard(message.run_id)
            self.rows = [r for r in self.rows if r.id != message.run_id]
            self.fill()
        self.notify(message.note, severity="information" if message.removed else "error")
        self.load_rows()


def _shown_cells(row: RunRow, warn: str = "yellow", error: str = "red") -> tuple[str | Text, ...]:
    """A row's cells as the table shows them: states in the UI language, alerts in the warning colour
    (the error colour when one of them says the run is broken: non-finite, stall)."""
    run_id, stage, status, alerts, *rest, wandb, sync = row.cells()
    colour = error if row.summary.alerts_severe else warn
    shown_alerts = Text(cut("⚠" + alerts, ALERTS_CELLS), style=f"bold {colour}") if alerts else ""
    synced = t(sync) if sync in ("never", "synced", "failed") else sync
    return (run_id, stage, t(status), shown_alerts, *rest, wandb, synced)


class RunDetailScreen(Workbench):
    """One run: its config against the current config, artifacts, results per qtype, log tail."""

    CSS_PATH = "../styles/runs.tcss"

    def __init__(self, row: RunRow):
        super().__init__()
        self.row = row
        self.loaded = False

    def compose(self) -> ComposeResult:
        s = self.row.summary
        with VerticalScroll(id="detail"):
            yield Plain(
                f"{s.id} · {s.stage} · {t(s.status)}"
                + (" · " + t("exit {code}", code=s.exit_code) if s.exit_code else "")
                + ("\n" + t("error:") + f" {s.error}" if s.error else ""),
                id="detail-head",
            )
            yield Static(t("alerts (the run sentinel)"), classes="detail-title")
            yield Plain(t("reading…"), id="detail-alerts")
            yield Static(t("config: snapshot vs current"), classes="detail-title")
            yield Plain(t("reading…"), id="detail-config")
            yield Static(t("lineage (← what it consumed)"), classes="detail-title")
            yield Plain(t("reading…"), id="detail-lineage")
            yield Static(t("artifacts"), classes="detail-title")
            yield Plain(t("reading…"), id="detail-artifacts")
            yield VerticalScroll(id="detail-results")
            yield Static(t("log tail"), classes="detail-title")
            yield LogPanel(id="detail-log")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @background("run-detail", "reading a run's details", exclusive=True)
    def load(self) -> None:
        """Walk the run directory (sizes of big checkpoints), diff its config, read results, lineage and log."""
        from ftmodel.fingerprint import lineage_lines
        from ftmodel.rundir import Run, load_state

        path = self.row.summary.path
        try:
            files = artifacts(path)
        except OSError:
            files = []
        try:
            lineage = lineage_lines(self.app.workspace, Run(path))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # state.json: any shape
            lineage = [t("cannot read the lineage: {error}", error=e)]
        run = Run(path)
        try:  # its state now (the scheduler's for a Slurm run): a run that is active is never replayed
            status = summary_of(run, *load_state(run.state_path)).status
        except (OSError, ValueError, TypeError, AttributeError):
            status = None
        notes = alert_notes(run, status)
        self.post_message(
            DetailLoaded(
                snapshot_diff(path / "config.toml", self.app.cfg),
                files,
                result_tables(path),
                Run(path).log_tail(60),
                lineage,
                notes,
            )
        )

    def on_worker_failed(self, message: WorkerFailed) -> None:
        """The detail's reader failed: say so where it said "reading…", not a blank (the app tells why too)."""
        if message.name != "run-detail" or self.loaded:
            return
        for part in ("alerts", "config", "lineage", "artifacts"):
            self.query_one(f"#detail-{part}", Static).update(t("could not read: {error}", error=message.error))

    async def on_detail_loaded(self, message: DetailLoaded) -> None:
        from tui.cells import pad

        self.query_one("#detail-config", Static).update(message.diff)
        self.query_one("#detail-lineage", Static).update("\n".join(message.lineage) or t("(none)"))
        self.query_one("#detail-alerts", Static).update("\n".join(message.alerts) or t("(none)"))
        self.query_one("#detail-artifacts", Static).update(
            "\n".join(f"{pad(name, 40)} {size:>12,} B" for name, size in message.artifacts) or t("(none)")
        )
        widgets = []
        for title, cols, rows in message.tables:
            widgets.append(Plain(title, classes="detail-title"))
            table = Table(show_cursor=False, zebra_stripes=True)
            table.add_columns(*cols)
            table.add_rows(rows)
            widgets.append(table)
        await self.query_one("#detail-results").mount_all(widgets)
        self.query_one("#detail-log", LogPanel).write_lines(message.log)
        self.loaded = True


@actions.bind("overlay")
class OverlayScreen(Workbench):
    """Several runs' curves of one metric in one chart (`m` picks the metric)."""

    CSS_PATH = "../styles/runs.tcss"

    def __init__(self, run_paths: list[Path], metric: str = "loss"):
        super().__init__()
        self.run_paths = run_paths
        self.metric = metric
        self.metrics: list[str] = []
        self.drawn = 0

    def compose(self) -> ComposeResult:
        yield Plain(t("reading…"), id="overlay-title")
        yield chart_widget(id="overlay-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.load(self.metric)

    @background("overlay-read", "reading the runs' curves", group="overlay", exclusive=True)
    def load(self, metric: str) -> None:
        """Read the metric names and every run's points of `metric` (whole metrics files: a worker)."""
        from ftmodel.rundir import MetricsReader

        names = list(self.metrics)
        if not names:
            for path in self.run_paths:
                for row in MetricsReader(path / "metrics.jsonl").read_new()[:50]:
                    names += [
                        k
                        for k, v in row.items()
                        if k not in ("step", "time")
                        and k not in names
                        and isinstance(v, (int, float))
                        and not isinstance(v, bool)
                    ]
            names = names or [metric]
        if metric not in names:
            metric = names[0]
        series = [(path.name, *metric_series(path, metric)) for path in self.run_paths]
        self.post_message(OverlayLoaded(metric, names, series))

    def on_overlay_loaded(self, message: OverlayLoaded) -> None:
        self.metric, self.metrics = message.metric, message.metrics
        plot = self.query_one("#overlay-plot")
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        drawn = 0
        for name, xs, ys in message.series:
            if xs:
                step = max(1, len(xs) // 400)
                plt.plot(xs[::step], ys[::step], label=printable(name), marker="braille")
                drawn += 1
        plt.xlabel(t("step"))
        plot.refresh()
        self.drawn = drawn
        self.query_one("#overlay-title", Static).update(
            t(
                "{metric} · {drawn}/{total} runs have it · m: next metric",
                metric=self.metric,
                drawn=drawn,
                total=len(self.run_paths),
            )
        )

    def action_cycle_metric(self) -> None:
        """Show the next metric."""
        if self.metrics:
            self.load(self.metrics[(self.metrics.index(self.metric) + 1) % len(self.metrics)])
