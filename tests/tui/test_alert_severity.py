"""How bad a run's alerts are, at a glance (issue 20, second round): the `⚠N` marker of the stage
list, the run list and the runs browser is red when one of the run's alerts is an error (non-finite,
stall: `tui.rundata.alerts.severity`) and orange otherwise, read from what the scanner already
read (no alerts file is read again on a scan that did not read it before)."""

from __future__ import annotations

import json
import time

import pytest

from ftmodel.rundir import Run
from tests.tui.fake_runs import DEFAULT_CONFIG, make_run, self_pid, sentinel_alerts
from tests.tui.test_alerts import GRPO, SFT, diverging_rows, grpo_with_alerts
from tests.tui.test_app import make_app, select_stage, stage_text, until
from tui.app import STAGE_ITEMS
from tui.rundata.summary import WorkspaceScanner, summarize
from tui.screens import RunDetailScreen, RunsScreen
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


OLD = "sft-20250101-000000-0001"  # recorded by an ftmodel without the sentinel: no alerts.jsonl
LIVE = "sft-20250101-000000-0002"
WATCHED = "sft-20250101-000000-0003"  # recorded with the sentinel (its snapshot has [alerts]), no alert fired


async def open_detail(app, pilot, run_id: str) -> str:
    """Open the runs browser's detail of `run_id`; return what it says under "alerts"."""
    if not isinstance(app.screen, RunsScreen):
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows, what="the runs browser")
    table = app.screen.query_one("#runs-table")
    table.focus()
    table.move_cursor(row=table.get_row_index(run_id), animate=False)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded, what="the detail")
    text = str(app.screen.query_one("#detail-alerts").render())
    await pilot.press("escape")
    await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back to the runs")
    return text


async def test_the_run_detail_replays_a_finished_run_without_alerts_in_a_worker_bounded_and_labelled(ws, monkeypatch):
    import threading

    import tui.rundata.alerts as alerts_mod

    pid, start = self_pid()
    make_run(ws, OLD, "sft", "failed", metrics=diverging_rows(8, 3))
    make_run(ws, LIVE, "sft", "running", pid=pid, proc_start=start, metrics=diverging_rows(8, 3), created=time.time())
    hostile = make_run(ws, GRPO, "grpo", "finished", metrics=[])
    (hostile / "metrics.jsonl").write_bytes(
        b'{"step": 1, "loss": "\\u001b]0;owned\\u0007", "frac_reward_zero_std": "NaN"}\n'
        b'\x00\xff\n["x"]\n{"step": 2, "lo'
    )
    # A run the sentinel watched (its snapshot has [alerts]) and that had no alert: nothing to replay.
    watched = make_run(ws, WATCHED, "sft", "failed", metrics=diverging_rows(8, 3))
    (watched / "config.toml").write_text(DEFAULT_CONFIG.read_text())
    threads, real = [], alerts_mod.replay_alerts

    def replay(*args, **kw):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kw)

    monkeypatch.setattr(alerts_mod, "replay_alerts", replay)
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "⚠" not in stage_text(app, "sft") and app.runs, what="the stage list")
        assert not threads  # nothing is replayed on a scan: a marker counts recorded alerts only
        old = await open_detail(app, pilot, OLD)
        assert old.startswith("replayed (recorded before the sentinel existed), its 8 metric rows:")
        assert "nonfinite_loss at step 3 (" in old and "replayed from its metrics)" in old and "seen by" not in old
        assert threads == [False]  # in the detail's worker, never on the UI thread
        await open_detail(app, pilot, OLD)
        assert threads == [False]  # the same file is not replayed twice
        quiet = await open_detail(app, pilot, WATCHED)
        assert "replayed" not in quiet and threads == [False]  # watched live, no alert: not replayed
        live = await open_detail(app, pilot, LIVE)
        assert "replayed" not in live and threads == [False]  # a running run is never replayed
        odd = await open_detail(app, pilot, GRPO)
        assert "replayed" in odd and "\x1b" not in odd and app.is_running  # hostile rows: shown, never fatal
        monkeypatch.setattr(alerts_mod, "REPLAY_ROWS", 4)
        (ws / "runs" / OLD / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in diverging_rows(8, 6)))
        cut = await open_detail(app, pilot, OLD)
        assert cut.startswith("replayed (recorded before the sentinel existed), its first 4 metric rows only:")
        assert "no rule fires" in cut  # the divergence at step 6 lies after the bound: a partial replay says so
    assert not any((ws / "runs" / r / "alerts.jsonl").exists() for r in (OLD, LIVE, GRPO, WATCHED))  # nothing recorded


PIPE = "pipeline-20260101-000000-0001"


def pipeline_with_children(ws):
    """A finished pipeline that started a diverged SFT run (2 errors) and a GRPO run (3 warnings)."""
    grpo_with_alerts(ws)
    sft = make_run(ws, SFT, "sft", "failed", metrics=diverging_rows(4, 2))
    sentinel_alerts(sft, "sft", diverging_rows(4, 2))
    pipe = make_run(ws, PIPE, "pipeline", "failed", metrics=[])
    state = json.loads((pipe / "state.json").read_text())
    # Its children as the pipeline driver writes them, and some a state.json may hold that are no runs.
    state["children"] = [SFT, GRPO, "no-such-run", PIPE]
    (pipe / "state.json").write_text(json.dumps(state))
    return pipe


def test_a_pipelines_marker_counts_the_alerts_of_the_runs_it_started(ws):
    pipe = pipeline_with_children(ws)
    scanner = WorkspaceScanner(ws)
    (row,) = [s for s in scanner.scan() if s.id == PIPE]
    assert (row.alerts, row.child_alerts, row.marker_alerts, row.marker_severe) == (0, 5, 5, True)
    (pipe / "alerts.jsonl").write_bytes((ws / "runs" / GRPO / "alerts.jsonl").read_bytes())
    state = json.loads((pipe / "state.json").read_text())
    (pipe / "state.json").write_text(json.dumps({**state, "children": [GRPO], "updated": 1}))
    (row,) = [s for s in scanner.scan() if s.id == PIPE]
    assert (row.alerts, row.marker_alerts, row.marker_severe) == (3, 6, False)  # its own and its child's


async def test_the_pipeline_row_shows_its_childrens_alerts_in_their_colour(ws):
    pipeline_with_children(ws)
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "⚠5" in stage_text(app, "pipeline"), what="the pipeline's marker")
        stages = app.query_one("#stages")
        assert marker_styles(stages.get_option_at_index(STAGE_ITEMS.index("pipeline")).prompt) == {"$error"}
        # Its status block says which of its runs the five are in (the marker and the lines agree).
        await select_stage(app, pilot, "pipeline")
        alerts = app.query_one("#alerts")
        await until(pilot, lambda: f"in its run {GRPO}" in str(alerts.render()), what="the children's lines")
        lines = str(alerts.render()).split("\n")
        assert lines == [f"⚠ 2 in its run {SFT}", f"⚠ 3 in its run {GRPO}"], lines
