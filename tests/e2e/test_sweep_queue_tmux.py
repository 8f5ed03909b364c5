"""A 2x2 sweep from the console in a real terminal (tmux): planned and queued with keys in the config
editor, the console quits, the detached runner goes on, the reopened console shows the queue's
progress; at the end SFT ran twice (reused by the GRPO points), GRPO four times, and the sweep's
table has four rows. Every wait polls with a deadline; nothing sleeps to synchronise."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ftmodel import queue
from tests.conftest import SMALL_OVERRIDES, cli, wait_for, write_config
from tests.e2e.test_console_tmux import Tmux, console_command

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

GRID = "sft.learning_rate=2e-4,1e-3 grpo.beta=0.0,0.04"


def jobs(ws: Path) -> list[dict]:
    return queue.read_queue(ws)["jobs"]


def runs_of(ws: Path, stage: str) -> list[str]:
    return sorted(p.name for p in (ws / "runs").iterdir() if p.name.startswith(stage + "-"))


def type_text(tmux: Tmux, text: str, timeout: float = 60) -> None:
    """Type into the focused field a few characters at a time, each piece seen on screen before the
    next (on a loaded machine a long burst outruns the console)."""
    for i in range(0, len(text), 6):
        tmux.keys("-l", text[i : i + 6])
        tmux.wait_screen(lambda s, typed=text[: i + 6]: typed[-12:] in s, timeout, f"typed {text[: i + 6]!r}")


def test_a_2x2_sweep_queued_from_the_console_outlives_it_and_reuses_sft(tmp_path):
    ws = tmp_path / "ws"
    config = write_config(tmp_path / "small.toml", {**SMALL_OVERRIDES, "wandb": {"enabled": False}})
    done = cli(
        "pipeline",
        "--stages",
        "prepare,distill,filter",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        env={"WANDB_MODE": "disabled"},
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    first = Tmux(console_command(config, ws), width=120, height=40)
    try:
        first.wait_screen(lambda s: "filter" in s and "finished" in s, 30, "console painted")
        first.keys("c")
        first.wait_screen(lambda s: "sections" in s, 30, "config editor")
        first.keys("C-g")
        first.wait_screen(lambda s: "plan a sweep" in s, 15, "sweep dialog")
        type_text(first, GRID)
        first.keys("Tab")
        first.keys("C-u")  # the stages field: its text is selected on focus, ctrl+u clears what is left of the cursor
        first.wait_screen(lambda s: "sft,grpo,evaluate" not in s, 30, "the stages field cleared")
        type_text(first, "sft,grpo")
        first.keys("Enter")
        screen = first.wait_screen(lambda s: "4 planned run(s)" in s, 60, "the four planned runs")
        assert screen.count("ftmodel pipeline --stages sft,grpo") >= 2  # commands shown (the box may scroll)
        assert not (ws / "queue" / "queue.json").exists()  # nothing queued before `y`
        first.keys("y")
        wait_for(
            lambda: (ws / "queue" / "queue.json").exists() and len(jobs(ws)) == 4, timeout=30, what="four queued jobs"
        )
        wait_for(lambda: queue.runner_running(ws), timeout=30, what="the detached runner")
        first.keys("Escape")
        first.wait_screen(lambda s: "sections" not in s, 15, "back to the console")
        first.keys("q")
        wait_for(lambda: not first.screen().strip(), timeout=30, what="the console to quit")
    finally:
        first.kill()

    # The console is gone; the runner goes on.
    wait_for(lambda: any(j["state"] in ("running", "done") for j in jobs(ws)), timeout=300, what="a job started")
    assert queue.runner_running(ws)

    second = Tmux(console_command(config, ws), width=120, height=40)
    try:
        second.wait_screen(lambda s: "filter" in s and "finished" in s, 30, "console painted again")
        second.keys("u")  # the queue screen
        second.wait_screen(
            lambda s: "4 job(s)" in s and re.search(r"\b(running|done)\b", s), 30, "the queue's progress"
        )
        wait_for(
            lambda: all(j["state"] not in queue.OPEN_STATES for j in jobs(ws)) and not queue.runner_running(ws),
            timeout=1800,
            interval=1.0,
            what="the sweep to finish",
        )
        second.wait_screen(lambda s: "4 done" in s, 30, "every job done on screen")
        second.keys("v")
        second.wait_screen(lambda s: "sweep-" in s, 15, "the sweep picker")
        second.keys("Enter")
        screen = second.wait_screen(lambda s: "4 point(s)" in s, 30, "the sweep table")
    finally:
        second.kill()

    assert all(j["state"] == "done" for j in jobs(ws)), json.dumps(jobs(ws), indent=1)
    assert len(runs_of(ws, "sft")) == 2 and len(runs_of(ws, "grpo")) == 4, sorted(runs_of(ws, ""))
    reuses = [
        json.loads((ws / "runs" / r / "state.json").read_text()).get("reused_by") or [] for r in runs_of(ws, "sft")
    ]
    assert sorted(len(r) for r in reuses) == [1, 1]  # each learning rate's second point reused its SFT
    # The sweep table's rows: a run id and "done", without the queue table's `key=value` labels.
    table = [line for line in screen.splitlines() if "pipeline-" in line and "done" in line and "=" not in line]
    assert len(table) == 4, screen
