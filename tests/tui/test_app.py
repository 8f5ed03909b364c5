"""Pilot tests of the console against fixed fake run directories (no clocks, no real stages)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ftmodel import config
from ftmodel.rundir import STAGES
from tests.tui.fake_runs import DEFAULT_CONFIG, dead_pid, grpo_rows, make_run, self_pid, sentinel_alerts, sft_rows
from tui.app import STAGE_ITEMS, FtmodelConsole
from tui.dialogs import ConfirmScreen, HelpScreen
from tui.screens import ConsoleScreen


def make_app(ws: Path, cfg_path: Path = DEFAULT_CONFIG, **kw) -> FtmodelConsole:
    """The console on `cfg_path` and workspace `ws`, recording every notification in `app.notes` (its
    title in `app.titles`)."""
    app = FtmodelConsole(config.load(cfg_path), str(cfg_path), ws, gpu=kw.pop("gpu", False), **kw)
    app.notes, app.titles = [], []
    real_notify = app.notify

    def notify(message, **kwargs):
        app.notes.append(str(message))
        app.titles.append(str(kwargs.get("title", "")))
        real_notify(message, **kwargs)

    app.notify = notify
    return app


async def until(pilot, predicate, timeout: float = 10.0, what: str = "condition"):
    """Let the app run until `predicate()` is truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def select_stage(app, pilot, stage: str):
    app.query_one("#stages").highlighted = STAGE_ITEMS.index(stage)
    await until(pilot, lambda: app.main.selected_stage == stage, what=f"stage {stage}")


pytestmark = pytest.mark.anyio  # anyio's pytest plugin ships with anyio (a Textual dependency)


def stage_text(app, stage: str) -> str:
    stages = app.query_one("#stages")
    return str(stages.get_option_at_index(STAGE_ITEMS.index(stage)).prompt)


def status_text(app) -> str:
    return str(app.query_one("#status").render())


async def test_stage_list_shows_latest_state_of_each_stage(ws):
    make_run(ws, "prepare-20260101-000000-0001", "prepare", "finished")
    make_run(ws, "sft-20260101-000001-0001", "sft", "failed", exit_code=1, error="boom")
    make_run(ws, "sft-20260101-000002-0002", "sft", "finished")  # newer: the one the list shows
    make_run(ws, "grpo-20260101-000003-0001", "grpo", "running", pid=dead_pid(), proc_start=1)
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "finished" in stage_text(app, "prepare"), what="scan")
        assert "finished" in stage_text(app, "sft")
        assert "lost" in stage_text(app, "grpo")
        assert "—" in stage_text(app, "export")
        assert [s for s in STAGE_ITEMS if s != "pipeline"] == list(STAGES)


async def test_selecting_a_run_loads_its_metrics_into_the_chart_store(ws):
    make_run(ws, "sft-20260101-000000-0001", "sft", "finished", metrics=sft_rows(300), progress=(300, 300))
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.main.store.rows == 300, what="metrics")
        assert app.main.selected_run == "sft-20260101-000000-0001"
        assert {"loss", "learning_rate", "grad_norm"} <= set(app.main.store.series)
        await until(pilot, lambda: app.main.charts_ready, what="plotext")
        loss = app.query_one("#panel-loss")
        await until(pilot, lambda: loss.drawn_version == app.main.store.version, what="loss chart drawn")
        assert loss.display and not app.query_one("#panel-reward").display  # no reward metrics: no panel
        assert "300/300" in str(app.query_one("#progress-text").render())


async def test_lost_run_shows_lost_with_its_last_log_lines(ws):
    make_run(
        ws,
        "sft-20260101-000000-0001",
        "sft",
        "running",
        pid=dead_pid(),
        proc_start=12345,
        log=[f"line {i}" for i in range(50)] + ["last words"],
        progress=(40, 250),
    )
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: "lost" in status_text(app), what="lost status")
        log = app.query_one("#log")
        await until(pilot, lambda: log.line_count > 0, what="log tail")
        assert log.lines_text[-1] == "last words"


async def test_failed_run_shows_exit_code_error_and_log_tail(ws):
    make_run(
        ws,
        "grpo-20260101-000000-0001",
        "grpo",
        "failed",
        exit_code=2,
        error="no SFT adapter: run `ftmodel sft` first",
        log=["loading", "error: no SFT adapter"],
    )
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "grpo")
        await until(pilot, lambda: "exit 2" in status_text(app), what="exit code")
        assert "no SFT adapter" in status_text(app)
        log = app.query_one("#log")
        await until(pilot, lambda: log.line_count >= 2, what="log tail")
        assert log.lines_text[-1] == "error: no SFT adapter"


