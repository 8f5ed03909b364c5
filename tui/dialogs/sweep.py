"""Plan a grid sweep: type the axes (`section.key=v1,v2`, several separated by spaces) and the stages;
enter plans every point with the engine in a worker (sweep.plan validates each one as the config it
will run) and closes with the plan, or shows the engine's error naming the key and the value."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ftmodel.i18n import t
from tui import actions
from tui.messages import SweepPlanned
from tui.plain import Plain
from tui.workers import background

DEFAULT_STAGES = "sft,grpo,evaluate"


def grid_specs(text: str) -> list[str]:
    """Split the axes field into `section.key=v1,v2` specs (spaces or semicolons separate axes)."""
    return [spec for spec in text.replace(";", " ").split() if spec]


@actions.bind("ask")
class SweepScreen(ModalScreen["SweepPlanned | None"]):
    """Ask for a sweep's axes and stages; close with the planned points once they all validate."""

    def __init__(self, config_path: str, base_overrides: list[str], axis: str = "", stages: str = DEFAULT_STAGES):
        super().__init__()
        self.config_path, self.base_overrides = config_path, base_overrides
        self.axis, self.stages = axis, stages
        self.error: str | None = None  # the last planning error (tests read it)

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = t("plan a sweep")
            yield Plain(t("axes: section.key=v1,v2, several separated by spaces"))
            yield Input(self.axis, placeholder="sft.learning_rate=1e-4,2e-4 grpo.beta=0.0,0.04", id="sweep-grid")
            yield Plain(t("stages (comma-separated)"))
            yield Input(self.stages, id="sweep-stages")
            yield Plain(t("enter plans every point · escape cancels"), id="sweep-error")

    def on_mount(self) -> None:
        field = self.query_one("#sweep-grid", Input)
        field.focus()
        field.cursor_position = len(field.value)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        grid = grid_specs(self.query_one("#sweep-grid", Input).value)
        stages = [s.strip() for s in self.query_one("#sweep-stages", Input).value.split(",") if s.strip()]
        if not grid:
            self.query_one("#sweep-error", Static).update("✗ " + t("type at least one axis: section.key=v1,v2"))
            return
        self.query_one("#sweep-error", Static).update(t("planning {n} axis(es)…", n=len(grid)))
        self.plan(grid, stages)

    @background("sweep-plan", "planning a sweep", exclusive=True)
    def plan(self, grid: list[str], stages: list[str]) -> None:
        """Parse and type the grid values, then validate every point's config (reads the config file)."""
        from ftmodel import config as config_mod
        from ftmodel import sweep

        try:
            spec = config_mod.sweep_from_dict(None, grid, stages)
            points = sweep.plan(self.config_path, spec.grid, spec.stages, base_overrides=self.base_overrides)
        except (config_mod.ConfigError, sweep.SweepError) as e:
            self.post_message(SweepPlanned([], stages, str(e)))
            return
        self.post_message(SweepPlanned(points, spec.stages))

    def on_sweep_planned(self, message: SweepPlanned) -> None:
        if message.error:
            self.error = message.error
            self.query_one("#sweep-error", Static).update(f"✗ {message.error}")
            return
        self.dismiss(message)

    def action_cancel(self) -> None:
        """Close without a plan."""
        self.dismiss(None)
