"""The Slurm backend against a real single-node Slurm (tests/slurm_cluster.py): a sweep's jobs go
through sbatch and end in the same run directories, a job Slurm kills is shown as such with its log
tail, and a stop sends SIGINT to the batch step first so SFT saves a checkpoint."""

import json
import os
import threading

import pytest

from tests.conftest import SMALL_OVERRIDES, cli, openai_teacher, read_metrics, read_state, wait_for, write_config
from tests.engine.test_cli_and_launcher import prepared_workspace
from tests.engine.test_queue import jobs, settled
from tests.slurm_cluster import slurm_cluster  # noqa: F401 (the fixture)

SLURM = ("--set", "launch.backend=slurm", "--set", "wandb.enabled=false")


def test_a_two_point_sweep_runs_through_sbatch(slurm_cluster, tmp_path):
    env = {"SLURM_CONF": slurm_cluster.env["SLURM_CONF"], "WANDB_MODE": "disabled"}
    ws = prepared_workspace(tmp_path, n_train=40)
    assert cli("distill", "--workspace", str(ws), "--set", "wandb.enabled=false", env=env).returncode == 0
    res = cli("sweep", "--workspace", str(ws), "--grid", "filter.min_chars=3,5", "--stages", "filter", *SLURM, env=env)
    assert res.returncode == 0, res.stderr
    wait_for(lambda: settled(ws), timeout=180, interval=0.5, what="the Slurm sweep")
    js = list(jobs(ws).values())
    assert len(js) == 2 and all(j["state"] == "done" for j in js), js
    for j in js:
        run = ws / "runs" / j["run_id"]
        state = read_state(run)
        assert state["stage"] == "pipeline" and state["state"] == "finished" and state["slurm_job_id"]
        assert "pid" not in state  # its process lives on the node: the scheduler is asked, not a pid
        assert json.loads((run / "slurm_exit.json").read_text())["exit_code"] == 0
        assert state["sbatch_argv"][0] == "sbatch" and state["sbatch_argv"][-1].endswith("slurm_job.py")
        shown = slurm_cluster.run("scontrol", "show", "job", state["slurm_job_id"]).stdout
        assert "JobState=COMPLETED" in shown
        (child,) = state["children"]
        assert read_state(ws / "runs" / child)["state"] == "finished"
    listing = cli("runs", "--workspace", str(ws), env=env).stdout
    assert listing.count("finished") >= 4


def test_a_job_slurm_kills_is_shown_as_killed_with_its_log_tail(slurm_cluster, tmp_path):
    from tests.fake_openai import FakeOpenAI

    env = {"SLURM_CONF": slurm_cluster.env["SLURM_CONF"], "WANDB_MODE": "disabled"}
    ws = prepared_workspace(tmp_path, n_train=4)
    gate = threading.Event()
    with FakeOpenAI(responder=lambda messages: gate.wait(120) and "x") as srv:
        res = cli(
            "distill",
            "--detach",
            "--workspace",
            str(ws),
            *openai_teacher(srv.base_url, "--set", "distill.timeout_s=200"),
            *SLURM,
            env=env,
        )
        assert res.returncode == 0 and "submitted to Slurm as job" in res.stdout, res.stdout + res.stderr
        run = ws / "runs" / res.stdout.split("run ", 1)[1].split()[0]
        wait_for(lambda: srv.requests, timeout=60, what="the job to ask the teacher")
        try:  # the node fails under the running job
            slurm_cluster.run("scontrol", "update", "nodename=localhost", "state=down", "reason=ftmodel-test")
            wait_for(
                lambda: (
                    "failed" in cli("runs", "--workspace", str(ws), env=env).stdout
                    and read_state(run).get("slurm_state") == "NODE_FAIL"
                ),
                timeout=60,
                what="the killed job to show",
            )
            # Slurm's SIGTERM may let the worker record "cancelled" after that: once it is gone, the
            # listing must still say why it ended.
            wait_for(
                lambda: not os.path.exists(f"/proc/{read_state(run)['worker_pid']}"),
                timeout=60,
                what="the worker to end",
            )
            listing = cli("runs", "--workspace", str(ws), env=env).stdout
        finally:
            gate.set()
            slurm_cluster.run("scontrol", "update", "nodename=localhost", "state=resume", check=False)
    state = read_state(run)
    assert state["state"] == "failed" and state["slurm_state"] == "NODE_FAIL", state
    assert "killed by Slurm: node failure" in state["error"] and "log:" in state["error"]
    assert run.name in listing
    wait_for(
        lambda: slurm_cluster.run("sinfo", "-h", "-o", "%t").stdout.strip() == "idle", timeout=60, what="the node back"
    )


