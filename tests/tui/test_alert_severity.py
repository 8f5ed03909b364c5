"""How bad a run's alerts are, at a glance (issue 20, second round): the `⚠N` marker of the stage
list, the run list and the runs browser is red when one of the run's alerts is an error (non-finite,
stall: `tui.rundata.alerts.severity`) and orange otherwise, read from what the scanner already
read (no alerts file is read again on a scan that did not read it before)."""

from __future__ import annotations

import json
import time

import pytest

from ftmodel.rundir import Run
from tests.tui.fake_runs import make_run, self_pid, sentinel_alerts
from tests.tui.test_alerts import GRPO, SFT, diverging_rows, grpo_with_alerts
from tests.tui.test_app import make_app, select_stage, stage_text, until
from tui.app import STAGE_ITEMS
from tui.rundata.summary import WorkspaceScanner, summarize
from tui.screens import RunsScreen
from tui.status import alert_marker

pytestmark = pytest.mark.anyio


def marker_styles(content) -> set[str]:
    """The styles of the spans that show `⚠` in a prompt."""
    text = str(content)
    return {str(span.style) for span in content.spans if "⚠" in text[span.start : span.end]}


def test_the_marker_is_red_for_an_error_and_orange_for_a_warning():
    assert marker_styles(alert_marker(2)) == {"$warning"}
    assert marker_styles(alert_marker(2, severe=True)) == {"$error"}
    assert marker_styles(alert_marker(2, 2, True)) == {"$error"}  # shortened to fit, same colour
    assert str(alert_marker(0, severe=True)) == ""


def test_the_scanner_says_whether_a_run_has_an_error_from_the_read_it_made(ws):
    pid, start = self_pid()
    grpo_with_alerts(ws)  # three warnings (clipped, zero variance, flat reward)
    live = make_run(ws, SFT, "sft", "running", pid=pid, proc_start=start, metrics=[], created=time.time())
    scanner = WorkspaceScanner(ws)

    def looks():
        return {s.id: (s.alerts, s.alerts_severe) for s in scanner.scan()}

    assert looks() == {GRPO: (3, False), SFT: (0, False)}
    sentinel_alerts(live, "sft", diverging_rows(3, 3))  # NaN loss, inf grad norm: errors
    assert looks()[SFT] == (2, True)
    assert summarize(Run(live)).alerts_severe and not summarize(Run(ws / "runs" / GRPO)).alerts_severe
    # A finished run is not read again until its state.json changes, and then both numbers follow.
    grpo = ws / "runs" / GRPO
    (grpo / "alerts.jsonl").write_bytes((live / "alerts.jsonl").read_bytes())
    assert looks()[GRPO] == (3, False)
    state = json.loads((grpo / "state.json").read_text())
    (grpo / "state.json").write_text(json.dumps({**state, "updated": time.time()}))
    assert looks()[GRPO] == (2, True)
    # A hostile file: the rule of a line that does not read as an alert never turns the marker red.
    (grpo / "alerts.jsonl").write_bytes(b'{"rule": "stall"}\n{"rule": "nonfinite_loss", "key": 3}\n\x00\xff{torn\n')
    (grpo / "state.json").write_text(json.dumps({**state, "updated": time.time() + 1}))
    assert looks()[GRPO] == (0, False)


async def test_the_stage_list_run_list_and_runs_browser_colour_the_marker_by_severity(ws):
    grpo_with_alerts(ws)
    sft = make_run(ws, SFT, "sft", "failed", metrics=diverging_rows(4, 2))
    sentinel_alerts(sft, "sft", diverging_rows(4, 2))
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        stages = app.query_one("#stages")
        await until(pilot, lambda: "⚠2" in stage_text(app, "sft") and "⚠3" in stage_text(app, "grpo"), what="markers")
        assert marker_styles(stages.get_option_at_index(STAGE_ITEMS.index("sft")).prompt) == {"$error"}
        assert marker_styles(stages.get_option_at_index(STAGE_ITEMS.index("grpo")).prompt) == {"$warning"}
        await select_stage(app, pilot, "sft")
        runs = app.query_one("#runs")
        await until(pilot, lambda: runs.option_count == 1, what="the sft run list")
        assert marker_styles(runs.get_option_at_index(0).prompt) == {"$error"}
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.rows) == 2, what="the runs")
        table = app.screen.query_one("#runs-table")
        column = RunsScreen.COLUMNS.index("alerts")
        theme = app.current_theme
        cell = {key: table.get_row(key)[column] for key in (SFT, GRPO)}
        assert str(cell[SFT]).startswith("⚠2") and theme.error in str(cell[SFT].style)
        assert str(cell[GRPO]).startswith("⚠3") and theme.warning in str(cell[GRPO].style)
