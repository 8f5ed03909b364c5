"""The run's progress bar: Textual's ProgressBar, its "total unknown" pulse drawn 5 times a second."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import ProgressBar
from textual.widgets._progress_bar import Bar, ETAStatus, PercentageStatus

# Textual redraws the pulse 15 times a second; each redraw re-renders every widget on that row and
# costs the console about 4 % of a core while it follows a run with no known total (and sends a frame
# over SSH each time). The pulse still moves at Textual's speed, in larger steps.
PULSE_PER_SECOND = 5


class PulseBar(Bar):
    """Textual's bar, refreshed PULSE_PER_SECOND times a second while the total is unknown."""

    def watch_percentage(self, percentage: float | None) -> None:
        self.auto_refresh = None if percentage is not None else 1 / PULSE_PER_SECOND


class RunProgressBar(ProgressBar):
    """Textual's ProgressBar with a PulseBar (the same parts, bound the same way)."""

    def compose(self) -> ComposeResult:
        if self.show_bar:
            yield (
                PulseBar(id="bar", clock=self._clock, bar_renderable=self.BAR_RENDERABLE)
                .data_bind(ProgressBar.percentage)
                .data_bind(ProgressBar.gradient)
            )
        if self.show_percentage:
            yield PercentageStatus(id="percentage").data_bind(ProgressBar.percentage)
        if self.show_eta:
            yield ETAStatus(id="eta").data_bind(eta=ProgressBar._display_eta)
