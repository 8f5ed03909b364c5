"""The run sentinel on real trainings forced into each failure it names: a learning rate that
diverges (NaN grad-norm, a rising loss, a grad-norm spike; `stop_on` saves and stops), GRPO at a
near-zero temperature (groups with identical rewards, collapsed entropy), a completion limit of a
few tokens (clipped completions), a stage frozen with SIGSTOP and a teacher that never answers
(stalls, caught by the stage's watchdog with no console open). Each alert is read back through the
CLI (`alerts`, `runs`), in English and Chinese, and from the offline wandb run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ftmodel.training import last_checkpoint
from tests.conftest import SMALL_OVERRIDES, cli, openai_teacher, read_state, wait_for, write_config
from tests.engine.test_cli_and_launcher import only_run, prepared_workspace
from tests.fake_openai import FakeOpenAI
from tests.faults.conftest import assert_clean


def alerts_of(run: Path) -> list[dict]:
    path = run / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def rules(run: Path) -> dict[str, dict]:
    """The first alert of each rule."""
    out: dict[str, dict] = {}
    for alert in alerts_of(run):
        out.setdefault(alert["rule"], alert)
    return out


def new_run(ws: Path, stage: str, before: set[Path]) -> Path:
    (run,) = {p for p in (ws / "runs").iterdir() if p.name.startswith(stage + "-")} - before
    return run


def runs_of(ws: Path, stage: str) -> set[Path]:
    return {p for p in (ws / "runs").iterdir() if p.name.startswith(stage + "-")} if (ws / "runs").exists() else set()


def runs_row(ws: Path, run: Path) -> str:
    """The run's line in `ftmodel runs`."""
    return next(line for line in cli("runs", "--workspace", str(ws)).stdout.splitlines() if run.name in line)


