"""One dialog class for text: a long text (a diff, a completion, the keys) with an optional question."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from ftmodel.i18n import t
from ftmodel.textio import printable
from tui import actions
from tui.plain import Plain, plain


@actions.bind("text")
class TextScreen(ModalScreen[bool]):
    """Show a text; with a question, `y` answers yes and `n` no (escape or q close: no)."""

    def __init__(self, title: str, text: str, question: str | None = None):
        super().__init__()
        self.title_text, self.text, self.question = title, text, question

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = plain(self.title_text)
            if self.text:
                with VerticalScroll():
                    yield Plain(self.text, id="text-body")
            if self.question:
                # The question may name a run or a file: assembled as text, never spliced into markup.
                yield Static(
                    Content.assemble(
                        printable(self.question), "   ", ("y", "bold"), f" {t('yes')}   ", ("n", "bold"), f" {t('no')}"
                    ),
                    id="text-question",
                )

    def action_answer(self, yes: bool) -> None:
        """Close, answering the question (yes only when there is one)."""
        self.dismiss(bool(yes and self.question))


class ConfirmScreen(TextScreen):
    """A yes/no question and nothing else (`y` confirms, `n` or escape cancels)."""

    def __init__(self, question: str):
        super().__init__(t("confirm"), "", question)


@actions.bind("help")
class HelpScreen(TextScreen):
    """Every key and what it does (escape, ? or q close it)."""

    def __init__(self, text: str):
        super().__init__(t("keys"), text)
