"""The workbench screens in a real terminal (tmux): launch an ablation from the `a` screen on a
workspace a small real pipeline prepared, and sync an offline run against the local recording
W&B server from the `w` screen. Every wait polls with a deadline; nothing sleeps to synchronise."""

from __future__ import annotations

import os
import shlex
import shutil

import pytest

from tests.conftest import SMALL_OVERRIDES, cli, write_config
from tests.e2e.test_console_tmux import Tmux, console_command

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


def press_until(console: Tmux, key: str, predicate, what: str, timeout: float = 15, tries: int = 4) -> str:
    """Press `key` and poll the screen; a key sent right after a paint can be dropped, so press again."""
    for attempt in range(tries):
        console.keys(key)
        try:
            return console.wait_screen(predicate, timeout / tries, what)
        except AssertionError:
            if attempt == tries - 1:
                raise
    raise AssertionError(what)


def test_sync_from_the_w_screen_turns_a_run_verified(tmp_path):
    from tests.engine.test_sync import API_KEY, FAST, make_offline_run
    from tests.fake_wandb import FakeWandb

    workspace = tmp_path / "ws"
    make_offline_run(workspace, "sft-20260101-000000-0001", steps=4, artifact=False)
    with FakeWandb(api_key=API_KEY) as server:
        unset = [f"-u{k}" for k in os.environ if k.startswith("WANDB_") or k == "NETRC"]
        env = {"WANDB_BASE_URL": server.url, "WANDB_API_KEY": API_KEY, **FAST}
        prefix = " ".join(["env", *unset, *(shlex.quote(f"{k}={v}") for k, v in env.items())])
        console = Tmux(
            f"{prefix} {console_command(write_config(tmp_path / 'c.toml'), workspace)}", width=100, height=30
        )
        try:
            console.wait_screen(lambda s: "stages" in s, 30, "console painted")
            press_until(console, "w", lambda s: "never synced" in s, "the sync screen with the offline run")
            press_until(console, "a", lambda s: "syncing" in s.lower() or "synced ✓" in s, "sync started")
            screen = console.wait_screen(lambda s: "synced ✓ verified" in s, 120, "the run verified on screen")
            assert "sft-20260101-000000-0001" in screen
        finally:
            console.kill()
        assert server.client_requests()


def test_ablation_launched_from_the_a_screen_shows_its_matrix(tmp_path):
    workspace = tmp_path / "ws"
    config = write_config(tmp_path / "small.toml", {**SMALL_OVERRIDES, "data": {"n_train": 160, "n_eval": 16}})
    done = cli(
        "pipeline",
        "--stages",
        "prepare,distill,filter,sft,grpo",
        "--config",
        str(config),
        "--workspace",
        str(workspace),
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    console = Tmux(console_command(config, workspace), width=120, height=30)
    try:
        console.wait_screen(lambda s: "grpo" in s and "finished" in s, 30, "console painted")
        press_until(console, "a", lambda s: "sft_only" in s and "Launch" in s, "the ablation screen")
        press_until(
            console, "l", lambda s: "started" in s or "running" in s or "ablation-" in s, "the ablation launched"
        )
        screen = console.wait_screen(lambda s: "overall" in s and "finished" in s, 900, "the ablation matrix")
        header = next(line for line in screen.splitlines() if "qtype" in line)
        assert "base" in header and "sft_only" in header
    finally:
        console.kill()
