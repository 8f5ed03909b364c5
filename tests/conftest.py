"""Shared helpers: run the real `ftmodel` CLI in subprocesses against a small test config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "default.toml"

# A small but real pipeline: the tiny model with few pre-training steps, little data, few steps.
SMALL_OVERRIDES = {
    "model": {"tiny_pretrain_steps": 20, "tiny_hidden_size": 64},
    "data": {"n_train": 160, "n_eval": 32},
    "sft": {"max_steps": 12, "save_steps": 6, "batch_size": 8},
    "grpo": {"max_steps": 2, "save_steps": 2, "batch_size": 8, "num_generations": 4, "max_completion_length": 24},
    "eval": {"batch_size": 32, "max_new_tokens": 24},
    "wandb": {"log_interval": 1},
}


def write_config(path: Path, overrides: dict | None = None) -> Path:
    """Write the default config with `overrides` ({section: {key: value}}) applied, keeping comments."""
    import tomlkit

    doc = tomlkit.parse(DEFAULT_CONFIG.read_text())
    for section, values in (overrides or {}).items():
        if section not in doc:
            doc[section] = tomlkit.table()
        for key, value in values.items():
            doc[section][key] = value
    path.write_text(tomlkit.dumps(doc))
    return path


def cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run `python -m ftmodel ARGS` and return the completed process (text output)."""
    # English unless a test asks otherwise: the developer's own LANG must not change what tests read.
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "FTMODEL_LANG": "en", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ftmodel", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def openai_teacher(url: str, *more: str) -> list[str]:
    """`--set` flags that point distill at an OpenAI-compatible teacher at `url` (wandb off, 5 s of
    silence allowed); flags in `more` come later, so they win."""
    return [
        "--set",
        "distill.backend=openai",
        "--set",
        f"distill.base_url={url}",
        "--set",
        "distill.model=teacher",
        "--set",
        "wandb.enabled=false",
        "--set",
        "distill.timeout_s=5",
        *more,
    ]


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value or `timeout` passes (then fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_state(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    """A config file for a small real pipeline, in a temporary directory."""
    return write_config(tmp_path / "small.toml", SMALL_OVERRIDES)
