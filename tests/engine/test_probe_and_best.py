"""The probe scored at every checkpoint, the best checkpoint kept through rotation and named in
best.json, and `--checkpoint best|last|STEP` loading exactly that step's weights: real TRL on the
tiny model through the real CLI. The choice and the probe set themselves are checked without a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftmodel.checkpoints import better, parse_checkpoint, select_adapter, write_best
from ftmodel.context import StageError
from ftmodel.probe import pick_questions
from tests.conftest import SMALL_OVERRIDES, cli, read_metrics, read_state, write_config

# SFT saves at 4, 8 and 12 and keeps one checkpoint; the best is chosen by a metric whose best step is
# known in advance (the cosine schedule's learning rate is highest at the first save), so the test
# knows which checkpoint must survive rotation and be loaded.
SFT_FLAGS = (
    "--set",
    "sft.save_steps=4",
    "--set",
    "sft.save_total_limit=1",
    "--set",
    "probe.best_metric=learning_rate",
    "--set",
    "probe.size=16",
)


def run_id_of(res) -> str:
    return res.stdout.split("run ", 1)[1].split()[0]


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    """(workspace, config, SFT run dir) after prepare, distill, filter and a probed SFT."""
    root = tmp_path_factory.mktemp("probe")
    config = write_config(root / "small.toml", SMALL_OVERRIDES)
    ws = root / "ws"
    common = ("--config", str(config), "--workspace", str(ws))
    for stage in ("prepare", "distill", "filter"):
        res = cli(stage, *common, "--set", "wandb.enabled=false")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    res = cli("sft", *common, *SFT_FLAGS)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    return ws, config, ws / "runs" / run_id_of(res)


@pytest.mark.slow
def test_probe_metrics_appear_at_each_checkpoint_in_metrics_jsonl_and_wandb(sft_run):
    from tests.engine.test_stages import wandb_records

    _, _, run = sft_run
    probes = [r for r in read_metrics(run) if "probe/answer_accuracy" in r]
    assert [r["step"] for r in probes] == [4, 8, 12]
    qtypes = {k for k in probes[0] if k.startswith("probe/answer_accuracy/")}
    assert qtypes and all(0.0 <= r["probe/format_accuracy"] <= 1.0 for r in probes)
    assert all(set(r) >= qtypes and r["probe/seconds"] > 0 for r in probes)
    history = [r["history"]["item"] for r in wandb_records(run) if r["type"] == "history"]
    probed = [h["_step"] for h in history if "probe/answer_accuracy" in h]
    assert probed == [4, 8, 12]


@pytest.mark.slow
def test_the_best_checkpoint_survives_rotation_and_is_recorded(sft_run):
    _, _, run = sft_run
    best = json.loads((run / "best.json").read_text())
    assert best["step"] == 4 and best["metric"] == "learning_rate" and best["checkpoint"] == "checkpoints/checkpoint-4"
    assert [h["step"] for h in best["history"]] == [4, 8, 12]
    # save_total_limit = 1 keeps the newest (the resume point) and the best, nothing else.
    kept = sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*"))
    assert kept == ["checkpoint-12", "checkpoint-4"]
    state = read_state(run)
    assert state["summary"]["best/step"] == 4 and state["outputs"]["best_checkpoint"].endswith("checkpoint-4")
    meta = json.loads((run / "checkpoints" / "checkpoint-4" / "ftmodel_adapter.json").read_text())
    assert meta["step"] == 4 and Path(meta["base"]).is_dir()


@pytest.mark.slow
def test_checkpoint_best_loads_that_steps_weights_not_the_last(sft_run):
    import torch
    from safetensors.torch import load_file

    from ftmodel.config import load
    from ftmodel.models import find_adapter
    from ftmodel.workspace import Workspace

    ws, config, run = sft_run
    adapter = find_adapter(Workspace(ws), run.name, "sft", "best")
    assert adapter == run / "checkpoints" / "checkpoint-4"
    saved = assert_loads_its_own_lora(adapter, load(config), run / "adapter")

    # Export merges the best step: its trained embeddings are that checkpoint's, not the final adapter's.
    res = cli("export", "--config", str(config), "--workspace", str(ws), "--adapter", run.name, "--checkpoint", "best")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    merged = ws / "runs" / run_id_of(res) / "merged"
    assert json.loads((merged / "ftmodel_export.json").read_text())["adapter"] == str(adapter)
    weights = load_file(str(next(merged.glob("*.safetensors"))))
    embed = next(v for k, v in saved.items() if "embed_tokens" in k)
    assert torch.equal(weights["model.embed_tokens.weight"], embed)


@pytest.mark.slow
def test_grpo_starts_from_the_best_sft_checkpoint_and_probes_too(sft_run):
    ws, config, run = sft_run
    res = cli("grpo", "--config", str(config), "--workspace", str(ws), "--sft-run", run.name, "--checkpoint", "best")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    grpo = ws / "runs" / run_id_of(res)
    parent = json.loads((grpo / "adapter" / "ftmodel_adapter.json").read_text())["parent"]
    assert parent == str(run / "checkpoints" / "checkpoint-4")
    assert [r["step"] for r in read_metrics(grpo) if "probe/answer_accuracy" in r] == [2]
    assert json.loads((grpo / "best.json").read_text())["step"] == 2


@pytest.mark.slow
def test_the_ablation_compares_the_best_checkpoint_against_the_last(sft_run):
    ws, config, run = sft_run
    res = cli(
        "ablation",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--set",
        "ablation.variants=['sft_only','sft_best']",
        "--set",
        "eval.num_samples=8",
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    ablation = ws / "runs" / run_id_of(res)
    summary = json.loads(next(ablation.glob("ablation_summary_*.json")).read_text())
    adapters = {v: summary["variants"][v]["adapter"] for v in summary["variants"]}
    assert adapters == {"sft_only": str(run / "adapter"), "sft_best": str(run / "checkpoints" / "checkpoint-4")}
    columns = summary["table"]["columns"]
    assert "sft_only/answer" in columns and "sft_best/answer" in columns


@pytest.mark.slow
def test_bad_checkpoint_values_are_refused_by_name(sft_run):
    ws, config, run = sft_run
    common = ("--config", str(config), "--workspace", str(ws))
    res = cli("evaluate", *common, "--checkpoint", "newest")
    assert res.returncode == 2 and "'newest' is not best, last or a step number" in res.stderr
    res = cli("evaluate", *common, "--adapter", run.name, "--checkpoint", "8")  # rotated away
    assert res.returncode != 0
    assert f"run {run.name} has no checkpoint for step 8" in res.stderr + res.stdout
    assert "checkpoints kept: 4, 12" in res.stderr + res.stdout
    res = cli("grpo", *common, "--sft-run", run.name, "--checkpoint", "999")
    assert res.returncode != 0 and "step 999" in res.stderr + res.stdout
    started = [p for p in (ws / "runs").iterdir() if read_state(p).get("args", {}).get("checkpoint") == "999"]
    assert not started  # refused before a run directory exists


def test_checkpoint_choices_parse_and_name_what_is_missing(tmp_path):
    assert [parse_checkpoint(v) for v in ("best", "LAST", " 40 ", "007")] == ["best", "last", "40", "7"]
    for bad in ("", "-1", "1.5", "newest"):
        with pytest.raises(ValueError, match="is not best, last or a step number"):
            parse_checkpoint(bad)
    run = tmp_path / "sft-20260101-000000-abcd"
    (run / "adapter").mkdir(parents=True)
    assert select_adapter(run, None) == select_adapter(run, "last") == run / "adapter"
    with pytest.raises(StageError, match="run sft-20260101-000000-abcd recorded no best checkpoint"):
        select_adapter(run, "best")
    write_best(run, step=30, metric="probe/answer_accuracy", mode="max", value=0.5, history=[])
    with pytest.raises(StageError, match="no checkpoint for best step 30.*checkpoints kept: none"):
        select_adapter(run, "best")
    (run / "checkpoints" / "checkpoint-30").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-30" / "adapter_config.json").write_text("{}")
    assert select_adapter(run, "best") == select_adapter(run, "30") == run / "checkpoints" / "checkpoint-30"
    (run / "best.json").write_text('{"step": "thirty"')  # torn or hand-edited: no best, said so
    with pytest.raises(StageError, match="recorded no best checkpoint"):
        select_adapter(run, "best")


def test_ties_go_to_the_later_step_and_nan_is_never_best():
    assert better(0.5, 0.5, "max") and better(0.5, 0.5, "min")
    assert better(0.6, 0.5, "max") and not better(0.4, 0.5, "max")
    assert better(0.4, 0.5, "min") and not better(0.6, 0.5, "min")
    assert better(0.0, None, "max") and not better(float("nan"), None, "max")
    assert better(0.1, float("nan"), "max") and better(0.1, "high", "min")  # a record with no number loses


def test_probe_questions_are_fixed_held_out_and_cover_every_type():
    evals = [{"id": f"e{i}", "qtype": f"t{i % 3}", "question": f"Q {i}?", "answer": "1"} for i in range(30)]
    train = [{"question": "q  0?"}, {"question": "Q 3?"}]  # the same text, however spaced or cased
    picked = pick_questions(evals, train, 9)
    assert len(picked) == 9 and picked == pick_questions(list(reversed(evals)), train, 9)
    assert not {"e0", "e3"} & {q["id"] for q in picked}
    assert sorted(q["qtype"] for q in picked) == ["t0"] * 3 + ["t1"] * 3 + ["t2"] * 3
    assert len(pick_questions(evals, train, 100)) == 28  # never more than the held-out questions


# ------------------------------------------------------------------------- a resume continues the best
@pytest.mark.slow
def test_a_resumed_run_keeps_the_earlier_best_and_loads_its_own_tensor(sft_run, tmp_path):
    """Resumed from step 12 to 16, its new checkpoint scores worse (the learning rate has decayed): the
    best stays step 4 of the earlier run, where its checkpoint still lives, and `best` loads it."""
    import shutil

    from ftmodel.config import load
    from ftmodel.models import find_adapter
    from ftmodel.workspace import Workspace

    ws0, config, run0 = sft_run
    ws = tmp_path / "ws"
    shutil.copytree(ws0, ws, symlinks=True)  # the other tests keep their workspace as it was
    earlier = ws / "runs" / run0.name
    res = cli(
        "sft", "--config", str(config), "--workspace", str(ws), "--resume", run0.name,
        *SFT_FLAGS, "--set", "sft.max_steps=16", "--set", "wandb.enabled=false",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    resumed = ws / "runs" / run_id_of(res)
    assert resumed != earlier and sorted(p.name for p in (resumed / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-16"
    ]
    best = json.loads((resumed / "best.json").read_text())
    assert (best["step"], best["run"]) == (4, earlier.name)
    assert best["checkpoint"] == f"../{earlier.name}/checkpoints/checkpoint-4"
    assert [(h["step"], h["run"]) for h in best["history"]] == [
        (4, earlier.name), (8, earlier.name), (12, earlier.name), (16, resumed.name)
    ]  # fmt: skip
    assert best["history"][-1]["value"] < best["value"]
    assert "carrying over the best so far, step 4 of run" in (resumed / "stage.log").read_text()
    state = read_state(resumed)
    assert state["outputs"]["best_checkpoint"] == str(earlier / "checkpoints" / "checkpoint-4")
    assert state["summary"]["best/step"] == 4

    adapter = find_adapter(Workspace(ws), resumed.name, "sft", "best")
    assert adapter == earlier / "checkpoints" / "checkpoint-4"
    assert_loads_its_own_lora(adapter, load(config), resumed / "adapter")


def assert_loads_its_own_lora(adapter: Path, cfg, final: Path) -> dict:
    """The model loaded from `adapter` holds that checkpoint's own LoRA tensor, which differs from the
    run's final adapter (`final`): the checkpoint, not the last weights, was loaded. Returns the
    checkpoint's saved tensors."""
    import torch
    from safetensors.torch import load_file

    from ftmodel.models import load_adapter_model

    model, _, _ = load_adapter_model(adapter, cfg)
    saved = load_file(str(adapter / "adapter_model.safetensors"))
    last = load_file(str(final / "adapter_model.safetensors"))
    key = next(k for k in saved if "lora_B" in k)
    loaded = dict(model.named_parameters())[key.replace(".weight", ".default.weight")]
    assert torch.equal(loaded.detach(), saved[key]) and not torch.equal(saved[key], last[key])
    return saved


