"""Chart panels of the main console: which metrics each draws, and drawing them from a SeriesStore."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from ftmodel.i18n import t
from tui.actions import PANELS
from tui.rundata.series import SeriesStore

REWARD_PARTS = ("reward", "format_reward", "accuracy_reward", "judge_reward")


@dataclass(frozen=True)
class ChartSpec:
    """One chart panel: which metrics it draws (first one found on the left axis)."""

    key: str
    title: str  # a message id
    metrics: tuple[str, ...]
    right: tuple[str, ...] = ()


CHARTS = (
    ChartSpec("loss", "loss", ("loss",)),
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
        return any(m in store for m in (*self.spec.metrics, *self.spec.right))

    def clear(self) -> None:
        """Forget what was drawn (the run changed or its directory is gone)."""
        self.drawn_version = -1
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
        for name in left:
            xs, ys = store.get(name).points(2 * width)
            plt.plot(xs, ys, label=name if len(left) > 1 or self.spec.right else None, marker="braille")
        for name in self.spec.right:
            if name in store:
                xs, ys = store.get(name).points(2 * width)
                plt.plot(xs, ys, label=name, yside="right", marker="braille")
        plt.xlabel(t("step"))
        self.plot.refresh()
        self.drawn_version = store.version
