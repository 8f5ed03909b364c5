"""Pilot tests of the queue screen, the config editor's sweep planner and lineage in the run detail.

The queue is made through the engine's own API in a temporary workspace; no job is run (the
screen's runner autostart is off and the planner's runner start is recorded, not spawned)."""

from __future__ import annotations

import json

import pytest

from ftmodel import queue, sweep
from tests.tui.fake_runs import DEFAULT_CONFIG, make_run
from tests.tui.test_app import make_app, until
from tests.tui.test_screens import notes, open_config, open_runs
from tui.dialogs import PickScreen, SweepScreen, TextScreen
from tui.screens import QueueScreen, RunDetailScreen

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def no_runner(monkeypatch):
    """No test here starts a real runner: the screen does not autostart one, and starts are recorded."""
    monkeypatch.setattr(QueueScreen, "AUTOSTART", False)
    started = []
    monkeypatch.setattr(queue, "start_runner", lambda ws: started.append(ws) or 4242)
    return started


def job_ids(ws) -> list[str]:
    return [j["id"] for j in queue.read_queue(ws)["jobs"]]


def fake_queue(ws) -> list[dict]:
    """Three sft jobs; the third failed, the second is running."""
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    jobs = queue.add_jobs(
        ws,
        [
            queue.JobSpec("sft", text, [f"sft.learning_rate={lr}"], {}, label=f"lr={lr}")
            for lr in ("1e-4", "2e-4", "3e-4")
        ],
    )
    with queue.editing(ws) as data:
        data["jobs"][1].update(state="running", run_id="sft-20260101-000000-0001")
        data["jobs"][2].update(state="failed", error="exit 1: boom", attempts=1)
    return jobs


async def open_queue(app, pilot) -> QueueScreen:
    await pilot.press("u")
    await until(pilot, lambda: isinstance(app.screen, QueueScreen) and app.screen.data is not None, what="queue")
    return app.screen


def cells(screen, row: int) -> list[str]:
    return [str(c) for c in screen.query_one("#queue-table").get_row_at(row)]


async def test_queue_lists_reorders_removes_pauses_and_retries(ws):
    a, b, c = (j["id"] for j in fake_queue(ws))
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_queue(app, pilot)
        table = screen.query_one("#queue-table")
        await until(pilot, lambda: table.row_count == 3, what="three jobs")
        assert cells(screen, 1)[:3] == ["lr=2e-4", "running", "sft-20260101-000000-0001"]
        assert cells(screen, 2)[1] == "failed" and "boom" in cells(screen, 2)[-2] and cells(screen, 2)[-1] == c
        status = str(screen.query_one("#queue-status").render())
        assert "3 job(s): 1 queued, 1 running, 0 done, 1 failed" in status and "no runner" in status
        # reorder: the failed job up one place, then down again
        table.move_cursor(row=2)
        await pilot.press("K")
        await until(pilot, lambda: job_ids(ws) == [a, c, b], what="moved up")
        await until(pilot, lambda: screen.cursor_job() == c, what="cursor follows the job")
        await pilot.press("J")
        await until(pilot, lambda: job_ids(ws) == [a, b, c], what="moved down")
        # a running job is not removed; the engine's reason is shown
        await until(pilot, lambda: table.row_count == 3 and screen.cursor_job() == c, what="refreshed")
        table.move_cursor(row=1)
        await pilot.press("d")
        await until(pilot, lambda: notes(app, "stop it first"), what="refused")
        assert job_ids(ws) == [a, b, c]
        # pause and resume
        await pilot.press("p")
        await until(pilot, lambda: queue.read_queue(ws)["paused"], what="paused")
        await until(pilot, lambda: "PAUSED" in str(screen.query_one("#queue-status").render()), what="shown")
        await pilot.press("p")
        await until(pilot, lambda: not queue.read_queue(ws)["paused"], what="resumed")
        # retry the failed job
        await pilot.press("f")
        await until(pilot, lambda: queue.read_queue(ws)["jobs"][2]["state"] == "queued", what="retried")
        await until(pilot, lambda: cells(screen, 2)[1] == "queued", what="retry shown")
        # remove the first (queued) job
        table.move_cursor(row=0)
        await pilot.press("d")
        await until(pilot, lambda: job_ids(ws) == [b, c], what="removed")
        await until(pilot, lambda: table.row_count == 2, what="removal shown")


async def test_the_screen_starts_the_runner_when_jobs_wait(ws, monkeypatch, no_runner):
    fake_queue(ws)
    monkeypatch.setattr(QueueScreen, "AUTOSTART", True)
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_queue(app, pilot)
        await until(pilot, lambda: no_runner and notes(app, "started the queue runner (pid 4242)"), what="runner")
    queue.set_paused(ws, True)
    no_runner.clear()
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_queue(app, pilot)
        await until(pilot, lambda: "PAUSED" in str(screen.query_one("#queue-status").render()), what="paused")
    assert not no_runner  # a paused queue gets no runner


def eval_run(ws, run_id: str, accuracy: float, created: float) -> str:
    """A finished pipeline run whose evaluate child reports `accuracy`; returns the pipeline's id."""
    child = f"evaluate-{run_id}"
    make_run(
        ws,
        child,
        "evaluate",
        "finished",
        created=created,
        files={
            "eval_grpo.json": {
                "answer_accuracy": accuracy,
                "format_accuracy": 1.0,
                "per_qtype": {"math": {"answer_accuracy": accuracy}},
            }
        },
    )
    path = make_run(ws, run_id, "pipeline", "finished", created=created)
    state = json.loads((path / "state.json").read_text())
    state["children"] = [child]
    (path / "state.json").write_text(json.dumps(state))
    return run_id


