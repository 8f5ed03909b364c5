"""`ftmodel sync` against a local recording W&B server (tests/fake_wandb.py, 127.0.0.1 only),
with real offline runs written by wandb and uploaded by the real `wandb sync` client."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftmodel import sync
from ftmodel.tracking import wandb_environment
from ftmodel.workspace import Workspace
from tests.conftest import cli
from tests.fake_wandb import FakeWandb, closed_port_url

API_KEY = "f" * 40
# Small client limits so failures end in seconds, not minutes.
FAST = {
    "WANDB__GRAPHQL_RETRY_MAX": "1",
    "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": "1",
    "WANDB_HTTP_TIMEOUT": "3",
    "WANDB__FILE_STREAM_RETRY_MAX": "1",
    "WANDB__FILE_STREAM_RETRY_WAIT_MAX_SECONDS": "1",
    "WANDB__FILE_STREAM_TIMEOUT_SECONDS": "5",
    "WANDB__FILE_TRANSFER_RETRY_MAX": "1",
    "WANDB__FILE_TRANSFER_RETRY_WAIT_MAX_SECONDS": "1",
}

MAKE_RUN = textwrap.dedent("""
    import json, sys, wandb
    run_dir, name, steps, artifact = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    run = wandb.init(project="ftm-test", name=name, dir=run_dir, mode="offline", job_type="sft", tags=["sft"],
                     config={"lr": 0.001, "lora": {"r": 16, "alpha": 32}, "model": "tiny"},
                     settings=wandb.Settings(quiet=True))
    for step in range(1, steps + 1):
        run.log({"loss": 1.0 / step, "reward": step * 0.5}, step=step)
    run.summary.update({"final_accuracy": 0.75})
    if artifact:
        path = f"{run_dir}/eval_report.json"
        open(path, "w").write(json.dumps({"accuracy": 0.75}))
        art = wandb.Artifact("eval_report", type="evaluation")
        art.add_file(path)
        run.log_artifact(art)
    run.finish()
