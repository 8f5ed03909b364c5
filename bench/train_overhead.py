"""Training overhead: our `sft` and `grpo` stages vs the same TRL trainer with the same settings
and no instrumentation, measured side by side in one run (ABBA order cancels drift).

    python -m bench.train_overhead [--config configs/default.toml] [--rounds 2] [--sft-steps 120]
                                    [--grpo-steps 30] [--set section.key=value ...]

Prints steps/s for each run and the ratio ours / plain per stage (1.00 = no overhead). Ours runs
exactly as a user's stage does: the callback, metrics.jsonl, progress in state.json, the
completion log and a wandb offline run. The GPU variant is bench.gpu_throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Children run `python -m …` from ROOT: the checkout under test, whatever is installed.
ENV = {**os.environ, "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def ftmodel(*args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "ftmodel", *args], cwd=ROOT, env=ENV, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"ftmodel {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
    return res


def run_id(res: subprocess.CompletedProcess) -> str:
    return res.stdout.split("run ", 1)[1].split()[0]


TOKENS_PER_STEP: dict[str, float] = {}


def ours(stage: str, ws: Path, common: list[str], extra: list[str]) -> float:
    """Steps/s of our stage (the trainer's own train_steps_per_second, as recorded in state.json)."""
    res = ftmodel(stage, *common, *extra)
    run = ws / "runs" / run_id(res)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    tokens = [r for r in rows if "num_tokens" in r]
    if tokens:
        TOKENS_PER_STEP[stage] = tokens[-1]["num_tokens"] / tokens[-1]["step"]
    return float(json.loads((run / "state.json").read_text())["summary"]["train_steps_per_second"])


def plain(stage: str, ws: Path, config: str, overrides: list[str], adapter: str | None) -> float:
    """Steps/s of plain TRL with the same settings."""
    with tempfile.TemporaryDirectory() as out:
        argv = [
            sys.executable,
            "-m",
            "bench._plain_trl",
            stage,
            str(ws),
            config,
            out,
            *([adapter] if adapter else []),
            *[x for o in overrides for x in ("--set", o)],
        ]
        res = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"plain TRL {stage} failed:\n{res.stderr[-3000:]}")
    return float(json.loads(res.stdout.strip().splitlines()[-1])["train_steps_per_second"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "default.toml"))
    p.add_argument("--workspace", help="reuse a workspace (default: a fresh temporary one)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--sft-steps", type=int, default=120)
    p.add_argument("--grpo-steps", type=int, default=30)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument(
        "--report-tokens",
        action="store_true",
        help="also print SFT tokens/s (tokens per step from our run's metrics; both runs see the same batches)",
    )
    a = p.parse_args()
    ws = Path(a.workspace or tempfile.mkdtemp(prefix="ftmodel-bench-"))
    common = ["--config", a.config, "--workspace", str(ws), *[x for o in a.overrides for x in ("--set", o)]]
    print(f"workspace {ws}; preparing data and an SFT adapter ...", flush=True)
    ftmodel("pipeline", *common, "--stages", "prepare,distill,filter", "--set", "wandb.enabled=false")
    sft_run = run_id(ftmodel("sft", *common, "--set", "sft.max_steps=20", "--set", "wandb.enabled=false"))
    adapter = str(ws / "runs" / sft_run / "adapter")
    results: dict[str, dict[str, list[float]]] = {}
    for stage, steps in (("sft", a.sft_steps), ("grpo", a.grpo_steps)):
        settings = [f"{stage}.max_steps={steps}", f"{stage}.save_steps={10**6}"]
        extra = [x for s in settings for x in ("--set", s)] + (["--sft-run", sft_run] if stage == "grpo" else [])
        r = results[stage] = {"ours": [], "plain": []}
        for i in range(a.rounds):
            order = ("ours", "plain") if i % 2 == 0 else ("plain", "ours")
            for who in order:
                if who == "ours":
                    r["ours"].append(ours(stage, ws, common, extra))
                else:
                    r["plain"].append(
                        plain(stage, ws, a.config, a.overrides + settings, adapter if stage == "grpo" else None)
                    )
                print(f"  {stage:4} round {i + 1} {who:5} {r[who][-1]:7.3f} steps/s", flush=True)
    print(f"\n{'stage':6} {'ours steps/s':>13} {'plain steps/s':>14} {'ours/plain':>11}")
    for stage, r in results.items():
        o, pl = statistics.median(r["ours"]), statistics.median(r["plain"])
        print(f"{stage:6} {o:13.3f} {pl:14.3f} {o / pl:11.3f}")
        if a.report_tokens and stage in TOKENS_PER_STEP:
            t = TOKENS_PER_STEP[stage]
            print(f"{'':6} {o * t:10.0f} tok/s {pl * t:10.0f} tok/s  ({t:.0f} tokens per step)")


if __name__ == "__main__":
    main()
