"""The workspace queue: a detached runner drains it past failures, survives the CLI, resumes after a
"reboot" without running a job twice, refuses a corrupt file without touching it, marks invalid
jobs, lets only one runner start a job, and places jobs on the GPU with the most free memory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftmodel import gpus, queue
from tests.conftest import DEFAULT_CONFIG, ROOT, cli, read_state, wait_for
from tests.engine.test_cli_and_launcher import prepared_workspace

ENV = {"WANDB_MODE": "disabled"}


@pytest.fixture
def distilled_ws(tmp_path):
    ws = prepared_workspace(tmp_path, n_train=40)
    assert cli("distill", "--workspace", str(ws), env=ENV).returncode == 0
    return ws


def add(ws: Path, *sets: str, start: bool = False, stage: str = "filter", extra=()) -> str:
    args = ["queue", "add", stage, "--workspace", str(ws), "--config", str(DEFAULT_CONFIG), *extra]
    for s in sets:
        args += ["--set", s]
    res = cli(*args, *([] if start else ["--no-start"]), env=ENV)
    assert res.returncode == 0, res.stderr
    return res.stdout.split("queued ", 1)[1].split(":")[0]


def jobs(ws: Path) -> dict:
    return {j["id"]: j for j in json.loads((ws / "queue" / "queue.json").read_text())["jobs"]}


def settled(ws: Path) -> bool:
    return all(j["state"] not in queue.OPEN_STATES for j in jobs(ws).values()) and not queue.runner_running(ws)


def test_detached_runner_drains_past_a_failure_and_outlives_the_cli(distilled_ws):
    ws = distilled_ws
    bad = add(ws, "filter.min_chars=0", "filter.max_chars=1")  # keeps no sample: the stage fails
    good = add(ws, "filter.min_chars=5", start=True)  # the CLI starts a runner and exits
    wait_for(lambda: settled(ws), timeout=120, what="the queue to drain")
    js = jobs(ws)
    assert js[bad]["state"] == "failed" and "kept 0" in js[bad]["error"]
    assert js[good]["state"] == "done" and read_state(ws / "runs" / js[good]["run_id"])["state"] == "finished"
    assert "runner exits" in (ws / "queue" / "runner.log").read_text()
    listing = cli("queue", "ls", "--workspace", str(ws), env=ENV).stdout
    assert "failed" in listing and "done" in listing and "no runner" in listing
    # retry queues the failed job again; rm removes one that is not running
    res = cli("queue", "retry", "--workspace", str(ws), env=ENV)
    assert bad in res.stdout
    wait_for(lambda: settled(ws), timeout=120, what="the retry")
    assert cli("queue", "rm", bad, "--workspace", str(ws), env=ENV).returncode == 0
    assert list(jobs(ws)) == [good]


def test_pause_keeps_jobs_queued_and_resume_runs_them(distilled_ws):
    ws = distilled_ws
    assert cli("queue", "pause", "--workspace", str(ws), env=ENV).returncode == 0
    job = add(ws, "filter.min_chars=7", start=True)
    wait_for(lambda: not queue.runner_running(ws), timeout=60, what="the paused runner to exit")
    assert jobs(ws)[job]["state"] == "queued"
    assert cli("queue", "resume", "--workspace", str(ws), env=ENV).returncode == 0
    wait_for(lambda: settled(ws), timeout=120, what="the queue to drain")
    assert jobs(ws)[job]["state"] == "done"


def test_resume_after_a_reboot_neither_loses_nor_repeats_a_job(distilled_ws):
    ws = distilled_ws
    finished, lost, starting = (
        add(ws, "filter.min_chars=3"),
        add(ws, "filter.min_chars=4"),
        add(ws, "filter.min_chars=6"),
    )
    assert cli("queue", "run", "--workspace", str(ws), env=ENV).returncode == 0
    js = jobs(ws)
    done_run = js[finished]["run_id"]
    # What a reboot leaves: the queue says running; one run finished, one run's process is gone, one job
    # was claimed but never became a run.
    lost_run = ws / "runs" / js[lost]["run_id"]
    state = read_state(lost_run)
    state.update(state="running", pid=os.getpid(), proc_start=1)  # a pid that is not the recorded process
    (lost_run / "state.json").write_text(json.dumps(state))
    import shutil

    shutil.rmtree(ws / "runs" / js[starting]["run_id"])  # claimed, but the runner died before its run existed
    data = json.loads((ws / "queue" / "queue.json").read_text())
    for j in data["jobs"]:
        j["state"] = {finished: "running", lost: "running", starting: "starting"}[j["id"]]
        if j["id"] == starting:
            j["run_id"] = None
    (ws / "queue" / "queue.json").write_text(json.dumps(data))
    before = sorted(p.name for p in (ws / "runs").iterdir())
    res = cli("queue", "resume", "--workspace", str(ws), env=ENV)
    assert "queued again" in res.stdout, res.stdout
    wait_for(lambda: settled(ws), timeout=120, what="the resumed queue")
    js = jobs(ws)
    assert js[finished]["state"] == "done" and js[finished]["run_id"] == done_run  # not run twice
    assert js[lost]["state"] == "done" and js[lost]["run_id"] != lost_run.name  # run again
    assert js[starting]["state"] == "done"
    new = sorted(set(p.name for p in (ws / "runs").iterdir()) - set(before))
    assert len(new) == 2 and all(n.startswith("filter-") for n in new)


def test_corrupt_queue_is_refused_and_never_overwritten(distilled_ws):
    ws = distilled_ws
    add(ws, "filter.min_chars=3")
    add(ws, "filter.min_chars=4")
    path = ws / "queue" / "queue.json"
    path.write_text('{"jobs": [ {"id": "job-1", "sta')
    res = cli("queue", "add", "filter", "--workspace", str(ws), "--config", str(DEFAULT_CONFIG), "--no-start", env=ENV)
    assert res.returncode == 2 and f"the queue file {path} is corrupt" in res.stderr and "queue.json.bak" in res.stderr
    assert cli("queue", "ls", "--workspace", str(ws), env=ENV).returncode == 2
    assert path.read_text() == '{"jobs": [ {"id": "job-1", "sta'
    assert len(json.loads((ws / "queue" / "queue.json.bak").read_text())["jobs"]) == 1  # the last good version


def test_a_job_whose_config_no_longer_validates_is_marked_invalid(distilled_ws):
    ws = distilled_ws
    broken, fine = add(ws, "filter.min_chars=3"), add(ws, "filter.min_chars=4")
    snap = ws / "queue" / jobs(ws)[broken]["config"]
    snap.write_text(snap.read_text().replace("[filter]", "[filter]\nmin_charz = 1", 1))
    assert cli("queue", "run", "--workspace", str(ws), env=ENV).returncode == 0
    js = jobs(ws)
    assert js[broken]["state"] == "invalid" and "unknown key filter.min_charz" in js[broken]["error"]
    assert js[fine]["state"] == "done"


def test_two_runners_never_start_the_same_job(distilled_ws):
    ws = distilled_ws
    ids = [add(ws, f"filter.min_chars={n}") for n in (3, 4, 5)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **ENV}
    runners = [
        subprocess.Popen(
            [sys.executable, "-m", "ftmodel.queue", str(ws)], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [r.communicate(timeout=180)[0] for r in runners]
    assert sum("another runner drains this queue" in o for o in outs) == 1, outs
    js = jobs(ws)
    assert all(js[i]["state"] == "done" for i in ids)
    runs = [p for p in (ws / "runs").iterdir() if p.name.startswith("filter-")]
    assert len(runs) == 3 and {read_state(r)["args"]["queue_job"] for r in runs} == set(ids)


# `nvidia-smi --query-gpu=<gpus.QUERY_FIELDS> --format=csv,noheader,nounits` on a box with mixed GPUs.
UUIDS = [f"GPU-{d * 8}-{d * 4}-{d * 4}-{d * 4}-{d * 12}" for d in "abc"]
SMI_OUTPUT = (
    f"0, {UUIDS[0]}, 00000000:07:00.0, 3, 14000, 2000, 16000, Tesla V100-SXM2-16GB\n"
    f"1, {UUIDS[1]}, 00000000:0F:00.0, 0, 1000, 15000, 16000, Tesla V100-SXM2-16GB\n"
    f"2, {UUIDS[2]}, 00000000:47:00.0, [N/A], 6000, 9000, 15360, NVIDIA A2, with a comma\n"
)


def fake_nvidia_smi(folder: Path) -> dict:
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\ncat <<'EOF'\n{SMI_OUTPUT}EOF\n")
    smi.chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}


def test_jobs_go_by_uuid_to_the_gpu_with_the_most_free_memory_within_the_given_ones(distilled_ws, tmp_path):
    ws = distilled_ws
    path = fake_nvidia_smi(tmp_path)
    job = add(ws, "filter.min_chars=3")
    res = cli("queue", "run", "--workspace", str(ws), env={**ENV, **path})
    assert res.returncode == 0 and f"on GPU 1 ({UUIDS[1]})" in res.stdout, res.stdout
    j = jobs(ws)[job]
    assert j["gpu"] == "1" and read_state(ws / "runs" / j["run_id"])["cuda_visible_devices"] == UUIDS[1]
    # Slurm (or the user) gave this runner GPUs 0 and 2: GPU 1, the freest, is not ours to use.
    job = add(ws, "filter.min_chars=4")
    res = cli(
        "queue",
        "run",
        "--workspace",
        str(ws),
        env={**ENV, **path, "CUDA_VISIBLE_DEVICES": f"{UUIDS[0]},{UUIDS[2][:12]}"},
    )
    assert res.returncode == 0 and f"on GPU 2 ({UUIDS[2]})" in res.stdout, res.stdout
    assert read_state(ws / "runs" / jobs(ws)[job]["run_id"])["cuda_visible_devices"] == UUIDS[2]


def test_gpus_are_read_once_and_placed_only_where_cuda_would_agree():
    gpus_ = gpus.parse_nvidia_smi(SMI_OUTPUT + "WARNING: infoROM is corrupted at gpu 0000:07:00.0\n")
    assert [(g.index, g.uuid, g.free_mib, g.total_mib) for g in gpus_] == [
        (0, UUIDS[0], 2000, 16000),
        (1, UUIDS[1], 15000, 16000),
        (2, UUIDS[2], 9000, 15360),
    ]
    assert gpus_[2].util_pct is None and gpus_[2].name == "NVIDIA A2, with a comma"
    assert queue.pick_gpu(gpus_, {"1"}).index == 2 and queue.pick_gpu(gpus_, {"1", "2"}) is None
    assert gpus.job_environment(gpus_[1]) == {"CUDA_VISIBLE_DEVICES": UUIDS[1], "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    given = gpus.given_gpus
    assert given(gpus_, {}) == gpus_ and given(gpus_, {"CUDA_VISIBLE_DEVICES": ""}) == []
    assert given(gpus_, {"CUDA_VISIBLE_DEVICES": f"{UUIDS[2]},{UUIDS[0][:6]}"}) == [gpus_[2], gpus_[0]]
    assert given(gpus_, {"CUDA_VISIBLE_DEVICES": f"{UUIDS[1]},GPU-ffff,{UUIDS[0]}"}) == [gpus_[1]]  # CUDA stops there
    assert given(gpus_, {"CUDA_VISIBLE_DEVICES": "GPU-"}) == []  # a prefix of every GPU names none
    # Mixed GPUs: CUDA numbers them fastest first unless told PCI_BUS_ID, so an index is not nvidia-smi's.
    assert given(gpus_, {"CUDA_VISIBLE_DEVICES": "0,2"}) is None
    assert given(gpus_, {"CUDA_VISIBLE_DEVICES": "0,2", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}) == [gpus_[0], gpus_[2]]
    assert given(gpus_[:2], {"CUDA_VISIBLE_DEVICES": "1"}) == [gpus_[1]]  # one model: the orders agree
    assert given(gpus_, {"CUDA_VISIBLE_DEVICES": "MIG-5f0b1c2d-0000-1111-2222-333344445555"}) is None


def test_jobs_that_rewrite_shared_data_run_alone():
    assert queue.writes_shared({"stage": "pipeline", "args": {"stages": "prepare,distill,filter"}})
    assert queue.writes_shared({"stage": "pipeline", "args": {}})  # every stage
    assert queue.writes_shared({"stage": "filter", "args": {}})
    assert not queue.writes_shared({"stage": "pipeline", "args": {"stages": "sft,grpo,evaluate"}})
    assert not queue.writes_shared({"stage": "grpo", "args": {}})


def _stopped_sft_run(ws: Path, name: str = "sft-20260101-000000-abcd") -> Path:
    """A run directory as a stopped SFT leaves it (state.json, config.toml, one whole checkpoint): what the
    resume check reads, without training."""
    run = ws / "runs" / name
    ckpt = run / "checkpoints" / "checkpoint-6"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 6, "max_steps": 12, "epoch": 0.5}))
    (run / "config.toml").write_text(DEFAULT_CONFIG.read_text())
    (run / "state.json").write_text(json.dumps({"id": name, "stage": "sft", "state": "cancelled"}))
    return run


def test_a_queued_resume_that_would_be_refused_is_refused_at_submit_and_nothing_is_queued(tmp_path):
    from ftmodel.config import Config

    ws = tmp_path / "ws"
    run = _stopped_sft_run(ws)
    base = ["queue", "add", "sft", "--workspace", str(ws), "--config", str(DEFAULT_CONFIG), "--no-start"]
    for force in ((), ("--force",)):  # a changed LoRA shape is never forced
        res = cli(*base, "--resume", run.name, "--set", f"lora.r={Config().lora.r * 2}", *force, env=ENV)
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"error: --resume {run.name}: lora.r changed since the checkpoint was saved" in res.stderr
    res = cli(*base, "--resume", "sft-19990101-000000-none", env=ENV)
    assert res.returncode == 2 and "--resume: " in res.stderr and "sft-19990101-000000-none" in res.stderr
    res = cli("queue", "add", "evaluate", *base[3:], "--resume", run.name, env=ENV)
    assert res.returncode == 2 and "only sft, grpo runs resume, not evaluate" in res.stderr
    assert not (ws / "queue" / "queue.json").exists() or jobs(ws) == {}
    assert not list((ws / "queue" / "jobs").glob("*.toml"))  # not even a config snapshot is left

    # The same resume with the checkpoint's config is queued, its resume recorded for the worker.
    job = add(ws, stage="sft", extra=("--resume", run.name))
    assert jobs(ws)[job]["args"] == {"resume": run.name}
    job = add(ws, "data.seed=7", stage="sft", extra=("--resume", run.name, "--force"))
    assert jobs(ws)[job]["args"] == {"resume": run.name, "force": True}


def test_a_queued_resume_is_checked_again_when_it_starts(tmp_path):
    """Accepted at submit, then its config changed the LoRA shape: the worker refuses it by name."""
    import tomlkit

    from ftmodel.config import Config

    ws = tmp_path / "ws"
    run = _stopped_sft_run(ws)
    (ws / "data").mkdir(parents=True, exist_ok=True)
    (ws / "data" / "sft.jsonl").write_text('{"messages": []}\n')  # past the data check, to the resume check
    job = add(ws, stage="sft", extra=("--resume", run.name))
    snapshot = ws / "queue" / "jobs" / f"{job}.toml"
    doc = tomlkit.parse(snapshot.read_text())
    doc["lora"]["r"] = Config().lora.r * 2
    snapshot.write_text(tomlkit.dumps(doc))
    res = cli("queue", "run", "--workspace", str(ws), env=ENV)
    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(lambda: settled(ws), timeout=120, what="the job to settle")
    failed = jobs(ws)[job]
    assert failed["state"] == "failed", failed
    started = ws / "runs" / failed["run_id"] if failed.get("run_id") else None
    said = (failed.get("error") or "") + ((started / "stage.log").read_text() if started else "")
    assert f"--resume {run.name}: lora.r changed since the checkpoint was saved" in said
