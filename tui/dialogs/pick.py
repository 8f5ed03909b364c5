"""Pick one item from a list (enter picks, escape cancels)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.screen import ModalScreen
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui import actions
from tui.plain import plain


@actions.bind("pick")
class PickScreen(ModalScreen[str | None]):
    """Pick one item from a list; `labels` (same order) may show translated names for the ids."""

    def __init__(self, title: str, items: list[str], labels: list[str] | None = None):
        super().__init__()
        self.title_text, self.items = title, items
        self.labels = labels or items

    def compose(self) -> ComposeResult:
        pairs = zip(self.items, self.labels, strict=True)
        # Items may be names from the workspace (sweep ids): options and title read no markup.
        options = OptionList(*[Option(plain(label), id=i) for i, label in pairs], id="pick")
        options.border_title = plain(self.title_text)
        yield options

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Close without picking."""
        self.dismiss(None)
