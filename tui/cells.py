"""Widths in terminal cells: a CJK character takes two cells, so pad and cut by cells, not characters.

One width function for the console and the CLI: `ftmodel.textio.cell_width` (rich's `cell_len`,
what Textual draws with), so a table reads the same in both."""

from __future__ import annotations

from rich.cells import set_cell_size

from ftmodel.textio import cell_width


def width(text: str) -> int:
    """How many terminal cells `text` takes."""
    return cell_width(text)


def pad(text: str, cells: int) -> str:
    """Left-align `text` in `cells` cells (longer text is left whole)."""
    return text + " " * max(0, cells - cell_width(text))


def cut(text: str, cells: int, ellipsis: str = "…") -> str:
    """Cut `text` to at most `cells` cells, ending in `ellipsis` when something was cut."""
    if cell_width(text) <= cells:
        return text
    return set_cell_size(text, max(0, cells - cell_width(ellipsis))).rstrip() + ellipsis
