"""Carrying runs off an air-gapped box: a moved workspace, bundles (pack, verify, import, --new)
and receipts, with real offline wandb runs synced by the real `wandb sync` client to the loopback
W&B server (tests/fake_wandb.py) under another HOME."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from ftmodel import bundle, receipts, sync
from ftmodel.tracking import wandb_environment
from ftmodel.wandb_log import read_log_records, record_type
from ftmodel.workspace import Workspace
from tests.conftest import ROOT, cli, wait_for
from tests.engine.test_sync import API_KEY, client_env, history_steps, make_offline_run
from tests.fake_wandb import FakeWandb

# A stage-like run: state.json with its pid, metrics.jsonl and the same rows to an offline wandb run.
# `pause`: log FIRST steps, then wait (bounded) for a `go` file; `kill`: SIGKILL its own process
# group (wandb-core included) once the .wandb file holds FIRST-1 rows; `finish`: run to the end.
GROWING_RUN = textwrap.dedent("""
    import json, os, sys, time, wandb
    from pathlib import Path
    from ftmodel.rundir import process_start_time
    from ftmodel.wandb_log import read_log_records, record_type
    run_dir, first, total, mode = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    def set_state(**kw):
        (run_dir / "state.json").write_text(json.dumps({"run_id": run_dir.name, "stage": "sft", **kw}))
    set_state(state="running", pid=os.getpid(), proc_start=process_start_time(os.getpid()))
    run = wandb.init(project="ftm-test", name=run_dir.name, dir=str(run_dir), mode="offline",
                     config={"lr": 0.001}, settings=wandb.Settings(quiet=True))
    metrics = open(run_dir / "metrics.jsonl", "a")
    def log(step):
        run.log({"loss": 1.0 / step}, step=step)
        metrics.write(json.dumps({"step": step, "loss": 1.0 / step}) + "\\n")
        metrics.flush()
    def rows():
        files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
        if not files:
            return 0
        return sum(record_type(r) == "history" for r in read_log_records(files[0])[1])
    for step in range(1, first + 1):
        log(step)
    deadline = time.monotonic() + 120
    while rows() < first - 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    (run_dir / "ready").write_text("")
    if mode == "kill":
        art = wandb.Artifact("eval_report", type="evaluation")
        (run_dir / "eval_report.json").write_text("{}")
        art.add_file(str(run_dir / "eval_report.json"))
        run.log_artifact(art)
        os.killpg(0, 9)
    while mode == "pause" and not (run_dir / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    for step in range(first + 1, total + 1):
        log(step)
    (run_dir / "eval_report.json").write_text(json.dumps({"accuracy": 0.5}))
    art = wandb.Artifact("eval_report", type="evaluation")
    art.add_file(str(run_dir / "eval_report.json"))
    run.log_artifact(art)
    run.finish()
    set_state(state="finished", exit_code=0)
""")


def start_growing_run(ws: Path, run_id: str, first: int, total: int, mode: str) -> subprocess.Popen:
    """Start GROWING_RUN detached in its own session (as the launcher starts a stage)."""
    run_dir = ws / "runs" / run_id
    run_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(wandb_environment(Workspace(ws)), PYTHONPATH=str(ROOT))
    for key in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", GROWING_RUN, str(run_dir), str(first), str(total), mode],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.fixture
def server():
    with FakeWandb(api_key=API_KEY) as s:
        yield s


def other_home(tmp_path: Path, url: str) -> dict[str, str]:
    """The connected machine: another HOME (no wandb settings, no netrc) talking to the loopback server."""
    home = tmp_path / "other-home"
    home.mkdir(exist_ok=True)
    return client_env(url, HOME=str(home))


def manifest_of(path: Path) -> dict:
    with tarfile.open(path, "r:*") as tar:
        return json.loads(tar.extractfile(bundle.MANIFEST_NAME).read())


def test_a_moved_workspace_syncs_whole_under_another_home(tmp_path, server):
    box = tmp_path / "box" / "ws"
    make_offline_run(box, "sft-20260101-000000-aaaa", steps=5, artifact=True)
    make_offline_run(box, "evaluate-20260101-000100-bbbb", steps=1, artifact=False)
    moved = tmp_path / "usb" / "copied-ws"
    moved.parent.mkdir()
    shutil.copytree(box, moved, symlinks=True)
    shutil.rmtree(tmp_path / "box")  # the original path is gone
    env = other_home(tmp_path, server.url)
    results = sync.sync_runs(moved, env=env, timeout=60)
    assert [r.state for r in results] == ["synced", "synced"], [r.reason for r in results]
    (sft,) = [r for r in sync.list_offline_runs(moved) if r.run_id.startswith("sft")]
    (art,) = server.run_artifacts(sft.wandb_id)
    assert art["state"] == "COMMITTED" and art["commits"] == 1
    assert history_steps(server, sft.wandb_id) == [1, 2, 3, 4, 5]
    seen = len(server.requests)
    assert [r.state for r in sync.sync_runs(moved, env=env, timeout=60)] == ["skipped", "skipped"]
    assert len(server.requests) == seen  # the second sync sends nothing


def test_a_bundle_carries_runs_whole_and_the_receipt_comes_back(tmp_path, server):
    box = tmp_path / "box"
    make_offline_run(box, "sft-20260101-000000-aaaa", steps=4, artifact=True)
    make_offline_run(box, "grpo-20260101-000100-bbbb", steps=3, artifact=False)
    (box / "runs" / "sft-20260101-000000-aaaa" / "adapter").mkdir()
    (box / "runs" / "sft-20260101-000000-aaaa" / "adapter" / "adapter_model.safetensors").write_bytes(b"w" * 5000)
    out = tmp_path / "carry" / "runs.tar.gz"
    out.parent.mkdir()
    res = cli("bundle", "--all", "-o", str(out), "--workspace", str(box))
    assert res.returncode == 0, res.stderr
    assert "model files (checkpoints, adapters, merged): 4.9 KB left out; pass --with-models" in res.stdout
    names = {f["path"] for f in manifest_of(out)["files"]}
    assert not any("adapter" in n for n in names)  # no weights by default
    assert any(n.startswith(".wandb/data/artifacts/staging/") for n in names)  # the artifact's staged file
    assert "runs/sft-20260101-000000-aaaa/state.json" in names

    conn = tmp_path / "connected"
    env = other_home(tmp_path, server.url)
    up = cli("sync", str(out), "--workspace", str(conn), env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "2 of 2 run(s) synced and verified" in up.stdout
    runs = {r.run_id: r for r in sync.list_offline_runs(conn)}
    assert history_steps(server, runs["sft-20260101-000000-aaaa"].wandb_id) == [1, 2, 3, 4]
    assert history_steps(server, runs["grpo-20260101-000100-bbbb"].wandb_id) == [1, 2, 3]
    (art,) = server.run_artifacts(runs["sft-20260101-000000-aaaa"].wandb_id)
    assert art["state"] == "COMMITTED"
    seen = len(server.requests)
    again = cli("sync", str(out), "--workspace", str(conn), env=env)  # same bundle again: idempotent
    assert again.returncode == 0 and "0 file(s) written" in again.stdout and len(server.requests) == seen

    (receipt,) = receipts.list_receipts(conn)[:1]
    carried_back = tmp_path / "carry" / receipt.path.name
    shutil.copy(receipt.path, carried_back)
    status = cli("sync", "--receipt", str(carried_back), "--workspace", str(box))
    assert status.returncode == 0, status.stderr
    assert status.stdout.count(f"reached {server.url} (verified; receipt from") == 2
    for text in (up.stdout, up.stderr, receipt.path.read_text()):
        assert API_KEY not in text


def test_with_models_carries_the_weights(tmp_path):
    box = tmp_path / "box"
    make_offline_run(box, "sft-20260101-000000-aaaa", steps=2, artifact=False)
    weights = box / "runs" / "sft-20260101-000000-aaaa" / "checkpoints" / "checkpoint-2" / "model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(os.urandom(3000))
    plan = bundle.plan_bundle(box, ["sft-2026"], with_models=True)
    assert plan.model_bytes == 3000 and any(e.path.endswith("model.safetensors") for e in plan.entries)
    info = bundle.make_bundle(box, tmp_path / "b.tar", plan=plan)
    bundle.import_bundle(info.path, tmp_path / "conn")
    copied = tmp_path / "conn" / weights.relative_to(box)
    assert copied.read_bytes() == weights.read_bytes()


def _flip_byte_in(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(needle)
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_corrupt_truncated_or_tampered_bundle_is_refused_and_nothing_is_sent(tmp_path, server):
    box = tmp_path / "box"
    make_offline_run(box, "sft-20260101-000000-aaaa", steps=3, artifact=False)
    (box / "runs" / "sft-20260101-000000-aaaa" / "config.toml").write_text("[sft]\nlearning_rate = 0.0005\n")
    good = bundle.make_bundle(box, tmp_path / "good.tar").path
    conn = tmp_path / "conn"
    env = other_home(tmp_path, server.url)

    corrupt = tmp_path / "corrupt.tar"
    shutil.copy(good, corrupt)
    _flip_byte_in(corrupt, b"learning_rate = 0.0005")
    res = cli("sync", str(corrupt), "--workspace", str(conn), env=env)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "runs/sft-20260101-000000-aaaa/config.toml: content does not match the manifest" in res.stderr
    assert not (conn / "runs").exists() or not any((conn / "runs").iterdir())  # nothing visible
    assert not list((conn / ".wandb").glob("import-*"))  # no temp dir left behind
    assert server.requests == []  # nothing sent

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(bundle.BundleError, match="truncated|damaged"):
        bundle.import_bundle(truncated, conn)

    packed = tmp_path / "good.tar.gz"
    bundle.make_bundle(box, packed)
    data = bytearray(packed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    packed.write_bytes(bytes(data))
    with pytest.raises(bundle.BundleError):
        bundle.import_bundle(packed, conn)
    assert not (conn / "runs").exists() or not any((conn / "runs").iterdir())


def _write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _header(version: int = bundle.VERSION) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(bundle.HEADER_NAME), json.dumps(
        {"format": bundle.FORMAT, "version": version, "runs": {}}
    ).encode()


@pytest.mark.parametrize(
    "name, kind, message",
    [
        ("../escaped.txt", "file", "path escapes the workspace"),
        ("runs/x/../../../escaped.txt", "file", "path escapes the workspace"),
        ("/tmp/escaped.txt", "file", "absolute path"),
        ("runs/x/link", "symlink", "a link (to '../../../..')"),
        ("models/evil.bin", "file", "not under runs/<run>/ or .wandb/data/"),
        ("runs/loose-file", "file", "not under runs/<run>/ or .wandb/data/"),
    ],
)
def test_paths_that_would_escape_the_workspace_are_refused(tmp_path, name, kind, message):
    info = tarfile.TarInfo(name)
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "../../../.."
    evil = _write_tar(tmp_path / "evil.tar", [_header(), (info, b"x" if kind == "file" else None)])
    with pytest.raises(bundle.BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        bundle.import_bundle(evil, tmp_path / "ws")
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/escaped.txt").exists()
    assert not list((tmp_path / "ws").rglob("*link*"))


def test_a_newer_or_unknown_format_version_is_refused_naming_it(tmp_path):
    newer = _write_tar(tmp_path / "newer.tar", [_header(version=7)])
    res = cli("bundle", "import", str(newer), "--workspace", str(tmp_path / "ws"))
    assert res.returncode == 1 and "bundle format version 7 is newer than this ftmodel reads (version 1)" in res.stderr
    odd = _write_tar(tmp_path / "odd.tar", [_header(version="one")])  # type: ignore[arg-type]
    with pytest.raises(bundle.BundleError, match="unknown bundle format version 'one'"):
        bundle.import_bundle(odd, tmp_path / "ws")


def _history_rows(wandb_file: Path) -> int:
    return sum(record_type(r) == "history" for r in read_log_records(wandb_file)[1])


def test_new_bundles_carry_only_what_grew_and_the_server_gets_each_row_once(tmp_path, server):
    box, conn = tmp_path / "box", tmp_path / "conn"
    proc = start_growing_run(box, "sft-20260101-000000-aaaa", first=3, total=7, mode="pause")
    run_dir = box / "runs" / "sft-20260101-000000-aaaa"
    try:
        wait_for(lambda: (run_dir / "ready").exists(), timeout=120, what="the run's first rows")
        first = bundle.make_bundle(box, tmp_path / "first.tar", new_only=True)
    finally:
        (run_dir / "go").write_text("")
    assert proc.wait(timeout=120) == 0
    second = bundle.make_bundle(box, tmp_path / "second.tar", new_only=True)
    kinds = {f["path"].rsplit("/", 1)[-1]: f["kind"] for f in manifest_of(second.path)["files"]}
    assert kinds["metrics.jsonl"] == "append" and kinds["state.json"] == "whole"
    assert any(k.endswith(".wandb") and v == "append" for k, v in kinds.items())
    piece = [f for f in manifest_of(second.path)["files"] if f["path"].endswith("metrics.jsonl")][0]
    (before,) = [f for f in manifest_of(first.path)["files"] if f["path"].endswith("metrics.jsonl")]
    assert (
        piece["offset"] == before["size"]
        and before["size"] + piece["size"] == (run_dir / "metrics.jsonl").stat().st_size
    )
    assert (run_dir / "metrics.jsonl").read_bytes()[piece["offset"] :].startswith(b'{"step": 4')  # only the new rows
    with pytest.raises(bundle.BundleError, match="nothing new to carry"):
        bundle.make_bundle(box, tmp_path / "third.tar", new_only=True)

    env = other_home(tmp_path, server.url)
    with pytest.raises(bundle.BundleError, match="import the earlier bundle"):
        bundle.import_bundle(second.path, conn)  # a continuation needs what it continues
    up = cli("sync", str(first.path), "--workspace", str(conn), env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "synced (run was still running on" in up.stdout and "synced but not whole" in up.stdout
    (run,) = sync.list_offline_runs(conn)
    rows_then = _history_rows(run.wandb_file)
    assert history_steps(server, run.wandb_id) == list(range(1, rows_then + 1))

    up = cli("sync", str(second.path), "--workspace", str(conn), env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "1 of 1 run(s) synced and verified" in up.stdout
    assert (conn / run.key).exists() and (conn / "runs" / run.run_id / "metrics.jsonl").read_bytes() == (
        run_dir / "metrics.jsonl"
    ).read_bytes()
    assert history_steps(server, run.wandb_id) == [1, 2, 3, 4, 5, 6, 7]  # each row once
    (art,) = server.run_artifacts(run.wandb_id)
    assert art["state"] == "COMMITTED"
    again = bundle.import_bundle(first.path, conn)  # an old bundle again changes nothing
    assert again.written == 0
    assert (conn / "runs" / run.run_id / "metrics.jsonl").read_bytes() == (run_dir / "metrics.jsonl").read_bytes()


def test_the_bundle_command_shows_sizes_first_and_names_what_is_missing(tmp_path):
    run_dir = tmp_path / "runs" / "sft-20260101-000000-aaaa"
    (run_dir / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    (run_dir / "checkpoints" / "checkpoint-5" / "model.safetensors").write_bytes(b"w" * 2048)
    (run_dir / "state.json").write_text(json.dumps({"run_id": run_dir.name, "stage": "sft", "state": "finished"}))
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    ws = str(tmp_path)
    dry = cli("bundle", "--all", "--dry-run", "--workspace", ws)
    assert dry.returncode == 0 and "sft-20260101-000000-aaaa" in dry.stdout
    assert "2.0 KB left out; pass --with-models" in dry.stdout and "to carry: 2 file(s)" in dry.stdout
    assert cli("bundle", "--workspace", ws).returncode == 2
    assert "-o FILE" in cli("bundle", "--all", "--workspace", ws).stderr
    missing = cli("bundle", "grpo-nope", "-o", str(tmp_path / "x.tar"), "--workspace", ws)
    assert missing.returncode == 2 and "no run 'grpo-nope'" in missing.stderr
    assert not (tmp_path / "x.tar").exists()
    made = cli("bundle", "sft", "-o", str(tmp_path / "x.tar.gz"), "--workspace", ws)
    assert made.returncode == 0 and "wrote" in made.stdout and "MB/s" in made.stdout
    verify = cli("bundle", "verify", str(tmp_path / "x.tar.gz"), "--workspace", str(tmp_path / "other"))
    assert verify.returncode == 0 and "ok (format 1, 1 run(s)" in verify.stdout


def test_a_receipt_tells_the_box_what_arrived_and_what_grew_since(tmp_path):
    box = tmp_path / "box"
    make_offline_run(box, "sft-20260101-000000-aaaa", steps=2, artifact=False)
    (run,) = sync.list_offline_runs(box)
    size = run.wandb_file.stat().st_size
    ledger = {
        run.key: {
            "state": "synced",
            "reason": "verified",
            "url": "http://127.0.0.1:1/e/p/runs/x",
            "server": "http://127.0.0.1:1",
            "wandb_size": size - 100,
            "counts": {},
        }
    }
    written = receipts.write_receipt(tmp_path / "conn", [run.key], ledger)
    carried = tmp_path / "receipt.json"
    shutil.copy(written, carried)
    res = cli("sync", "--receipt", str(carried), "--workspace", str(box))
    assert res.returncode == 0 and "reached http://127.0.0.1:1 (verified; receipt from" in res.stdout
    assert "has grown since: `ftmodel bundle --new` carries the rest" in res.stdout
    assert sync.status(box)[0].remote["url"] == "http://127.0.0.1:1/e/p/runs/x"
    (tmp_path / "junk.json").write_text("[1, 2]")
    bad = cli("sync", "--receipt", str(tmp_path / "junk.json"), "--workspace", str(box))
    assert bad.returncode == 1 and "junk.json: not an ftmodel sync receipt" in bad.stderr
