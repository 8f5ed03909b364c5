"""Widths in terminal cells: a CJK character takes two cells, so pad and cut by cells, not characters."""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size


def width(text: str) -> int:
    """How many terminal cells `text` takes."""
    return cell_len(text)


def pad(text: str, cells: int) -> str:
    """Left-align `text` in `cells` cells (longer text is left whole)."""
    return text + " " * max(0, cells - cell_len(text))


def cut(text: str, cells: int, ellipsis: str = "…") -> str:
    """Cut `text` to at most `cells` cells, ending in `ellipsis` when something was cut."""
    if cell_len(text) <= cells:
        return text
    return set_cell_size(text, max(0, cells - cell_len(ellipsis))).rstrip() + ellipsis
