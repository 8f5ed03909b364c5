"""The console in a real terminal (tmux): start SFT, kill the terminal, the stage survives, re-attach.

Every wait polls with a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
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

    def __init__(self, command: str, width: int = 100, height: int = 30, env: dict | None = None):
        self.socket = f"ftmodel-e2e-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", **(env or {})}
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

    def select_stage(self, stage: str, timeout: float = 30, title: str = r"runs of (\w+)") -> None:
        r"""Move the stage list to `stage` one key at a time, reading the screen after each key (`title`:
        the run list's title with the stage as its group, `(\w+) 的运行` in Chinese)."""
        order = [*STAGES, "pipeline"]

        def current() -> str | None:
            match = re.search(title, self.screen())
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
        shlex.quote(a) for a in (sys.executable, "-m", "tui", "--config", str(config), "--workspace", str(workspace))
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


def watchdog_pids(run_dir: Path) -> list[int]:
    """The pids of the stage's watchdog (`python -m ftmodel.watchdog watch RUN_DIR …`)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ftmodel.watchdog" in argv and str(run_dir).encode() in argv:
            found.append(int(pid))
    return found


def alerts_of(run_dir: Path) -> list[dict]:
    path = run_dir / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def test_a_diverging_sft_followed_live_is_marked_and_never_ends_the_console(tmp_path):
    """A real SFT that diverges (float16 at a learning rate of 1.0 overflows: grad norm NaN within a few
    steps, the stage still ends `finished`), started from the console and followed live at 80x24:
    the console marks where the values stopped being finite, shows the sentinel's alert (a marker, a
    status line, a notification) and is still there when the run ends. Frozen with SIGSTOP, watchdog
    and all, the same stage gets its stall alert from the console's own check. Then a Chinese console
    shows both alerts in Chinese. One training serves every assertion."""
    workspace = tmp_path / "ws"
    config = write_config(
        tmp_path / "diverge.toml",
        {
            **SMALL_OVERRIDES,
            "model": {**SMALL_OVERRIDES["model"], "dtype": "float16"},
            "sft": {"max_steps": 20, "save_steps": 20, "batch_size": 8, "learning_rate": 1.0},
            "wandb": {"log_interval": 1, "enabled": False},
            # a stall is no new step for max(10 s, 2 x the step interval): a frozen stage is caught in seconds
            "alerts": {"stall_floor_s": 10.0, "stall_factor": 2.0},
        },
    )
    done = cli("pipeline", "--stages", "prepare,distill,filter", "--config", str(config), "--workspace", str(workspace))
    assert done.returncode == 0, done.stdout + done.stderr
    console = Tmux(console_command(config, workspace), width=80, height=24, env={"FTMODEL_LANG": "en"})
    try:
        console.wait_screen(lambda s: "filter" in s and "finished" in s, 30, "console painted")
        console.select_stage("sft")
        console.keys("s")
        console.wait_screen(lambda s: sft_runs(workspace), 30, "an sft run directory")
        run_dir = sft_runs(workspace)[-1]
        wait_for(
            lambda: any(a["rule"].startswith("nonfinite_") for a in alerts_of(run_dir)),
            timeout=600,
            interval=0.1,
            what="the trainer's sentinel to record the divergence",
        )
        # Freeze the stage and its watchdog at once: only the console is left to see the stall.
        frozen = [json.loads((run_dir / "state.json").read_text())["worker_pid"], *watchdog_pids(run_dir)]
        assert len(frozen) == 2, frozen
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            marked = re.compile(r"grad_norm NaN (from|at) step \d+")
            alert_line = re.compile(r"⚠ nonfinite_\w+ @ step \d+: ")
            console.wait_screen(
                lambda s: marked.search(s) and alert_line.search(s), 60, "the NaN marked, the alert shown"
            )
            console.wait_screen(lambda s: f"alert in {run_dir.name}" in s, 30, "the alert's notification")
            console.wait_screen(lambda s: re.search(r"sft +● running ⚠\d", s), 30, "the stage list's marker")
            # Recorded once, by the console (a busy machine may have paused the stage on its own before,
            # when the watchdog still watched: that stall says the process was running).
            stall = wait_for(
                lambda: next(
                    (a for a in alerts_of(run_dir) if a["params"].get("process") == "stopped (SIGSTOP)"), None
                ),
                timeout=120,
                what="the console to record the frozen stage's stall",
            )
            assert stall["rule"] == "stall" and stall["source"] == "console", stall
            shown = f"⚠ stall @ step {stall['step']}: no new step for"
            console.wait_screen(lambda s: shown in s, 30, "the stall in the status block")
            assert [a["key"] for a in alerts_of(run_dir)].count(stall["key"]) == 1
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        console.wait_screen(lambda s: "20/20" in s and "finished" in s, 600, "the diverged run finished")
        screen = console.wait_screen(lambda s: marked.search(s), 30, "still marked once finished")
        assert "Traceback" not in screen and "Error" not in screen
        metrics = (run_dir / "metrics.jsonl").read_text()
        assert '"grad_norm":"NaN"' in metrics  # strict JSON on disk, shown as NaN on screen
        console.keys("r")  # the console still takes keys: the runs browser opens
        console.wait_screen(lambda s: run_dir.name[:20] in s and "nan" in s.lower(), 30, "the runs browser")
        count = len(alerts_of(run_dir))
        console.wait_screen(lambda s: f"⚠{count} " in s, 30, "the runs browser's alerts column")
    finally:
        console.kill()
    chinese = Tmux(console_command(config, workspace), width=80, height=24, env={"FTMODEL_LANG": "zh"})
    try:
        chinese.wait_screen(lambda s: "已完成" in s, 30, "the Chinese console painted")
        chinese.select_stage("sft", title=r"(\w+) 的运行")
        screen = chinese.wait_screen(lambda s: "⚠ stall @ 第" in s, 30, "the stall alert in Chinese")
        assert "没有新的步" in screen and re.search(r"sft +✓ 已完成 ⚠\d", screen), screen
        assert re.search(r"⚠ nonfinite_\w+ @ 第 \d+ 步：第 \d+ 步的", screen), screen  # newest first: the NaN below
    finally:
        chinese.kill()
