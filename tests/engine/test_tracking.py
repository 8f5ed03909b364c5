"""The tracker: metrics.jsonl always; wandb off, missing or disabled by the environment."""

import json
import sys

from ftmodel.config import Config
from ftmodel.rundir import create_run
from ftmodel.tracking import Tracker, wandb_mode
from ftmodel.workspace import Workspace


def tracker(tmp_path, cfg=None, logs=None):
    run = create_run(tmp_path, "sft", config_toml="", argv=[])
    return run, Tracker(
        run,
        cfg or Config(),
        Workspace(tmp_path),
        stage="sft",
        run_name="sft-train-x",
        tags=["sft"],
        wandb_config={},
        group=None,
        log=(logs if logs is not None else []).append,
    )


def test_wandb_mode_disabled_by_environment_or_config(monkeypatch):
    cfg = Config()
    assert wandb_mode(cfg) == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode(cfg) == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    cfg.wandb.enabled = False
    assert wandb_mode(cfg) == "disabled"


def test_missing_wandb_warns_once_and_metrics_jsonl_is_complete(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    logs = []
    run, t = tracker(tmp_path, logs=logs)
    for step in (1, 2, 3):
        t.log({"loss": 1.0 / step, "note": "text is dropped", "flag": True}, step=step)
    t.summary({"train_loss": 0.5})
    t.table("x", ["a"], [[1]])
    t.finish()
    assert logs == ["warning: wandb is not installed; metrics go to metrics.jsonl only"]
    rows = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    assert [(r["step"], r["loss"], r["flag"]) for r in rows] == [(1, 1.0, 1), (2, 0.5, 1), (3, 1 / 3, 1)]
    assert "note" not in rows[0]
    state = run.read_state()
    assert state["wandb"]["mode"] == "disabled" and state["summary"] == {"train_loss": 0.5}


def test_steps_never_go_backwards(tmp_path):
    cfg = Config()
    cfg.wandb.enabled = False
    run, t = tracker(tmp_path, cfg)
    t.log({"a": 1}, step=5)
    t.log({"a": 2}, step=3)
    t.finish()
    assert [json.loads(line)["step"] for line in run.metrics_path.read_text().splitlines()] == [5, 5]
