"""The sync screen: offline wandb runs with their ledger state; sync one, the marked, all, or the
failed; stop a sync. The app runs the sync (it outlives this screen) and forwards its events here.
Carrying runs off an air-gapped box (bundles, receipts) is tui/screens/sync_bundle.py's part."""

from __future__ import annotations

import os

from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, ProgressBar, Static

from ftmodel.i18n import t
from tui import actions
from tui.messages import OfflineListed, SyncFinished, SyncProgress, SyncRequested, SyncRunDone
from tui.plain import Plain
from tui.screens.base import Workbench
from tui.screens.sync_bundle import BundleActions
from tui.widgets.tables import Table
from tui.workers import background


@actions.bind("sync")
class SyncScreen(BundleActions, Workbench):
    """Offline wandb runs: state, size, URL; sync one, the marked ones, all, or retry failures;
    pack runs into a bundle, import one, show and import receipts."""

    CSS_PATH = "../styles/sync.tcss"

    def __init__(self):
        super().__init__()
        self.offline: list = []
        self.behind: set[str] = set()  # keys a receipt says reached the server, grown since
        self.marked: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Plain(t("reading offline runs…"), id="sync-status")
        yield Plain("", id="bundle-status")
        yield ProgressBar(total=None, show_eta=False, id="sync-progress")
        table = Table(cursor_type="row", zebra_stripes=True, id="sync-table")
        yield table
        # Eight keys: the roomy footer would cut the bundle keys off at 80 columns (^p still opens the palette).
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#sync-table", DataTable)
        for col in ("*", "run", "state", "size", "detail"):
            table.add_column(t(col) if col != "*" else col, key=col)
        table.focus()
        self.query_one("#sync-progress").display = False
        self.mount_bundle()
        self.list_offline()

    @background("sync-list", "listing the offline runs", exclusive=True)
    def list_offline(self) -> None:
        """List offline runs with their ledger state and size (and which have grown since a receipt)."""
        from ftmodel.sync import list_offline_runs

        runs = list_offline_runs(self.app.workspace)
        self.post_message(OfflineListed(runs, {r.key for r in runs if r.remote and r.remote_behind}))

    def on_offline_listed(self, message: OfflineListed) -> None:
        self.offline, self.behind = message.runs, message.behind
        self.fill()
        self.offer_sync()

    def shown_state(self, run) -> str:
        """What the row says of a run: the ledger's state, unless the last sync found it busy or was
        interrupted (news the ledger does not hold, until it records something newer), or a receipt
        carried back says it reached the server."""
        last, seen = self.app.sync.results.get(run.key, (None, 0.0))
        if run.state in ("synced", "partial"):
            return run.state
        if last is not None and last.state in ("busy", "interrupted") and (run.entry.get("time") or 0) <= seen:
            return last.state
        if run.state == "never" and run.remote:
            return "reached"
        return run.state

    def describe(self, run) -> tuple[str, str]:
        """(state words, detail) of one offline run; a live sync line replaces the detail while syncing."""
        sync = self.app.sync
        shown = self.shown_state(run)
        last = sync.results.get(run.key, (None, 0.0))[0]
        if shown == "synced":
            state, detail = t("synced ✓ verified"), run.url or t("verified")
        elif shown == "partial":
            state, detail = t("synced, not whole"), run.reason + (f" · {run.url}" if run.url else "")
        elif shown == "busy":
            state, detail = t("being synced elsewhere"), last.reason
        elif shown == "interrupted":
            state, detail = t("interrupted"), last.reason
        elif shown == "failed":
            state, detail = t("failed ✗"), run.reason
        elif shown == "reached":
            rem = run.remote
            state = t(
                "reached {server} (receipt from {host})",
                server=rem.get("server") or "?",
                host=rem.get("receipt_host") or "?",
            )
            detail = (
                (rem.get("url") or "")
                if rem.get("state") == "synced"
                else t("not whole: {reason}", reason=rem.get("reason"))
            )
            if run.key in self.behind:
                detail = t("grown since: pack it with --new") + (f" · {detail}" if detail else "")
        else:
            state, detail = (t("never synced") if shown == "never" else shown), ""
        live = sync.messages.get(run.key)
        if live and sync.busy:
            detail = live
        return state, detail

    def fill(self) -> None:
        from ftmodel.sync import human_size

        table = self.query_one("#sync-table", DataTable)
        row = table.cursor_row
        table.clear()
        for run in self.offline:
            state, detail = self.describe(run)
            table.add_row(
                "*" if run.key in self.marked else " ", run.run_id, state, human_size(run.size), detail, key=run.key
            )
        if row is not None and row < table.row_count:
            table.move_cursor(row=row, animate=False)
        shown = [self.shown_state(r) for r in self.offline]
        counts = {s: shown.count(s) for s in ("synced", "failed", "never", "partial", "busy", "interrupted")}
        counts["never"] += shown.count("reached")  # never synced here; the receipt part is said next
        busy = self.app.sync.busy
        server = (
            os.environ.get("WANDB_BASE_URL") or (self.app.sync.env or {}).get("WANDB_BASE_URL") or t("(wandb settings)")
        )
        text = t(
            "{n} offline run(s): {synced} verified, {failed} failed, {never} never synced",
            n=len(self.offline),
            synced=counts["synced"],
            failed=counts["failed"],
            never=counts["never"],
        )
        if counts["partial"]:
            text += ", " + t("{n} not whole", n=counts["partial"])
        if counts["busy"]:
            text += ", " + t("{n} being synced elsewhere", n=counts["busy"])
        if counts["interrupted"]:
            text += ", " + t("{n} interrupted", n=counts["interrupted"])
        if shown.count("reached"):
            text += " · " + t("{n} reached the server per a receipt", n=shown.count("reached"))
        self.query_one("#sync-status", Static).update(
            text + (" · " + t("syncing {what}…", what=busy) if busy else "") + " · " + t("server {url}", url=server)
        )
        bar = self.query_one("#sync-progress", ProgressBar)
        bar.display = bool(busy) or bar.progress > 0

    def _cursor_key(self) -> str | None:
        table = self.query_one("#sync-table", DataTable)
        if table.row_count == 0 or table.cursor_row is None:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def selected_keys(self) -> set[str]:
        """The marked runs' keys, or the one under the cursor."""
        return self.marked or ({self._cursor_key()} - {None})

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

    def start_sync(self, runs: list, what: str) -> None:
        """Ask the app to sync `runs` (`what` says why there is nothing, when there is nothing)."""
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
        keys = self.selected_keys()
        self.start_sync([r for r in self.offline if r.key in keys], t("no run selected"))

    def action_sync_all(self) -> None:
        """Sync every run that is not yet verified."""
        self.start_sync([r for r in self.offline if r.state != "synced"], t("every run is verified"))

    def action_retry_failed(self) -> None:
        """Sync the failed runs again."""
        self.start_sync([r for r in self.offline if r.state == "failed"], t("no failed runs"))

    def action_stop_sync(self) -> None:
        """Stop the running sync: the engine stops the client; the run in flight is recorded interrupted."""
        cancel = self.app.sync.cancel
        if not self.app.sync.busy or cancel is None:
            self.notify(t("no sync is running"), severity="warning")
            return
        cancel.set()
        self.notify(t("stopping the sync…"))

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