""")


def make_offline_run(ws: Path, run_id: str, steps: int = 6, artifact: bool = True) -> Path:
    """Write a real offline wandb run as a stage would: `<ws>/runs/<id>/wandb/offline-run-*`."""
    run_dir = ws / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "state.json").write_text(json.dumps({"run_id": run_id, "stage": "sft", "state": "finished"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(wandb_environment(Workspace(ws)))
    # In the environment, not only as init's argument: wandb 0.31 sends OTel metrics to its server
    # from a run that is offline by argument alone.
    env["WANDB_MODE"] = "offline"
    for key in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", MAKE_RUN, str(run_dir), run_id, str(steps), "1" if artifact else "0"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    return offline


def tree_digest(path: Path) -> dict[str, str]:
    """Every file under `path` with its content hash (to prove a directory was not modified)."""
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def client_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}
    env.update({"WANDB_BASE_URL": url, "WANDB_API_KEY": API_KEY, **FAST, **extra})
    return env


def history_steps(server: FakeWandb, wandb_id: str) -> list[int]:
    return [row["_step"] for row in server.run(wandb_id).history_rows()]


def do_sync(ws: Path, server_url: str, runs=None, **kw) -> list[sync.Result]:
    return sync.sync_runs(ws, runs, env=client_env(server_url), timeout=kw.pop("timeout", 60), **kw)


@pytest.fixture
def server():
    with FakeWandb(api_key=API_KEY) as s:
        yield s


def test_full_sync_is_received_completely_and_verified(tmp_path, server):
    offline = make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=6)
    before = tree_digest(offline)
    (res,) = do_sync(tmp_path, server.url)
    assert res.state == "synced", res.reason
    (run,) = sync.list_offline_runs(tmp_path)
    rec = server.run(run.wandb_id)
    assert history_steps(server, run.wandb_id) == [1, 2, 3, 4, 5, 6]
    assert rec.history_lines_received == 6 and rec.complete and rec.exitcode == 0
    assert [r["loss"] for r in rec.history_rows()] == [1.0 / s for s in range(1, 7)]
    assert rec.summary["final_accuracy"] == 0.75 and rec.summary["_step"] == 6
    assert rec.config["lr"]["value"] == 0.001 and rec.config["lora"]["value"] == {"r": 16, "alpha": 32}
    (art,) = server.run_artifacts(run.wandb_id)
    assert (art["collection"], art["type"], art["state"]) == ("eval_report", "evaluation", "COMMITTED")
    entry = sync.read_ledger(tmp_path)[run.key]
    assert entry["state"] == "synced" and entry["reason"] == "verified" and entry["server"] == server.url
    assert entry["counts"] == {
        "history_local": 6,
        "history_server": 6,
        "history_sent": 6,
        "artifacts_local": 1,
        "artifacts_committed": 1,
    }
    assert entry["url"] == f"{server.url}/fake-entity/ftm-test/runs/{run.wandb_id}" == res.url
    assert tree_digest(offline) == before  # wandb wrote its markers into the staged copy, not here
    assert not list((tmp_path / ".wandb" / "sync-stage").glob("*"))


def test_a_second_sync_sends_nothing(tmp_path, server):
    make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=3, artifact=False)
    assert do_sync(tmp_path, server.url)[0].state == "synced"
    seen = len(server.requests)
    (res,) = do_sync(tmp_path, server.url)
    assert res.state == "skipped" and res.reason == "already synced and verified"
    assert len(server.requests) == seen  # not one request: no client run, no check


def test_server_down_is_recorded_as_failed_and_local_data_stays_intact(tmp_path):
    offline = make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=3)
    before, staging_before = tree_digest(offline), tree_digest(tmp_path / ".wandb" / "data")
    (res,) = do_sync(tmp_path, closed_port_url(), timeout=20)
    assert res.state == "failed" and "unreachable" in res.reason
    (run,) = sync.status(tmp_path)
    assert run.state == "failed" and "unreachable" in run.reason
    assert tree_digest(offline) == before and tree_digest(tmp_path / ".wandb" / "data") == staging_before


def test_a_hanging_server_is_cut_off_by_the_timeouts(tmp_path, server):
    make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=3, artifact=False)
    server.faults.hang_ops = {"UpsertBucket"}
    server.faults.hang_paths = ("/files/",)
    (res,) = do_sync(tmp_path, server.url, timeout=15)
    assert res.state == "failed"
    assert "run not found on the server" in res.reason or "timed out" in res.reason


def test_file_stream_errors_that_recover_are_retried_by_the_client(tmp_path, server):
    make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=5, artifact=False)
    server.faults.file_stream_fail = {2, 3}  # the final post fails twice, then the server is back
    (res,) = sync.sync_runs(tmp_path, env=client_env(server.url, WANDB__FILE_STREAM_RETRY_MAX="4"), timeout=60)
    assert res.state == "synced", res.reason
    wandb_id = sync.list_offline_runs(tmp_path)[0].wandb_id
    assert history_steps(server, wandb_id) == [1, 2, 3, 4, 5]
    # a response lost after the server applied it is resent to the same offset: overwritten, not doubled
    assert server.run(wandb_id).history_lines_received == 5


def test_a_lost_file_stream_response_is_resent_without_duplicates(tmp_path, server):
    make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=5, artifact=False)
    server.faults.file_stream_lose_response = {2}
    (res,) = sync.sync_runs(tmp_path, env=client_env(server.url, WANDB__FILE_STREAM_RETRY_MAX="3"), timeout=60)
    assert res.state == "synced", res.reason
    wandb_id = sync.list_offline_runs(tmp_path)[0].wandb_id
    assert server.run(wandb_id).history_lines_received == 10  # sent twice…
    assert history_steps(server, wandb_id) == [1, 2, 3, 4, 5]  # …stored once


def test_a_stream_cut_mid_way_is_recorded_then_resumed_with_only_the_missing_rows(tmp_path, server):
    make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=8, artifact=True)
    (run,) = sync.list_offline_runs(tmp_path)
    server.faults.history_accept_limit = 3  # the server keeps rows 0-2, then the stream dies
    (res,) = do_sync(tmp_path, server.url)
    assert res.state == "failed" and "history: server has 3 rows, local run has 8" in res.reason
    assert sync.read_ledger(tmp_path)[run.key]["counts"]["history_server"] == 3
    server.faults.history_accept_limit = None
    server.file_stream_log.clear()
    (res,) = do_sync(tmp_path, server.url)
    assert res.state == "synced", res.reason
    assert res.counts["history_sent"] == 5
    assert history_steps(server, run.wandb_id) == list(range(1, 9))  # complete, nothing twice
    sent = [e["files"]["wandb-history.jsonl"] for e in server.file_stream_log if "wandb-history.jsonl" in e["files"]]
    assert sent == [[3, 5]]  # only the 5 missing rows, at the server's offset
    arts = server.run_artifacts(run.wandb_id)
    assert len(arts) == 1 and arts[0]["state"] == "COMMITTED"  # re-logged artifact deduplicated by digest


def test_plain_wandb_sync_would_duplicate_a_partial_run(tmp_path, server):
    """Why we stage a trimmed copy: wandb 0.31 re-sends every local row from the server's count."""
    offline = make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=8, artifact=False)
    creds = {"WANDB_BASE_URL": server.url, "WANDB_API_KEY": API_KEY}
    env = sync.sync_environment(Workspace(tmp_path), client_env(server.url), creds)
    server.faults.history_accept_limit = 3
    sync.run_client(offline, env, 60)
    server.faults.history_accept_limit = None
    next(offline.glob("*.wandb.synced")).unlink()  # written although the upload failed
    sync.run_client(offline, env, 60)
    wandb_id = sync.list_offline_runs(tmp_path)[0].wandb_id
    assert history_steps(server, wandb_id) == [1, 2, 3] + list(range(1, 9))  # 11 rows for 8 logged


