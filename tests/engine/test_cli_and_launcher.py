"""The CLI and the launcher on the stdlib-only stages: detached runs, state, resumable distill."""

import json
from pathlib import Path

from ftmodel.data import bank
from ftmodel.data.loaders import write_jsonl
from tests.conftest import cli, openai_teacher, read_metrics, read_state, wait_for


def prepared_workspace(tmp_path: Path, n_train: int = 120) -> Path:
    """A workspace with raw questions, written directly (no model needed)."""
    ws = tmp_path / "ws"
    train, evals = bank.generate_bank(0, n_train, 16)
    write_jsonl(ws / "data" / "raw" / "train.jsonl", train)
    write_jsonl(ws / "data" / "raw" / "eval.jsonl", evals)
    return ws


def only_run(ws: Path, stage: str) -> Path:
    runs = [p for p in (ws / "runs").iterdir() if p.name.startswith(stage + "-")]
    assert len(runs) == 1, runs
    return runs[0]


def test_preflight_errors_are_one_clear_line_and_create_no_run(tmp_path):
    ws = tmp_path / "ws"
    res = cli("sft", "--workspace", str(ws))
    assert res.returncode == 2
    assert "error:" in res.stderr and "run `ftmodel filter` first" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert not (ws / "runs").exists()
    res = cli("grpo", "--workspace", str(ws), "--set", "grpo.num_generations=3")
    assert res.returncode == 2 and "grpo.num_generations (3) must divide" in res.stderr


def test_missing_model_dir_is_reported_before_anything_loads(tmp_path):
    ws = prepared_workspace(tmp_path)
    res = cli("prepare", "--workspace", str(ws), "--set", "model.name_or_path=/no/such/model")
    assert res.returncode == 2 and "model.name_or_path: model directory /no/such/model not found" in res.stderr


def test_detached_stage_writes_the_run_directory_contract(tmp_path):
    ws = prepared_workspace(tmp_path)
    res = cli("distill", "--workspace", str(ws), "--detach", "--set", "wandb.enabled=false")
    assert res.returncode == 0, res.stderr
    run = only_run(ws, "distill")
    state = wait_for(lambda: (s := read_state(run)).get("state") in ("finished", "failed") and s, what="distill")
    assert state["state"] == "finished" and state["exit_code"] == 0
    assert state["pid"] > 0 and state["proc_start"] > 0 and state["started"] <= state["ended"]
    assert state["argv"][:2] == ["ftmodel", "distill"] and state["progress"]["step"] == 120
    assert state["wandb"]["mode"] == "disabled"
    assert "[wandb]" in (run / "config.toml").read_text()
    assert "120 to do" in (run / "stage.log").read_text()
    assert read_metrics(run)[-1]["distill/done"] == 120
    listing = cli("runs", "--workspace", str(ws))
    assert run.name in listing.stdout and "finished" in listing.stdout


def test_distill_resumes_without_redoing_or_duplicating(tmp_path):
    ws = prepared_workspace(tmp_path)
    assert cli("distill", "--workspace", str(ws), "--set", "wandb.enabled=false").returncode == 0
    out = ws / "data" / "distilled.jsonl"
    lines = out.read_text().splitlines()
    # Simulate a crash after 50 records, with the 51st torn mid-write.
    out.write_text("\n".join(lines[:50]) + "\n" + lines[50][:20])
    res = cli("distill", "--workspace", str(ws), "--set", "wandb.enabled=false")
    assert res.returncode == 0 and "50 already distilled, 70 to do" in res.stdout
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 120


def test_filter_drops_the_spoiled_samples_and_reports_per_qtype(tmp_path):
    ws = prepared_workspace(tmp_path, n_train=400)
    assert (
        cli(
            "distill",
            "--workspace",
            str(ws),
            "--set",
            "wandb.enabled=false",
            "--set",
            "distill.builtin_error_rate=0.25",
        ).returncode
        == 0
    )
    res = cli("filter", "--workspace", str(ws), "--set", "wandb.enabled=false")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads((only_run(ws, "filter") / "filter_report.json").read_text())
    assert report["total"] == 400 and 0 < report["kept"] < 400
    assert set(report["dropped"]) <= {"format", "incorrect"} and sum(report["dropped"].values()) == 400 - report["kept"]
    assert set(report["per_qtype"]) == set(bank.QTYPES)
    kept = (ws / "data" / "sft.jsonl").read_text().splitlines()
    assert len(kept) == report["kept"]


def test_filter_that_keeps_nothing_fails_clearly(tmp_path):
    ws = prepared_workspace(tmp_path)
    assert (
        cli(
            "distill", "--workspace", str(ws), "--set", "wandb.enabled=false", "--set", "distill.builtin_error_rate=1.0"
        ).returncode
        == 0
    )
    res = cli("filter", "--workspace", str(ws), "--set", "wandb.enabled=false")
    assert res.returncode == 2 and "the filter kept 0 of 120 samples" in res.stdout
    assert read_state(only_run(ws, "filter"))["state"] == "failed"


def test_stop_now_escalates_at_once_and_records_who_asked(tmp_path):
    import os
    import subprocess
    import sys
    import threading

    from tests.conftest import ROOT
    from tests.fake_openai import FakeOpenAI

    ws = prepared_workspace(tmp_path, n_train=8)
    gate = threading.Event()  # the teacher holds its first answer until the stop is under way
    with FakeOpenAI(responder=lambda messages: gate.wait(120) and "x") as srv:
        res = cli(
            "distill",
            "--detach",
            "--workspace",
            str(ws),
            *openai_teacher(srv.base_url, "--set", "distill.timeout_s=200"),
        )
        assert res.returncode == 0, res.stderr
        run = only_run(ws, "distill")
        wait_for(lambda: srv.requests, timeout=120, what="the teacher to be asked")
        stop = subprocess.Popen(
            [sys.executable, "-m", "ftmodel", "stop", run.name, "--now", "--workspace", str(ws)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        request = wait_for(lambda: read_state(run).get("stop_request"), timeout=120, what="the stop request")
        gate.set()  # the request in flight returns; the stage, already told to stop now, ends
        out, err = stop.communicate(timeout=120)
    assert stop.returncode == 0 and f"{run.name}: cancelled" in out, out + err
    state = read_state(run)
    assert state["state"] == "cancelled" and state["error"] == "stopped on request" and state["exit_code"] == 130
    assert request["now"] is True and request["target_pid"] == state["pid"] and "ftmodel (pid" in request["by"]
    assert "stop requested: saving" not in (run / "stage.log").read_text()  # SIGTERM, not the graceful SIGINT


def test_a_reader_that_goes_away_ends_the_listing_quietly(tmp_path):
    # `ftmodel runs | head`: the pipe closes while the listing is written; no traceback, SIGPIPE's status.
    import subprocess
    import sys

    from tests.tui.fake_runs import make_run

    for i in range(1500):  # more than a pipe holds, so the writer is still writing when the reader leaves
        make_run(tmp_path, f"sft-20260101-{i:06d}-0001", "sft", "finished", progress=(10, 10))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftmodel", "runs", "--workspace", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err