def _fake_run(root: Path, name: str, steps=()) -> Path:
    run = root / name
    for step in steps:
        (run / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        (run / "checkpoints" / f"checkpoint-{step}" / "adapter_config.json").write_text("{}")
    run.mkdir(parents=True, exist_ok=True)
    return run


def test_a_carried_best_whose_checkpoint_is_gone_is_not_claimed(tmp_path):
    from ftmodel.checkpoints import carried_best

    earlier = _fake_run(tmp_path, "sft-a", steps=(4, 12))
    history = [{"step": 4, "value": 0.9}, {"step": 12, "value": 0.5}]
    write_best(earlier, step=4, metric="m", mode="max", value=0.9, history=history)
    resumed = _fake_run(tmp_path, "sft-b", steps=(16,))
    record, hist, note = carried_best(resumed, earlier, metric="m", mode="max")
    assert record == {"step": 4, "metric": "m", "mode": "max", "value": 0.9, "run": "sft-a"}
    assert [h["run"] for h in hist] == ["sft-a", "sft-a"] and "step 4 of run sft-a" in note
    write_best(resumed, **record, history=hist)
    assert select_adapter(resumed, "best") == earlier / "checkpoints" / "checkpoint-4"

    import shutil

    shutil.rmtree(earlier / "checkpoints" / "checkpoint-4")  # deleted by hand since
    record, hist, note = carried_best(resumed, earlier, metric="m", mode="max")
    assert record is None and len(hist) == 2
    assert "step 4 of run sft-a, is no longer on disk" in note and "not a candidate" in note
    with pytest.raises(StageError, match=r"no checkpoint for best step 4 \(of run sft-a, which it resumed\)"):
        select_adapter(resumed, "best")  # an old record naming it: refused by run and step, never another step

    # Another metric or mode: nothing compared, nothing carried, said so.
    record, hist, note = carried_best(resumed, earlier, metric="loss", mode="min")
    assert record is None and hist == [] and "by m (max), this run by loss (min)" in note
    # A hand-edited run name is never followed outside the runs folder.
    (earlier / "best.json").write_text(json.dumps({"step": 12, "run": "../../etc", "metric": "m", "mode": "max"}))
    record, _, _ = carried_best(resumed, earlier, metric="m", mode="max")
    assert record["run"] == "sft-a"
