"""The console in a real terminal (tmux): start SFT, kill the terminal, the stage survives, re-attach.

Every wait polls with a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ftmodel.rundir import STAGES
from tests.conftest import ROOT, SMALL_OVERRIDES, cli, wait_for, write_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


class Tmux:
    """A private tmux server (its own socket) running one console window."""

    def __init__(self, command: str, width: int = 100, height: int = 30):
        self.socket = f"ftmodel-e2e-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
        env.pop("TMUX", None)
        subprocess.run(
            [
                "tmux",
                "-L",
                self.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "console",
                "-x",
                str(width),
                "-y",
                str(height),
                command,
            ],
            check=True,
            env=env,
            cwd=ROOT,
        )

    def screen(self) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, "capture-pane", "-p", "-t", "console"], capture_output=True, text=True
        )
        return out.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "-L", self.socket, "send-keys", "-t", "console", *keys], check=True)

    def wait_screen(self, predicate, timeout: float, what: str) -> str:
        return wait_for(
            lambda: (lambda s: s if predicate(s) else None)(self.screen()),
            timeout=timeout,
            interval=0.2,
            what=f"{what}; last screen:\n{self.screen()}",
        )

    def select_stage(self, stage: str, timeout: float = 30) -> None:
        """Move the stage list to `stage` one key at a time, reading the screen after each key."""
        order = [*STAGES, "pipeline"]

        def current() -> str | None:
            match = re.search(r"runs of (\w+)", self.screen())
            return match.group(1) if match else None

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = current()
            if now == stage:
                return
            if now in order:
                self.keys("Down" if order.index(now) < order.index(stage) else "Up")
                wait_for(lambda left=now: current() != left, timeout=5, interval=0.1, what=f"leaving {now}")
            else:
                wait_for(current, timeout=5, interval=0.1, what="the run list")
        raise AssertionError(f"could not select {stage}; screen:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def console_command(config: Path, workspace: Path) -> str:
    return " ".join(
        shlex.quote(a)
        for a in (sys.executable, "-m", "tui.app", "--config", str(config), "--workspace", str(workspace))
    )


def sft_runs(workspace: Path) -> list[Path]:
    return sorted(p for p in (workspace / "runs").glob("sft-*") if (p / "state.json").exists())


def test_stage_survives_a_killed_terminal_and_the_console_reattaches(tmp_path):
    workspace = tmp_path / "ws"
    config = write_config(
        tmp_path / "e2e.toml",
        {**SMALL_OVERRIDES, "sft": {"max_steps": 40, "save_steps": 20, "batch_size": 8}, "wandb": {"log_interval": 2}},
    )
    done = cli(
        "pipeline",
        "--stages",
        "prepare,distill,filter",
        "--config",
        str(config),
        "--workspace",
        str(workspace),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    first = Tmux(console_command(config, workspace))
    try:
        first.wait_screen(lambda s: "filter" in s and "finished" in s and "sft" in s, 30, "console painted")
        first.select_stage("sft")
        first.keys("s")
        first.wait_screen(lambda s: sft_runs(workspace), 30, "an sft run directory")
        run_dir = sft_runs(workspace)[-1]

        def shows_steps(screen: str) -> bool:
            match = re.search(r"\b(\d+)/40\b", screen)
            return bool(match and int(match.group(1)) > 0 and "loss" in screen)

        first.wait_screen(shows_steps, 240, "live progress and the loss chart")
    finally:
        first.kill()  # the terminal vanishes, as with a dropped SSH session

    def finished() -> str | None:
        state = json.loads((run_dir / "state.json").read_text()).get("state")
        return state if state in ("finished", "failed", "cancelled") else None

    assert wait_for(finished, timeout=400, interval=0.5, what="sft to end after the terminal died") == "finished"

    second = Tmux(console_command(config, workspace))
    try:
        second.wait_screen(lambda s: "sft" in s and "finished" in s, 30, "console painted again")
        second.select_stage("sft")
        screen = second.wait_screen(lambda s: run_dir.name in s and "40/40" in s, 30, "the finished sft run")
        status_line = next(line for line in screen.splitlines() if run_dir.name in line)
        assert "finished" in status_line
    finally:
        second.kill()


def test_a_diverging_sft_followed_live_is_marked_and_never_ends_the_console(tmp_path):
    """A real SFT that diverges (float16 at a learning rate of 1.0 overflows: grad norm NaN within a few
    steps, the stage still ends `finished`), started from the console and followed live at 80x24:
    the console marks where the values stopped being finite and is still there when the run ends."""
    workspace = tmp_path / "ws"
    config = write_config(
        tmp_path / "diverge.toml",
        {
            **SMALL_OVERRIDES,
            "model": {**SMALL_OVERRIDES["model"], "dtype": "float16"},
            "sft": {"max_steps": 20, "save_steps": 20, "batch_size": 8, "learning_rate": 1.0},
            "wandb": {"log_interval": 1, "enabled": False},
        },
    )
    done = cli("pipeline", "--stages", "prepare,distill,filter", "--config", str(config), "--workspace", str(workspace))
    assert done.returncode == 0, done.stdout + done.stderr
    console = Tmux(console_command(config, workspace), width=80, height=24)
    try:
        console.wait_screen(lambda s: "filter" in s and "finished" in s, 30, "console painted")
        console.select_stage("sft")
        console.keys("s")
        console.wait_screen(lambda s: sft_runs(workspace), 30, "an sft run directory")
        run_dir = sft_runs(workspace)[-1]
        marked = re.compile(r"grad_norm NaN (from|at) step \d+")
        screen = console.wait_screen(lambda s: marked.search(s), 600, "the NaN marked while the run is followed")
        state = json.loads((run_dir / "state.json").read_text())["state"]
        assert state in ("running", "finished"), state
        console.wait_screen(lambda s: "20/20" in s and "finished" in s, 600, "the diverged run finished")
        screen = console.wait_screen(lambda s: marked.search(s), 30, "still marked once finished")
        assert "Traceback" not in screen and "Error" not in screen
        metrics = (run_dir / "metrics.jsonl").read_text()
        assert '"grad_norm":"NaN"' in metrics  # strict JSON on disk, shown as NaN on screen
        console.keys("r")  # the console still takes keys: the runs browser opens
        console.wait_screen(lambda s: run_dir.name[:20] in s and "nan" in s.lower(), 30, "the runs browser")
    finally:
        console.kill()
