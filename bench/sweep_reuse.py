"""Sweep reuse: wall time of a 4-point GRPO-only sweep (stages sft,grpo; the grid varies grpo.beta only)
with reuse of unchanged stages vs the same sweep with --force, side by side in one run.

    python -m bench.sweep_reuse [--points 4] [--sft-steps 30] [--grpo-steps 2] [--set section.key=value ...]

Both sweeps start from copies of one prepared workspace (prepare, distill, filter and the tiny base
done once, outside the timing) and are drained by `ftmodel queue run` in the foreground. With reuse
SFT runs once and each point reuses it; with --force SFT runs once per point. Prints each wall time,
the stage runs each made, and the ratio forced / reused. Small settings: a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Children run `python -m ftmodel` from ROOT: the checkout under test, whatever is installed.
ENV = {**os.environ, "WANDB_MODE": "disabled", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def ftmodel(*args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "ftmodel", *args], cwd=ROOT, env=ENV, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"ftmodel {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
    return res


def count_runs(ws: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in (ws / "runs").iterdir():
        state = json.loads((p / "state.json").read_text())
        out[state["stage"]] = out.get(state["stage"], 0) + 1
    return out


def timed_sweep(ws: Path, config: Path, betas: list[str], force: bool) -> tuple[float, dict]:
    before = count_runs(ws)
    started = time.perf_counter()
    ftmodel(
        "sweep",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--grid",
        f"grpo.beta={','.join(betas)}",
        "--stages",
        "sft,grpo",
        "--no-start",
        *(["--force"] if force else []),
    )
    ftmodel("queue", "run", "--workspace", str(ws))
    wall = time.perf_counter() - started
    queue = json.loads((ws / "queue" / "queue.json").read_text())
    bad = [j for j in queue["jobs"] if j["state"] != "done"]
    if bad:
        sys.exit(f"sweep jobs did not finish: {bad}")
    after = count_runs(ws)
    return wall, {s: after.get(s, 0) - before.get(s, 0) for s in ("sft", "grpo")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=4)
    ap.add_argument("--sft-steps", type=int, default=30)
    ap.add_argument("--grpo-steps", type=int, default=2)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ns = ap.parse_args()
    from tests.conftest import SMALL_OVERRIDES, write_config

    tmp = Path(tempfile.mkdtemp(prefix="sweep-reuse-"))
    overrides = {
        **SMALL_OVERRIDES,
        "wandb": {"enabled": False, "log_interval": 5},
        "sft": {**SMALL_OVERRIDES["sft"], "max_steps": ns.sft_steps, "save_steps": 1000},
        "grpo": {**SMALL_OVERRIDES["grpo"], "max_steps": ns.grpo_steps, "save_steps": 1000},
    }
    config = write_config(tmp / "bench.toml", overrides)
    base = tmp / "prepared"
    ftmodel(
        "pipeline",
        "--config",
        str(config),
        "--workspace",
        str(base),
        "--stages",
        "prepare,distill,filter",
        *(a for o in ns.overrides for a in ("--set", o)),
    )
    betas = [f"{0.01 * i:.2f}" for i in range(ns.points)]
    results = {}
    for label, force in (("reuse", False), ("force", True)):
        ws = tmp / label
        shutil.copytree(base, ws, symlinks=True)
        results[label] = timed_sweep(ws, config, betas, force)
    (t_reuse, runs_reuse), (t_force, runs_force) = results["reuse"], results["force"]
    print(
        f"{ns.points}-point GRPO-only sweep (grpo.beta over {','.join(betas)}; stages sft,grpo; "
        f"sft {ns.sft_steps} steps, grpo {ns.grpo_steps} steps, {os.cpu_count()} CPUs)"
    )
    print(f"{'':8} {'wall s':>8} {'sft runs':>9} {'grpo runs':>10}")
    print(f"{'reuse':8} {t_reuse:8.1f} {runs_reuse['sft']:9} {runs_reuse['grpo']:10}")
    print(f"{'--force':8} {t_force:8.1f} {runs_force['sft']:9} {runs_force['grpo']:10}")
    print(f"ratio --force / reuse: {t_force / t_reuse:.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
