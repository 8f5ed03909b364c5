"""Chart panels of the main console: which metrics each draws, and drawing them from a SeriesStore."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from ftmodel.i18n import t
from ftmodel.textio import printable
from tui.actions import PANELS
from tui.plain import plain
from tui.rundata.series import SeriesStore
from tui.status import note_text

REWARD_PARTS = ("reward", "format_reward", "accuracy_reward", "judge_reward")


@dataclass(frozen=True)
class ChartSpec:
    """One chart panel: which metrics it draws (first one found on the left axis)."""

    key: str
    title: str  # a message id
    metrics: tuple[str, ...]
    right: tuple[str, ...] = ()
    # Right-axis metrics only some runs log (the probe's accuracy at checkpoints): drawn, and the
    # chart's lines labelled, only when the run has them.
    extra: tuple[str, ...] = ()


CHARTS = (
    ChartSpec("loss", "loss", ("loss",), extra=("probe/answer_accuracy",)),
    ChartSpec("reward", "reward", REWARD_PARTS),
    ChartSpec("kl", "KL", ("kl_divergence", "kl")),
    ChartSpec("lr", "learning rate · grad norm (right)", ("learning_rate",), ("grad_norm",)),
)


class ChartPanel(Vertical):
    """A bordered chart of one or more metrics; the plot widget arrives once plotext is imported."""

    def __init__(self, spec: ChartSpec):
        super().__init__(id=f"panel-{spec.key}", classes="panel chart")
        self.spec = spec
        self.border_title = f"{PANELS[spec.key]} {t(spec.title)}"
        self.drawn_version = -1
        self.plot = None

    def compose(self) -> ComposeResult:
        yield Static(t("loading charts…"), classes="placeholder")

    def has_data(self, store: SeriesStore) -> bool:
        """Tell whether any of this chart's metrics has points."""
        return any(m in store for m in (*self.spec.metrics, *self.spec.right, *self.spec.extra))

    def clear(self) -> None:
        """Forget what was drawn (the run changed or its directory is gone)."""
        self.drawn_version = -1
        self.border_subtitle = None
        if self.plot is not None:
            self.plot.plt.clear_data()
            self.plot.refresh()

    def draw(self, store: SeriesStore) -> None:
        """Redraw from the store, downsampled to about twice the chart's width."""
        if self.plot is None:
            return
        width = max(20, self.size.width)
        plt = self.plot.plt
        plt.clear_data()
        plt.clear_figure()
        left = [m for m in self.spec.metrics if m in store]
        if self.spec.key == "kl":
            left = left[:1]  # kl_divergence and kl are the same number under two names
        extra = [n for n in self.spec.extra if n in store]
        drawn = [(name, "left") for name in left] + [(n, "right") for n in (*self.spec.right, *extra) if n in store]
        labelled = len(left) > 1 or bool(self.spec.right) or bool(extra)
        marks: list[str] = []
        for name, side in drawn:
            series = store.get(name)
            xs, ys = series.points(2 * width)
            if xs:  # a metric that was never finite has nothing to draw, only its marks
                plt.plot(xs, ys, label=name if labelled else None, yside=side, marker="braille")
            for kind, note in series.notes.items():
                if kind != "huge":  # drawn at the edge: no line, the subtitle says so
                    plt.vline(note.first, "red")
                marks.append(note_text(name, kind, note))
        plt.xlabel(t("step"))
        # Where a value could not be drawn as it is, the panel says so in words (colour-blind, NO_COLOR).
        self.border_subtitle = plain(" · ".join(marks)) if marks else None
        self.plot.refresh()
        self.drawn_version = store.version


def chart_widget(**kwargs):
    """A plotext chart widget that shows why it cannot draw instead of raising (plotext is imported here,
    off the first frame's path). Its numbers come from files a run wrote: whatever plotext makes of
    them must not end the console."""
    global _SafePlot
    if _SafePlot is None:
        from rich.text import Text
        from textual_plotext import PlotextPlot

        class SafePlot(PlotextPlot):
            def render(self):
                try:
                    return super().render()
                except Exception as e:  # noqa: BLE001 - any failure of a third-party drawing is shown
                    return Text(printable(t("cannot draw this chart: {error}", error=e)), style="italic")

        _SafePlot = SafePlot
    return _SafePlot(**kwargs)


_SafePlot = None
