"""What every workbench screen shares: escape goes back, and a text field that filters a table."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Input

from tui import actions


@actions.bind("workbench")
class Workbench(Screen):
    """A full screen over the console; escape goes back (from a text field: back to the table)."""

    def action_back(self) -> None:
        """Leave the text field, else close this screen."""
        if isinstance(self.focused, Input) and self.query("DataTable"):
            self.query("DataTable").first().focus()
            return
        self.dismiss()


class FilteredTable(Workbench):
    """A workbench whose table a text field filters: typing refills the table, enter goes to the
    table, `/` (action_filter_text) comes back to the field. Subclasses name both and fill()."""

    FILTER_INPUT = ""  # id of the text field
    TABLE = ""  # id of the table

    def fill(self) -> None:
        raise NotImplementedError

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == self.FILTER_INPUT:
            self.fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == self.FILTER_INPUT:
            self.query_one(f"#{self.TABLE}").focus()

    def action_filter_text(self) -> None:
        """Focus the text filter."""
        self.query_one(f"#{self.FILTER_INPUT}").focus()
