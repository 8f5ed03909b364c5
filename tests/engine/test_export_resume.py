"""Export verified and resume checked, on a real short SFT of the tiny model: the merged model is
compared with the adapter on its base and with the base (and a broken merge fails by name); a resume
prints where it continues, refuses what cannot continue, and checks its first step."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SMALL_OVERRIDES, cli, read_metrics, read_state, write_config

pytestmark = pytest.mark.slow

FAULT_SITE = Path(__file__).resolve().parent / "merge_fault"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sft_ws(tmp_path_factory):
    """prepare → distill → filter → sft (12 steps, checkpoints at 6 and 12); return (workspace, config, sft run)."""
    root = tmp_path_factory.mktemp("verify")
    config = write_config(root / "small.toml", SMALL_OVERRIDES)
    ws = root / "ws"
    res = cli(
        "pipeline",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--stages",
        "prepare,distill,filter,sft",
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    (sft,) = [p for p in (ws / "runs").iterdir() if p.name.startswith("sft-")]
    return ws, config, sft


def run_of(stdout: str, ws: Path) -> Path:
    return ws / "runs" / stdout.split("run ", 1)[1].split()[0]


def wandb_summary(run_dir: Path) -> dict:
    """The offline run's summary, read back by wandb's own reader."""
    (offline,) = list((run_dir / "wandb").glob("offline-run-*"))
    exe = Path(sys.executable).parent / "wandb"
    out = subprocess.run(
        [str(exe), "leet", "inspect", "--summary", "--json", str(offline)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return json.loads(out)["summary"]


# ------------------------------------------------------------------------------------------- export


def test_export_check_passes_on_a_real_merge_and_is_reported(sft_ws):
    ws, config, _ = sft_ws
    res = cli("export", "--config", str(config), "--workspace", str(ws))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    run = run_of(res.stdout, ws)
    report = json.loads((run / "export_check.json").read_text())
    assert report["verdict"] == "pass" and report["problem"] is None
    assert report["dtype"] == "float32" and report["rule"] == "tokens identical"
    assert len(report["prompts"]) == 8
    eval_questions = [json.loads(line)["question"] for line in (ws / "data/raw/eval.jsonl").read_text().splitlines()]
    assert [p["prompt"] for p in report["prompts"]] == eval_questions[:8]  # held-out, in order
    for row in report["prompts"]:
        assert row["merged"] == row["adapter"] and row["merged_equals_adapter"]
        assert row["max_logit_diff"] < 1e-3
    assert report["prompts_differing_from_base"] >= 1
    assert "export check passed" in (run / "stage.log").read_text()
    summary = wandb_summary(run)
    assert summary["export/check_passed"] == 1
    assert summary["export/prompts_differing_from_base"] == report["prompts_differing_from_base"]


@pytest.mark.parametrize(
    "fault,named",
    [
        ("noop", "exactly as the base model does: the merge (or the adapter it merged) changed nothing"),
        ("perturb", "the merged model is not the adapter on its base"),
    ],
)
def test_a_broken_merge_fails_the_export_by_name(sft_ws, fault, named):
    ws, config, _ = sft_ws
    env = {"PYTHONPATH": f"{FAULT_SITE}:{ROOT}", "FTMODEL_TEST_MERGE_FAULT": fault}
    res = cli("export", "--config", str(config), "--workspace", str(ws), "--set", "wandb.enabled=false", env=env)
    assert res.returncode != 0, res.stdout[-3000:]
    run = run_of(res.stdout, ws)
    state = read_state(run)
    report = json.loads((run / "export_check.json").read_text())
    assert state["state"] == "failed" and named in state["error"] and named in report["problem"]
    assert report["verdict"] == "fail"
    if fault == "perturb":
        first = next(i for i, row in enumerate(report["prompts"]) if not row["merged_equals_adapter"])
        assert f"probe prompt {first + 1} (" in state["error"]
        assert report["prompts"][first]["prompt"][:20] in state["error"]
    else:
        assert all(row["merged_equals_base"] for row in report["prompts"])


def test_verification_rereads_the_saved_weights(sft_ws, tmp_path):
    """Saved merged weights edited after the export (the base's weights put back) fail the check run again."""
    from safetensors.torch import load_file, save_file

    from ftmodel import config as config_mod
    from ftmodel.export_check import probe_questions, verify_export

    ws, config, sft = sft_ws
    exports = sorted(p for p in (ws / "runs").iterdir() if p.name.startswith("export-"))
    merged = next(p / "merged" for p in exports if read_state(p)["state"] == "finished")
    copy = shutil.copytree(merged, tmp_path / "merged")
    base = json.loads((sft / "adapter" / "ftmodel_adapter.json").read_text())["base"]
    base_weights = load_file(str(Path(base) / "model.safetensors"))
    mine = load_file(str(copy / "model.safetensors"))
    save_file({k: base_weights[k].clone() for k in mine}, str(copy / "model.safetensors"), metadata={"format": "pt"})
    cfg = config_mod.load(config)
    report = verify_export(
        copy, sft / "adapter", cfg, probe_questions(ws / "data/raw/eval.jsonl", 3), log=lambda m: None
    )
    assert report["verdict"] == "fail"
    assert report["problem"].startswith("the merged model answers all 3 probe prompts exactly as the base model does")
    assert "(the adapter on its base answers 3 of them differently)" in report["problem"]


# ------------------------------------------------------------------------------------------- resume


def killed_after_first_checkpoint(ws: Path, sft: Path, name: str) -> str:
    """A copy of the SFT run as if killed after its step-6 checkpoint (the step-12 one never written)."""
    run_id = f"sft-20990101-000000-{name}"
    copy = shutil.copytree(sft, ws / "runs" / run_id, ignore=shutil.ignore_patterns("wandb"))
    shutil.rmtree(copy / "checkpoints" / "checkpoint-12")
    return run_id


def test_a_plain_resume_says_where_it_continues_and_its_first_step_continues_there(sft_ws):
    ws, config, sft = sft_ws
    run_id = killed_after_first_checkpoint(ws, sft, "plain")
    res = cli(
        "sft", "--config", str(config), "--workspace", str(ws), "--resume", run_id, "--set", "wandb.enabled=false"
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    original = {r["step"]: r for r in read_metrics(sft) if "learning_rate" in r}
    next_lr = original[7]["learning_rate"]  # what the uninterrupted run trained step 7 with
    assert "resuming " + run_id + " from checkpoint-6" in res.stderr
    assert "step: 6/12 (the next step is 7)" in res.stderr
    assert f"learning rate: {next_lr:.4g} next (cosine, peak 0.005 from the checkpoint" in res.stderr
    assert "data position: epoch 0.316, 48 samples seen" in res.stderr  # 6 of 19 batches per epoch, batch 8
    assert "config changed since the checkpoint's run:\n    wandb.enabled: True → False" in res.stderr
    resumed = run_of(res.stdout, ws)
    log = (resumed / "stage.log").read_text()
    assert "step: 6/12 (the next step is 7)" in log
    assert "resume check: step 7 follows checkpoint step 6" in log
    check = read_state(resumed)["resume_check"]
    assert check["ok"] is True and check["step"] == 7
    rows = [r for r in read_metrics(resumed) if "learning_rate" in r]
    assert [r["step"] for r in rows] == list(range(7, 13))
    for r in rows:  # the schedule goes on exactly as the uninterrupted run's did
        assert r["learning_rate"] == pytest.approx(original[r["step"]]["learning_rate"], rel=1e-6)


def test_a_lost_scheduler_state_is_caught_after_the_first_resumed_step(sft_ws):
    """A checkpoint without scheduler.pt: transformers restarts the schedule silently; the check names it."""
    ws, config, sft = sft_ws
    run_id = killed_after_first_checkpoint(ws, sft, "noscheduler")
    (ws / "runs" / run_id / "checkpoints" / "checkpoint-6" / "scheduler.pt").unlink()
    res = cli(
        "sft", "--config", str(config), "--workspace", str(ws), "--resume", run_id, "--set", "wandb.enabled=false"
    )
    assert res.returncode == 0, res.stdout[-3000:]
    resumed = run_of(res.stdout, ws)
    check = read_state(resumed)["resume_check"]
    assert check["ok"] is False and "the learning rate at step 7 is" in check["problem"]
    assert "RESUME CHECK FAILED: the learning rate at step 7" in (resumed / "stage.log").read_text()
    alerts = [json.loads(line) for line in (resumed / "alerts.jsonl").read_text().splitlines()]
    (alert,) = [a for a in alerts if a["rule"] == "resume_discontinuity"]
    assert alert["step"] == 7 and f"did not continue where {run_id} stopped" in alert["message"]
    assert "resume_discontinuity" in cli("alerts", resumed.name, "--workspace", str(ws)).stdout


def test_a_changed_lora_shape_is_refused_by_name_even_with_force(sft_ws):
    ws, config, sft = sft_ws
    before = sorted(p.name for p in (ws / "runs").iterdir())
    for force in ([], ["--force"]):
        res = cli(
            "sft", "--config", str(config), "--workspace", str(ws), "--resume", sft.name, "--set", "lora.r=8", *force
        )
        assert res.returncode == 2
        assert "lora.r: 16 → 8 !" in res.stderr
        assert f"error: --resume {sft.name}: lora.r changed since the checkpoint was saved" in res.stderr
        assert "--force does not change that" in res.stderr
    assert sorted(p.name for p in (ws / "runs").iterdir()) == before  # refused before any run exists


def test_changed_data_is_refused_without_force_and_continued_with_it(sft_ws):
    ws, config, sft = sft_ws
    run_id = killed_after_first_checkpoint(ws, sft, "data")
    args = ("sft", "--config", str(config), "--workspace", str(ws), "--resume", run_id, "--set", "wandb.enabled=false")
    res = cli(*args, "--set", "data.seed=7")
    assert res.returncode == 2 and "data.seed changed since the checkpoint was saved" in res.stderr
    assert "add --force to continue on the new data" in res.stderr
    res = cli(*args, "--set", "data.seed=7", "--force")
    assert res.returncode == 0, res.stdout[-3000:]
    resumed = run_of(res.stdout, ws)
    assert "--resume --force: continuing on changed data (data.seed)" in (resumed / "stage.log").read_text()
    assert read_state(resumed)["resume"]["forced"] == ["data.seed"]


def test_in_bfloat16_the_merged_model_is_held_to_a_logit_tolerance(sft_ws):
    """bf16 rounds W + BA once where the adapter path rounds each product: a stated logit tolerance, not tokens."""
    from ftmodel import config as config_mod
    from ftmodel.export_check import probe_questions, verify_export

    ws, config, sft = sft_ws
    exports = sorted(p for p in (ws / "runs").iterdir() if p.name.startswith("export-"))
    merged = next(p / "merged" for p in exports if read_state(p)["state"] == "finished")
    questions = probe_questions(ws / "data/raw/eval.jsonl", 3)
    cfg = config_mod.load(config, ["model.dtype=bfloat16"])
    report = verify_export(merged, sft / "adapter", cfg, questions, log=lambda m: None)
    assert report["verdict"] == "pass" and report["dtype"] == "bfloat16"
    assert report["rule"] == "max |logit difference| <= 0.5" and 0 < report["max_logit_diff"] <= 0.5
    strict = config_mod.load(config, ["model.dtype=bfloat16", "export.logit_tolerance=0.0"])
    report = verify_export(merged, sft / "adapter", strict, questions, log=lambda m: None)
    assert report["verdict"] == "fail"
    assert (
        "the merged model is not the adapter on its base: its logits differ from the adapter's by" in report["problem"]
    )
