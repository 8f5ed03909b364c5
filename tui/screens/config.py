"""The config editor: one section at a time as a form, every field validated as it is typed;
saving shows the diff first and keeps the file's comments (see tui.configdoc.ConfigDocument)."""

from __future__ import annotations

import os
import shlex
import subprocess

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Checkbox, Footer, Input, OptionList, Select, Static, Switch
from textual.widgets.option_list import Option

from ftmodel import config as config_mod
from ftmodel.i18n import t
from ftmodel.words import JOBS
from tui import actions
from tui.configdoc import ConfigChangedOnDisk, ConfigDocument, display_value
from tui.dialogs import PickScreen, SweepScreen, TextScreen
from tui.messages import ConfigDiskChecked, LaunchRequested, SweepPlanned, SweepQueued
from tui.plain import Plain, PlainInput, Prose
from tui.rundata.argv import stage_argv
from tui.screens.base import Workbench
from tui.widgets.toggles import MarkedCheckbox, env_no_color
from tui.workers import background


@actions.bind("config")
class ConfigScreen(Workbench):
    """Edit the config as a form: one section at a time, every field validated as it is typed."""

    CSS_PATH = "../styles/config.tcss"

    def __init__(self):
        super().__init__()
        self.doc: ConfigDocument | None = None
        self.section = next(iter(config_mod.SECTIONS))
        self.disk_warned = False
        self.load_error: str | None = None

    def compose(self) -> ComposeResult:
        yield Plain("", id="cfg-banner")
        with Horizontal():
            sections = OptionList(*[Option(s, id=s) for s in config_mod.SECTIONS], id="cfg-sections")
            sections.border_title = t("sections")
            yield sections
            form = VerticalScroll(id="cfg-form")
            form.can_focus = False  # tab goes straight from the sections to the first field
            yield form
        yield Footer()

    async def on_mount(self) -> None:
        self.doc = ConfigDocument(self.app.config_path)
        await self.show_section(self.section)
        self.set_interval(1.0, self._check_disk_soon, name="config-disk-check")
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
        fields = self.query("#cfg-form Input, #cfg-form Select, #cfg-form Switch, #cfg-form Checkbox")
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
            what = (
                t("({kind}, {bounds})", kind=t(kind), bounds=" ".join(bounds))
                if bounds
                else t("({kind})", kind=t(kind))
            )
            label = f"{name}  {what}"
            widgets.append(Plain(label, classes="fld-label"))
            fid = f"fld-{section}-{name}"
            if typ is bool:
                # Without colour a Switch renders blank either way: a checkbox marks its state with X.
                widget = (
                    MarkedCheckbox(t("on"), value=bool(value), id=fid)
                    if env_no_color()
                    else Switch(value=bool(value), id=fid)
                )
            elif meta.get("choices"):
                widget = Select([(c, c) for c in meta["choices"]], value=value, allow_blank=False, id=fid, compact=True)
            else:
                widget = PlainInput(display_value(value), id=fid, compact=True)
            widget.field_key = (section, name)
            widgets.append(widget)
            error = self.doc.invalid.get((section, name), "")
            err = Plain(f"✗ {error}" if error else "", id=f"err-{section}-{name}", classes="fld-error")
            err.display = bool(error)
            widgets.append(err)
            widgets.append(Prose(config_mod.field_doc(meta), classes="fld-help"))  # in the user's language, by cells
        await form.mount_all(widgets)
        form.border_title = t("section {section} · enter/tab: fields · ctrl+s: save", section=section)
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

    @on(Checkbox.Changed, "#cfg-form Checkbox")
    def _checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._edited(event.checkbox, event.value)

    @on(Select.Changed, "#cfg-form Select")
    def _select_changed(self, event: Select.Changed) -> None:
        if event.value is not Select.BLANK:
            self._edited(event.select, event.value)

    def banner_text(self) -> str:
        doc = self.doc
        parts = [t("config {path}", path=doc.path)]
        parts.append(t("{n} unsaved edit(s)", n=len(doc.pending)) if doc.pending else t("no unsaved edits"))
        key = getattr(self.focused, "field_key", None)
        if key:  # which field has the focus, readable without colour
            parts.append(t("editing {key}", key=f"{key[0]}.{key[1]}"))
        if doc.invalid:
            keys = ", ".join(f"{s}.{k}" for s, k in doc.invalid)
            parts.append(t("{n} invalid: {keys}", n=len(doc.invalid), keys=keys))
        if self.disk_warned:
            parts.append(t("CHANGED ON DISK — ctrl+o reloads"))
        if self.load_error:
            parts.append(t("file error: {error}", error=self.load_error))
        return " · ".join(parts)

    def _refresh_banner(self) -> None:
        self.query_one("#cfg-banner", Static).update(self.banner_text())

    def _check_disk_soon(self) -> None:
        if self.doc is not None and not self.disk_warned:
            self._check_disk(self.doc)

    @background("config-disk-check", "checking the config file on disk", skip_if_running=True)
    def _check_disk(self, doc: ConfigDocument) -> None:
        """Read and hash the file (a home on a network disk may answer slowly): changed since it was opened?"""
        self.post_message(ConfigDiskChecked(doc, doc.changed_on_disk()))

    def on_config_disk_checked(self, message: ConfigDiskChecked) -> None:
        if message.doc is self.doc and message.changed and not self.disk_warned:
            self.disk_warned = True
            self.notify(
                t("{path} changed on disk; ctrl+o reloads it (your edits are not saved over it)", path=self.doc.path),
                severity="warning",
                timeout=8,
            )
            self._refresh_banner()

    def action_save(self) -> None:
        """Show the diff of the edits, then save them on `y` (never over a file changed on disk)."""
        doc = self.doc
        if doc.packaged:  # never write into the installed package; a one-off run with the edits still works
            self.notify(
                t(
                    "{path} is ftmodel's packaged default: run `ftmodel init` to get ./ftmodel.toml to edit",
                    path=doc.path,
                ),
                severity="warning",
                timeout=10,
            )
            return
        if doc.invalid:
            self.notify(
                t("fix the invalid fields first: {errors}", errors="; ".join(doc.invalid.values())), severity="error"
            )
            return
        if doc.changed_on_disk():
            self.disk_warned = True
            self._refresh_banner()
            self._ask_reload(t("The file changed on disk since it was opened; saving would overwrite it."))
            return
        if not doc.dirty:
            self.notify(t("nothing to save: the file is unchanged"), timeout=3)
            return
        try:
            doc.config()
        except config_mod.ConfigError as e:
            self.notify(str(e), title=t("not saved"), severity="error", timeout=10)
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
                self.notify(str(e), title=t("not saved"), severity="error", timeout=10)
                return
            self.app.cfg = doc.config()
            self.notify(t("saved {path}", path=doc.path), title=t("saved"))
            self._refresh_banner()

        self.app.push_screen(TextScreen(t("diff"), doc.diff(), t("Save these changes?")), answered)

    def _ask_reload(self, why: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.call_later(self._reload)

        self.app.push_screen(
            TextScreen(t("changed on disk"), why, t("Reload the file (unsaved edits are dropped)?")), answered
        )

    async def _reload(self) -> None:
        try:
            self.doc.reload()
            self.load_error = None
            config_mod.load(self.doc.path)
        except config_mod.ConfigError as e:
            self.load_error = str(e)
            self.notify(str(e), title=t("the file does not validate"), severity="error", timeout=10)
        except (OSError, ValueError) as e:
            self.load_error = str(e)
            self.notify(str(e), title=t("cannot read the file"), severity="error", timeout=10)
        self.disk_warned = False
        await self.show_section(self.section)

    async def action_revert(self) -> None:
        """Drop every unsaved edit (the file is read again)."""
        await self._reload()
        self.notify(t("edits reverted"), timeout=3)

    def action_reload(self) -> None:
        """Read the file again (asks first when there are unsaved edits)."""
        if self.doc.dirty:
            self._ask_reload(t("Reloading drops your unsaved edits."))
        else:
            self.call_later(self._reload)

    async def action_external_editor(self) -> None:
        """Open the file in $VISUAL / $EDITOR (the console is suspended), then validate it."""
        if self.doc.dirty:
            self.notify(t("save or revert your edits before opening the file in an editor"), severity="warning")
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
            self.notify(t("cannot run {editor}: {error}", editor=editor[0], error=e), severity="error")
            return
        await self._reload()
        if not self.load_error:
            self.notify(t("{path} is valid", path=self.doc.path), timeout=3)

    def action_launch(self) -> None:
        """Pick a stage and start it with the edited config (a one-off run; the file is not saved)."""
        try:
            cfg = self.doc.config()
        except config_mod.ConfigError as e:
            self.notify(str(e), title=t("cannot launch"), severity="error", timeout=10)
            return
        overrides = self.doc.overrides()

        def picked(stage: str | None) -> None:
            if not stage:
                return
            argv = stage_argv(stage, self.doc.path, self.app.workspace, overrides)
            self.post_message(LaunchRequested(stage, cfg, {}, argv))

        self.app.push_screen(PickScreen(t("launch with the edited config"), list(JOBS)), picked)

    def action_sweep(self) -> None:
        """Plan a grid sweep (the focused field is offered as the first axis), show its runs and their
        commands, and on `y` queue them and start the queue's runner."""
        if self.doc.invalid:
            self.notify(
                t("fix the invalid fields first: {errors}", errors="; ".join(self.doc.invalid.values())),
                severity="error",
            )
            return
        key = getattr(self.focused, "field_key", None)
        axis = f"{key[0]}.{key[1]}={display_value(self.doc.value(*key)).replace(', ', ',')}" if key else ""

        def planned(plan: SweepPlanned | None) -> None:
            if plan is not None:
                self.confirm_sweep(plan)

        self.app.push_screen(SweepScreen(str(self.doc.path), self.doc.overrides(), axis), planned)

    def confirm_sweep(self, plan: SweepPlanned) -> None:
        """Show the N planned runs and their commands; `y` queues them."""
        lines = []
        for i, point in enumerate(plan.points, 1):
            lines.append(f"{i}. " + ", ".join(f"{k}={v}" for k, v in point.values.items()))
            lines.append("   " + shlex.join(point.command))
        n = len(plan.points)

        def answered(yes: bool | None) -> None:
            if yes:
                self.queue_sweep(plan.points, plan.stages)

        self.app.push_screen(
            TextScreen(
                t("{n} planned run(s) · stages {stages}", n=n, stages=",".join(plan.stages)),
                "\n".join(lines),
                t("Queue these {n} run(s) and start the queue's runner?", n=n),
            ),
            answered,
        )

    @background("sweep-queue", "queueing a sweep")
    def queue_sweep(self, points: list, stages: list[str]) -> None:
        """Queue the sweep's points as jobs and start a detached runner unless one runs."""
        from ftmodel import queue, sweep

        ws = self.app.workspace
        try:
            sweep_id, jobs = sweep.queue_sweep(ws, self.doc.path, points, stages)
            queue.start_runner(ws)
        except (sweep.SweepError, queue.QueueError, OSError) as e:
            self.post_message(SweepQueued(None, 0, str(e)))
            return
        self.post_message(SweepQueued(sweep_id, len(jobs)))

    def on_sweep_queued(self, message: SweepQueued) -> None:
        if message.error:
            self.notify(message.error, title=t("sweep not queued"), severity="error", timeout=10)
            return
        self.notify(
            t(
                "queued {sweep}: {n} job(s); the runner goes on after the console quits (u shows the queue)",
                sweep=message.sweep_id,
                n=message.jobs,
            ),
            title=t("sweep queued"),
            timeout=10,
        )
