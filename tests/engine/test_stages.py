"""Every stage on the tiny model, end to end through the real CLI, with real wandb offline runs
read back by wandb's own reader and compared with metrics.jsonl row by row."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ftmodel.rundir import STAGES
from tests.conftest import SMALL_OVERRIDES, cli, read_metrics, read_state, wait_for, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline_ws(tmp_path_factory):
    """Run the whole pipeline once on a small config; return (workspace, config path, cli result)."""
    root = tmp_path_factory.mktemp("pipeline")
    config = write_config(root / "small.toml", SMALL_OVERRIDES)
    ws = root / "ws"
    res = cli("pipeline", "--config", str(config), "--workspace", str(ws), "--no-judge", timeout=1200)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    return ws, config, res


def runs_by_stage(ws: Path) -> dict[str, Path]:
    out = {}
    for p in sorted((ws / "runs").iterdir()):
        out.setdefault(read_state(p)["stage"], p)
    return out


def wandb_records(run_dir: Path) -> list[dict]:
    """Read a run's offline .wandb file with wandb's own reader (`wandb leet inspect --json`)."""
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, offline
    exe = Path(sys.executable).parent / "wandb"
    out = subprocess.run(
        [str(exe), "leet", "inspect", "--json", str(offline[0])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def merged_by_step(rows: list[dict]) -> list[dict]:
    """metrics.jsonl rows as wandb keeps them: rows logged at one step (the trainer's, then the
    probe's at a checkpoint) are one history row."""
    out: list[dict] = []
    for row in rows:
        if out and out[-1]["step"] == row["step"]:
            out[-1] = {**out[-1], **row}
        else:
            out.append(dict(row))
    return out


def same(a, b) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9))


def test_pipeline_runs_every_stage_in_order_grouped(pipeline_ws):
    ws, _, res = pipeline_ws
    runs = runs_by_stage(ws)
    pipe = read_state(runs["pipeline"])
    assert pipe["state"] == "finished" and pipe["progress"] == {"step": 8, "total": 8}
    children = [read_state(ws / "runs" / c) for c in pipe["children"]]
    assert [c["stage"] for c in children] == list(STAGES)
    assert all(c["state"] == "finished" and c["group"] == pipe["run_id"] for c in children)
    assert "==> ablation (8/8)" in res.stdout  # the CLI followed the children's logs too


def test_sft_logs_the_original_metric_names_and_saves_an_adapter(pipeline_ws):
    ws, _, _ = pipeline_ws
    run = runs_by_stage(ws)["sft"]
    rows = read_metrics(run)
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 13))
    for key in ("loss", "learning_rate", "grad_norm", "epoch"):
        assert key in rows[0]
    assert (run / "adapter" / "adapter_config.json").exists()
    meta = json.loads((run / "adapter" / "ftmodel_adapter.json").read_text())
    assert meta["stage"] == "sft" and Path(meta["base"]).is_dir()
    assert read_state(run)["summary"]["train_runtime"] > 0
    assert (run / "checkpoints").is_dir()


def test_grpo_logs_reward_parts_and_kl(pipeline_ws):
    ws, _, _ = pipeline_ws
    rows = [r for r in read_metrics(runs_by_stage(ws)["grpo"]) if "loss" in r]  # the probe's rows aside
    assert len(rows) == 2
    for key in (
        "loss",
        "reward",
        "kl_divergence",
        "format_reward",
        "accuracy_reward",
        "learning_rate",
        "kl",
        "rewards/format_reward/mean",
        "frac_reward_zero_std",
    ):
        assert key in rows[0], key
    assert rows[0]["kl_divergence"] == rows[0]["kl"]
    meta = json.loads((runs_by_stage(ws)["grpo"] / "adapter" / "ftmodel_adapter.json").read_text())
    assert meta["parent"].endswith("adapter") and "sft-" in meta["parent"]
    completions_file = runs_by_stage(ws)["grpo"] / "completions.jsonl"
    completions = [json.loads(line) for line in completions_file.read_text().splitlines()]
    assert [c["step"] for c in completions] == [1] * 8 + [2] * 8  # batch 8 per step, every sample recorded
    assert set(completions[0]["rewards"]) == {"format_reward", "accuracy_reward"} and completions[0]["answer"]
    assert rows[0]["format_reward"] == sum(c["rewards"]["format_reward"] for c in completions[:8]) / 8


