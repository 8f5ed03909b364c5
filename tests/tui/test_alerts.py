"""The run sentinel's alerts in the console (issue 20): a marker in the stage and run lists, the
status block's lines, the runs browser's column and detail, a notification for each new alert, the
console's own stall check, and alerts.jsonl of any shape never closing the console.

Alerts are recorded by the engine's own sentinel and recording path (`tests.tui.fake_runs.
sentinel_alerts`, `ftmodel.sentinel.record_alerts`), or written by hand where a file is hostile.
"""

from __future__ import annotations

import json
import math
import time

import pytest

from ftmodel.rundir import Run
from ftmodel.sentinel import Alert, Facts, count_alerts, read_alerts, record_alerts
from ftmodel.textio import cell_width
from tests.tui.fake_runs import grpo_rows, make_run, self_pid, sentinel_alerts, sft_rows
from tests.tui.test_app import make_app, select_stage, stage_text, until
from tests.tui.test_hostile import assert_shown_not_obeyed
from tests.tui.test_snapshots import svg_text
from tui.rundata.alerts import NewAlerts, StallChecks, marker
from tui.rundata.summary import WorkspaceScanner
from tui.screens import RunDetailScreen, RunsScreen

pytestmark = pytest.mark.anyio

GRPO = "grpo-20260101-000000-0001"
SFT = "sft-20260101-000000-0001"


def alerts_text(app) -> str:
    return str(app.query_one("#alerts").render())


def diverging_rows(n: int, from_step: int) -> list[dict]:
    rows = sft_rows(n)
    for row in rows[from_step - 1 :]:
        row.update(loss=math.nan, grad_norm=math.inf)
    return rows


def grpo_with_alerts(ws):
    """A finished GRPO run with no KL (beta 0) whose groups all scored alike and completions were cut."""
    path = make_run(ws, GRPO, "grpo", "finished", metrics=grpo_rows(30, zero_std=0.9, clipped=0.5, kl=False), beta=0.0)
    facts = Facts(beta=0.0, temperature=0.9, num_generations=4, max_completion_length=64, learning_rate=5e-4)
    alerts = sentinel_alerts(path, "grpo", grpo_rows(30, zero_std=0.9, clipped=0.5, kl=False), facts)
    assert [a.rule for a in alerts] == ["completions_clipped", "zero_variance_groups", "reward_flat"]
    return path


def test_marker_counts_and_stays_narrow():
    assert marker(0) == "" and marker(3) == "⚠3" and marker(99) == "⚠99" and marker(12345) == "⚠99+"
    assert max(cell_width(marker(n)) for n in (1, 10, 99, 100, 10**9)) == 4


async def test_stage_list_status_block_and_runs_browser_show_a_runs_alerts(ws):
    path = grpo_with_alerts(ws)
    state = json.loads((path / "state.json").read_text())
    state["partial"] = {"reason": "3 prompts had no judge score"}
    (path / "state.json").write_text(json.dumps(state))
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "⚠3" in stage_text(app, "grpo"), what="the stage list's marker")
        await select_stage(app, pilot, "grpo")
        await until(pilot, lambda: "reward_flat" in alerts_text(app), what="the status block's alerts")
        lines = alerts_text(app).splitlines()
        # Newest first, one line each (cut, never wrapped), rule and step first.
        assert [line.split(" @ ")[0] for line in lines] == [
            "⚠ reward_flat",
            "⚠ zero_variance_groups",
            "⚠ completions_clipped",
        ]
        assert "@ step 5: 90% of groups had identical rewards" in lines[1]
        # The GRPO hint the console used to compute itself is the sentinel's config note now.
        await until(pilot, lambda: "no KL: grpo.beta is 0" in str(app.query_one("#hints").render()), what="note")
        screen = svg_text(app.export_screenshot()).replace("\xa0", " ")
        assert any(line.count("⚠3") for line in screen.splitlines() if "grpo" in line)  # drawn whole at 80x24
        assert "⚠ reward_flat @ step 20" in screen
        assert not [n for n in app.notes if "reward_flat" in n]  # alerts there before the console: no news
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows, what="runs browser")
        table = app.screen.query_one("#runs-table")
        row = table.get_row(GRPO)
        assert str(row[RunsScreen.COLUMNS.index("alerts")]) == "⚠3 reward…"  # `ftmodel runs`'s cell, cut to fit
        assert next(r for r in app.screen.rows if r.id == GRPO).alerts_cell() == "3 reward_flat"
        await pilot.press("slash", *"reward_flat", "escape")  # the filter finds a run by its newest rule
        await until(pilot, lambda: table.row_count == 1, what="filtered by rule")
        table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded, what="detail")
        detail = str(app.screen.query_one("#detail-alerts").render())
        assert detail.startswith("partial: 3 prompts had no judge score")
        assert detail.index("reward_flat at step 20") < detail.index("completions_clipped at step 2")
        assert "evidence: " in detail and "try: raise grpo.max_completion_length (now 64)" in detail


