"""The run sentinel's cost: what it adds to each logged row inside the trainer, and what one stall
check costs the console, the CLI or the watchdog on a long run. Measured side by side in one run.

    python -m bench.sentinel_overhead [--rows 20000] [--history 100000] [--rounds 3]

Prints µs per `Tracker.log` call with `[alerts] enabled = false` and `true` (GRPO-shaped rows of 30
metrics, metrics.jsonl written, wandb off) and their ratio, in ABBA order; then the time of one
`check_stall` on a run whose metrics.jsonl holds `--history` rows (only its tail is read).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

from ftmodel.config import Config
from ftmodel.rundir import create_run
from ftmodel.sentinel import check_stall
from ftmodel.tracking import Tracker
from ftmodel.workspace import Workspace

KEYS = (
    "loss grad_norm learning_rate reward reward_std frac_reward_zero_std completions/clipped_ratio "
    "completions/mean_length completions/min_length completions/max_length entropy kl kl_divergence "
    "format_reward accuracy_reward rewards/format_reward/mean rewards/format_reward/std "
    "rewards/accuracy_reward/mean rewards/accuracy_reward/std clip_ratio/low_mean clip_ratio/high_mean "
    "clip_ratio/region_mean step_time epoch num_tokens completions/mean_terminated_length "
    "completions/min_terminated_length completions/max_terminated_length sampling/a sampling/b"
).split()


def row(step: int) -> dict:
    """A healthy GRPO row (it raises nothing: what the sentinel costs on every normal step)."""
    noise = math.sin(step * 0.7)
    values = {k: 0.5 + 0.01 * noise for k in KEYS}
    values.update(frac_reward_zero_std=0.6 + 0.05 * noise, entropy=0.3 + 0.02 * noise, kl=0.01 + 0.001 * noise)
    values["completions/clipped_ratio"] = 0.0
    return values


def time_tracker(root: Path, enabled: bool, rows: int) -> float:
    """µs per Tracker.log call."""
    cfg = Config()
    cfg.wandb.enabled = False
    cfg.alerts.enabled = enabled
    run = create_run(root, "grpo", config_toml="", argv=[])
    tracker = Tracker(
        run, cfg, Workspace(root), stage="grpo", run_name="b", tags=[], wandb_config={}, group=None, log=print
    )
    data = [row(i) for i in range(rows)]
    start = time.perf_counter()
    for step, values in enumerate(data, 1):
        tracker.log(values, step=step)
    elapsed = time.perf_counter() - start
    tracker.finish()
    return elapsed / rows * 1e6


def time_stall_check(root: Path, history: int) -> float:
    """Seconds for one check_stall on a running run with `history` metrics rows (pid: this process)."""
    import os

    from ftmodel.rundir import process_start_time

    run = create_run(root, "grpo", config_toml="", argv=[])
    now = time.time()
    run.update_state(state="running", pid=os.getpid(), proc_start=process_start_time(os.getpid()), started=now - 10)
    with open(run.metrics_path, "w") as fh:
        for i in range(history):
            fh.write(json.dumps({"step": i, "time": now - history + i, **row(i)}) + "\n")
    times = []
    for _ in range(20):
        start = time.perf_counter()
        check_stall(run, status="running", source="bench", record=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--history", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        off, on = [], []
        for _ in range(ns.rounds):  # ABBA: drift on a shared machine hits both alike
            off.append(time_tracker(root, False, ns.rows))
            on.append(time_tracker(root, True, ns.rows))
            on.append(time_tracker(root, True, ns.rows))
            off.append(time_tracker(root, False, ns.rows))
        m_off, m_on = statistics.median(off), statistics.median(on)
        print(f"Tracker.log, {len(KEYS)} metrics per row, {ns.rows} rows, median of {len(off)} runs each:")
        print(f"  sentinel off {m_off:8.1f} µs/row")
        print(f"  sentinel on  {m_on:8.1f} µs/row   ratio on/off {m_on / m_off:.2f}  (+{m_on - m_off:.1f} µs per row)")
        check = time_stall_check(root, ns.history)
        print(f"check_stall on a run with {ns.history} metrics rows: {check * 1e3:.2f} ms (median of 20)")


if __name__ == "__main__":
    main()