async def test_start_with_missing_data_shows_the_preflight_error(ws):
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "sft")
        await pilot.press("s")
        await until(pilot, lambda: any("run `ftmodel filter` first" in n for n in app.notes), what="preflight")
        assert not (ws / "runs").exists() or not any((ws / "runs").iterdir())  # no run was created


async def test_stop_asks_for_confirmation_and_no_keeps_the_run(ws):
    pid, start = self_pid()
    make_run(ws, "sft-20260101-000000-0001", "sft", "running", pid=pid, proc_start=start, progress=(5, 250))
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: "running" in status_text(app), what="running status")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="dialog closed")
        assert not any(w.name == "stop-run" for w in app.workers)


async def test_stop_on_a_finished_run_says_there_is_nothing_to_stop(ws):
    make_run(ws, "sft-20260101-000000-0001", "sft", "finished")
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: "finished" in status_text(app), what="status")
        await pilot.press("x")
        await until(pilot, lambda: any("nothing to stop" in n for n in app.notes), what="notice")
        assert not isinstance(app.screen, ConfirmScreen)


async def test_quit_says_running_stages_keep_running(ws):
    pid, start = self_pid()
    make_run(ws, "sft-20260101-000000-0001", "sft", "running", pid=pid, proc_start=start)
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.runs, what="scan")
        await pilot.press("q")
    assert app.quit_message and "1 run(s) keep running" in app.quit_message


async def test_evaluation_results_show_as_a_table(ws):
    make_run(
        ws,
        "evaluate-20260101-000000-0001",
        "evaluate",
        "finished",
        files={
            "eval_grpo.json": {
                "total": 200,
                "format_accuracy": 1.0,
                "answer_accuracy": 0.17,
                "per_qtype": {
                    "tf": {"total": 50, "format_accuracy": 1.0, "answer_accuracy": 0.5, "majority_baseline": 0.52}
                },
            }
        },
    )
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "evaluate")
        await until(pilot, lambda: app.query("#panel-results DataTable"), what="results table")
        table = app.query_one("#panel-results DataTable")
        assert table.row_count == 2 and str(table.get_row_at(1)[0]) == "tf"
        assert app.query_one("#panel-results").display


async def test_grpo_alerts_notes_and_reward_panel(ws):
    rows = grpo_rows(20, zero_std=0.9, kl=False)
    path = make_run(ws, "grpo-20260101-000000-0001", "grpo", "finished", metrics=rows, beta=0.0)
    sentinel_alerts(path, "grpo", rows)  # what the trainer's sentinel recorded
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await select_stage(app, pilot, "grpo")
        hints = app.query_one("#hints")
        await until(pilot, lambda: "no KL" in str(hints.render()), what="the config note")
        assert "groups had identical rewards" in str(app.query_one("#alerts").render())
        assert app.query_one("#panel-reward").display and not app.query_one("#panel-kl").display


async def test_toggle_panel_and_help(ws):
    make_run(ws, "sft-20260101-000000-0001", "sft", "finished", metrics=sft_rows(10))
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.query_one("#panel-loss").display, what="loss panel")
        await pilot.press("1")
        await until(pilot, lambda: not app.query_one("#panel-loss").display, what="loss hidden")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        assert "Stop run" in app.help_text() and "Toggle loss" in app.help_text()
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help closed")


async def test_every_binding_has_an_id_and_description():
    for binding in FtmodelConsole.BINDINGS:
        assert binding.id and binding.description, binding


