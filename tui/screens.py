"""The console's workbench screens: config editor, runs browser, sync, ablation launcher and the
GRPO completions browser.

Every screen reads run directories through `tui.workbench` and starts work (launches, syncs)
through the app, whose thread workers only post messages; files are read in workers or are small.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import (Checkbox, DataTable, Footer, Input, Log, OptionList, ProgressBar, Select,
                             Static, Switch)
from textual.widgets.option_list import Option

from ftmodel import config as config_mod
from ftmodel.rundir import STAGES
from tui.workbench import (KEY_METRICS, VARIANT_NAMES, ConfigChangedOnDisk, ConfigDocument, RunRow,
                           artifacts, display_value, metric_series, read_ablation, read_completions,
                           run_rows, snapshot_diff)

STATES = ("queued", "running", "finished", "failed", "cancelled", "lost")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


class TextScreen(ModalScreen[bool]):
    """Show a long text (a diff, a completion); with a question, `y` answers yes and `n` no."""

    BINDINGS = [Binding("y", "answer(True)", "Yes", id="text.yes", show=False),
                Binding("n,escape,q", "answer(False)", "Close", id="text.close")]
    DEFAULT_CSS = """
    TextScreen { align: center middle; }
    TextScreen > Vertical { width: 90%; height: auto; max-height: 90%; border: thick $primary;
                            background: $surface; padding: 0 1; }
    TextScreen VerticalScroll { height: auto; max-height: 18; }
    TextScreen #text-question { margin-top: 1; }
    """

    def __init__(self, title: str, text: str, question: str | None = None):
        super().__init__()
        self.title_text, self.text, self.question = title, text, question

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            with VerticalScroll():
                yield Static(self.text, markup=False, id="text-body")
            if self.question:
                yield Static(f"{self.question}   [b]y[/b] yes   [b]n[/b] no", id="text-question")

    def action_answer(self, yes: bool) -> None:
        """Close, answering the question (yes only when there is one)."""
        self.dismiss(bool(yes and self.question))


class PickScreen(ModalScreen[str | None]):
    """Pick one item from a list (enter picks, escape cancels)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="pick.cancel")]
    DEFAULT_CSS = """
    PickScreen { align: center middle; }
    PickScreen OptionList { width: 40; height: auto; max-height: 16; border: thick $primary; }
    """

    def __init__(self, title: str, items: list[str]):
        super().__init__()
        self.title_text, self.items = title, items

    def compose(self) -> ComposeResult:
        options = OptionList(*[Option(i, id=i) for i in self.items], id="pick")
        options.border_title = self.title_text
        yield options

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Close without picking."""
        self.dismiss(None)


class AskScreen(ModalScreen[str | None]):
    """Ask for one line of text, checked as it is typed (enter accepts a valid answer)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="ask.cancel")]
    DEFAULT_CSS = """
    AskScreen { align: center middle; }
    AskScreen > Vertical { width: 70; max-width: 95%; height: auto; border: thick $primary; background: $surface;
                           padding: 0 1; }
    #ask-error { color: $error; }
    """

    def __init__(self, title: str, prompt: str, check):
        super().__init__()
        self.title_text, self.prompt, self.check = title, prompt, check

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Static(self.prompt, markup=False)
            yield Input(id="ask-input")
            yield Static("", id="ask-error", markup=False)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        error = self.check(event.value) if event.value else None
        self.query_one("#ask-error", Static).update(f"✗ {error}" if error else "")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        error = self.check(event.value) if event.value else "type a value"
        if error:
            self.query_one("#ask-error", Static).update(f"✗ {error}")
            return
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        """Close without an answer."""
        self.dismiss(None)


class Workbench(Screen):
    """A full screen over the console; escape goes back (from a text field: back to the table)."""

    BINDINGS = [Binding("escape", "back", "Back", id="screen.back")]

    def action_back(self) -> None:
        """Leave the text field, else close this screen."""
        if isinstance(self.focused, Input) and self.query("DataTable"):
            self.query("DataTable").first().focus()
            return
        self.app.pop_screen()


class FilteredTable(Workbench):
    """A workbench whose table a text field filters: typing refills the table, enter goes to the
    table, `/` (action_filter_text) comes back to the field. Subclasses name both and fill()."""

    FILTER_INPUT = ""  # id of the text field
    TABLE = ""  # id of the table

    def fill(self) -> None:
        raise NotImplementedError

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == self.FILTER_INPUT:
            self.fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == self.FILTER_INPUT:
            self.query_one(f"#{self.TABLE}").focus()

    def action_filter_text(self) -> None:
        """Focus the text filter."""
        self.query_one(f"#{self.FILTER_INPUT}").focus()