def wandb_summary(run: Path) -> dict:
    """The offline wandb run's summary and tags, read by wandb's own reader."""
    (offline,) = (run / "wandb").glob("offline-run-*")
    exe = Path(sys.executable).parent / "wandb"
    out = subprocess.run(
        [str(exe), "leet", "inspect", "--summary", "--json", str(offline)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def trained_ws(tmp_path_factory):
    """prepare, distill, filter and a short healthy SFT on the tiny model (hidden 128, batch 16: the
    size at which lr 1.0 diverges to NaN, as on the embedded default)."""
    root = tmp_path_factory.mktemp("sentinel")
    overrides = {
        **SMALL_OVERRIDES,
        "model": {**SMALL_OVERRIDES["model"], "tiny_hidden_size": 128},
        "sft": {**SMALL_OVERRIDES["sft"], "batch_size": 16},
        "grpo": {**SMALL_OVERRIDES["grpo"], "max_steps": 6},
    }
    config = write_config(root / "small.toml", overrides)
    ws = root / "ws"
    res = cli("pipeline", "--config", str(config), "--workspace", str(ws), "--stages", "prepare,distill,filter,sft")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert not any(alerts_of(p) for p in (ws / "runs").iterdir())  # a healthy short run raises nothing
    return ws, config


@pytest.mark.slow
def test_a_diverging_sft_is_named_at_its_nan_step_and_stop_on_saves_a_checkpoint(trained_ws, tmp_path):
    ws, config = trained_ws
    marker = tmp_path / "notified.txt"
    notifier = tmp_path / "notify.py"  # a user's alert command: it appends the rule it was called for
    notifier.write_text("import os, sys\nopen(sys.argv[1], 'a').write(os.environ['FTMODEL_ALERT_RULE'] + '\\n')\n")
    notify = json.dumps([sys.executable, str(notifier), str(marker)])  # a TOML array of strings
    before = runs_of(ws, "sft")
    res = cli(
        "sft",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        *("--set", "sft.learning_rate=1.0", "--set", "sft.max_steps=40", "--set", "sft.save_steps=1000"),
        *("--set", "wandb.log_interval=2", "--set", "alerts.loss_patience_steps=4"),
        *("--set", 'alerts.stop_on=["nonfinite"]', "--set", f"alerts.command={notify}"),
        timeout=900,
    )
    run = new_run(ws, "sft", before)
    out = assert_clean(res)
    assert res.returncode == 130, out[-3000:]
    fired = rules(run)
    nan = fired["nonfinite_grad_norm"]
    assert nan["step"] <= 16 and nan["message"] == f"grad-norm is NaN at step {nan['step']}", nan
    assert nan["hint"].startswith("lower sft.learning_rate (now 1.0) or raise sft.warmup_ratio (now 0.03)")
    assert nan["source"] == "trainer" and nan["values"] == {"grad_norm": "NaN"}  # strict JSON
    # the loss rose from its first value, and a grad-norm spike came before the NaN
    assert fired["loss_not_falling"]["variant"] == "rising" and fired["loss_not_falling"]["step"] <= nan["step"]
    assert fired["grad_norm_spike"]["step"] < nan["step"], fired
    assert "ALERT nonfinite_grad_norm in " in out  # the foreground command follows alerts as they come
    # stop_on: the same graceful stop as a SIGINT, with the alert named as the reason; resumable
    state = read_state(run)
    assert state["state"] == "cancelled" and state["exit_code"] == 130
    assert state["error"] == f"stopped by the sentinel (nonfinite_grad_norm): {nan['message']}"
    ckpt = last_checkpoint(run)
    assert ckpt is not None and nan["step"] < int(ckpt.name.split("-")[1]) <= nan["step"] + 2
    assert state["progress"]["step"] < 40
    # the alert command ran once per alert, with the alert in its environment
    wait_for(lambda: marker.exists() and len(marker.read_text().split()) == len(alerts_of(run)), what="commands")
    assert sorted(marker.read_text().split()) == sorted(a["rule"] for a in alerts_of(run))
    # the CLI: the runs list counts them, `alerts` gives evidence and hints, in English and Chinese
    assert runs_row(ws, run).endswith(f"{len(alerts_of(run))} {alerts_of(run)[-1]['rule']}")
    shown = cli("alerts", run.name, "--workspace", str(ws)).stdout
    assert f"grad-norm is NaN at step {nan['step']}" in shown and "evidence: grad_norm=NaN" in shown
    zh = cli("alerts", run.name, "--workspace", str(ws), env={"FTMODEL_LANG": "zh"}).stdout
    assert f"第 {nan['step']} 步的梯度范数为 NaN" in zh and "建议：调低 sft.learning_rate（当前 1.0）" in zh
    # and wandb (offline): the summary names the alert, a tag marks the run
    summary = wandb_summary(run)
    assert summary["summary"]["alerts/nonfinite_grad_norm"].startswith(nan["message"])
    assert "alert:nonfinite_grad_norm" in summary["tags"]


@pytest.mark.slow
def test_grpo_at_a_near_zero_temperature_has_identical_groups_and_no_entropy(trained_ws):
    ws, config = trained_ws
    before = runs_of(ws, "grpo")
    res = cli(
        "grpo",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        *("--set", "grpo.temperature=0.01", "--set", "wandb.enabled=false"),
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    run = new_run(ws, "grpo", before)
    fired = rules(run)
    entropy = fired["entropy_collapse"]
    # Step 5 with the default's four GRPO question types (was 4 with two types): still within a few steps.
    assert entropy["step"] <= 6 and entropy["variant"] == "floor", entropy
    assert entropy["hint"] == "raise grpo.temperature (now 0.01)"
    groups = fired["zero_variance_groups"]
    assert groups["step"] <= 6 and groups["values"]["frac_reward_zero_std"] == 1.0, groups
    shown = cli("alerts", run.name, "--workspace", str(ws)).stdout
    assert "100% of groups had identical rewards over 5 logged steps" in shown
    assert "below alerts.entropy_min = 0.005" in shown


@pytest.mark.slow
def test_a_few_token_completion_limit_is_named_and_stop_on_ends_grpo_with_a_checkpoint(trained_ws):
    ws, config = trained_ws
    before = runs_of(ws, "grpo")
    res = cli(
        "grpo",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        *("--set", "grpo.max_completion_length=4", "--set", 'alerts.stop_on=["completions_clipped"]'),
        timeout=900,
    )
    run = new_run(ws, "grpo", before)
    assert res.returncode == 130, res.stdout[-3000:] + res.stderr[-3000:]
    clipped = rules(run)["completions_clipped"]
    assert clipped["step"] <= 3 and clipped["hint"] == "raise grpo.max_completion_length (now 4)", clipped
    assert "of completions were cut at grpo.max_completion_length (4 tokens) over 2 logged steps" in clipped["message"]
    state = read_state(run)
    assert state["state"] == "cancelled" and "stopped by the sentinel (completions_clipped)" in state["error"]
    assert last_checkpoint(run) is not None
    summary = wandb_summary(run)
    assert summary["summary"]["alerts/count"] == len(alerts_of(run)) and "alert:completions_clipped" in summary["tags"]


@pytest.mark.slow
def test_a_frozen_stage_is_caught_by_its_watchdog_with_no_console_open(trained_ws):
    ws, config = trained_ws
    before = runs_of(ws, "sft")
    res = cli(
        "sft",
        "--detach",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        *("--set", "sft.max_steps=100000", "--set", "sft.save_steps=100000", "--set", "wandb.enabled=false"),
        *("--set", "alerts.stall_floor_s=3", "--set", "alerts.stall_factor=2"),
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    run = new_run(ws, "sft", before)
    wait_for(lambda: (run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().count("\n") >= 3, 300)
    pid = read_state(run)["worker_pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        stall = wait_for(
            lambda: next((a for a in alerts_of(run) if a["params"].get("process") == "stopped (SIGSTOP)"), None),
            timeout=120,
            what="the watchdog to record the stall",
        )
        assert stall["source"] == "watchdog" and stall["rule"] == "stall" and stall["step"] >= 3
        assert stall["hint"] == f"the process is stopped (SIGSTOP or Ctrl-Z): `kill -CONT {pid}` resumes it"
        assert stall["log_tail"] and "no new step for" in stall["message"]
        shown = cli("alerts", run.name, "--workspace", str(ws)).stdout
        assert f"kill -CONT {pid}" in shown and "  | " in shown  # the hint and the last log lines
        assert "stall" in next(
            line for line in cli("runs", "--workspace", str(ws)).stdout.splitlines() if run.name in line
        )
        # the CLI saw the same stall: recorded once (a busy machine may have paused the stage before)
        assert [a["key"] for a in alerts_of(run)].count(stall["key"]) == 1
    finally:
        os.kill(pid, signal.SIGCONT)
    stop = cli("stop", run.name, "--workspace", str(ws), timeout=300)
    assert f"{run.name}: cancelled" in assert_clean(stop)
    assert read_state(run)["error"] == "stopped on request"
    wait_for(lambda: not processes_mentioning(str(run)), timeout=30, what="the watchdog to go with its stage")


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (the stage's worker, its watchdog)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def test_a_teacher_that_never_answers_stalls_distill_and_the_watchdog_says_so(tmp_path):
    ws = prepared_workspace(tmp_path, n_train=4)
    answer = threading.Event()  # the teacher accepts each request and says nothing until this is set
    with FakeOpenAI(responder=lambda messages: answer.wait(120) and "<think>x</think><answer>1</answer>") as srv:
        try:
            res = cli(
                "distill",
                "--detach",
                "--workspace",
                str(ws),
                *openai_teacher(srv.base_url, "--set", "distill.timeout_s=300", "--set", "distill.concurrency=1"),
                *("--set", "alerts.stall_startup_s=2"),
            )
            assert res.returncode == 0, res.stdout + res.stderr
            run = only_run(ws, "distill")
            stall = wait_for(lambda: rules(run).get("stall"), timeout=60, what="the stall")
            assert stall["variant"] == "startup" and stall["source"] == "watchdog", stall
            assert stall["message"].startswith("no first step or progress after") and srv.requests
            shown = cli("alerts", "--workspace", str(ws)).stdout
            assert "no first step or progress after" in shown and "a teacher that never answers" in shown
        finally:
            answer.set()  # the teacher comes back: the stage goes on and ends
        state = wait_for(lambda: (s := read_state(run)).get("state") == "finished" and s, timeout=120, what="the end")
    assert state["exit_code"] == 0 and len(alerts_of(run)) == 1
    wait_for(lambda: not processes_mentioning(str(run)), timeout=30, what="the watchdog to go with its stage")
