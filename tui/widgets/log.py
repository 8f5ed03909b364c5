"""The log panel (wraps long lines instead of cutting them at the border) and a cheap text setter."""

from __future__ import annotations

from collections import deque

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import RichLog, Static

from ftmodel.textio import printable

MAX_LINES = 2000


class LogPanel(RichLog):
    """A run's log lines, wrapped to the panel's width; `lines_text` keeps the raw lines."""

    def __init__(self, *, id: str | None = None, max_lines: int = MAX_LINES):
        # min_width 1: RichLog would otherwise wrap at 78 cells at least, wider than an 80x24 panel.
        super().__init__(
            id=id, max_lines=max_lines, wrap=True, markup=False, highlight=False, auto_scroll=True, min_width=1
        )
        self.lines_text: deque[str] = deque(maxlen=max_lines)
        self._wrapped_at = 0

    @property
    def line_count(self) -> int:
        """How many log lines (not wrapped rows) the panel holds."""
        return len(self.lines_text)

    def write_lines(self, lines: list[str]) -> None:
        """Append log lines: plain text (a log is never markup), control characters shown, not obeyed
        (a model's output in a log may hold ESC [2J or ESC ]0;title BEL)."""
        for line in map(printable, lines):
            self.lines_text.append(line)
            self.write(Text(line, no_wrap=False, overflow="fold"))
        self._wrapped_at = self.scrollable_content_region.width

    def on_resize(self, event) -> None:
        """Wrap every line again at the new width (lines are wrapped when written).

        Textual then also calls RichLog's own handler, which writes what waited for a known size.
        """
        width = self.scrollable_content_region.width
        if width and width != self._wrapped_at and self.lines_text:
            lines = list(self.lines_text)
            super().clear()
            for line in lines:
                self.write(Text(line, no_wrap=False, overflow="fold"))
            self._wrapped_at = width

    def clear(self) -> RichLog:
        self.lines_text.clear()
        return super().clear()


def set_text(widget: Static, text) -> None:
    """Update a Static only when its text changed, and lay the screen out again only when the text's
    size changed: a layout arranges the whole screen again, and while a run is followed the status
    line's numbers change every second while its size mostly does not."""
    if getattr(widget, "_shown_text", None) == text:
        return
    before = _text_size(widget.visual) if hasattr(widget, "_shown_text") else None
    widget._shown_text = text
    widget.update(text, layout=False)
    after = _text_size(widget.visual)
    if after is None or after != before:
        widget.refresh(layout=True)


def _text_size(visual) -> tuple[int, ...] | None:
    """The width of each line of a text as shown (markup already applied), or None if not a text."""
    plain = getattr(visual, "plain", None)
    return None if plain is None else tuple(cell_len(line) for line in plain.split("\n"))