def test_evaluate_writes_reports_and_per_qtype_metrics(pipeline_ws):
    ws, _, _ = pipeline_ws
    run = runs_by_stage(ws)["evaluate"]
    report = json.loads(next(run.glob("eval_grpo_lora_*.json")).read_text())
    details = next(run.glob("eval_details_grpo_lora_*.jsonl")).read_text().splitlines()
    assert report["total"] == 32 == len(details)
    assert report["format_correct"] == sum(json.loads(d)["format_ok"] for d in details)
    row = read_metrics(run)[0]
    for key in ("format_accuracy", "answer_accuracy", "format_correct", "answer_correct"):
        assert key in row
    for qtype in report["per_qtype"]:
        assert f"{qtype}/format_accuracy" in row and f"{qtype}/total" in row
    assert read_state(run)["wandb"]["name"].startswith("evaluation-grpo_lora-")


def test_ablation_compares_three_variants(pipeline_ws):
    ws, _, res = pipeline_ws
    run = runs_by_stage(ws)["ablation"]
    summary = json.loads(next(run.glob("ablation_summary_*.json")).read_text())
    assert list(summary["variants"]) == ["base", "sft_only", "sft_grpo"]
    row = read_metrics(run)[0]
    for prefix in ("base_model", "sft_only", "sft_grpo"):
        assert f"{prefix}/format_accuracy" in row and f"{prefix}/answer_accuracy" in row
    assert "base_model/format" in res.stdout and "overall" in res.stdout
    assert read_state(run)["wandb"]["name"].startswith("ablation-study-")


def test_export_merges_into_a_standalone_model_with_the_same_outputs(pipeline_ws):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ws, _, _ = pipeline_ws
    merged_dir = runs_by_stage(ws)["export"] / "merged"
    adapter = runs_by_stage(ws)["grpo"] / "adapter"
    base = json.loads((adapter / "ftmodel_adapter.json").read_text())["base"]
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, peft_model(ids).logits, atol=1e-4)


@pytest.mark.parametrize("stage", ["prepare", "distill", "filter", "sft", "grpo", "evaluate", "export", "ablation"])
def test_wandb_offline_run_mirrors_metrics_jsonl(pipeline_ws, stage):
    ws, _, _ = pipeline_ws
    run = runs_by_stage(ws)[stage]
    records = wandb_records(run)
    history = [r["history"] for r in records if r["type"] == "history"]
    rows = merged_by_step(read_metrics(run))
    assert len(history) == len(rows)
    for row, h in zip(rows, history):
        item = h["item"]
        assert item["_step"] == row["step"]
        for key, value in row.items():
            if key in ("step", "time"):
                continue
            assert same(value, item[key]), (stage, row["step"], key, value, item.get(key))
        tables = {k.rsplit(".", 1)[0] for k in item if k.endswith("._type")}  # wandb.Table, flattened
        extra = {k for k in item if not k.startswith("_") and k not in row and k.split(".", 1)[0] not in tables}
        assert not extra, f"wandb has values metrics.jsonl lacks: {extra}"
    run_rec = next(r["run"] for r in records if r["type"] == "run")
    state = read_state(run)
    assert run_rec["display_name"] == state["wandb"]["name"] and run_rec["run_id"] == state["wandb"]["id"]
    assert {"evaluate": "evaluation"}.get(stage, stage) in run_rec["tags"] and run_rec["run_group"] == state["group"]
    assert next(r for r in records if r["type"] == "exit")["exit"]["exit_code"] == 0
    if stage in ("evaluate", "ablation"):
        names = {c["path"] for r in records if r["type"] == "artifact" for c in r["artifact"]["manifest"]["contents"]}
        pattern = "eval_" if stage == "evaluate" else "ablation_summary_"
        assert any(n.startswith(pattern) for n in names), names


def test_wandb_config_holds_the_original_fields_and_no_secret(pipeline_ws):
    ws, _, _ = pipeline_ws
    records = wandb_records(runs_by_stage(ws)["grpo"])
    config = next(r["run"] for r in records if r["type"] == "run")["config"]["update"]
    for key in (
        "use_judge",
        "num_generations",
        "temperature",
        "kl_coef",
        "format_reward_weight",
        "accuracy_reward_weight",
        "model_name",
        "lora_r",
    ):
        assert key in config, key


def test_wandb_stays_inside_the_workspace(pipeline_ws):
    ws, _, _ = pipeline_ws
    assert (ws / ".wandb" / "data").is_dir()
    staged = list((ws / ".wandb" / "data").rglob("*"))
    assert staged, "artifact staging should live in the workspace"


