"""A slow scheduler never freezes the console (issue 20): with a run launched from the console on a
real single-node Slurm (tests/slurm_cluster.py) whose `squeue` takes seconds to answer, every
scheduler query runs in a worker and keys are answered while one is in flight.

`squeue` is a shim on PATH that marks itself in flight, sleeps, then execs the real one. The job
is held (`--begin=now+1hour`), so it stays queued and the console keeps asking about it.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time

import pytest

from tests.conftest import write_config
from tests.slurm_cluster import slurm_cluster  # noqa: F401 (the fixture)
from tests.tui.test_app import make_app, until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SQUEUE_SECONDS = 5


def slow_squeue(shims, marks) -> None:
    """Put a `squeue` on PATH that takes SQUEUE_SECONDS, marking `marks/inflight.<pid>` meanwhile."""
    real = shutil.which("squeue")
    shims.mkdir()
    script = shims / "squeue"
    script.write_text(
        "#!/bin/sh\n"
        f'touch "{marks}/inflight.$$"\n'
        f'echo "$$" >> "{marks}/calls"\n'
        f"sleep {SQUEUE_SECONDS}\n"
        f'rm -f "{marks}/inflight.$$"\n'
        f'exec "{real}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def in_flight(marks) -> bool:
    return any(p.name.startswith("inflight.") for p in marks.iterdir())


async def answered(pilot, key: str, effect, bound: float) -> None:
    """Press `key` and poll for its visible effect, the bound counted from before the press: a UI thread
    stuck in a scheduler call would hold the key's dispatch itself."""
    deadline = time.monotonic() + bound
    await pilot.press(key)
    while True:  # the bound is checked first: an effect that came only after it came too late
        assert time.monotonic() < deadline, f"{key!r} was not answered within {bound}s"
        if effect():
            return
        await pilot.pause(0.02)


async def test_keys_are_answered_while_a_slow_squeue_is_in_flight(slurm_cluster, tmp_path, monkeypatch):  # noqa: F811
    from ftmodel import launcher

    marks, shims = tmp_path / "marks", tmp_path / "shims"
    marks.mkdir()
    slow_squeue(shims, marks)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    monkeypatch.setenv("WANDB_MODE", "disabled")
    polled_on = []  # the threads the launched job's handle is polled on
    real_poll = launcher.SlurmJob.poll

    def poll(self):
        polled_on.append(threading.current_thread())
        return real_poll(self)

    monkeypatch.setattr(launcher.SlurmJob, "poll", poll)
    config = write_config(
        tmp_path / "ftmodel.toml",
        {"launch": {"backend": "slurm", "slurm_extra_args": ["--begin=now+3600"]}, "wandb": {"enabled": False}},
    )
    ws = tmp_path / "ws"
    app = make_app(ws, config)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("s")  # start `prepare`: sbatch, and the job waits an hour to begin
        await until(pilot, lambda: any("started" in n for n in app.notes), timeout=60, what="the job submitted")
        await until(pilot, lambda: polled_on and in_flight(marks), timeout=30, what="the job polled, squeue slow")
        runs_list = app.main.query_one("#runs")
        calls_before = len((marks / "calls").read_text().split())
        # Keys over several squeue periods (a blocked UI thread would hold some of them for seconds):
        # each one's effect must show within the bound.
        for i in range(16):
            key, stage = ("down", "distill") if i % 2 == 0 else ("up", "prepare")
            await answered(pilot, key, lambda s=stage: f"runs of {s}" in str(runs_list.border_title), bound=1.0)
            await pilot.pause(0.4)
        assert len((marks / "calls").read_text().split()) > calls_before + 1, "squeue was asked meanwhile"
        assert all(thread is not threading.main_thread() for thread in polled_on)
        assert app.is_running
    job = next((line.split()[0] for line in slurm_cluster.run("squeue", "-h", "-o", "%i").stdout.splitlines()), None)
    if job:
        slurm_cluster.run("scancel", job, check=False)