async def test_sweep_table_is_sortable_and_marks_the_best(ws):
    points = sweep.plan(DEFAULT_CONFIG, {"grpo.beta": [0.0, 0.04, 0.1]}, ["grpo", "evaluate"])
    sweep_id, jobs = sweep.queue_sweep(ws, DEFAULT_CONFIG, points, ["grpo", "evaluate"])
    runs = [
        eval_run(ws, f"pipeline-2026010{i}-000000-000{i}", acc, 1764000000.0 + i)
        for i, acc in enumerate((0.25, 0.75, 0.5), 1)
    ]
    with queue.editing(ws) as data:
        for job, run in zip(data["jobs"], runs, strict=True):
            job.update(state="done", run_id=run)
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_queue(app, pilot)
        await until(pilot, lambda: screen.sweeps == [sweep_id], what="sweeps listed")
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, PickScreen), what="sweep picker")
        await pilot.press("enter")
        table = screen.query_one("#sweep-table")
        await until(pilot, lambda: app.screen is screen and table.row_count == 3, what="sweep table")
        assert screen.best == 1
        column = screen.columns.index("answer_accuracy")

        def shown(col: int) -> list[str]:
            return [str(table.get_row_at(r)[col]) for r in range(table.row_count)]

        assert shown(0) == ["", "*", ""] and shown(column) == ["0.25", "0.75", "0.5"]
        best_cells = table.get_row_at(1)
        assert all(getattr(c, "style", None) == "bold reverse" for c in best_cells)  # the best row stands out
        for _ in range(column + 1):
            await pilot.press("o")
        assert screen.sort_col == column and shown(column) == ["0.25", "0.5", "0.75"]
        await pilot.press("O")
        assert shown(column) == ["0.75", "0.5", "0.25"] and shown(0)[0] == "*"
        assert "sorted by answer_accuracy" in str(screen.query_one("#sweep-title").render())


async def open_sweep_dialog(app, pilot, grid: str, stages: str) -> SweepScreen:
    screen = await open_config(app, pilot, "sft")
    screen.query_one("#fld-sft-learning_rate").focus()
    await pilot.pause()
    await pilot.press("ctrl+g")
    await until(pilot, lambda: isinstance(app.screen, SweepScreen), what="sweep dialog")
    dialog = app.screen
    assert dialog.query_one("#sweep-grid").value.startswith("sft.learning_rate=")  # the focused field first
    dialog.query_one("#sweep-grid").value = grid
    dialog.query_one("#sweep-stages").value = stages
    await pilot.pause()
    dialog.query_one("#sweep-grid").focus()
    await pilot.press("enter")
    return dialog


async def test_sweep_planner_shows_four_runs_and_queues_them(ws, no_runner):
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_sweep_dialog(app, pilot, "sft.learning_rate=1e-4,2e-4 grpo.beta=0.0,0.04", "sft,grpo")
        await until(pilot, lambda: isinstance(app.screen, TextScreen), what="planned runs")
        confirm = app.screen
        assert confirm.title_text == "4 planned run(s) · stages sft,grpo"
        body = confirm.text
        assert body.count("ftmodel pipeline --stages sft,grpo") == 4
        assert "sft.learning_rate=0.0002, grpo.beta=0.04" in body and "--set grpo.beta=0.04" in body
        assert not queue.read_queue(ws)["jobs"]  # nothing queued before the answer
        await pilot.press("y")
        await until(pilot, lambda: notes(app, "4 job(s)"), what="queued")
    jobs = queue.read_queue(ws)["jobs"]
    assert len(jobs) == 4 and len({j["sweep"] for j in jobs}) == 1 and no_runner == [ws]
    assert {(j["point"]["sft.learning_rate"], j["point"]["grpo.beta"]) for j in jobs} == {
        (1e-4, 0.0),
        (1e-4, 0.04),
        (2e-4, 0.0),
        (2e-4, 0.04),
    }


async def test_an_invalid_sweep_value_names_the_key_and_queues_nothing(ws, no_runner):
    app = make_app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await open_sweep_dialog(app, pilot, "sft.learning_rate=1e-4 grpo.beta=0.0,lots", "sft,grpo")
        await until(pilot, lambda: dialog.error, what="planning error")
        assert "grpo.beta" in dialog.error and "lots" in dialog.error
        assert "lots" in str(dialog.query_one("#sweep-error").render())
        assert app.screen is dialog
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, SweepScreen), what="closed")
    assert not (ws / "queue" / "queue.json").exists() and not no_runner


async def test_run_detail_shows_the_lineage(ws):
    sft = make_run(ws, "sft-20260101-000000-0001", "sft", "finished", created=1764000000.0)
    grpo = make_run(ws, "grpo-20260101-000100-0002", "grpo", "finished", created=1764000100.0)
    for path, lineage, inputs in (
        (sft, {"train": "data/train.jsonl"}, {"train": "ab" * 32}),
        (grpo, {"adapter": sft.name}, {"adapter": "cd" * 32}),
    ):
        state = json.loads((path / "state.json").read_text())
        state.update(lineage=lineage, fingerprint={"digest": "ef" * 32, "parts": {"inputs": inputs}})
        (path / "state.json").write_text(json.dumps(state))
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_runs(app, pilot)
        order = [r.id for r in screen.shown]
        screen.query_one("#runs-table").move_cursor(row=order.index(grpo.name))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded, what="details")
        text = str(app.screen.query_one("#detail-lineage").render())
    lines = text.splitlines()
    assert lines[0].startswith(f"grpo {grpo.name} [finished] fingerprint efef")
    assert lines[1].strip().startswith(f"← sft {sft.name}")
    assert "← train sha256:abababababab (data/train.jsonl)" in text
