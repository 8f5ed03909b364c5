"""Text we did not write, on screen: widgets and helpers through which every run's, model's, dataset's or
config file's text reaches the terminal. Never markup, and every control character shown, not obeyed
(`ftmodel.textio.printable`: ESC as ␛, so a completion holding ESC [2J cannot blank the screen).

What shows such text uses these: `Plain` for a block of text, `plain()` for a border title, an option
or a table cell, `PlainInput` for a field whose value came from a file. Tables (tui.widgets.tables),
the log panel (tui.widgets.log) and the app's notifications apply the same function.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Input, Static

from ftmodel.textio import cell_width, printable, wrap

# Textual's toast: 60 cells wide at most, half of its rack (the screen less the rack's 2-cell
# scrollbar), less its left border and padding (3 cells). Measured on Textual 8.2 at widths 60-200.
TOAST_CELLS, TOAST_GUTTER, TOAST_RACK_SCROLLBAR = 60, 3, 2


def plain(text: object) -> Text:
    """One line for a widget that would read a str as markup (a border title, an option, a table
    cell): never markup, control characters shown. A Text keeps its style."""
    if isinstance(text, Text):
        shown = printable(text.plain)
        if shown == text.plain:
            return text
        return Text(shown, style=text.style, justify=text.justify, end=text.end)
    return Text(printable(text))


def toast_text(text: object, screen_width: int) -> str:
    """A notification's text as its toast shows it on a screen this wide: control characters shown, and
    each line wider than the toast wrapped here by cells (a break between two Chinese characters,
    never before closing punctuation: Textual breaks only at spaces, so a Chinese sentence jumped
    whole to the next line, half a line left empty). Lines that fit are kept as they are (their
    spaces too)."""
    shown = printable(text, keep="\n")
    width = min(TOAST_CELLS, (screen_width - TOAST_RACK_SCROLLBAR) // 2) - TOAST_GUTTER
    if width < 8:  # no room to wrap sensibly: Textual's own wrapping is as good
        return shown
    lines = []
    for line in shown.split("\n"):
        lines.extend([line] if cell_width(line) <= width else wrap(line, width))
    return "\n".join(lines)


class Plain(Static):
    """A Static that shows data: never markup, control characters shown (line breaks kept)."""

    def __init__(self, text: object = "", **kwargs):
        kwargs.pop("markup", None)
        super().__init__(printable(text, keep="\n"), markup=False, **kwargs)

    def update(self, text: object = "", *, layout: bool = True) -> None:
        super().update(printable(text, keep="\n"), layout=layout)


class Prose(Plain):
    """A Plain paragraph wrapped by terminal cells (`ftmodel.textio.wrap`): a line may break between two
    Chinese characters and never starts with closing punctuation. (Rich breaks only at spaces, so a
    long Chinese run jumped whole to the next line, leaving half a line empty, and a symbol name was
    cut in the middle.)"""

    def __init__(self, text: object = "", **kwargs):
        super().__init__(text, **kwargs)
        self._prose = printable(text, keep="\n")

    def update(self, text: object = "", *, layout: bool = True) -> None:
        self._prose = printable(text, keep="\n")
        super().update(text, layout=layout)

    def _lines(self, width: int) -> list[str]:
        return wrap(self._prose, width) if width > 0 else self._prose.split("\n")

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> Text:
        return Text("\n".join(self._lines(self.content_size.width)), no_wrap=True, overflow="crop", end="")


class PlainInput(Input):
    """A text field whose value may come from a file: shown with control characters as one visible
    symbol each (the cursor stays on the character it is on), and edited as it really is."""

    @property
    def _value(self) -> Text:
        text = super()._value
        value = text.plain
        if printable(value) == value:
            return text
        return Text("".join(map(_one_cell, value)), no_wrap=True, overflow="ignore", end="")


def _one_cell(char: str) -> str:
    # printable() names some characters in several cells (\x9b, \u202e) and widens tabs; a field
    # needs one symbol per character so that the cursor lands where the text really is.
    shown = printable(char)
    return shown if len(shown) == 1 else " " if char == "\t" else "\ufffd"