def test_missing_artifact_staging_is_reported_not_synced(tmp_path, server):
    make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=4, artifact=True)
    for staged in (tmp_path / ".wandb" / "data" / "artifacts" / "staging").iterdir():
        staged.unlink()
    (res,) = do_sync(tmp_path, server.url)
    assert res.state == "failed"
    assert "artifact eval_report: staged file missing" in res.reason
    (run,) = sync.status(tmp_path)
    assert run.state == "failed" and "staged file missing" in run.reason
    assert history_steps(server, run.wandb_id) == [1, 2, 3, 4]  # the metrics did get there
    # retrying does not resend history: still failed, still 4 rows
    (res,) = do_sync(tmp_path, server.url)
    assert res.state == "failed" and history_steps(server, run.wandb_id) == [1, 2, 3, 4]
    assert server.run(run.wandb_id).history_lines_received == 4


def test_a_dropped_artifact_commit_fails_verification_then_a_retry_commits_it(tmp_path, server):
    make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=4, artifact=True)
    server.faults.drop_commits = True  # the server says yes and forgets
    (res,) = do_sync(tmp_path, server.url)
    assert res.state == "failed" and "artifact eval_report (evaluation) is not committed (PENDING)" in res.reason
    server.faults.drop_commits = False
    (res,) = do_sync(tmp_path, server.url)
    assert res.state == "synced", res.reason
    wandb_id = sync.list_offline_runs(tmp_path)[0].wandb_id
    assert history_steps(server, wandb_id) == [1, 2, 3, 4] and server.run(wandb_id).history_lines_received == 4
    (art,) = server.run_artifacts(wandb_id)
    assert art["state"] == "COMMITTED" and art["commits"] == 2


def test_a_stale_synced_marker_is_removed_before_a_retry(tmp_path):
    offline = make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=2, artifact=False)
    marker = offline / f"{next(offline.glob('*.wandb')).name}.synced"
    marker.write_text("")  # e.g. from a manual `wandb sync` whose uploads failed
    with FakeWandb(api_key=API_KEY) as server:
        (res,) = do_sync(tmp_path, server.url)
    assert res.state == "synced" and not marker.exists()


