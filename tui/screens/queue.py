"""The queue screen: the workspace's job queue (reorder, remove, pause, retry failed), whether its
detached runner is running (started when jobs wait and none runs), and a sweep's comparison table,
sortable by any column with the best row marked. Every file read or edit runs in a thread worker."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Static

from ftmodel.i18n import t
from tui import actions
from tui.dialogs import PickScreen
from tui.messages import QueueEdited, QueueRead, SweepTableRead
from tui.plain import Plain
from tui.screens.base import Workbench
from tui.widgets.tables import Table, fill_table
from tui.workers import background

# What a job is and how it went come first, so they stay visible at 80 columns (the rest scrolls sideways).
JOB_COLUMNS = ("label", "state", "run", "attempts", "reused", "gpu", "error", "job")


def _cell(value) -> str:
    """A sweep table cell as text (four significant digits: a learning rate of 1e-5 stays readable;
    missing values as a dash)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _sort_key(value):
    """Order numbers before text and missing values last, whatever the column holds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    if value is None or value == "":
        return (2, 0, "")
    return (1, 0, str(value))


@actions.bind("queue")
class QueueScreen(Workbench):
    """The job queue and its runner, refreshed every second, and one sweep's comparison table."""

    CSS_PATH = "../styles/queue.tcss"
    AUTOSTART = True  # start the runner when jobs wait and none runs (Pilot tests turn it off)

    def __init__(self):
        super().__init__()
        self.data: dict | None = None
        self.runner = False
        self.sweeps: list[str] = []
        self.sweep_id: str | None = None
        self.columns: list = []
        self.rows: list = []
        self.best: int | None = None
        self.sort_col: int | None = None
        self.sort_desc = False
        self.follow: tuple[str, int] | None = None  # a moved job the cursor stays on: (id, its new place)

    def compose(self) -> ComposeResult:
        yield Plain(t("reading the queue…"), id="queue-status")
        yield Table(cursor_type="row", zebra_stripes=True, id="queue-table")
        yield Plain(t("no sweep shown · v picks one"), id="sweep-title")
        yield Table(cursor_type="row", zebra_stripes=True, id="sweep-table")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#queue-table", DataTable)
        for col in JOB_COLUMNS:
            table.add_column(t(col), key=col)
        table.focus()
        self.read()
        self.set_interval(1.0, self.read, name="queue-refresh")

    # ------------------------------------------------------------ reading

    @background("queue-read", "reading the queue", exclusive=True, skip_if_running=True)
    def read(self) -> None:
        """Read the queue, ask whether a runner holds its lock, list sweeps; start a runner if one is due."""
        from ftmodel import queue, sweep

        ws = self.app.workspace
        try:
            data = queue.read_queue(ws)
        except queue.QueueError as e:
            self.post_message(QueueRead(None, queue.runner_running(ws), [], str(e)))
            return
        running = queue.runner_running(ws)
        started = None
        waiting = any(j["state"] == "queued" for j in data["jobs"])
        if self.AUTOSTART and waiting and not running and not data.get("paused"):
            started = queue.start_runner(ws)
            running = started is not None or queue.runner_running(ws)
        try:
            sweeps = sweep.list_sweeps(ws)
        except OSError:
            sweeps = []
        self.post_message(QueueRead(data, running, sweeps, started=started))
        if self.sweep_id:
            self._read_sweep(self.sweep_id)

    def _read_sweep(self, sweep_id: str) -> None:
        from ftmodel import queue, sweep

        try:
            columns, rows, best = sweep.comparison(self.app.workspace, sweep_id)
        except (sweep.SweepError, queue.QueueError, OSError) as e:
            self.post_message(SweepTableRead(sweep_id, [], [], None, str(e)))
            return
        self.post_message(SweepTableRead(sweep_id, columns, rows, best))

    def on_queue_read(self, message: QueueRead) -> None:
        self.runner, self.sweeps = message.runner, message.sweeps
        if message.started:
            self.notify(t("started the queue runner (pid {pid})", pid=message.started), timeout=4)
        status = self.query_one("#queue-status", Static)
        if message.error:
            status.update(t("the queue cannot be read: {error}", error=message.error))
            return
        changed = message.data != self.data
        self.data = message.data
        jobs = self.data["jobs"]
        counts = {s: sum(j["state"] == s for j in jobs) for s in ("queued", "running", "done", "failed")}
        runner = t("runner running") if self.runner else t("no runner")
        paused = t("PAUSED (p resumes)") if self.data.get("paused") else t("active")
        status.update(
            " · ".join(
                [
                    t(
                        "{n} job(s): {queued} queued, {running} running, {done} done, {failed} failed",
                        n=len(jobs),
                        **counts,
                    ),
                    paused,
                    runner,
                ]
            )
        )
        if changed or self.follow:  # refilling an unchanged table would only reset its scroll
            self.fill_jobs()

    def fill_jobs(self) -> None:
        table = self.query_one("#queue-table", DataTable)
        current = self.cursor_job()
        if self.follow:  # the cursor stays on the moved job, before and after the move is written
            current = self.follow[0]
            ids = [j["id"] for j in self.data["jobs"]]
            if current not in ids or ids.index(current) == self.follow[1]:
                self.follow = None
        table.clear()
        for job in self.data["jobs"]:
            table.add_row(
                job.get("label") or job.get("stage", ""),
                t(job["state"]),
                job.get("run_id") or "—",
                str(job.get("attempts", 0)),
                t("yes") if job.get("reused") else "—",
                str(job.get("gpu") or "—"),
                job.get("error") or "",
                job["id"],
                key=job["id"],
            )
        if current and current in table.rows:
            table.move_cursor(row=table.get_row_index(current), animate=False)

    def cursor_job(self) -> str | None:
        table = self.query_one("#queue-table", DataTable)
        if table.row_count == 0 or table.cursor_row is None:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    # ------------------------------------------------------------ editing

    @background("queue-edit", "editing the queue")
    def edit(self, what: str, *args) -> None:
        """Apply one queue edit with the engine (it locks the queue file), then report it."""
        from ftmodel import queue

        ws = self.app.workspace
        try:
            if what == "move":
                queue.move_job(ws, *args)
                note = None
            elif what == "remove":
                job = queue.remove_job(ws, *args)
                note = t("removed {job}", job=job["id"])
            elif what == "pause":
                queue.set_paused(ws, *args)
                note = t("queue paused: running jobs go on, no new one starts") if args[0] else t("queue resumed")
            elif what == "retry":
                jobs = queue.retry_jobs(ws, [])
                note = t("{n} job(s) queued again", n=len(jobs)) if jobs else t("no failed jobs")
            else:
                pid = queue.start_runner(ws)
                note = t("started the queue runner (pid {pid})", pid=pid) if pid else t("a runner is already running")
        except (queue.QueueError, OSError) as e:
            self.post_message(QueueEdited(None, str(e)))
            return
        self.post_message(QueueEdited(note))

    def on_queue_edited(self, message: QueueEdited) -> None:
        if message.error:
            self.notify(message.error, severity="error", timeout=8)
        elif message.note:
            self.notify(message.note, timeout=4)
        self.read()

    def action_move(self, delta: int) -> None:
        """Move the job under the cursor up or down the queue."""
        job = self.cursor_job()
        if job is None or self.data is None:
            return
        ids = [j["id"] for j in self.data["jobs"]]
        pos = ids.index(job) + delta
        if not 0 <= pos < len(ids):
            return
        self.follow = (job, pos)
        self.query_one("#queue-table", DataTable).move_cursor(row=pos, animate=False)
        self.edit("move", job, pos)

    def action_remove(self) -> None:
        """Remove the job under the cursor (the engine refuses a running one)."""
        job = self.cursor_job()
        if job is not None:
            self.edit("remove", job)

    def action_toggle_pause(self) -> None:
        """Pause or resume the queue."""
        if self.data is not None:
            self.edit("pause", not self.data.get("paused"))

    def action_retry_failed(self) -> None:
        """Queue every failed, cancelled or invalid job again."""
        self.edit("retry")

    def action_start_runner(self) -> None:
        """Start the runner unless one runs."""
        self.edit("runner")

    # ------------------------------------------------------------ the sweep table

    def action_pick_sweep(self) -> None:
        """Pick one of the workspace's sweeps (newest first) and show its comparison table."""
        if not self.sweeps:
            self.notify(t("no sweep in this workspace yet (ctrl+g in the config editor plans one)"), severity="warning")
            return

        def picked(sweep_id: str | None) -> None:
            if sweep_id:
                self.show_sweep(sweep_id)

        self.app.push_screen(PickScreen(t("sweep"), list(reversed(self.sweeps))), picked)

    def show_sweep(self, sweep_id: str) -> None:
        """Show a sweep's table (read in a worker, again at every refresh)."""
        self.sweep_id, self.sort_col, self.sort_desc = sweep_id, None, False
        self.columns, self.rows, self.best = [], [], None
        self.load_sweep(sweep_id)

    @background("sweep-read", "reading a sweep's table", exclusive=True)
    def load_sweep(self, sweep_id: str) -> None:
        self._read_sweep(sweep_id)

    def on_sweep_table_read(self, message: SweepTableRead) -> None:
        if message.sweep_id != self.sweep_id:
            return
        title = self.query_one("#sweep-title", Static)
        if message.error:
            title.update(t("sweep {sweep}: {error}", sweep=message.sweep_id, error=message.error))
            return
        if (message.columns, message.rows, message.best) == (self.columns, self.rows, self.best):
            return  # unchanged since the last read: keep the table's scroll and cursor
        self.columns, self.rows, self.best = message.columns, message.rows, message.best
        self.fill_sweep()

    def sorted_rows(self) -> list[tuple[int, list]]:
        """The sweep's rows with their original index, in the chosen order."""
        rows = list(enumerate(self.rows))
        if self.sort_col is not None:
            rows.sort(key=lambda r: _sort_key(r[1][self.sort_col]), reverse=self.sort_desc)
        return rows

    def fill_sweep(self) -> None:
        table = self.query_one("#sweep-table", DataTable)
        order = self.sorted_rows()
        state = self.columns.index("state") if "state" in self.columns else None
        cells = [
            [
                Text(c, style="bold reverse") if index == self.best else c
                for c in (t(v) if i == state else _cell(v) for i, v in enumerate(row))
            ]
            for index, row in order
        ]
        labels = [t(c) if c in ("best", "state", "run") else c for c in self.columns]
        if self.sort_col is not None:
            labels[self.sort_col] += " ▼" if self.sort_desc else " ▲"
        fill_table(table, labels, cells)
        if self.best is not None:
            at = next(i for i, (index, _) in enumerate(order) if index == self.best)
            table.move_cursor(row=at, animate=False)  # the best row is the highlighted one
        by = self.columns[self.sort_col] if self.sort_col is not None else t("grid order")
        best = " · " + t("best (*): {run}", run=_cell(self.rows[self.best][-1])) if self.best is not None else ""
        self.query_one("#sweep-title", Static).update(
            t(
                "sweep {sweep}: {n} point(s) · sorted by {column} (o next column, O reverse)",
                sweep=self.sweep_id,
                n=len(self.rows),
                column=by,
            )
            + best
        )

    def action_sort_next(self) -> None:
        """Sort the sweep table by the next column."""
        if not self.columns:
            return
        self.sort_col = 0 if self.sort_col is None else (self.sort_col + 1) % len(self.columns)
        self.fill_sweep()

    def action_sort_reverse(self) -> None:
        """Reverse the sweep table's order."""
        if not self.columns:
            return
        if self.sort_col is None:
            self.sort_col = 0
        self.sort_desc = not self.sort_desc
        self.fill_sweep()
