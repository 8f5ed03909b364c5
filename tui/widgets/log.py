"""The log panel (wraps long lines instead of cutting them at the border) and a cheap text setter."""

from __future__ import annotations

from collections import deque

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
    """Update a Static only when its text changed: every update lays the screen out again, and the
    status is refreshed on every chunk of metrics a live run writes."""
    if getattr(widget, "_shown_text", None) != text:
        widget._shown_text = text
        widget.update(text)