# ================================================================ config editor

class ConfigScreen(Workbench):
    """Edit the config as a form: one section at a time, every field validated as it is typed."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="config.save", tooltip="Show the diff, then save (comments kept)"),
        Binding("ctrl+r", "revert", "Revert", id="config.revert", tooltip="Drop every unsaved edit"),
        Binding("ctrl+e", "external_editor", "$EDITOR", id="config.editor",
                tooltip="Open the file in $EDITOR; validated on return"),
        Binding("ctrl+o", "reload", "Reload", id="config.reload", tooltip="Read the file again from disk"),
        Binding("ctrl+l", "launch", "Launch", id="config.launch",
                tooltip="Start a stage with the edited config as a one-off run (unsaved edits included)"),
    ]
    DEFAULT_CSS = """
    #cfg-banner { height: auto; padding: 0 1; background: $primary-muted; }
    #cfg-sections { width: 14; border: round $secondary; }
    #cfg-form { width: 1fr; border: round $secondary; padding: 0 1; }
    .fld-label { text-style: bold; }
    .fld-help { margin-bottom: 1; }
    #cfg-form Switch { border: none; height: 1; padding: 0; }
    .fld-help { color: $text-muted; }
    .fld-error { color: $error; }
    #cfg-form Input { width: 100%; }
    #cfg-form Input.invalid { text-style: reverse; }
    """

    def __init__(self):
        super().__init__()
        self.doc: ConfigDocument | None = None
        self.section = next(iter(config_mod.SECTIONS))
        self.disk_warned = False
        self.load_error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="cfg-banner", markup=False)
        with Horizontal():
            sections = OptionList(*[Option(s, id=s) for s in config_mod.SECTIONS], id="cfg-sections")
            sections.border_title = "sections"
            yield sections
            form = VerticalScroll(id="cfg-form")
            form.can_focus = False  # tab goes straight from the sections to the first field
            yield form
        yield Footer()

    async def on_mount(self) -> None:
        self.doc = ConfigDocument(self.app.config_path)
        await self.show_section(self.section)
        self.set_interval(1.0, self._check_disk, name="config-disk-check")
        self.query_one("#cfg-sections").focus()

    @on(OptionList.OptionHighlighted, "#cfg-sections")
    async def _section_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id != self.section:
            await self.show_section(event.option.id)

    def on_descendant_focus(self, event) -> None:
        if self.doc is not None:
            self._refresh_banner()

    @on(OptionList.OptionSelected, "#cfg-sections")
    def _section_selected(self, event: OptionList.OptionSelected) -> None:
        fields = self.query("#cfg-form Input, #cfg-form Select, #cfg-form Switch")
        if fields:
            fields.first().focus()

    async def show_section(self, section: str) -> None:
        """Fill the form with one section's fields (pending edits shown)."""
        self.section = section
        form = self.query_one("#cfg-form", VerticalScroll)
        await form.remove_children()
        widgets = []
        for name, typ, _default, meta in config_mod.field_specs(section):
            value = self.doc.value(section, name)
            kind = {bool: "bool", int: "int", float: "number", str: "text", list: "list"}.get(typ, typ.__name__)
            bounds = []
            if meta.get("lo") is not None:
                bounds.append(f"≥ {meta['lo']}")
            if meta.get("hi") is not None:
                bounds.append(f"≤ {meta['hi']}")
            label = f"{name}  ({kind}{', ' + ' '.join(bounds) if bounds else ''})"
            widgets.append(Static(label, classes="fld-label", markup=False))
            fid = f"fld-{section}-{name}"
            if typ is bool:
                widget = Switch(value=bool(value), id=fid)
            elif meta.get("choices"):
                widget = Select([(c, c) for c in meta["choices"]], value=value, allow_blank=False, id=fid,
                                compact=True)
            else:
                widget = Input(display_value(value), id=fid, compact=True)
            widget.field_key = (section, name)
            widgets.append(widget)
            error = self.doc.invalid.get((section, name), "")
            err = Static(f"✗ {error}" if error else "", id=f"err-{section}-{name}", classes="fld-error",
                         markup=False)
            err.display = bool(error)
            widgets.append(err)
            widgets.append(Static(meta.get("doc") or "", classes="fld-help", markup=False))
        await form.mount_all(widgets)
        form.border_title = f"section {section} · enter/tab: fields · ctrl+s: save"
        form.scroll_home(animate=False)
        self._refresh_banner()

    def _edited(self, widget, raw) -> None:
        key = getattr(widget, "field_key", None)
        if key is None or self.doc is None:
            return
        section, name = key
        error = self.query_one(f"#err-{section}-{name}", Static)
        try:
            self.doc.edit(section, name, raw)
        except config_mod.ConfigError as e:
            error.update(f"✗ {e}")
            error.display = True
            widget.add_class("invalid")
        else:
            error.update("")
            error.display = False
            widget.remove_class("invalid")
        self._refresh_banner()

    @on(Input.Changed, "#cfg-form Input")
    def _input_changed(self, event: Input.Changed) -> None:
        self._edited(event.input, event.value)

    @on(Switch.Changed, "#cfg-form Switch")
    def _switch_changed(self, event: Switch.Changed) -> None:
        self._edited(event.switch, event.value)

    @on(Select.Changed, "#cfg-form Select")
    def _select_changed(self, event: Select.Changed) -> None:
        if event.value is not Select.BLANK:
            self._edited(event.select, event.value)

    def banner_text(self) -> str:
        doc = self.doc
        parts = [f"config {doc.path}"]
        parts.append(f"{len(doc.pending)} unsaved edit(s)" if doc.pending else "no unsaved edits")
        key = getattr(self.focused, "field_key", None)
        if key:  # which field has the focus, readable without colour
            parts.append(f"editing {key[0]}.{key[1]}")
        if doc.invalid:
            parts.append(f"{len(doc.invalid)} invalid: " + ", ".join(f"{s}.{k}" for s, k in doc.invalid))
        if self.disk_warned:
            parts.append("CHANGED ON DISK — ctrl+o reloads")
        if self.load_error:
            parts.append(f"file error: {self.load_error}")
        return " · ".join(parts)

    def _refresh_banner(self) -> None:
        self.query_one("#cfg-banner", Static).update(self.banner_text())

    def _check_disk(self) -> None:
        if self.doc is not None and not self.disk_warned and self.doc.changed_on_disk():
            self.disk_warned = True
            self.notify(f"{self.doc.path} changed on disk; ctrl+o reloads it (your edits are not saved over it)",
                        severity="warning", timeout=8)
            self._refresh_banner()

    def action_save(self) -> None:
        """Show the diff of the edits, then save them on `y` (never over a file changed on disk)."""
        doc = self.doc
        if doc.invalid:
            self.notify("fix the invalid fields first: " + "; ".join(doc.invalid.values()), severity="error")
            return
        if doc.changed_on_disk():
            self.disk_warned = True
            self._refresh_banner()
            self._ask_reload("The file changed on disk since it was opened; saving would overwrite it.")
            return
        if not doc.dirty:
            self.notify("nothing to save: the file is unchanged", timeout=3)
            return
        try:
            doc.config()
        except config_mod.ConfigError as e:
            self.notify(str(e), title="not saved", severity="error", timeout=10)
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                doc.save()
            except ConfigChangedOnDisk as e:
                self._ask_reload(str(e))
                return
            except (OSError, config_mod.ConfigError) as e:
                self.notify(str(e), title="not saved", severity="error", timeout=10)
                return
            self.app.cfg = doc.config()
            self.notify(f"saved {doc.path}", title="saved")
            self._refresh_banner()

        self.app.push_screen(TextScreen("diff", doc.diff(), "Save these changes?"), answered)

    def _ask_reload(self, why: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.call_later(self._reload)

        self.app.push_screen(TextScreen("changed on disk", why, "Reload the file (unsaved edits are dropped)?"),
                             answered)

    async def _reload(self) -> None:
        try:
            self.doc.reload()
            self.load_error = None
            config_mod.load(self.doc.path)
        except config_mod.ConfigError as e:
            self.load_error = str(e)
            self.notify(str(e), title="the file does not validate", severity="error", timeout=10)
        except (OSError, ValueError) as e:
            self.load_error = str(e)
            self.notify(str(e), title="cannot read the file", severity="error", timeout=10)
        self.disk_warned = False
        await self.show_section(self.section)

    async def action_revert(self) -> None:
        """Drop every unsaved edit (the file is read again)."""
        await self._reload()
        self.notify("edits reverted", timeout=3)

    def action_reload(self) -> None:
        """Read the file again (asks first when there are unsaved edits)."""
        if self.doc.dirty:
            self._ask_reload("Reloading drops your unsaved edits.")
        else:
            self.call_later(self._reload)

    async def action_external_editor(self) -> None:
        """Open the file in $VISUAL / $EDITOR (the console is suspended), then validate it."""
        if self.doc.dirty:
            self.notify("save or revert your edits before opening the file in an editor", severity="warning")
            return
        from textual.app import SuspendNotSupported

        editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
        command = [*editor, str(self.doc.path)]
        try:
            try:
                with self.app.suspend():
                    subprocess.run(command)
            except SuspendNotSupported:  # headless (tests): nothing to hand the terminal to
                subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True)
        except OSError as e:
            self.notify(f"cannot run {editor[0]}: {e}", severity="error")
            return
        await self._reload()
        if not self.load_error:
            self.notify(f"{self.doc.path} is valid", timeout=3)

    def action_launch(self) -> None:
        """Pick a stage and start it with the edited config (a one-off run; the file is not saved)."""
        try:
            cfg = self.doc.config()
        except config_mod.ConfigError as e:
            self.notify(str(e), title="cannot launch", severity="error", timeout=10)
            return
        overrides = self.doc.overrides()

        def picked(stage: str | None) -> None:
            if not stage:
                return
            argv = ["ftmodel", stage, "--config", str(self.doc.path), "--workspace", str(self.app.workspace)]
            for spec in overrides:
                argv += ["--set", spec]
            self.app.launch_config(stage, cfg, {}, argv)

        self.app.push_screen(PickScreen("launch with the edited config", [*STAGES, "pipeline"]), picked)


