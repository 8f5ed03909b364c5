"""Tables of data: cells never read as markup, control characters shown, columns sized from their data.

`Table` is the console's one DataTable: a DataTable reads a str cell as Rich markup, so a completion
holding `[/]` would end the console and one holding ESC [2J would blank the terminal; every cell of a
`Table` goes through `tui.plain.plain` instead.

DataTable measures auto-width columns later (on idle) and can paint rows at the header's width
before that: a matrix filled while a screen is busy kept its `qtype` column cut to five cells.
Widths given up front cannot race, and cell widths keep Chinese text aligned.
"""

from __future__ import annotations

from textual.widgets import DataTable

from tui.cells import width
from tui.plain import plain


class Table(DataTable):
    """A DataTable whose cells and column labels are data: shown as plain text, controls visible."""

    def add_column(self, label, *, width: int | None = None, key: str | None = None, default=None):
        return super().add_column(plain(label), width=width, key=key, default=default)

    def add_row(self, *cells, height: int | None = 1, key: str | None = None, label=None):
        return super().add_row(*map(plain, cells), height=height, key=key, label=label)

    def update_cell(self, row_key, column_key, value, *, update_width: bool = False) -> None:
        super().update_cell(row_key, column_key, plain(value), update_width=update_width)  # update_cell_at too


def column_widths(columns: list[str], rows: list[list[str]]) -> list[int]:
    """The width in cells of each column: its widest cell or header, as shown."""
    widths = [width(plain(c).plain) for c in columns]
    for row in rows:
        for i, cell in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], width(plain(cell).plain))
    return widths


def fill_table(table: DataTable, columns: list[str], rows: list[list[str]]) -> None:
    """Replace a table's columns and rows, each column as wide as its widest cell."""
    table.clear(columns=True)
    for label, cells in zip(columns, column_widths(columns, rows), strict=True):
        table.add_column(label, width=cells)
    table.add_rows(rows)