def test_sft_stop_saves_a_checkpoint_and_resume_continues(pipeline_ws, tmp_path):
    ws, config, _ = pipeline_ws
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
        "sft.save_steps=4",
        "--set",
        "wandb.enabled=false",
    )
    assert res.returncode == 0, res.stderr
    run_id = res.stdout.split("run ", 1)[1].split()[0]
    run = ws / "runs" / run_id
    wait_for(lambda: len(read_metrics(run)) >= 6, timeout=300, what="sft to log 6 steps")
    stop = cli("stop", run_id, "--workspace", str(ws))
    assert stop.returncode == 0 and "cancelled" in stop.stdout, stop.stdout + stop.stderr
    state = read_state(run)
    assert state["state"] == "cancelled" and state["exit_code"] == 130
    ckpts = sorted(run.glob("checkpoints/checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert ckpts, "a stopped run leaves a checkpoint to resume from"
    stopped_at = int(ckpts[-1].name.split("-")[1])
    assert stopped_at >= 6
    res = cli(
        "sft",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--resume",
        run_id,
        "--set",
        f"sft.max_steps={stopped_at + 3}",
        "--set",
        "wandb.enabled=false",
    )
    assert res.returncode == 0, res.stdout[-3000:]
    resumed = ws / "runs" / res.stdout.split("run ", 1)[1].split()[0]
    steps = [r["step"] for r in read_metrics(resumed) if "loss" in r]
    assert steps == list(range(stopped_at + 1, stopped_at + 4))
    assert read_state(resumed)["state"] == "finished"


def judge_flags(url: str, model: str = "judge") -> list[str]:
    # Judgements are cached per judge model: a distinct model name keeps tests independent.
    return [
        "--set",
        "judge.backend=openai",
        "--set",
        f"judge.base_url={url}",
        "--set",
        f"judge.model={model}",
        "--set",
        "judge.max_retries=0",
        "--set",
        "judge.timeout_s=5",
        "--set",
        "wandb.enabled=false",
    ]


def test_evaluate_with_an_openai_judge_reports_avg_judge_score(pipeline_ws):
    from tests.fake_openai import FakeOpenAI, Faults

    ws, config, _ = pipeline_ws
    with FakeOpenAI(faults=Faults(content="Score: 7")) as srv:
        res = cli(
            "evaluate",
            "--config",
            str(config),
            "--workspace",
            str(ws),
            "--eval-sft",
            "--set",
            "judge.enabled=true",
            *judge_flags(srv.base_url),
        )
        assert res.returncode == 0, res.stdout[-3000:]
        assert 0 < len(srv.requests) <= 32  # one request per distinct answer
    run = ws / "runs" / res.stdout.split("run ", 1)[1].split()[0]
    row = read_metrics(run)[0]
    assert row["avg_judge_score"] == pytest.approx(0.7) and row["judge_errors"] == 0
    assert any(k.endswith("/avg_judge_score") for k in row)
    # --no-judge turns it off without a server
    res = cli(
        "evaluate",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--eval-sft",
        "--no-judge",
        "--set",
        "judge.enabled=true",
        "--set",
        "judge.model=judge",
        "--set",
        "wandb.enabled=false",
    )
    assert res.returncode == 0
    run = ws / "runs" / res.stdout.split("run ", 1)[1].split()[0]
    assert "avg_judge_score" not in read_metrics(run)[0]


def test_evaluate_counts_judge_garbage_instead_of_crashing(pipeline_ws):
    from tests.fake_openai import FakeOpenAI, Faults

    ws, config, _ = pipeline_ws
    with FakeOpenAI(faults=Faults(content="I cannot grade this.")) as srv:
        res = cli(
            "evaluate",
            "--config",
            str(config),
            "--workspace",
            str(ws),
            "--eval-sft",
            "--set",
            "judge.enabled=true",
            *judge_flags(srv.base_url, model="garbage-judge"),
        )
    assert res.returncode == 0, res.stdout[-3000:]
    row = read_metrics(ws / "runs" / res.stdout.split("run ", 1)[1].split()[0])[0]
    assert row["judge_errors"] == 32 and "avg_judge_score" not in row


def test_a_partial_evaluation_is_rerun_and_asks_the_judge_only_for_the_missing_scores(pipeline_ws):
    import threading

    from tests.fake_openai import FakeOpenAI

    ws, config, _ = pipeline_ws
    lock, refused = threading.Lock(), []

    def judge(messages):  # the first answer it sees gets no verdict; every other one (and later that one) a score
        with lock:
            if not refused:
                refused.append(messages[-1]["content"])
                return "I cannot grade this."
        return "Score: 6"

    def evaluate(url):
        flags = ["--set", "judge.enabled=true", *judge_flags(url, model="flaky-judge")]
        res = cli("evaluate", "--config", str(config), "--workspace", str(ws), "--eval-sft", *flags)
        assert res.returncode == 0, res.stdout[-3000:]
        return res

    with FakeOpenAI(responder=judge) as srv:  # one server: its URL is part of the fingerprint
        res = evaluate(srv.base_url)
        first = ws / "runs" / res.stdout.split("run ", 1)[1].split()[0]
        mark = read_state(first)["partial"]
        assert mark["missing"] >= 1 and mark["total"] == 32 and "the judge gave no score for" in mark["reason"]
        assert read_metrics(first)[0]["judge_errors"] == mark["missing"]
        asked = len(srv.requests)
        res = evaluate(srv.base_url)
        assert f"evaluate: running again: {first.name} is partial (" in res.stdout
        assert [r["messages"][-1]["content"] for r in srv.requests[asked:]] == refused  # only the missing one
        second = ws / "runs" / res.stdout.split("run ", 1)[1].split()[0]
        assert "partial" not in read_state(second) and read_metrics(second)[0]["judge_errors"] == 0
        assert f"evaluate: reusing {second.name} (same inputs)" in evaluate(srv.base_url).stdout
        assert len(srv.requests) == asked + 1


def test_grpo_trains_only_on_the_chosen_question_types(pipeline_ws):
    ws, config, _ = pipeline_ws
    res = cli(
        "grpo",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--set",
        "grpo.qtypes=['rule_direction']",
        "--set",
        "grpo.max_steps=2",
        "--set",
        "wandb.enabled=false",
    )
    assert res.returncode == 0, res.stdout[-3000:]
    run = ws / "runs" / res.stdout.split("run ", 1)[1].split()[0]
    qtypes = {json.loads(line)["qtype"] for line in (run / "completions.jsonl").read_text().splitlines()}
    assert qtypes == {"rule_direction"}
    res = cli("grpo", "--config", str(config), "--workspace", str(ws), "--set", "grpo.qtypes=['nope']")
    assert res.returncode == 2 and "grpo.qtypes: no training questions of type nope" in res.stderr


def test_grpo_with_the_judge_as_a_reward(pipeline_ws):
    from tests.fake_openai import FakeOpenAI, Faults

    ws, config, _ = pipeline_ws
    with FakeOpenAI(faults=Faults(content="Score: 5")) as srv:
        res = cli(
            "grpo",
            "--config",
            str(config),
            "--workspace",
            str(ws),
            "--set",
            "grpo.use_judge=true",
            "--set",
            "grpo.max_steps=1",
            *judge_flags(srv.base_url, model="reward-judge"),
        )
        assert res.returncode == 0, res.stdout[-3000:]
        assert srv.requests
    row = read_metrics(ws / "runs" / res.stdout.split("run ", 1)[1].split()[0])[0]
    assert row["judge_reward"] == pytest.approx(0.5) and row["rewards/judge_reward/mean"] == pytest.approx(0.5)
    assert row["judge_errors"] == 0 and row["judge_calls"] >= 1


def test_hf_teacher_and_judge_run_on_the_tiny_local_model(pipeline_ws, tmp_path):
    import shutil

    from ftmodel.judge import Judge
    from ftmodel.llm import HFChatClient

    ws, config, _ = pipeline_ws
    base = json.loads((runs_by_stage(ws)["sft"] / "adapter" / "ftmodel_adapter.json").read_text())["base"]
    judge = Judge(HFChatClient(base, max_tokens=8), model_id="hf:tiny")
    scores = judge.score_many([("What is 2+2?", "4", "4")])
    assert judge.calls == 1 and (scores == [None]) == (judge.errors == 1)  # the tiny model rarely says a score
    ws2 = tmp_path / "ws2"
    shutil.copytree(ws / "data" / "raw", ws2 / "data" / "raw")
    res = cli(
        "distill",
        "--config",
        str(config),
        "--workspace",
        str(ws2),
        "--set",
        "distill.backend=hf",
        "--set",
        f"distill.model={base}",
        "--set",
        "distill.max_samples=3",
        "--set",
        "distill.max_tokens=16",
        "--set",
        "wandb.enabled=false",
    )
    assert res.returncode == 0, res.stdout[-3000:]
    rows = [json.loads(line) for line in (ws2 / "data" / "distilled.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["teacher"] == f"hf:{base}" for r in rows)


def test_log_model_uploads_the_adapter_as_an_artifact(pipeline_ws):
    ws, config, _ = pipeline_ws
    res = cli(
        "sft",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--set",
        "sft.max_steps=2",
        "--set",
        "wandb.log_model=true",
    )
    assert res.returncode == 0, res.stdout[-3000:]
    records = wandb_records(ws / "runs" / res.stdout.split("run ", 1)[1].split()[0])
    files = {
        c["path"]
        for r in records
        if r["type"] == "artifact" and r["artifact"]["type"] == "model"
        for c in r["artifact"]["manifest"]["contents"]
    }
    assert "adapter_config.json" in files and "ftmodel_adapter.json" in files