# ================================================================ runs browser

class RowsLoaded(Message):
    """Fresh rows for the runs browser."""

    def __init__(self, rows: list[RunRow]):
        super().__init__()
        self.rows = rows


class RunsScreen(FilteredTable):
    """Every run of the workspace as a table: filter, details, overlay curves, clone, delete."""

    FILTER_INPUT, TABLE = "runs-text", "runs-table"

    BINDINGS = [
        Binding("slash", "filter_text", "Filter", id="runs.filter", key_display="/", tooltip="Filter by text"),
        Binding("f", "cycle_stage", "Stage filter", id="runs.stage_filter", tooltip="Cycle the stage filter"),
        Binding("t", "cycle_state", "State filter", id="runs.state_filter", tooltip="Cycle the state filter"),
        Binding("space", "mark", "Mark", id="runs.mark", tooltip="Mark or unmark the run (for overlays)"),
        Binding("o", "overlay", "Overlay", id="runs.overlay", tooltip="Overlay the marked runs' curves"),
        Binding("k", "clone", "Clone", id="runs.clone", tooltip="Re-launch the run's stage with one change"),
        Binding("d", "delete", "Delete", id="runs.delete", tooltip="Delete a finished run (asks first)"),
    ]
    DEFAULT_CSS = """
    #runs-filters { height: 1; padding: 0 1; background: $primary-muted; }
    #runs-text { height: 3; }
    #runs-table { height: 1fr; }
    """
    COLUMNS = ("*", "stage", "state", "start", "time", *KEY_METRICS, "wandb", "sync", "run")

    def __init__(self):
        super().__init__()
        self.rows: list[RunRow] = []
        self.shown: list[RunRow] = []
        self.marked: set[str] = set()
        self.stage_filter: str | None = None
        self.state_filter: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="runs-filters", markup=False)
        yield Input(placeholder="filter text (/ to focus, escape to leave)", id="runs-text")
        table = DataTable(cursor_type="row", zebra_stripes=True, id="runs-table")
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        for col in self.COLUMNS:
            table.add_column("ans acc" if col == "answer_accuracy" else col, key=col)
        table.focus()
        self._refresh_filters()
        self.load_rows()
        self.set_interval(2.0, self.load_rows, name="runs-refresh")

    @work(thread=True, exclusive=True, group="runs-rows", name="runs-rows")
    def load_rows(self) -> None:
        """Read every run's summary, final metrics and sync state."""
        from tui.model import scan_workspace

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
        cells = [(r.id, ("*" if r.id in self.marked else " ", *r.cells()[1:], r.id)) for r in self.shown]
        table.clear()
        for key, row in cells:
            table.add_row(*row, key=key)
        if current and current.id in {r.id for r in self.shown}:
            table.move_cursor(row=table.get_row_index(current.id), animate=False)
        self._refresh_filters()

    def _refresh_filters(self) -> None:
        self.query_one("#runs-filters", Static).update(
            f"stage: {self.stage_filter or 'all'} (f) · state: {self.state_filter or 'all'} (t) · "
            f"{len(self.shown)}/{len(self.rows)} runs · {len(self.marked)} marked")

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
        order = [None, *STAGES, "pipeline"]
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
            self.notify("mark runs with space first", severity="warning")
            return
        by_id = {r.id: r for r in self.rows}
        self.app.push_screen(OverlayScreen([by_id[i].summary.path for i in ids]))

    def action_clone(self) -> None:
        """Re-launch the run's stage from its config snapshot with one changed key."""
        row = self.cursor_run()
        if row is None:
            return
        if row.summary.stage not in (*STAGES, "pipeline"):
            self.notify(f"cannot clone a {row.summary.stage} run", severity="warning")
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
            if not spec:
                return
            cfg = config_mod.load(snapshot, [spec])
            state = row.summary.path / "state.json"
            try:
                args = json.loads(state.read_text(encoding="utf-8")).get("args") or {}
            except (OSError, ValueError):
                args = {}
            args = {k: v for k, v in args.items() if k != "workspace"}
            argv = ["ftmodel", row.summary.stage, "--config", str(snapshot), "--workspace",
                    str(self.app.workspace), "--set", spec]
            self.app.launch_config(row.summary.stage, cfg, args, argv)

        self.app.push_screen(AskScreen(f"clone {row.id}", "One change, as section.key=value "
                                       "(e.g. sft.learning_rate=1e-3):", check), answered)

    def action_delete(self) -> None:
        """Delete the run under the cursor after confirmation (never an active one)."""
        row = self.cursor_run()
        if row is None:
            return
        if row.summary.active:
            self.notify(f"{row.id} is {row.summary.status}: stop it before deleting it", severity="error")
            return
        path = row.summary.path

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            shutil.rmtree(path, ignore_errors=True)
            self.marked.discard(row.id)
            self.rows = [r for r in self.rows if r.id != row.id]
            self.fill()
            self.notify(f"deleted {row.id}")

        self.app.push_screen(TextScreen("delete", f"{path}\n({row.summary.stage}, {row.summary.status})",
                                        f"Delete run {row.id} and all its files?"), answered)


