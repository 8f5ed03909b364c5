"""The ablation screen: tick variants and the judge, launch one detached ablation, read its result
as a question type x variant matrix (deltas against base) and export it as Markdown. The summary
is read and the Markdown written in thread workers."""

from __future__ import annotations

import json

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Checkbox, DataTable, Footer, Static

from ftmodel import config as config_mod
from ftmodel.i18n import t
from ftmodel.reports import read_ablation
from ftmodel.words import VARIANTS as VARIANT_NAMES
from tui import actions
from tui.messages import AblationExported, AblationRead, LaunchRequested
from tui.plain import Plain
from tui.rundata.argv import stage_argv
from tui.screens.base import Workbench
from tui.widgets.tables import Table, fill_table
from tui.widgets.toggles import MarkedCheckbox
from tui.workers import background


@actions.bind("ablation")
class AblationScreen(Workbench):
    """Pick variants and the judge, launch one detached ablation, read the result as a matrix."""

    CSS_PATH = "../styles/ablation.tcss"

    def __init__(self):
        super().__init__()
        self.matrix = None
        self.shown_run: str | None = None

    def compose(self) -> ComposeResult:
        variants = self.app.cfg.ablation.variants
        with Horizontal(id="abl-form"):
            for v in VARIANT_NAMES:
                # compact (one row, no border): five variants and the judge fit 80 columns side by side
                yield MarkedCheckbox(v, value=v in variants, id=f"abl-{v}", compact=True)
            yield MarkedCheckbox(t("judge"), value=bool(self.app.cfg.judge.enabled), id="abl-judge", compact=True)
        yield Plain("", id="abl-status")
        yield Table(show_cursor=False, zebra_stripes=True, id="abl-matrix")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_matrix()
        self.set_interval(1.0, self.refresh_matrix, name="ablation-refresh")

    def chosen(self) -> list[str]:
        return [v for v in VARIANT_NAMES if self.query_one(f"#abl-{v}", Checkbox).value]

    def latest_run(self):
        runs = [r for r in self.app.runs if r.stage == "ablation"]
        return runs[-1] if runs else None

    def refresh_matrix(self) -> None:
        run = self.latest_run()
        status = self.query_one("#abl-status", Static)
        if run is None:
            status.update(t("no ablation run yet · space toggles a box · l launches"))
            return
        if run.active:
            status.update(
                t(
                    "{run}: {state} {step}/{total} · the matrix appears when it ends",
                    run=run.id,
                    state=t(run.status),
                    step=run.step,
                    total=run.total or "?",
                )
            )
            return
        if self.shown_run == run.id:
            return
        self.read_matrix(run.id, run.path)

    @background("ablation-read", "reading the ablation matrix", skip_if_running=True)
    def read_matrix(self, run_id: str, path) -> None:
        """Read the run's newest ablation summary into a matrix (or say why there is none)."""
        try:
            matrix = read_ablation(path)
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.post_message(AblationRead(run_id, None, str(e)))
            return
        self.post_message(AblationRead(run_id, matrix, None if matrix else t("no ablation_summary_*.json")))

    def on_ablation_read(self, message: AblationRead) -> None:
        run = next((r for r in self.app.runs if r.id == message.run_id), None)
        state = t(run.status) if run else "?"
        self.shown_run = message.run_id
        self.matrix = matrix = message.matrix
        table = self.query_one("#abl-matrix", DataTable)
        status = self.query_one("#abl-status", Static)
        if matrix is None:
            table.clear(columns=True)
            status.update(t("{run}: {state}, no matrix ({why})", run=message.run_id, state=state, why=message.why))
            return
        fill_table(table, matrix.columns(), matrix.table())
        status.update(t("{run}: {state} · deltas against base · e exports Markdown", run=message.run_id, state=state))

    def action_toggle_judge(self) -> None:
        """Turn the judge on or off."""
        box = self.query_one("#abl-judge", Checkbox)
        box.value = not box.value

    def action_launch(self) -> None:
        """Start one detached ablation with the ticked variants (and the judge if ticked)."""
        variants = self.chosen()
        if not variants:
            self.notify(t("tick at least one variant"), severity="warning")
            return
        judge = self.query_one("#abl-judge", Checkbox).value
        try:
            cfg = config_mod.load(self.app.config_path)
        except config_mod.ConfigError as e:
            self.notify(str(e), severity="error")
            return
        cfg.ablation.variants = variants
        if judge:
            cfg.judge.enabled = True
        argv = stage_argv(
            "ablation",
            self.app.config_path,
            self.app.workspace,
            [f"ablation.variants={json.dumps(variants)}"],
            [] if judge else ["--no-judge"],
        )
        self.shown_run = None
        self.post_message(LaunchRequested("ablation", cfg, {"no_judge": not judge}, argv))

    def action_export(self) -> None:
        """Write the matrix as Markdown into the ablation's run directory and say where."""
        if self.matrix is None:
            self.notify(t("no matrix to export yet"), severity="warning")
            return
        self.export_matrix(self.matrix)

    @background("ablation-export", "exporting the ablation matrix")
    def export_matrix(self, matrix) -> None:
        """Write the matrix as Markdown beside its summary."""
        path = matrix.source.parent / "ablation_matrix.md"
        try:
            path.write_text(matrix.markdown(), encoding="utf-8")
        except OSError as e:
            self.post_message(AblationExported(path, str(e)))
            return
        self.post_message(AblationExported(path, None))

    def on_ablation_exported(self, message: AblationExported) -> None:
        if message.error:
            self.notify(message.error, title=t("not exported"), severity="error", timeout=10)
            return
        self.exported = message.path
        self.notify(t("wrote {path}", path=message.path), title=t("exported"), timeout=10)
