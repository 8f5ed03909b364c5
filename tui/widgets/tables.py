"""Tables whose columns are sized from their data, in terminal cells, when the data is added.

DataTable measures auto-width columns later (on idle) and can paint rows at the header's width
before that: a matrix filled while a screen is busy kept its `qtype` column cut to five cells.
Widths given up front cannot race, and cell widths keep Chinese text aligned.
"""

from __future__ import annotations

from textual.widgets import DataTable

from tui.cells import width


def column_widths(columns: list[str], rows: list[list[str]]) -> list[int]:
    """The width in cells of each column: its widest cell or header."""
    widths = [width(str(c)) for c in columns]
    for row in rows:
        for i, cell in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], width(str(cell)))
    return widths


def fill_table(table: DataTable, columns: list[str], rows: list[list[str]]) -> None:
    """Replace a table's columns and rows, each column as wide as its widest cell."""
    table.clear(columns=True)
    for label, cells in zip(columns, column_widths(columns, rows), strict=True):
        table.add_column(label, width=cells)
    table.add_rows(rows)