class RunDetailScreen(Workbench):
    """One run: its config against the current config, artifacts, results per qtype, log tail."""

    DEFAULT_CSS = """
    RunDetailScreen VerticalScroll { padding: 0 1; }
    .detail-title { margin-top: 1; text-style: bold; }
    RunDetailScreen DataTable { height: auto; max-height: 14; }
    RunDetailScreen Log { height: 12; }
    """

    def __init__(self, row: RunRow):
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        from tui.model import read_results

        s = self.row.summary
        with VerticalScroll(id="detail"):
            yield Static(f"{s.id} · {s.stage} · {s.status}" + (f" · exit {s.exit_code}" if s.exit_code else "")
                         + (f"\nerror: {s.error}" if s.error else ""), markup=False, id="detail-head")
            yield Static("config: snapshot vs current", classes="detail-title")
            yield Static(snapshot_diff(s.path / "config.toml", self.app.cfg), markup=False, id="detail-config")
            yield Static("artifacts", classes="detail-title")
            files = artifacts(s.path)
            yield Static("\n".join(f"{name:40} {size:>12,} B" for name, size in files) or "(none)",
                         markup=False, id="detail-artifacts")
            for title, cols, rows in read_results(s.path):
                yield Static(title, classes="detail-title", markup=False)
                table = DataTable(show_cursor=False, zebra_stripes=True)
                table.add_columns(*cols)
                table.add_rows(rows)
                yield table
            yield Static("log tail", classes="detail-title")
            yield Log(id="detail-log")
        yield Footer()

    def on_mount(self) -> None:
        from ftmodel.rundir import Run

        self.query_one("#detail-log", Log).write_lines(Run(self.row.summary.path).log_tail(60))


