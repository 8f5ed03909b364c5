"""The resume facts without a trainer: the schedule formulas against transformers' own, what a
checkpoint says, which changed keys refuse, and the continuity check's verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftmodel.resume import continuity_problem, lr_factor, resume_facts, warmup_steps
from tests.conftest import write_config


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant", "constant_with_warmup"])
def test_the_schedule_formulas_are_transformers_own(kind):
    import torch
    from transformers import get_scheduler

    total, warmup = 37, warmup_steps(0.1, 37)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_scheduler(kind, opt, num_warmup_steps=warmup, num_training_steps=total)
    for step in range(total + 2):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_factor(kind, step, total, warmup), abs=1e-12), step
        opt.step()
        sched.step()


def sft_run(ws: Path, run_id: str = "sft-20260101-000000-0001", step: int = 40, **overrides) -> Path:
    path = ws / "runs" / run_id
    ckpt = path / "checkpoints" / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    write_config(path / "config.toml", {"sft": {"max_steps": 100}, **overrides})
    (path / "state.json").write_text(json.dumps({"run_id": run_id, "stage": "sft", "state": "cancelled"}))
    state = {"global_step": step, "max_steps": 100, "epoch": 0.32, "train_batch_size": 16}
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    return path


def config(**sections) -> dict:
    from ftmodel.config import load

    return load(write_config(Path(sections.pop("_dir")) / "now.toml", sections)).to_dict()


def test_an_unchanged_resume_continues_the_checkpoints_schedule(tmp_path):
    sft_run(tmp_path / "ws")
    facts = resume_facts(tmp_path / "ws", "sft", "latest", config(_dir=tmp_path, sft={"max_steps": 100}))
    assert facts.step == 40 and facts.total == 100 and facts.samples == 640 and facts.changed == []
    assert facts.next_lr == pytest.approx(5e-3 * lr_factor("cosine", 40, 100, 3))
    assert not facts.schedule_jumps and facts.refusal() is None


def test_a_new_peak_does_not_apply_and_a_new_length_jumps_one_step_late(tmp_path):
    sft_run(tmp_path / "ws")
    now = config(_dir=tmp_path, sft={"max_steps": 200, "learning_rate": 1e-3})
    facts = resume_facts(tmp_path / "ws", "sft", "latest", now)
    assert facts.schedule.peak == 5e-3  # the scheduler's state comes from the checkpoint
    assert facts.next_lr == pytest.approx(5e-3 * lr_factor("cosine", 40, 100, 3))  # the optimizer's rate
    assert facts.schedule_jumps
    assert any("warning: the schedule changed since the checkpoint: step 41" in line for line in facts.lines())


@pytest.mark.parametrize(
    "change,key,forceable",
    [
        ({"lora": {"r": 8}}, "lora.r", False),
        ({"lora": {"target_modules": "q_proj,v_proj"}}, "lora.target_modules", False),
        ({"model": {"tiny_seed": 3}}, "model.tiny_seed", False),
        ({"data": {"seed": 3}}, "data.seed", True),
    ],
)
def test_changed_keys_that_break_a_resume_are_refused_by_name(tmp_path, change, key, forceable):
    sft_run(tmp_path / "ws")
    facts = resume_facts(tmp_path / "ws", "sft", "latest", config(_dir=tmp_path, sft={"max_steps": 100}, **change))
    assert key in facts.refusal(force=False)
    assert (facts.refusal(force=True) is None) == forceable


def test_changed_training_data_is_found_by_its_content_hash(tmp_path):
    from ftmodel.fingerprint import hash_path

    ws = tmp_path / "ws"
    run = sft_run(ws)
    data = ws / "data" / "sft.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text('{"question": "a"}\n')
    st = json.loads((run / "state.json").read_text())
    st["fingerprint"] = {"parts": {"inputs": {"data/sft.jsonl": hash_path(data)}}}
    (run / "state.json").write_text(json.dumps(st))
    now = config(_dir=tmp_path, sft={"max_steps": 100})
    assert resume_facts(ws, "sft", "latest", now).refusal() is None
    data.write_text('{"question": "b"}\n')
    facts = resume_facts(ws, "sft", "latest", now)
    assert facts.data_keys == ["data/sft.jsonl"] and "data/sft.jsonl changed" in facts.refusal()


def test_the_continuity_check_names_a_reset_step_a_rewound_epoch_and_a_wrong_rate():
    sched = {"kind": "linear", "peak": 1e-3, "total": 100, "warmup": 0}
    facts = {"step": 40, "epoch": 0.4, "logging_steps": 5, "schedule": sched, "resumed_lr": 1e-3 * 0.6}
    assert continuity_problem(facts, 41, 1e-3 * 0.6, 0.41) is None
    assert continuity_problem(facts, 45, 1e-3 * 0.56, 0.45) is None  # the next logged step
    assert "the first step after the resume is 1, not 41" in continuity_problem(facts, 1, 1e-3, 0.01)
    assert "the data position went back" in continuity_problem(facts, 41, 1e-3 * 0.6, 0.01)
    assert "the learning rate at step 41 is 0.001, not 0.0006" in continuity_problem(facts, 41, 1e-3, 0.41)


def test_a_run_of_another_stage_is_not_resumed(tmp_path):
    from ftmodel.resume import ResumeError

    run = sft_run(tmp_path / "ws")
    with pytest.raises(ResumeError, match=f"run {run.name} is a sft run, not grpo"):
        resume_facts(tmp_path / "ws", "grpo", run.name, config(_dir=tmp_path))