def test_cli_status_dry_run_and_exit_codes(tmp_path):
    make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=3)
    make_offline_run(tmp_path, "grpo-20260101-000100-bbbb", steps=2, artifact=False)
    ws = str(tmp_path)
    res = cli("sync", "--status", "--workspace", ws, env=client_env(closed_port_url()))
    assert res.returncode == 0 and res.stdout.count("never synced") == 2
    assert "sft-20260101-000000-aaaa" in res.stdout and " KB" in res.stdout
    assert cli("sync", "--workspace", ws, env=client_env(closed_port_url())).returncode == 2  # no RUN, no --all

    down = cli("sync", "--all", "--workspace", ws, env=client_env(closed_port_url()))
    assert down.returncode == 1 and "0 of 2 run(s) synced and verified, 2 failed" in down.stdout
    res = cli("sync", "--status", "--workspace", ws, env=client_env(closed_port_url()))
    assert res.returncode == 1 and res.stdout.count("failed: server unreachable") == 2

    with FakeWandb(api_key=API_KEY) as server:
        env = client_env(server.url)
        dry = cli("sync", "sft-2026", "--dry-run", "--workspace", ws, env=env)
        assert dry.returncode == 0 and "would send 3 history rows" in dry.stdout and "1 artifact(s)" in dry.stdout
        assert server.runs == {}  # a dry run only asked
        up = cli("sync", "--all", "--workspace", ws, env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "2 of 2 run(s) synced and verified" in up.stdout
        again = cli("sync", "--all", "--workspace", ws, env=env)
        assert again.returncode == 0 and again.stdout.count("skipped") >= 2
        res = cli("sync", "--status", "--workspace", ws, env=env)
    assert res.returncode == 0 and res.stdout.count("synced, verified: http://127.0.0.1:") == 2
    for text in (down.stdout, down.stderr, up.stdout, up.stderr, sync.ledger_path(tmp_path).read_text()):
        assert API_KEY not in text


def test_staged_copy_keeps_wandbs_framing_and_drops_only_the_first_history_rows(tmp_path):
    offline = make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=400, artifact=False)
    (run,) = sync.list_offline_runs(tmp_path)
    assert run.wandb_file.stat().st_size > 2 * 32768  # records cross block boundaries
    header, records = sync.read_log_records(run.wandb_file)
    copy = tmp_path / "copy.wandb"
    sync.write_log_records(copy, header, records)
    assert copy.read_bytes() == run.wandb_file.read_bytes()  # byte for byte the same framing
    staged = sync.stage_copy(Workspace(tmp_path), run, 150)
    out = subprocess.run(
        [*sync.wandb_command(), "leet", "inspect", "--json", str(staged)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    recs = [json.loads(line) for line in out.splitlines() if line.strip()]
    steps = [r["history"]["step"]["num"] for r in recs if r["type"] == "history"]
    assert [int(s) for s in steps] == list(range(151, 401))
    assert {"run", "summary", "exit"} <= {r["type"] for r in recs}
    assert tree_digest(offline)  # the original is untouched (stage_copy only reads it)


def test_the_outer_timeout_stops_a_client_that_waits_too_long(tmp_path, server):
    make_offline_run(tmp_path, "sft-20260101-000000-aaaa", steps=2, artifact=False)
    server.faults.hang_ops = {"UpsertBucket"}
    env = client_env(server.url, WANDB_HTTP_TIMEOUT="120")  # the client alone would wait minutes
    (res,) = sync.sync_runs(tmp_path, env=env, timeout=4)
    assert res.state == "failed" and "wandb sync timed out after 4s and was stopped" in res.reason
    assert not list((tmp_path / ".wandb" / "sync-stage").glob("*/*"))


def test_the_staged_copy_points_artifacts_at_the_moved_workspace(tmp_path):
    """Read back with wandb's own reader: the rewritten records are valid and point inside the new place."""
    old = tmp_path / "old"
    make_offline_run(old, "sft-20260101-000000-aaaa", steps=2, artifact=True)
    new = tmp_path / "elsewhere" / "ws"
    new.parent.mkdir()
    old.rename(new)  # the old path is gone
    (run,) = sync.list_offline_runs(new)
    staged = sync.stage_copy(Workspace(new), run, 0)
    out = subprocess.run(
        [*sync.wandb_command(), "leet", "inspect", "--json", str(staged)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    recs = [json.loads(line) for line in out.splitlines() if line.strip()]
    (art,) = [r["artifact"] for r in recs if r["type"] == "artifact"]
    (entry,) = art["manifest"]["contents"]
    assert entry["local_path"].startswith(str(new.resolve() / ".wandb" / "data" / "artifacts" / "staging"))
    assert Path(entry["local_path"]).is_file() and entry["path"] == "eval_report.json"
    assert [int(r["history"]["step"]["num"]) for r in recs if r["type"] == "history"] == [1, 2]