class OverlayScreen(Workbench):
    """Several runs' curves of one metric in one chart (`m` picks the metric)."""

    BINDINGS = [Binding("m", "cycle_metric", "Metric", id="overlay.metric", tooltip="Next metric")]

    def __init__(self, run_paths: list[Path], metric: str = "loss"):
        super().__init__()
        self.run_paths = run_paths
        self.metric = metric
        self.metrics: list[str] = []

    def compose(self) -> ComposeResult:
        from textual_plotext import PlotextPlot

        yield Static("", id="overlay-title", markup=False)
        yield PlotextPlot(id="overlay-plot")
        yield Footer()

    def on_mount(self) -> None:
        from ftmodel.rundir import MetricsReader

        names: list[str] = []
        for path in self.run_paths:
            for row in MetricsReader(path / "metrics.jsonl").read_new()[:50]:
                names += [k for k, v in row.items() if k not in ("step", "time") and k not in names
                          and isinstance(v, (int, float)) and not isinstance(v, bool)]
        self.metrics = names or [self.metric]
        if self.metric not in self.metrics:
            self.metric = self.metrics[0]
        self.draw()

    def draw(self) -> None:
        plot = self.query_one("#overlay-plot")
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        drawn = 0
        for path in self.run_paths:
            xs, ys = metric_series(path, self.metric)
            if xs:
                step = max(1, len(xs) // 400)
                plt.plot(xs[::step], ys[::step], label=path.name, marker="braille")
                drawn += 1
        plt.xlabel("step")
        plot.refresh()
        self.drawn = drawn
        self.query_one("#overlay-title", Static).update(
            f"{self.metric} · {drawn}/{len(self.run_paths)} runs have it · m: next metric")

    def action_cycle_metric(self) -> None:
        """Show the next metric."""
        self.metric = self.metrics[(self.metrics.index(self.metric) + 1) % len(self.metrics)]
        self.draw()


# ================================================================ sync

class OfflineListed(Message):
    """The workspace's offline wandb runs with their ledger state."""

    def __init__(self, runs: list):
        super().__init__()
        self.runs = runs


class SyncScreen(Workbench):
    """Offline wandb runs: state, size, URL; sync one, the marked ones, all, or retry failures."""

    BINDINGS = [
        Binding("space", "mark", "Mark", id="sync.mark", tooltip="Mark or unmark a run"),
        Binding("s", "sync_selected", "Sync", id="sync.selected", tooltip="Sync the marked runs (or the one under "
                "the cursor)"),
        Binding("a", "sync_all", "Sync all", id="sync.all", tooltip="Sync every run not yet verified"),
        Binding("f", "retry_failed", "Retry failed", id="sync.retry", tooltip="Sync the runs that failed again"),
    ]
    DEFAULT_CSS = """
    #sync-status { height: auto; padding: 0 1; background: $primary-muted; }
    #sync-progress { height: 1; padding: 0 1; }
    #sync-table { height: 1fr; }
    """

    def __init__(self):
        super().__init__()
        self.offline: list = []
        self.marked: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Static("reading offline runs…", id="sync-status", markup=False)
        yield ProgressBar(total=None, show_eta=False, id="sync-progress")
        table = DataTable(cursor_type="row", zebra_stripes=True, id="sync-table")
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#sync-table", DataTable)
        for col in ("*", "run", "state", "size", "detail"):
            table.add_column(col, key=col)
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
        live = self.app.sync_messages.get(run.key)
        if live and self.app.sync_busy:
            return live
        if run.state == "synced":
            return run.url or "verified"
        if run.state == "failed":
            return run.reason
        return live or ""

    def fill(self) -> None:
        from ftmodel.sync import human_size

        table = self.query_one("#sync-table", DataTable)
        row = table.cursor_row
        table.clear()
        labels = {"never": "never synced", "synced": "synced ✓ verified", "failed": "failed ✗"}
        for run in self.offline:
            table.add_row("*" if run.key in self.marked else " ", run.run_id, labels.get(run.state, run.state),
                          human_size(run.size), self.detail(run), key=run.key)
        if row is not None and row < table.row_count:
            table.move_cursor(row=row, animate=False)
        counts = {s: sum(r.state == s for r in self.offline) for s in labels}
        busy = self.app.sync_busy
        self.query_one("#sync-status", Static).update(
            f"{len(self.offline)} offline run(s): {counts['synced']} verified, {counts['failed']} failed, "
            f"{counts['never']} never synced" + (f" · syncing {busy}…" if busy else "")
            + f" · server {os.environ.get('WANDB_BASE_URL') or (self.app.sync_env or {}).get('WANDB_BASE_URL') or '(wandb settings)'}")
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
            self.notify(f"nothing to sync ({what})", severity="warning")
            return
        if self.app.sync_busy:
            self.notify("a sync is already running", severity="warning")
            return
        bar = self.query_one("#sync-progress", ProgressBar)
        bar.update(total=len(runs), progress=0)
        bar.display = True
        self.app.start_sync(runs)
        self.fill()

    def action_sync_selected(self) -> None:
        """Sync the marked runs, or the one under the cursor."""
        keys = self.marked or ({self._cursor_key()} - {None})
        self._start([r for r in self.offline if r.key in keys], "no run selected")

    def action_sync_all(self) -> None:
        """Sync every run that is not yet verified."""
        self._start([r for r in self.offline if r.state != "synced"], "every run is verified")

    def action_retry_failed(self) -> None:
        """Sync the failed runs again."""
        self._start([r for r in self.offline if r.state == "failed"], "no failed runs")

    def progressed(self, key: str, final: bool) -> None:
        """The app reports progress of its sync worker."""
        if final:
            self.query_one("#sync-progress", ProgressBar).advance(1)
        table = self.query_one("#sync-table", DataTable)
        try:
            table.update_cell(key, "detail", self.app.sync_messages.get(key, ""))
        except Exception:  # noqa: BLE001 - a run not in this table
            pass

    def finished(self) -> None:
        """The sync worker ended: read the ledger again."""
        self.marked.clear()
        self.list_offline()


# ================================================================ ablation

class AblationScreen(Workbench):
    """Pick variants and the judge, launch one detached ablation, read the result as a matrix."""

    BINDINGS = [
        Binding("l", "launch", "Launch", id="ablation.launch", tooltip="Start the ablation with these variants"),
        Binding("e", "export", "Export .md", id="ablation.export", tooltip="Write the matrix as Markdown"),
        Binding("j", "toggle_judge", "Judge", id="ablation.judge", tooltip="Judge on or off"),
    ]
    DEFAULT_CSS = """
    #abl-form { height: auto; }
    #abl-form Checkbox { width: auto; }
    #abl-status { height: auto; padding: 0 1; background: $primary-muted; }
    #abl-matrix { height: 1fr; }
    """

    def __init__(self):
        super().__init__()
        self.matrix = None
        self.shown_run: str | None = None

    def compose(self) -> ComposeResult:
        variants = self.app.cfg.ablation.variants
        with Horizontal(id="abl-form"):
            for v in VARIANT_NAMES:
                yield Checkbox(v, value=v in variants, id=f"abl-{v}")
            yield Checkbox("judge", value=bool(self.app.cfg.judge.enabled), id="abl-judge")
        yield Static("", id="abl-status", markup=False)
        yield DataTable(show_cursor=False, zebra_stripes=True, id="abl-matrix")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_matrix()
        self.set_interval(1.0, self.refresh_matrix, name="ablation-refresh")

    def chosen(self) -> list[str]:
        return [v for v in VARIANT_NAMES if self.query_one(f"#abl-{v}", Checkbox).value]

    def latest_run(self):
        runs = [r for r in self.app.runs if r.stage == "ablation"]
        return runs[-1] if runs else None

    def refresh_matrix(self) -> None:
        run = self.latest_run()
        status = self.query_one("#abl-status", Static)
        if run is None:
            status.update("no ablation run yet · space toggles a box · l launches")
            return
        if run.active:
            status.update(f"{run.id}: {run.status} {run.step}/{run.total or '?'} · the matrix appears when it ends")
            return
        if self.shown_run == run.id:
            return
        try:
            matrix = read_ablation(run.path)
        except (OSError, ValueError, KeyError, TypeError) as e:
            matrix, why = None, str(e)
        else:
            why = "no ablation_summary_*.json"
        self.shown_run = run.id
        self.matrix = matrix
        table = self.query_one("#abl-matrix", DataTable)
        table.clear(columns=True)
        if matrix is None:
            status.update(f"{run.id}: {run.status}, no matrix ({why})")
            return
        table.add_columns(*matrix.columns())
        table.add_rows(matrix.table())
        status.update(f"{run.id}: {run.status} · deltas against base · e exports Markdown")

    def action_toggle_judge(self) -> None:
        """Turn the judge on or off."""
        box = self.query_one("#abl-judge", Checkbox)
        box.value = not box.value

    def action_launch(self) -> None:
        """Start one detached ablation with the ticked variants (and the judge if ticked)."""
        variants = self.chosen()
        if not variants:
            self.notify("tick at least one variant", severity="warning")
            return
        judge = self.query_one("#abl-judge", Checkbox).value
        try:
            cfg = config_mod.load(self.app.config_path)
        except config_mod.ConfigError as e:
            self.notify(str(e), severity="error")
            return
        cfg.ablation.variants = variants
        if judge:
            cfg.judge.enabled = True
        argv = ["ftmodel", "ablation", "--config", self.app.config_path, "--workspace", str(self.app.workspace),
                "--set", f"ablation.variants={json.dumps(variants)}"] + ([] if judge else ["--no-judge"])
        self.shown_run = None
        self.app.launch_config("ablation", cfg, {"no_judge": not judge}, argv)

    def action_export(self) -> None:
        """Write the matrix as Markdown into the ablation's run directory and say where."""
        if self.matrix is None:
            self.notify("no matrix to export yet", severity="warning")
            return
        path = self.matrix.source.parent / "ablation_matrix.md"
        path.write_text(self.matrix.markdown(), encoding="utf-8")
        self.exported = path
        self.notify(f"wrote {path}", title="exported", timeout=10)


# ================================================================ GRPO completions

class CompletionsLoaded(Message):
    def __init__(self, run_id: str | None, rows: list):
        super().__init__()
        self.run_id, self.rows = run_id, rows


class CompletionsScreen(FilteredTable):
    """A GRPO run's sampled completions per step with their rewards, filterable."""

    FILTER_INPUT, TABLE = "comp-text", "comp-table"

    BINDINGS = [
        Binding("slash", "filter_text", "Filter", id="completions.filter", key_display="/"),
        Binding("z", "toggle_zero", "Reward 0", id="completions.zero", tooltip="Only completions with reward 0"),
        Binding("t", "cycle_qtype", "Qtype", id="completions.qtype", tooltip="Cycle the question-type filter"),
    ]
    DEFAULT_CSS = """
    #comp-status { height: 1; padding: 0 1; background: $primary-muted; }
    #comp-text { height: 3; }
    #comp-table { height: 1fr; }
    """
    MAX_ROWS = 5000

    def __init__(self, run_id: str | None = None):
        super().__init__()
        self.run_id = run_id
        self.rows: list = []
        self.shown: list = []
        self.zero_only = False
        self.qtype: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("reading completions…", id="comp-status", markup=False)
        yield Input(placeholder="filter text in question or completion (/)", id="comp-text")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="comp-table")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#comp-table", DataTable)
        table.add_columns("step", "qtype", "format", "accuracy", "judge", "total", "completion")
        table.focus()
        self.load()

    @work(thread=True, exclusive=True, group="completions", name="completions-read")
    def load(self) -> None:
        """Read the GRPO run's completions.jsonl."""
        run_id = self.run_id
        runs = [r for r in self.app.runs if r.stage == "grpo"]
        if run_id is None:
            with_file = [r for r in runs if (r.path / "completions.jsonl").exists()]
            run_id = with_file[-1].id if with_file else (runs[-1].id if runs else None)
        path = next((r.path for r in runs if r.id == run_id), None)
        self.post_message(CompletionsLoaded(run_id, read_completions(path) if path else []))

    def on_completions_loaded(self, message: CompletionsLoaded) -> None:
        self.run_id, self.rows = message.run_id, message.rows
        self.fill()

    def fill(self) -> None:
        text = self.query_one("#comp-text", Input).value
        self.shown = [c for c in self.rows if c.matches(self.qtype, self.zero_only, text)]
        table = self.query_one("#comp-table", DataTable)
        table.clear()
        for i, c in enumerate(self.shown[:self.MAX_ROWS]):
            r = c.rewards
            table.add_row(str(c.step), c.qtype, _r(r.get("format_reward")), _r(r.get("accuracy_reward")),
                          _r(r.get("judge_reward")), _r(c.total), c.completion.replace("\n", " ")[:80], key=str(i))
        more = f" (first {self.MAX_ROWS})" if len(self.shown) > self.MAX_ROWS else ""
        self.query_one("#comp-status", Static).update(
            f"{self.run_id or 'no GRPO run'} · {len(self.shown)}/{len(self.rows)} completions{more} · "
            f"qtype {self.qtype or 'all'} (t) · {'reward 0 only' if self.zero_only else 'any reward'} (z)")

    def action_toggle_zero(self) -> None:
        """Show only completions whose total reward is 0 (or all again)."""
        self.zero_only = not self.zero_only
        self.fill()

    def action_cycle_qtype(self) -> None:
        """Cycle the question-type filter."""
        order = [None, *sorted({c.qtype for c in self.rows})]
        self.qtype = order[(order.index(self.qtype) + 1) % len(order)] if self.qtype in order else None
        self.fill()

    @on(DataTable.RowSelected, "#comp-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        c = self.shown[int(event.row_key.value)]
        rewards = ", ".join(f"{k} {v}" for k, v in c.rewards.items())
        self.app.push_screen(TextScreen(f"step {c.step} · {c.qtype}",
                                        f"Q: {c.question}\n\ngold: {c.answer}\n\n{c.completion}\n\n{rewards}"))


def _r(v) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}" if isinstance(v, (int, float)) else str(v)
