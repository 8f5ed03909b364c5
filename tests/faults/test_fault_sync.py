"""Sync under faults: runs that are not whole, two syncs at once, Ctrl-C, a server reply cut short.
Real offline runs, the real `wandb sync` client, the loopback W&B server; no sleeps, no time asserts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from ftmodel import sync
from ftmodel.sync_guard import run_lock
from ftmodel.workspace import Workspace
from tests.conftest import ROOT, cli, wait_for
from tests.engine.test_bundle import start_growing_run
from tests.engine.test_sync import API_KEY, client_env, do_sync, history_steps, make_offline_run
from tests.fake_wandb import FakeWandb


@pytest.fixture
def server():
    with FakeWandb(api_key=API_KEY) as s:
        yield s


def test_a_sigkilled_stage_is_synced_but_labelled_crashed_not_verified(tmp_path, server):
    proc = start_growing_run(tmp_path, "sft-20260101-000000-aaaa", first=4, total=8, mode="kill")
    assert proc.wait(timeout=120) == -signal.SIGKILL
    (res,) = do_sync(tmp_path, server.url)
    assert res.state == "partial", res.reason
    assert "run crashed" in res.reason and "no exit record" in res.reason
    assert "verified" not in res.reason
    (run,) = sync.status(tmp_path)
    assert run.state == "partial" and run.entry["wandb_size"] == run.wandb_file.stat().st_size
    assert history_steps(server, run.wandb_id) == list(range(1, res.counts["history_local"] + 1))
    shown = cli("sync", "--status", "--workspace", str(tmp_path), env=client_env(server.url))
    assert "synced (run crashed:" in shown.stdout and "synced, verified" not in shown.stdout
    seen = len(server.requests)
    (again,) = do_sync(tmp_path, server.url)  # nothing more will come: not re-sent
    assert again.state == "skipped" and len(server.requests) == seen


def test_a_wandb_file_cut_short_is_not_called_verified(tmp_path, server):
    offline = make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=40, artifact=True)
    run_dir = offline.parent.parent
    with open(run_dir / "metrics.jsonl", "w") as fh:  # what the stage recorded itself
        for step in range(1, 41):
            fh.write(json.dumps({"step": step, "loss": 1.0 / step}) + "\n")
    (wandb_file,) = offline.glob("*.wandb")
    data = wandb_file.read_bytes()
    wandb_file.write_bytes(data[: len(data) // 2])  # a copy cut short (disk full, interrupted scp)
    (res,) = do_sync(tmp_path, server.url)
    assert res.state == "partial", res.reason
    assert ".wandb file cut short" in res.reason and "metrics.jsonl has" in res.reason
    assert "row(s) the wandb record lacks" in res.reason


def test_a_second_sync_of_the_same_run_is_told_who_holds_it(tmp_path, server):
    offline = make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=3, artifact=False)
    (run,) = sync.list_offline_runs(tmp_path)
    ws = Workspace(tmp_path)
    theirs = ws.wandb_home / "sync-stage" / run.wandb_id / offline.name
    theirs.mkdir(parents=True)
    (theirs / "in-use").write_text("the other sync's staged copy")
    with run_lock(ws.wandb_home, run.wandb_id, run.run_id):  # another syncer (this test's pid) holds the run
        res = cli("sync", "--all", "--workspace", str(tmp_path), env=client_env(server.url))
        assert res.returncode == 1 and "Traceback" not in res.stderr
        assert f"is being synced by pid {os.getpid()}" in res.stdout
        assert (theirs / "in-use").exists()  # its staged copy was left alone
        assert server.client_requests() == []
    assert sync.read_ledger(tmp_path) == {}  # the holder records the outcome, not the second syncer
    (res,) = do_sync(tmp_path, server.url)
    assert res.state == "synced", res.reason


def test_two_syncs_at_once_one_syncs_the_other_waits_its_turn(tmp_path, server):
    make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=3, artifact=True)
    env = {**client_env(server.url), "PYTHONPATH": str(ROOT)}
    server.faults.hang_ops = {"UpsertBucket"}  # the first sync's client waits inside the server
    first = subprocess.Popen(
        [sys.executable, "-m", "ftmodel", "sync", "--all", "--timeout", "60", "--workspace", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: list((tmp_path / ".wandb" / "sync-stage").glob("*/client.pid")),
            timeout=120,
            what="the first sync's client to start",
        )
        second = cli("sync", "--all", "--workspace", str(tmp_path), env=client_env(server.url))
        assert second.returncode == 1 and f"being synced by pid {first.pid}" in second.stdout
        assert list((tmp_path / ".wandb" / "sync-stage").glob("*/offline-run-*"))  # the first one's copy is intact
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)


def test_ctrl_c_stops_the_client_records_the_run_and_exits_non_zero(tmp_path, server):
    make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=3, artifact=False)
    server.faults.hang_ops = {"UpsertBucket"}
    env = {**client_env(server.url), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftmodel", "sync", "--all", "--workspace", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_file = wait_for(
        lambda: next(iter((tmp_path / ".wandb" / "sync-stage").glob("*/client.pid")), None),
        timeout=120,
        what="the wandb sync child",
    )
    child = int(wait_for(lambda: pid_file.read_text().strip(), timeout=10, what="the child's pid"))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "interrupted" in out
    with pytest.raises(ProcessLookupError):
        os.killpg(child, 0)  # the client's whole process group is gone
    (run,) = sync.status(tmp_path)
    assert run.state == "failed" and "interrupted (Ctrl-C) during sync" in run.reason
    assert not list((tmp_path / ".wandb" / "sync-stage").glob("*/*"))  # its staged copy removed


def test_a_reply_cut_short_is_a_per_run_failure_not_a_crash(tmp_path, server):
    make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=2, artifact=False)
    make_offline_run(tmp_path, "grpo-20260101-000100-bbbb", steps=2, artifact=False)
    server.faults.short_reply_ops = {"Viewer", "FtmodelVerifyRun"}
    res = cli("sync", "--all", "--workspace", str(tmp_path), env=client_env(server.url))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "0 of 2 run(s) synced and verified, 2 failed" in res.stdout
    assert {e["state"] for e in sync.read_ledger(tmp_path).values()} == {"failed"}
    server.faults.short_reply_ops = set()
    assert [r.state for r in do_sync(tmp_path, server.url)] == ["synced", "synced"]
