"""Stopping runs: two stoppers at once, a stop during the base-model build, a kill during a save."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ftmodel.data import bank
from ftmodel.data.loaders import write_jsonl
from tests.conftest import ROOT, SMALL_OVERRIDES, cli, openai_teacher, read_state, wait_for, write_config
from tests.fake_openai import FakeOpenAI
from tests.faults.conftest import assert_clean

FINAL = ("finished", "failed", "cancelled")


def start_cli(*args: str) -> subprocess.Popen:
    """Start `ftmodel ARGS` without waiting (text output captured)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "ftmodel", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def ended(run: Path, timeout: float = 300) -> dict:
    return wait_for(
        lambda: (s := read_state(run)).get("state") in FINAL and s, timeout=timeout, what=f"{run.name} to end"
    )


def test_a_second_stopper_waits_for_the_first_instead_of_stopping_at_once(tmp_path):
    """Deterministic: the stage cannot finish saving until the test opens the gate, so the second
    `ftmodel stop` certainly arrives while the first is in progress."""
    ws = tmp_path / "ws"
    train, evals = bank.generate_bank(0, 12, 4)
    write_jsonl(ws / "data" / "raw" / "train.jsonl", train)
    write_jsonl(ws / "data" / "raw" / "eval.jsonl", evals)
    solutions = {q["question"]: q["solution"] for q in train}
    gate = threading.Event()

    def teacher(messages):
        gate.wait(120)
        return solutions[messages[-1]["content"]]

    with FakeOpenAI(responder=teacher) as srv:
        res = cli(
            "distill",
            "--detach",
            "--workspace",
            str(ws),
            *openai_teacher(srv.base_url, "--set", "distill.concurrency=1", "--set", "distill.timeout_s=200"),
        )
        assert res.returncode == 0, res.stdout + res.stderr
        (run,) = (ws / "runs").iterdir()
        wait_for(lambda: srv.requests, timeout=120, what="the stage to be busy")
        first = start_cli("stop", run.name, "--workspace", str(ws))
        wait_for(lambda: read_state(run).get("stop_request"), timeout=120, what="the first stop to be recorded")
        second = start_cli("stop", run.name, "--workspace", str(ws))
        line = wait_for(second.stdout.readline, timeout=120, what="the second stopper to report")
        assert "a stop is already in progress" in line and f"pid {first.pid}" in line, line
        assert read_state(run)["state"] == "running"  # the second stopper sent nothing: still saving
        gate.set()
        outs = [p.communicate(timeout=300) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    for out, err in outs:
        assert f"{run.name}: cancelled" in out and "Traceback" not in out + err
    state = read_state(run)
    assert state["state"] == "cancelled" and state["error"] == "stopped on request" and state["exit_code"] == 130
    log = (run / "stage.log").read_text()
    assert log.count("stop requested") == 1 and "another stop request" not in log
    rows = [json.loads(line) for line in (ws / "data" / "distilled.jsonl").read_text().splitlines()]
    assert len({r["id"] for r in rows}) == len(rows) >= 1  # the answer in flight was kept, once


@pytest.mark.slow  # ~10 s alone (torch and the build start), more on a busy machine
def test_a_stop_during_the_base_model_build_is_honoured_at_once(tmp_path):
    ws = tmp_path / "ws"
    config = write_config(
        tmp_path / "c.toml",
        {
            "model": {"tiny_pretrain_steps": 1_000_000, "tiny_hidden_size": 64},
            "data": {"n_train": 40, "n_eval": 8},
            "wandb": {"enabled": False},
        },
    )
    res = cli("prepare", "--detach", "--config", str(config), "--workspace", str(ws), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    (run,) = (ws / "runs").iterdir()
    # The build reports its own progress, so the console shows a bar and an ETA, not 0/?.
    wait_for(
        lambda: (p := read_state(run).get("progress") or {}).get("total") == 1_000_000 and p.get("step", 0) > 0,
        timeout=180,
        what="the base-model build to report progress",
    )
    stop = cli("stop", run.name, "--workspace", str(ws), timeout=300)
    assert stop.returncode == 0 and f"{run.name}: cancelled" in assert_clean(stop), stop.stdout + stop.stderr
    state = read_state(run)
    # Stopped by the graceful request itself, not by the SIGTERM/SIGKILL that follow an ignored one.
    assert state["error"] == "stopped on request" and state["exit_code"] == 130, state
    assert state["progress"]["step"] < 1_000_000
    assert not [p.name for p in (ws / "models").iterdir() if ".building-" in p.name]  # no half-built model left
    assert "Traceback" not in (run / "stage.log").read_text()


@pytest.fixture(scope="module")
def sft_ws(tmp_path_factory):
    """A workspace with data/sft.jsonl and the tiny base built (prepare, distill, filter)."""
    root = tmp_path_factory.mktemp("faults-sft")
    config = write_config(root / "small.toml", {**SMALL_OVERRIDES, "wandb": {"enabled": False}})
    ws = root / "ws"
    for stage in ("prepare", "distill", "filter"):
        res = cli(stage, "--config", str(config), "--workspace", str(ws), timeout=600)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return ws, config


def sft_runs(ws: Path) -> list[Path]:
    return sorted(p for p in (ws / "runs").iterdir() if p.name.startswith("sft-"))


@pytest.mark.slow
def test_two_stops_at_once_keep_the_checkpoint_of_a_real_sft(sft_ws):
    ws, config = sft_ws
    before = set(sft_runs(ws))
    res = cli(
        "sft",
        "--detach",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--set",
        "sft.max_steps=100000",
        "--set",
        "sft.save_steps=100000",
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    (run,) = set(sft_runs(ws)) - before
    wait_for(
        lambda: (read_state(run).get("progress") or {}).get("step", 0) >= 3, timeout=300, what="SFT to take a few steps"
    )
    stoppers = [start_cli("stop", run.name, "--workspace", str(ws)) for _ in range(2)]  # console `x` + CLI
    outs = [p.communicate(timeout=300) for p in stoppers]
    assert [p.returncode for p in stoppers] == [0, 0], outs
    assert all(f"{run.name}: cancelled" in out and "Traceback" not in out + err for out, err in outs), outs
    state = read_state(run)
    assert state["state"] == "cancelled" and state["error"] == "stopped on request", state
    ckpts = list((run / "checkpoints").glob("checkpoint-*"))
    assert len(ckpts) == 1, ckpts  # save_steps is out of reach: this checkpoint is the stop's own save
    saved = json.loads((ckpts[0] / "trainer_state.json").read_text())
    assert saved["global_step"] == int(ckpts[0].name.split("-")[1]) >= 3
    assert "checkpoint saved" in (run / "stage.log").read_text()


@pytest.mark.slow
def test_sigkill_during_saves_then_resume_takes_the_newest_complete_checkpoint(sft_ws):
    ws, config = sft_ws
    before = set(sft_runs(ws))
    res = cli(
        "sft",
        "--detach",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--set",
        "sft.max_steps=100000",
        "--set",
        "sft.save_steps=2",
        "--set",
        "sft.save_total_limit=3",
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    (run,) = set(sft_runs(ws)) - before
    ckdir = run / "checkpoints"

    def saving_after_a_complete_one():
        # A save in progress (its staging folder exists) once at least one checkpoint is published.
        return list(ckdir.glob("checkpoint-*")) and list((ckdir / ".saving").glob("checkpoint-*"))

    wait_for(saving_after_a_complete_one, timeout=300, interval=0.005, what="a checkpoint save in progress")
    os.killpg(read_state(run)["pgid"], signal.SIGKILL)  # the power cut: no handler runs
    wait_for(lambda: cli("runs", "--workspace", str(ws)).stdout.count("lost") >= 1, timeout=60, what="run lost")
    published = list(ckdir.glob("checkpoint-*"))
    assert published and all((c / "trainer_state.json").is_file() for c in published), published
    newest = max(published, key=lambda p: int(p.name.split("-")[1]))
    cut_short = [
        p
        for p in (ckdir / ".saving").glob("checkpoint-*")
        if int(p.name.split("-")[1]) > int(newest.name.split("-")[1])
    ]  # killed mid-save (likely, not sure)
    # What an older version (or a save cut short outside our control) leaves: a newer, partial checkpoint.
    partial = ckdir / f"checkpoint-{int(newest.name.split('-')[1]) + 1000}"
    partial.mkdir()
    (partial / "adapter_model.safetensors").write_bytes(b"")
    resumed_at = int(newest.name.split("-")[1])
    res = cli(
        "sft",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--resume",
        run.name,
        "--set",
        f"sft.max_steps={resumed_at + 2}",
        "--set",
        "sft.save_steps=100000",
        timeout=600,
    )
    out = assert_clean(res)
    assert res.returncode == 0, out[-4000:]
    assert f"skipping incomplete checkpoint {partial}" in out and f"resuming from {newest}" in out, out[-4000:]
    assert all(f"skipping incomplete checkpoint {p}" in out for p in cut_short), out[-4000:]
    (new,) = set(sft_runs(ws)) - before - {run}
    state = read_state(new)
    assert state["state"] == "finished" and state["progress"]["step"] == resumed_at + 2, state