@pytest.mark.slow
def test_stop_under_slurm_saves_a_checkpoint(slurm_cluster, tmp_path):
    env = {"SLURM_CONF": slurm_cluster.env["SLURM_CONF"], "WANDB_MODE": "disabled"}
    config = write_config(tmp_path / "small.toml", {**SMALL_OVERRIDES, "wandb": {"enabled": False}})
    ws = tmp_path / "ws"
    res = cli("pipeline", "--config", str(config), "--workspace", str(ws), "--stages", "prepare,distill,filter")
    assert res.returncode == 0, res.stdout[-3000:]
    res = cli(
        "sft",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--detach",
        "--set",
        "sft.max_steps=2000",
        "--set",
        "sft.save_steps=1000",
        *SLURM,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    run = ws / "runs" / res.stdout.split("run ", 1)[1].split()[0]
    wait_for(lambda: len(read_metrics(run)) >= 3, timeout=600, what="sft to log 3 steps under Slurm")
    stop = cli("stop", run.name, "--workspace", str(ws), env=env, timeout=300)
    assert stop.returncode == 0 and "cancelled" in stop.stdout, stop.stdout + stop.stderr
    state = read_state(run)
    assert state["state"] == "cancelled" and state["exit_code"] == 130 and state["stop_request"]["slurm_job_id"]
    assert list(run.glob("checkpoints/checkpoint-*")), "the graceful stop saved a checkpoint"
    assert json.loads((run / "slurm_exit.json").read_text())["exit_code"] == 130
    assert "stop requested: saving" in (run / "stage.log").read_text()


def test_a_stalled_slurm_job_is_caught_by_the_watchdog_beside_it_on_the_node(slurm_cluster, tmp_path):
    from tests.fake_openai import FakeOpenAI

    env = {"SLURM_CONF": slurm_cluster.env["SLURM_CONF"], "WANDB_MODE": "disabled"}
    ws = prepared_workspace(tmp_path, n_train=4)
    answer = threading.Event()  # a teacher that accepts requests and says nothing until the test lets it
    with FakeOpenAI(responder=lambda messages: answer.wait(120) and "<think>x</think><answer>1</answer>") as srv:
        try:
            res = cli(
                "distill",
                "--detach",
                "--workspace",
                str(ws),
                *openai_teacher(srv.base_url, "--set", "distill.timeout_s=200", "--set", "distill.concurrency=1"),
                *("--set", "alerts.stall_startup_s=2"),
                *SLURM,
                env=env,
            )
            assert res.returncode == 0 and "submitted to Slurm as job" in res.stdout, res.stdout + res.stderr
            run = ws / "runs" / res.stdout.split("run ", 1)[1].split()[0]

            def stall():
                path = run / "alerts.jsonl"
                return path.exists() and [json.loads(line) for line in path.read_text().splitlines()]

            (alert,) = wait_for(stall, timeout=120, what="the stall under Slurm")
            # seen inside the job, by the stage's own watchdog: no console, no `ftmodel runs` was asked
            assert alert["rule"] == "stall" and alert["source"] == "watchdog" and alert["variant"] == "startup"
            assert "[sentinel] ALERT stall" in (run / "stage.log").read_text()
            assert "1 stall" in cli("runs", "--workspace", str(ws), env=env).stdout
        finally:
            answer.set()
        wait_for(lambda: read_state(run).get("state") == "finished", timeout=120, what="the job to finish")
