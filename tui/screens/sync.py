"""The sync screen: offline wandb runs with their ledger state; sync one, the marked, all, or the
failed. The app runs the sync (it outlives this screen) and forwards its events here."""

from __future__ import annotations

import os

from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, ProgressBar, Static

from ftmodel.i18n import t
from tui import actions
from tui.messages import OfflineListed, SyncFinished, SyncProgress, SyncRequested, SyncRunDone
from tui.screens.base import Workbench


@actions.bind("sync")
class SyncScreen(Workbench):
    """Offline wandb runs: state, size, URL; sync one, the marked ones, all, or retry failures."""

    CSS_PATH = "../styles/sync.tcss"

    def __init__(self):
        super().__init__()
        self.offline: list = []
        self.marked: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Static(t("reading offline runs…"), id="sync-status", markup=False)
        yield ProgressBar(total=None, show_eta=False, id="sync-progress")
        table = DataTable(cursor_type="row", zebra_stripes=True, id="sync-table")
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#sync-table", DataTable)
        for col in ("*", "run", "state", "size", "detail"):
            table.add_column(t(col) if col != "*" else col, key=col)
        table.focus()
        self.query_one("#sync-progress").display = False
        self.list_offline()

    @work(thread=True, exclusive=True, group="sync-list", name="sync-list")
    def list_offline(self) -> None:
        """List offline runs with their ledger state and size."""
        from ftmodel.sync import list_offline_runs

        self.post_message(OfflineListed(list_offline_runs(self.app.workspace)))

    def on_offline_listed(self, message: OfflineListed) -> None:
        self.offline = message.runs
        self.fill()

    def detail(self, run) -> str:
        sync = self.app.sync
        live = sync.messages.get(run.key)
        if live and sync.busy:
            return live
        if run.state == "synced":
            return run.url or t("verified")
        if run.state == "failed":
            return run.reason
        return live or ""

    def fill(self) -> None:
        from ftmodel.sync import human_size

        table = self.query_one("#sync-table", DataTable)
        row = table.cursor_row
        table.clear()
        labels = {"never": t("never synced"), "synced": t("synced ✓ verified"), "failed": t("failed ✗")}
        for run in self.offline:
            table.add_row("*" if run.key in self.marked else " ", run.run_id, labels.get(run.state, run.state),
                          human_size(run.size), self.detail(run), key=run.key)
        if row is not None and row < table.row_count:
            table.move_cursor(row=row, animate=False)
        counts = {s: sum(r.state == s for r in self.offline) for s in labels}
        busy = self.app.sync.busy
        server = (os.environ.get("WANDB_BASE_URL") or (self.app.sync.env or {}).get("WANDB_BASE_URL")
                  or t("(wandb settings)"))
        self.query_one("#sync-status", Static).update(
            t("{n} offline run(s): {synced} verified, {failed} failed, {never} never synced", n=len(self.offline),
              synced=counts["synced"], failed=counts["failed"], never=counts["never"])
            + (" · " + t("syncing {what}…", what=busy) if busy else "") + " · " + t("server {url}", url=server))
        bar = self.query_one("#sync-progress", ProgressBar)
        bar.display = bool(busy) or bar.progress > 0

    def _cursor_key(self) -> str | None:
        table = self.query_one("#sync-table", DataTable)
        if table.row_count == 0 or table.cursor_row is None:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def action_mark(self) -> None:
        """Mark or unmark the run under the cursor."""
        key = self._cursor_key()
        if key is None:
            return
        self.marked ^= {key}
        table = self.query_one("#sync-table", DataTable)
        table.update_cell(key, "*", "*" if key in self.marked else " ")
        if table.cursor_row + 1 < table.row_count:
            table.move_cursor(row=table.cursor_row + 1)

    def _start(self, runs: list, what: str) -> None:
        if not runs:
            self.notify(t("nothing to sync ({why})", why=what), severity="warning")
            return
        if self.app.sync.busy:
            self.notify(t("a sync is already running"), severity="warning")
            return
        bar = self.query_one("#sync-progress", ProgressBar)
        bar.update(total=len(runs), progress=0)
        bar.display = True
        self.post_message(SyncRequested(runs))
        self.call_after_refresh(self.fill)

    def action_sync_selected(self) -> None:
        """Sync the marked runs, or the one under the cursor."""
        keys = self.marked or ({self._cursor_key()} - {None})
        self._start([r for r in self.offline if r.key in keys], t("no run selected"))

    def action_sync_all(self) -> None:
        """Sync every run that is not yet verified."""
        self._start([r for r in self.offline if r.state != "synced"], t("every run is verified"))

    def action_retry_failed(self) -> None:
        """Sync the failed runs again."""
        self._start([r for r in self.offline if r.state == "failed"], t("no failed runs"))

    def on_sync_progress(self, message: SyncProgress) -> None:
        """A progress line of the app's sync worker: shown in the run's detail cell."""
        table = self.query_one("#sync-table", DataTable)
        if message.key in table.rows:
            table.update_cell(message.key, "detail", message.text)

    def on_sync_run_done(self, message: SyncRunDone) -> None:
        """One run's outcome is final: the bar advances (an event, not a parsed line)."""
        self.query_one("#sync-progress", ProgressBar).advance(1)

    def on_sync_finished(self, message: SyncFinished) -> None:
        """The sync worker ended: read the ledger again."""
        self.marked.clear()
        self.list_offline()
