"""Run-directory trust and run creation under failure, through the real CLI."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from ftmodel.data import bank
from ftmodel.data.loaders import write_jsonl
from ftmodel.rundir import create_run, process_start_time
from tests.conftest import ROOT, cli
from tests.faults.conftest import assert_clean


def workspace_with_raw(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    train, evals = bank.generate_bank(0, 40, 8)
    write_jsonl(ws / "data" / "raw" / "train.jsonl", train)
    write_jsonl(ws / "data" / "raw" / "eval.jsonl", evals)
    return ws


def live_state(proc: subprocess.Popen, **extra) -> dict:
    """A state.json that says `running` and names `proc` (with its real start time unless overridden)."""
    return {
        "stage": "sft",
        "state": "running",
        "pid": proc.pid,
        "pgid": proc.pid,
        "proc_start": process_start_time(proc.pid),
        **extra,
    }


@pytest.mark.parametrize("command", ["stop", "logs", "follow"])
def test_run_ids_that_are_paths_are_refused_and_nothing_outside_is_touched(tmp_path, sleeper, command):
    ws = tmp_path / "ws"
    (ws / "runs").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "state.json").write_text(json.dumps(live_state(sleeper)))
    (outside / "stage.log").write_text("secret log outside the workspace\n")
    (ws / "runs" / "linked").symlink_to(outside)  # a symlink out of runs/ is not a run either
    for ref in ("../../outside", str(outside), "linked/../../../outside", "linked"):
        res = cli(command, ref, "--workspace", str(ws), timeout=60)
        out = assert_clean(res)
        assert res.returncode == 2, (ref, out)
        assert "error:" in res.stderr and ("not a run id" in out or "not a run directory inside" in out), out
        assert "secret log" not in out
    assert sleeper.poll() is None  # the process named outside the workspace was never signalled


def test_a_pid_without_its_start_time_is_not_signalled(tmp_path, sleeper):
    run = create_run(tmp_path, "sft", config_toml="", argv=[])
    run.update_state(state="running", pid=sleeper.pid, pgid=sleeper.pid)  # no proc_start: pid may be reused
    res = cli("stop", run.id, "--workspace", str(tmp_path), timeout=60)
    out = assert_clean(res)
    assert res.returncode == 2 and f"run {run.id}" in out and "without its process start time" in out, out
    assert sleeper.poll() is None
    assert run.status() == "lost"  # not shown as running either: the pid cannot be trusted to be the run's


def test_a_recorded_process_group_that_is_not_the_pids_own_is_not_signalled(tmp_path, sleeper):
    run = create_run(tmp_path, "sft", config_toml="", argv=[])
    run.update_state(**live_state(sleeper, pgid=os.getpgrp()))  # would signal the test runner's own group
    res = cli("stop", run.id, "--workspace", str(tmp_path), timeout=60)
    assert res.returncode == 2 and "not signalling it" in assert_clean(res)
    assert sleeper.poll() is None


@pytest.mark.parametrize(
    "content, problem",
    [
        ("[]", "not a JSON object (it holds a list)"),
        ('"running"', "not a JSON object (it holds a str)"),
        ('{"state": "runn', "corrupt"),
        (b"\xff\xfe{}", "unreadable"),
    ],
)
def test_a_broken_state_json_is_a_named_error_for_stop_and_follow_and_a_row_in_runs(tmp_path, content, problem):
    good = create_run(tmp_path, "sft", config_toml="", argv=[])
    good.update_state(state="finished")
    bad = create_run(tmp_path, "grpo", config_toml="", argv=[])
    if isinstance(content, bytes):
        bad.state_path.write_bytes(content)
    else:
        bad.state_path.write_text(content)
    for command in ("stop", "follow"):
        res = cli(command, bad.id, "--workspace", str(tmp_path), timeout=60)
        out = assert_clean(res)
        assert res.returncode != 0 and f"run {bad.id} is broken" in out and problem in out, out
    listing = cli("runs", "--workspace", str(tmp_path), timeout=60)
    out = assert_clean(listing)
    assert listing.returncode == 0
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert "finished" in rows[good.id] and f"broken: state.json is {problem}"[:24] in rows[bad.id], out


def test_wrong_shaped_fields_are_coerced_for_runs_and_the_console(tmp_path):
    run = create_run(tmp_path, "sft", config_toml="", argv=[])
    other = create_run(tmp_path, "grpo", config_toml="", argv=[])
    other.state_path.write_text(json.dumps({"stage": None, "state": None, "progress": {"step": -4, "total": "x"}}))
    run.state_path.write_text(
        json.dumps(
            {
                "stage": "sft",
                "state": "finished",
                "progress": "half",
                "pid": "12",
                "started": "yesterday",
                "children": "x",
                "exit_code": 0,
            }
        )
    )
    st = run.read_state()
    assert st["progress"] == {"step": 0, "total": None} and "pid" not in st and "started" not in st
    assert st["children"] == [] and run.status() == "finished"
    # Children are run names (readers build runs/<child> from them), each once: never a path.
    run.state_path.write_text(
        json.dumps({"stage": "pipeline", "state": "finished", "children": ["a", "../x", "/tmp/x", "b/c", ".", 3, "a"]})
    )
    assert run.read_state()["children"] == ["a"]
    listing = cli("runs", "--workspace", str(tmp_path), timeout=60)
    assert listing.returncode == 0 and run.id in assert_clean(listing) and other.id in listing.stdout
    assert "0/?" in listing.stdout
    other.state_path.unlink()
    run.state_path.write_text(json.dumps({"stage": "sft", "state": "running", "progress": {"step": "3", "total": []}}))
    from tui.rundata.summary import scan_workspace  # what the console's runs list reads

    (summary,) = scan_workspace(tmp_path)
    assert summary.id == run.id and summary.step == 0 and summary.total is None


def test_a_run_dir_without_state_json_is_listed_as_broken(tmp_path):
    run = create_run(tmp_path, "sft", config_toml="", argv=[])
    run.state_path.unlink()
    listing = cli("runs", "--workspace", str(tmp_path), timeout=60)
    line = next(row for row in assert_clean(listing).splitlines() if row.startswith(run.id))
    assert "broken: no state.json" in line
    res = cli("follow", run.id, "--workspace", str(tmp_path), timeout=60)
    assert res.returncode == 2 and "no state.json" in assert_clean(res)


def test_run_creation_where_runs_is_a_file_is_one_clear_line(tmp_path):
    ws = workspace_with_raw(tmp_path)
    (ws / "runs").write_text("not a directory\n")
    res = cli("distill", "--workspace", str(ws), "--set", "wandb.enabled=false", timeout=120)
    out = assert_clean(res)
    assert res.returncode == 2 and "cannot create a run directory in" in out and "is not a directory" in out, out
    assert (ws / "runs").read_text() == "not a directory\n"


def test_run_creation_on_a_full_disk_leaves_no_run_dir(tmp_path):
    """RLIMIT_FSIZE makes every write past a few bytes fail (EFBIG), as a full disk fails them (ENOSPC):
    the same code path, in one process, without mounting anything."""
    ws = workspace_with_raw(tmp_path)
    (ws / "runs").mkdir()

    def tiny_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "ftmodel", "distill", "--workspace", str(ws), "--set", "wandb.enabled=false"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=tiny_files,
    )
    out = assert_clean(res)
    assert res.returncode == 2 and "cannot create a run directory in" in out and "File too large" in out, out
    assert list((ws / "runs").iterdir()) == []  # no run dir, no temp file, no half-written state


def test_a_run_recorded_on_another_host_is_not_signalled_here(tmp_path, sleeper):
    run = create_run(tmp_path, "sft", config_toml="", argv=[])
    run.update_state(**live_state(sleeper, host="gpu-node-17.invalid"))  # same pid number, another machine
    res = cli("stop", run.id, "--workspace", str(tmp_path), timeout=60)
    assert res.returncode == 2 and "runs on host gpu-node-17.invalid" in assert_clean(res)
    assert sleeper.poll() is None