async def test_a_new_alert_of_a_followed_run_is_notified_once_and_listed(ws):
    pid, start = self_pid()
    now = time.time()  # a run that started now is not stalled: only the alert below is news
    path = make_run(ws, SFT, "sft", "running", pid=pid, proc_start=start, metrics=[], progress=(0, 40), created=now)
    old = make_run(ws, "sft-20251231-000000-0001", "sft", "finished", metrics=sft_rows(5), created=now - 100)
    sentinel_alerts(old, "sft", diverging_rows(5, 2), Facts(learning_rate=1.0))  # before the console: no news
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.main.selected_run == SFT and app.main.follower, what="following")
        await until(pilot, lambda: app.main.new_alerts.primed, what="the poller's first look at the alerts")
        rows = diverging_rows(12, 10)
        with open(path / "metrics.jsonl", "a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        sentinel_alerts(path, "sft", rows, Facts(learning_rate=1.0, warmup_ratio=0.0))
        await until(pilot, lambda: any("nonfinite_loss" in n for n in app.notes), what="the notification")
        await until(pilot, lambda: "nonfinite_grad_norm @ step 10" in alerts_text(app), what="the status lines")
        told = [n for n in app.notes if "nonfinite" in n]
        assert told == [
            "nonfinite_loss @ step 10: loss is NaN at step 10",
            "nonfinite_grad_norm @ step 10: grad-norm is inf at step 10",
        ]
        assert app.titles[app.notes.index(told[0])] == f"alert in {SFT}"
        assert "⚠2" in stage_text(app, "sft")
        polls = app.main.scanner  # a few more polls tell nothing again
        for _ in range(4):
            app.main.wake()
            await pilot.pause(0.2)
        assert app.main.scanner is polls and [n for n in app.notes if "nonfinite" in n] == told
        # A truncated alerts.jsonl written again (an editor, a copy) is read again, not told again.
        data = (path / "alerts.jsonl").read_bytes()
        (path / "alerts.jsonl").write_bytes(b"")
        await until(pilot, lambda: "nonfinite" not in alerts_text(app), what="the truncated file read")
        (path / "alerts.jsonl").write_bytes(data)
        await until(pilot, lambda: "nonfinite_loss" in alerts_text(app), what="the file read again")
        await pilot.pause(0.5)
        assert [n for n in app.notes if "nonfinite" in n] == told


def test_new_alerts_are_told_once_from_the_first_poll_on(ws):
    first = make_run(ws, SFT, "sft", "finished", metrics=sft_rows(5))
    sentinel_alerts(first, "sft", diverging_rows(5, 2))
    scanner, news = WorkspaceScanner(ws), NewAlerts()
    assert news.poll(scanner.scan()) == []  # what was there when the console opened
    second = make_run(ws, "sft-20260101-000001-0002", "sft", "running", metrics=[])
    assert news.poll(scanner.scan()) == []
    sentinel_alerts(second, "sft", diverging_rows(3, 3))
    told = news.poll(scanner.scan())
    assert [(run, a.rule) for run, a in told] == [(second.name, "nonfinite_loss"), (second.name, "nonfinite_grad_norm")]
    assert news.poll(scanner.scan()) == []


def test_the_consoles_stall_check_records_a_stall_once(ws):
    pid, start = self_pid()
    long_ago = time.time() - 7200  # started two hours ago, no step since: past stall_startup_s (1800 s)
    path = make_run(ws, SFT, "sft", "running", pid=pid, proc_start=start, metrics=[], created=long_ago)
    finished = make_run(ws, "sft-20260101-000001-0002", "sft", "finished", metrics=[], created=long_ago)
    ticks = iter(range(0, 100, 10))
    checks = StallChecks(every=5.0, clock=lambda: next(ticks))
    runs = WorkspaceScanner(ws).scan()
    checks.check(runs)
    checks.check(runs)  # the same stall seen again: the engine keeps one alert per stall
    alerts = read_alerts(Run(path))
    assert [(a.rule, a.variant, a.source) for a in alerts] == [("stall", "startup", "console")]
    assert count_alerts(Run(finished)) == 0  # only running runs stall


def hostile_alert_lines() -> bytes:
    good = Alert("stall", "sft", 3, 1764000010.0, "stall@1", {"idle_s": 700.0}, {"idle": "11 min"}).to_json()
    lines = [
        {**good, "key": "k2", "step": "three", "time": "soon", "values": [1, 2], "params": 7, "source": 5},
        {**good, "key": "k3", "values": {"loss": "NaN", "x\x1b[2J": "Infinity"}, "params": {"idle": "\x1b[2Jx"}},
        {**good, "key": "k4", "time": 1e308, "log_tail": ["\x1b[2J cleared", 5, None]},
        {**good, "rule": "\x1b[2J\x1b]0;pwned\x07[b]bold[/b]", "key": "k1", "message": "\x1b[31mred"},  # newest
        [1, 2, 3],
        {"rule": None, "key": "k5"},
        "just a string",
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines) + "{not json\n"
    return text.encode() + b"\xff\xfe not utf-8\n" + b'{"rule": "stall", "key": "torn", "st'


async def test_hostile_alerts_are_shown_never_obeyed_nor_fatal(ws):
    path = make_run(ws, SFT, "sft", "finished", metrics=sft_rows(10), progress=(10, 10))
    (path / "alerts.jsonl").write_bytes(hostile_alert_lines())
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: "⚠" in alerts_text(app), what="the alert lines")
        assert "+1 more alerts" in alerts_text(app)  # 4 alerts read; torn, foreign and broken lines skipped
        assert "⚠4" in stage_text(app, "sft")  # the alerts that read, not the file's 9 lines
        assert_shown_not_obeyed(app, "the console's alert lines")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows, what="runs browser")
        assert_shown_not_obeyed(app, "the runs browser's alerts column")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded, what="detail")
        detail = str(app.screen.query_one("#detail-alerts").render())
        assert "loss=NaN" in detail and "step ?" in detail and "(?, seen by" in detail
        assert_shown_not_obeyed(app, "the run detail's alerts")
        # The trainer goes on appending after the torn line: the console keeps reading.
        with open(path / "alerts.jsonl", "ab") as fh:
            fh.write(b"\n")
        record_alerts(Run(path), [Alert("kl_spike", "sft", 9, 1764000020.0, "kl@9", params={"value": "9"})], source="t")
        await pilot.press("escape", "escape")
        await until(pilot, lambda: "kl_spike @ step 9" in alerts_text(app), what="a good alert after the torn line")
        assert app.is_running


