"""The sync screen's air-gap part: pack the chosen runs into a verified bundle (plan shown first),
import a bundle (verified first, then offered for sync), list and import sync receipts.

Every engine call (ftmodel.bundle, ftmodel.receipts) runs in a thread worker that posts a message;
packing is the app's work (PackRequested), so leaving the screen does not lose the bundle's outcome.
(Over 400 lines: three flows — pack, import, receipts — each a plan, a confirm and a worker's outcome,
sharing the screen's run selection and progress bar.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from textual.widgets import ProgressBar, Static

from ftmodel.i18n import t
from tui.cells import cut, pad
from tui.dialogs import AskScreen, ConfirmScreen, PickScreen, TextScreen
from tui.messages import (
    BundleChecked,
    BundleImported,
    BundlePacked,
    BundlePlanned,
    PackRequested,
    ReceiptImported,
    ReceiptsListed,
)
from tui.workers import background

BUNDLE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def resolve_path(workspace: Path, text: str) -> tuple[Path, bool]:
    """(the path a user typed, whether it was explicit): an absolute (or ~) path is taken as typed;
    anything else is relative to the workspace, never to the console's working directory."""
    path = Path(text.strip()).expanduser()
    if path.is_absolute():
        return Path(os.path.normpath(path)), True
    return Path(os.path.normpath(Path(workspace).absolute() / path)), False


def output_error(workspace: Path, text: str) -> str | None:
    """Why `text` cannot be where a bundle is written, or None. A relative path must stay inside the
    workspace (a `../` out of it is refused); writing elsewhere needs an absolute path, typed."""
    path, explicit = resolve_path(workspace, text)
    root = Path(os.path.normpath(Path(workspace).absolute()))
    if not explicit and not path.is_relative_to(root):
        return t("{path} is outside the workspace: type an absolute path to write there", path=path)
    if not path.name.endswith(BUNDLE_SUFFIXES):
        return t("a bundle file ends in .tar, .tar.gz or .tgz")
    if path.exists():
        return t("{path} exists: choose another name (nothing is overwritten)", path=path)
    if explicit and not path.parent.is_dir():
        return t("no folder {path}", path=path.parent)
    return None


def plan_text(plan) -> str:
    """A bundle plan as the confirm dialog shows it: each run, then the totals and what is left out."""
    from ftmodel.bundle import human_size

    lines = [f"{pad(t('run'), 34)} {pad(t('stage'), 9)} {pad(t('files'), 6)} {pad(t('size'), 9)}"]
    for c in plan.runs:
        lines.append(f"{pad(cut(c.run_id, 34), 34)} {pad(c.stage, 9)} {c.files:>6} {human_size(c.bytes):>9}")
    lines += ["", t("to carry: {files} file(s), {size}", files=len(plan.entries), size=human_size(plan.bytes))]
    if plan.new_only:
        lines.append(t("only what no earlier bundle carried (--new)"))
    if plan.model_bytes and not plan.with_models:
        lines.append(
            t(
                "model weights left out: {size} (checkpoints, adapters, merged models; "
                "`ftmodel bundle --with-models` carries them)",
                size=human_size(plan.model_bytes),
            )
        )
    elif not plan.model_bytes:
        lines.append(t("no model weights in these runs"))
    return "\n".join(lines)


