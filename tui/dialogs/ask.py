"""Ask for one line of text, checked as it is typed."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ftmodel.i18n import t
from tui import actions
from tui.plain import Plain, PlainInput, plain


@actions.bind("ask")
class AskScreen(ModalScreen[str | None]):
    """Ask for one line (starting from `value`); `check(text)` returns an error or None (enter accepts)."""

    def __init__(self, title: str, prompt: str, check, value: str = ""):
        super().__init__()
        self.title_text, self.prompt, self.check, self.value = title, prompt, check, value

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = plain(self.title_text)
            yield Plain(self.prompt)
            yield PlainInput(self.value, id="ask-input")
            yield Plain("", id="ask-error")

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        error = self.check(event.value) if event.value else None
        self.query_one("#ask-error", Static).update(f"✗ {error}" if error else "")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        error = self.check(event.value) if event.value else t("type a value")
        if error:
            self.query_one("#ask-error", Static).update(f"✗ {error}")
            return
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        """Close without an answer."""
        self.dismiss(None)