async def test_a_failed_detail_reader_says_so_in_place(ws, monkeypatch):
    make_run(ws, SFT, "sft", "finished", metrics=sft_rows(3))

    def broken(run, status=None):
        raise RuntimeError("the disk said no")

    monkeypatch.setattr("tui.screens.runs.alert_notes", broken)
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.runs, what="scan")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows, what="runs browser")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="detail")
        shown = lambda: str(app.screen.query_one("#detail-alerts").render())  # noqa: E731
        await until(pilot, lambda: "could not read: RuntimeError: the disk said no" in shown(), what="the failure")
        assert "reading…" not in str(app.screen.query_one("#detail-config").render())
        assert app.is_running


def test_the_scanner_counts_alerts_again_for_active_runs_and_changed_states(ws):
    pid, start = self_pid()
    live = make_run(ws, SFT, "sft", "running", pid=pid, proc_start=start, metrics=[], created=time.time())
    done = make_run(ws, "sft-20251231-000000-0001", "sft", "finished", metrics=[], created=time.time() - 100)
    scanner = WorkspaceScanner(ws)

    def counts():
        return {s.id: s.alerts for s in scanner.scan()}

    assert counts() == {SFT: 0, done.name: 0}
    sentinel_alerts(live, "sft", diverging_rows(3, 3))
    assert counts()[SFT] == 2  # an active run is looked at on every scan
    sentinel_alerts(done, "sft", diverging_rows(3, 2))
    assert counts()[done.name] == 0  # a finished run whose state.json did not change costs no stat
    state = json.loads((done / "state.json").read_text())
    (done / "state.json").write_text(json.dumps({**state, "updated": time.time()}))
    assert counts()[done.name] == 2
