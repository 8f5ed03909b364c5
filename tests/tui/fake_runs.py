"""Write fixed fake run directories (state.json, metrics.jsonl, stage.log, results) for console tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ftmodel.rundir import process_start_time

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "configs" / "default.toml"


def dead_pid() -> int:
    """Return the pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make_run(
    ws: Path,
    run_id: str,
    stage: str,
    state: str,
    *,
    metrics: list[dict] | None = None,
    log: list[str] | None = None,
    pid: int | None = None,
    proc_start: int | None = None,
    progress: tuple[int, int | None] = (0, None),
    exit_code: int | None = None,
    error: str | None = None,
    files: dict[str, object] | None = None,
    beta: float = 0.04,
    created: float = 1764000000.0,
) -> Path:
    """Create `ws/runs/<run_id>` with the files a stage would have written."""
    path = ws / "runs" / run_id
    path.mkdir(parents=True)
    st = {
        "run_id": run_id,
        "stage": stage,
        "state": state,
        "created": created,
        "started": created + 1,
        "progress": {"step": progress[0], "total": progress[1]},
        "argv": ["ftmodel", stage],
    }
    if pid is not None:
        st.update(pid=pid, pgid=pid, proc_start=proc_start)
    if state in ("finished", "failed", "cancelled"):
        st.update(ended=created + 61, exit_code=exit_code if exit_code is not None else 0, error=error)
    (path / "state.json").write_text(json.dumps(st))
    (path / "config.toml").write_text(f"[grpo]\nbeta = {beta}\n")
    if metrics is not None:
        (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    (path / "stage.log").write_text("".join(line + "\n" for line in (log or [])))
    for name, content in (files or {}).items():
        (path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def sft_rows(n: int, t0: float = 1764000001.0) -> list[dict]:
    return [
        {
            "step": i,
            "time": t0 + i * 0.5,
            "loss": 7.0 / i,
            "learning_rate": 5e-3,
            "grad_norm": 1.0 + 1 / i,
            "epoch": i / 100,
        }
        for i in range(1, n + 1)
    ]


def grpo_rows(n: int, *, zero_std: float = 0.1, clipped: float = 0.0, kl: bool = True) -> list[dict]:
    rows = []
    for i in range(1, n + 1):
        row = {
            "step": i,
            "time": 1764000001.0 + i,
            "loss": 0.01,
            "reward": 1.2,
            "format_reward": 1.0,
            "accuracy_reward": 0.2,
            "frac_reward_zero_std": zero_std,
            "completions/clipped_ratio": clipped,
            "learning_rate": 5e-4,
            "grad_norm": 0.3,
        }
        if kl:
            row.update(kl=0.01, kl_divergence=0.01)
        rows.append(row)
    return rows


def self_pid() -> tuple[int, int | None]:
    """A live process to stand in for a running stage (this test process)."""
    import os

    return os.getpid(), process_start_time(os.getpid())


def sentinel_alerts(path: Path, stage: str, rows: list[dict], facts=None) -> list:
    """Record in `path/alerts.jsonl` what the engine's run sentinel says about `rows`, as the trainer does
    (the real rules and the one recording path); return the recorded alerts."""
    from ftmodel.rundir import Run
    from ftmodel.sentinel import Facts, Sentinel, default_settings, record_alerts

    settings = default_settings()
    fired = Sentinel(stage, settings, facts or Facts()).feed_all(rows)
    return record_alerts(Run(path), fired, settings, source="trainer")