def header_text(path: Path, header: dict) -> str:
    """A verified bundle's header as the import dialog shows it."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(header.get("created") or 0))
    lines = [
        t("{path}: verified against its manifest", path=path),
        t(
            "made on {host} at {when} (bundle {id})",
            host=header.get("host") or "?",
            when=when,
            id=header.get("bundle_id") or "?",
        ),
        "",
    ]
    runs = header.get("runs") or {}
    for run_id, info in sorted(runs.items()):
        lines.append(f"  {run_id}  {info.get('stage', '?')}  {t(str(info.get('state', '?')))}")
    if header.get("new_only"):
        lines += ["", t("a --new bundle: rows are appended onto what an earlier bundle brought")]
    return "\n".join(lines)


def receipts_text(receipts: list) -> str:
    """Every receipt: id, host, date, servers and the runs that reached them."""
    if not receipts:
        return t(
            "no receipts yet: after `ftmodel sync` on the connected machine, carry its receipt "
            "(.wandb/receipts/receipt-*.json) back and import it here"
        )
    lines = []
    for rec in receipts:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.created))
        run_ids = sorted({key.split("/")[1] if key.count("/") >= 2 else key for key in rec.runs})
        shown = ", ".join(run_ids[:4]) + (" …" if len(run_ids) > 4 else "")
        lines += [
            rec.receipt_id,
            "  "
            + t(
                "host {host} · {when} · {servers}",
                host=rec.host or "?",
                when=when,
                servers=", ".join(rec.servers) or "?",
            ),
            "  " + t("{n} run(s): {runs}", n=len(rec.runs), runs=shown),
            "",
        ]
    return "\n".join(lines).rstrip()


class BundleActions:
    """The sync screen's bundle and receipt actions (mixed into SyncScreen; it provides `offline`,
    `selected_keys()`, `start_sync()` and `list_offline()`)."""

    _offer_sync: set[str] = frozenset()
    _pack_timer = None

    def mount_bundle(self) -> None:
        """Show the bundle line only when there is something to say; follow a pack still running."""
        self.query_one("#bundle-status", Static).display = False
        if self.app.sync.packing:
            self._follow_pack(Path(self.app.sync.packing), None)

    def _say(self, text: str) -> None:
        line = self.query_one("#bundle-status", Static)
        line.update(text)
        line.display = bool(text)

    # ------------------------------------------------------------ pack

    def action_pack(self) -> None:
        """Pack the marked runs (or the one under the cursor) into a bundle: plan, confirm, where, pack."""
        if self.app.sync.packing:
            self.notify(t("a bundle is already being packed: {path}", path=self.app.sync.packing), severity="warning")
            return
        keys = self.selected_keys()
        run_ids = list(dict.fromkeys(r.run_id for r in self.offline if r.key in keys))
        if not run_ids:
            self.notify(t("nothing to pack ({why})", why=t("no run selected")), severity="warning")
            return

        def chosen(mode: str | None) -> None:
            if mode:
                self._say(t("planning a bundle of {n} run(s)…", n=len(run_ids)))
                self.plan_pack(run_ids, mode == "new")

        self.app.push_screen(
            PickScreen(
                t("pack {n} run(s) into a bundle", n=len(run_ids)),
                ["whole", "new"],
                [
                    t("whole runs (everything they hold but model weights)"),
                    t("only what no earlier bundle carried (--new)"),
                ],
            ),
            chosen,
        )

    @background("bundle-plan", "planning a bundle", exclusive=True)
    def plan_pack(self, run_ids: list[str], new_only: bool) -> None:
        """Decide what the bundle would carry (reads every file's size; hashes prefixes for --new)."""
        from ftmodel import bundle

        try:
            plan = bundle.plan_bundle(self.app.workspace, run_ids, new_only=new_only)
        except (LookupError, OSError, bundle.BundleError) as e:
            self.post_message(BundlePlanned(None, new_only, str(e)))
            return
        self.post_message(BundlePlanned(plan, new_only, None))

    def on_bundle_planned(self, message: BundlePlanned) -> None:
        self._say("")
        if message.error:
            self.notify(message.error, title=t("cannot pack"), severity="error", timeout=10)
            return
        plan = message.plan
        if not plan.entries:
            self.notify(
                t("nothing new to carry: every file was in an earlier bundle")
                if message.new_only
                else t("nothing to carry in these runs"),
                severity="warning",
            )
            return

        def confirmed(yes: bool) -> None:
            if yes:
                self._ask_output(plan, message.new_only)

        self.app.push_screen(TextScreen(t("bundle plan"), plan_text(plan), t("Pack these runs?")), confirmed)

    def _ask_output(self, plan, new_only: bool) -> None:
        ws = self.app.workspace
        default = f"bundles/bundle-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz"

        def answered(text: str | None) -> None:
            if text:
                out, _ = resolve_path(ws, text)
                self.post_message(PackRequested(plan, out, new_only))
                self._follow_pack(out, plan)

        self.app.push_screen(
            AskScreen(
                t("bundle file"),
                t(
                    "where to write it: relative to the workspace {ws}, or an absolute path you type "
                    "(.tar, or .tar.gz to compress)",
                    ws=ws,
                ),
                lambda text: output_error(ws, text),
                value=default,
            ),
            answered,
        )

    def _follow_pack(self, out: Path, plan) -> None:
        """Show the pack's progress: the bytes written so far (the bundle grows as `<out>.part`)."""
        from ftmodel.bundle import human_size

        started = time.monotonic()
        part = out.with_name(out.name + ".part")
        what = (
            t(
                "packing {files} file(s), {size}, into {path}",
                files=len(plan.entries),
                size=human_size(plan.bytes),
                path=out,
            )
            if plan is not None
            else t("packing into {path}", path=out)
        )
        bar = self.query_one("#sync-progress", ProgressBar)
        bar.update(total=None)
        bar.display = True

        def tick() -> None:
            try:
                written = part.stat().st_size  # one stat: cheap enough for the UI thread
            except OSError:
                written = 0
            self._say(
                what
                + " · "
                + t("{size} written, {seconds}s", size=human_size(written), seconds=int(time.monotonic() - started))
            )

        if self._pack_timer is not None:
            self._pack_timer.stop()
        tick()
        self._pack_timer = self.set_interval(0.5, tick)

    def on_bundle_packed(self, message: BundlePacked) -> None:
        """The app's pack worker ended (it has notified): say so on the bundle line."""
        from ftmodel.bundle import human_size

        if self._pack_timer is not None:
            self._pack_timer.stop()
            self._pack_timer = None
        bar = self.query_one("#sync-progress", ProgressBar)
        bar.display = bool(self.app.sync.busy)
        info = message.info
        if message.error:
            self._say(t("no bundle written to {path}", path=message.out) + ": " + message.error)
        else:
            self._say(
                t(
                    "bundle written: {path} ({size}, {seconds}s)",
                    path=info.path,
                    size=human_size(info.bytes_out),
                    seconds=f"{info.seconds:.2f}",
                )
            )

    # ------------------------------------------------------------ import

    def action_import_bundle(self) -> None:
        """Ask for a bundle file, verify it, show what it holds, import it, then offer to sync its runs."""
        ws = self.app.workspace

        def check(text: str) -> str | None:
            path, _ = resolve_path(ws, text)
            return None if path.is_file() else t("no file {path}", path=path)

        def answered(text: str | None) -> None:
            if text:
                path, _ = resolve_path(ws, text)
                self._say(t("verifying {path}…", path=path))
                self.check_bundle(path)

        self.app.push_screen(
            AskScreen(
                t("import a bundle"), t("bundle file (relative to the workspace {ws}, or absolute)", ws=ws), check
            ),
            answered,
        )

    @background("bundle-verify", "verifying a bundle", group="bundle-import", exclusive=True)
    def check_bundle(self, path: Path) -> None:
        """Verify a bundle against its manifest (in a temp dir inside the workspace)."""
        from ftmodel import bundle

        try:
            header = bundle.verify_bundle(path, self.app.workspace)
        except (bundle.BundleError, OSError) as e:
            self.post_message(BundleChecked(path, None, str(e)))
            return
        self.post_message(BundleChecked(path, header, None))

    def on_bundle_checked(self, message: BundleChecked) -> None:
        if message.error:
            self._say(t("bundle refused, nothing imported: {error}", error=message.error))
            self.notify(message.error, title=t("bundle refused"), severity="error", timeout=15)
            return
        self._say("")

        def confirmed(yes: bool) -> None:
            if yes:
                self._say(t("importing {path}…", path=message.path))
                self.import_bundle(message.path)

        self.app.push_screen(
            TextScreen(
                t("import a bundle"),
                header_text(message.path, message.header),
                t("Import these runs into this workspace?"),
            ),
            confirmed,
        )

    @background("bundle-import", "importing a bundle", exclusive=True)
    def import_bundle(self, path: Path) -> None:
        """Import a bundle (the engine verifies it again; nothing is visible until it matches)."""
        from ftmodel import bundle

        try:
            result = bundle.import_bundle(path, self.app.workspace)
        except (bundle.BundleError, OSError) as e:
            self.post_message(BundleImported(path, None, str(e)))
            return
        self.post_message(BundleImported(path, result, None))

    def on_bundle_imported(self, message: BundleImported) -> None:
        from ftmodel.bundle import human_size

        if message.error:
            self._say(t("bundle refused, nothing imported: {error}", error=message.error))
            self.notify(message.error, title=t("bundle refused"), severity="error", timeout=15)
            return
        res = message.result
        text = t(
            "imported {path} (from {host}): {runs} run(s), {written} file(s) written ({size}), "
            "{unchanged} already here, in {seconds}s",
            path=message.path,
            host=res.source_host or "?",
            runs=len(res.runs),
            written=res.written,
            size=human_size(res.bytes),
            unchanged=res.unchanged,
            seconds=f"{res.seconds:.2f}",
        )
        if res.skipped:
            text += "; " + t("{n} file(s) kept: this workspace has a longer version", n=len(res.skipped))
        self._say(text)
        self.notify(text, title=t("bundle imported"), timeout=10)
        self._offer_sync = set(res.runs)
        self.list_offline()

    def offer_sync(self) -> None:
        """After an import, once the list is read again: offer to sync the imported runs."""
        wanted, self._offer_sync = self._offer_sync, frozenset()
        runs = [r for r in self.offline if r.run_id in wanted and r.state != "synced"]
        if not runs:
            return

        def confirmed(yes: bool) -> None:
            if yes:
                self.start_sync(runs, t("no run selected"))

        self.app.push_screen(ConfirmScreen(t("Sync the {n} imported run(s) now?", n=len(runs))), confirmed)

    # ------------------------------------------------------------ receipts

    def action_receipts(self) -> None:
        """List the workspace's sync receipts; offer to import one carried back."""
        self.list_receipts()

    @background("receipts-list", "listing the receipts", group="receipts", exclusive=True)
    def list_receipts(self) -> None:
        from ftmodel import receipts

        self.post_message(ReceiptsListed(receipts.list_receipts(self.app.workspace)))

    def on_receipts_listed(self, message: ReceiptsListed) -> None:
        def confirmed(yes: bool) -> None:
            if yes:
                self._ask_receipt()

        self.app.push_screen(
            TextScreen(
                t("sync receipts ({n})", n=len(message.receipts)),
                receipts_text(message.receipts),
                t("Import a receipt file?"),
            ),
            confirmed,
        )

    def _ask_receipt(self) -> None:
        ws = self.app.workspace

        def check(text: str) -> str | None:
            path, _ = resolve_path(ws, text)
            return None if path.is_file() else t("no file {path}", path=path)

        def answered(text: str | None) -> None:
            if text:
                self.import_receipt(resolve_path(ws, text)[0])

        self.app.push_screen(
            AskScreen(
                t("import a receipt"), t("receipt file (relative to the workspace {ws}, or absolute)", ws=ws), check
            ),
            answered,
        )

    @background("receipt-import", "importing a receipt", group="receipts", exclusive=True)
    def import_receipt(self, path: Path) -> None:
        from ftmodel import receipts

        try:
            rec = receipts.import_receipt(self.app.workspace, path)
        except (receipts.ReceiptError, OSError) as e:
            self.post_message(ReceiptImported(path, None, str(e)))
            return
        self.post_message(ReceiptImported(path, rec, None))

    def on_receipt_imported(self, message: ReceiptImported) -> None:
        if message.error:
            self.notify(message.error, title=t("receipt refused"), severity="error", timeout=15)
            return
        rec = message.receipt
        self.notify(
            t(
                "receipt {id}: {n} run(s) reached {servers}",
                id=rec.receipt_id,
                n=len(rec.runs),
                servers=", ".join(rec.servers) or "?",
            ),
            title=t("receipt imported"),
        )
        self.list_offline()