async def test_gpu_panel_absent_without_nvidia_smi_and_filled_with_it(ws, tmp_path, monkeypatch):
    app = make_app(ws, gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert not app.query("#panel-gpu")
    fake = tmp_path / "bin"
    fake.mkdir()
    # The real format of ftmodel.gpus.NVIDIA_SMI's query (the one nvidia-smi query, the queue's too).
    (fake / "nvidia-smi").write_text(
        "#!/bin/sh\n"
        "echo '0, GPU-1f0c2d3e-aaaa-bbbb-cccc-000000000000, 00000000:07:00.0, 87, 40000, 41559, 81559, NVIDIA H100'\n"
        "echo '1, GPU-1f0c2d3e-aaaa-bbbb-cccc-000000000001, 00000000:0F:00.0, [N/A], 1, 2, 3, NVIDIA A2'\n"
    )
    (fake / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{__import__('os').environ['PATH']}")
    app = make_app(ws, gpu=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.gpus, what="gpu sample")
        text = str(app.query_one("#gpu-text").render())
        assert "87%" in text and "40,000/81,559" in text and "GPU1 util ?%" in text


async def test_live_rows_appended_later_reach_the_store(ws):
    pid, start = self_pid()
    path = make_run(
        ws,
        "sft-20260101-000000-0001",
        "sft",
        "running",
        pid=pid,
        proc_start=start,
        metrics=sft_rows(5),
        progress=(5, 100),
    )
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.main.store.rows == 5, what="first rows")
        import json

        with open(path / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps({"step": 6, "time": 1764000004.0, "loss": 1.0}) + "\n")
            fh.write('{"step": 7, "lo')  # a partial line waits for its newline
        await until(pilot, lambda: app.main.store.rows == 6, what="appended row")
        with open(path / "metrics.jsonl", "a") as fh:
            fh.write('ss": 0.9}\n')
        await until(pilot, lambda: app.main.store.rows == 7, what="completed row")
        assert app.main.store.get("loss").last == (7, 0.9)


async def test_long_history_shows_a_preview_then_the_exact_store_then_live_rows(ws, monkeypatch):
    import json

    import tui.rundata.follower

    monkeypatch.setattr(tui.rundata.follower, "HISTORY_PREVIEW_BYTES", 10_000)  # a few hundred rows count as "long"
    pid, start = self_pid()
    path = make_run(
        ws,
        "sft-20260101-000000-0001",
        "sft",
        "running",
        pid=pid,
        proc_start=start,
        metrics=sft_rows(3000),
        progress=(3000, 5000),
    )
    seen = []
    real = ConsoleScreen.on_metrics_history
    monkeypatch.setattr(
        ConsoleScreen,
        "on_metrics_history",
        lambda self, message: (seen.append((message.exact, message.store.rows)), real(self, message)),
    )
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(
            pilot,
            lambda: app.main.store.rows == 3000 and app.main.history_complete and len(seen) == 2,
            what="exact history",
        )
        assert seen == [(False, 3000), (True, 3000)]
        assert app.main.store.get("loss").count == 3000  # every row parsed, not the sample
        with open(path / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps({"step": 3001, "time": 1764001502.0, "loss": 0.5}) + "\n")
        await until(pilot, lambda: app.main.store.rows == 3001, what="live row after the history")
        assert app.main.store.get("loss").last == (3001, 0.5)


async def test_the_run_list_empties_on_a_stage_without_runs(ws):
    make_run(ws, "sft-20260101-000000-0001", "sft", "finished", metrics=sft_rows(5))
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "sft")
        runs = app.query_one("#runs")
        await until(pilot, lambda: runs.option_count == 1, what="the sft run listed")
        await select_stage(app, pilot, "export")  # no export run: the sft run must not stay listed
        await until(pilot, lambda: runs.option_count == 0, what="an empty run list")
        assert app.main.selected_run is None and "no runs yet" in status_text(app)


async def test_a_truncated_metrics_file_starts_the_charts_again(ws):
    path = make_run(ws, "sft-20260101-000000-0001", "sft", "finished", metrics=sft_rows(10))
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.main.store.rows == 10, what="10 rows")
        rows = sft_rows(3)  # the file rewritten shorter (a rerun into the same directory, an editor)
        (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        app.main.wake()
        await until(pilot, lambda: app.main.store.rows == 3, what="the 3 rows the file holds now, not 13")
        assert app.main.store.get("loss").last == (3, 7.0 / 3)


async def test_the_loss_chart_draws_the_probe_accuracy_on_its_right_axis(ws):
    probe = [{"step": s, "time": 1764000001.0 + s, "probe/answer_accuracy": s / 400} for s in (50, 100, 150)]
    rows = sorted(sft_rows(150) + probe, key=lambda r: r["step"])
    make_run(ws, "sft-20260101-000000-0001", "sft", "finished", metrics=rows, progress=(150, 150))
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.main.store.rows == 153, what="metrics")
        await until(pilot, lambda: app.main.charts_ready, what="plotext")
        loss = app.query_one("#panel-loss")
        await until(pilot, lambda: loss.drawn_version == app.main.store.version, what="loss chart drawn")
        # The plot renders at its laid-out size: on a loaded machine the first render can precede layout.
        await until(pilot, lambda: str(loss.plot.render()).strip(), what="the loss chart rendered at its size")
        drawn = str(loss.plot.render())
        assert "probe/answer_accuracy" in drawn and "loss" in drawn  # both lines, labelled
