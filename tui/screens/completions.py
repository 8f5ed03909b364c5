"""The GRPO completions browser: a run's sampled completions per step with their rewards, filtered
by text, question type and zero reward."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Input, Static

from ftmodel.i18n import t
from tui import actions
from tui.cells import cut
from tui.dialogs import TextScreen
from tui.messages import CompletionsLoaded
from tui.plain import Plain
from tui.rundata.completions import read_completions
from tui.rundata.table import number_cell
from tui.screens.base import FilteredTable
from tui.widgets.tables import Table
from tui.workers import background


@actions.bind("completions")
class CompletionsScreen(FilteredTable):
    """A GRPO run's sampled completions per step with their rewards, filterable."""

    CSS_PATH = "../styles/completions.tcss"

    FILTER_INPUT, TABLE = "comp-text", "comp-table"

    MAX_ROWS = 5000

    def __init__(self, run_id: str | None = None):
        super().__init__()
        self.run_id = run_id
        self.rows: list = []
        self.shown: list = []
        self.zero_only = False
        self.qtype: str | None = None

    def compose(self) -> ComposeResult:
        yield Plain(t("reading completions…"), id="comp-status")
        yield Input(placeholder=t("filter text in question or completion (/)"), id="comp-text")
        yield Table(cursor_type="row", zebra_stripes=True, id="comp-table")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#comp-table", DataTable)
        table.add_columns(*[t(c) for c in ("step", "qtype", "format", "accuracy", "judge", "total", "completion")])
        table.focus()
        self.load()

    @background("completions-read", "reading the completions", group="completions", exclusive=True)
    def load(self) -> None:
        """Read the GRPO run's completions.jsonl."""
        run_id = self.run_id
        runs = [r for r in self.app.runs if r.stage == "grpo"]
        if run_id is None:
            with_file = [r for r in runs if (r.path / "completions.jsonl").exists()]
            run_id = with_file[-1].id if with_file else (runs[-1].id if runs else None)
        path = next((r.path for r in runs if r.id == run_id), None)
        self.post_message(CompletionsLoaded(run_id, read_completions(path) if path else []))

    def on_completions_loaded(self, message: CompletionsLoaded) -> None:
        self.run_id, self.rows = message.run_id, message.rows
        self.fill()

    def fill(self) -> None:
        text = self.query_one("#comp-text", Input).value
        self.shown = [c for c in self.rows if c.matches(self.qtype, self.zero_only, text)]
        table = self.query_one("#comp-table", DataTable)
        table.clear()
        for i, c in enumerate(self.shown[: self.MAX_ROWS]):
            r = c.rewards
            table.add_row(
                str(c.step),
                c.qtype,
                _r(r.get("format_reward")),
                _r(r.get("accuracy_reward")),
                _r(r.get("judge_reward")),
                _r(c.total),
                cut(c.completion.replace("\n", " "), 80, ""),
                key=str(i),
            )
        more = " " + t("(first {n})", n=self.MAX_ROWS) if len(self.shown) > self.MAX_ROWS else ""
        self.query_one("#comp-status", Static).update(
            t(
                "{run} · {shown}/{total} completions{more} · qtype {qtype} (t) · {reward} (z)",
                run=self.run_id or t("no GRPO run"),
                shown=len(self.shown),
                total=len(self.rows),
                more=more,
                qtype=self.qtype or t("all"),
                reward=t("reward 0 only") if self.zero_only else t("any reward"),
            )
        )

    def action_toggle_zero(self) -> None:
        """Show only completions whose total reward is 0 (or all again)."""
        self.zero_only = not self.zero_only
        self.fill()

    def action_cycle_qtype(self) -> None:
        """Cycle the question-type filter."""
        order = [None, *sorted({c.qtype for c in self.rows})]
        self.qtype = order[(order.index(self.qtype) + 1) % len(order)] if self.qtype in order else None
        self.fill()

    @on(DataTable.RowSelected, "#comp-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        c = self.shown[int(event.row_key.value)]
        rewards = ", ".join(f"{k} {v}" for k, v in c.rewards.items())
        self.app.push_screen(
            TextScreen(
                t("step {step} · {qtype}", step=c.step, qtype=c.qtype),
                t(
                    "Q: {question}\n\ngold: {answer}\n\n{completion}\n\n{rewards}",
                    question=c.question,
                    answer=c.answer,
                    completion=c.completion,
                    rewards=rewards,
                ),
            )
        )


def _r(v) -> str:
    return number_cell(v, "{:.2f}")
