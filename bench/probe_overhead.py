"""Probe overhead: the same short SFT with the probe on and off, side by side in one run (ABBA order
cancels drift), and optionally the same SFT from another checkout (`--against DIR`, e.g. main
before the probe existed).

    python -m bench.probe_overhead [--config configs/default.toml] [--rounds 2] [--sft-steps 100]
                                   [--against DIR] [--set section.key=value ...]

Prints the trainer's runtime for each run (train_runtime: the probe runs inside the training loop,
so it is counted) and the ratio on / off (1.00 = no overhead), and the probe's share of its own
runs' time (`probe/seconds`), which a machine shared with other jobs cannot skew as much. The
default config's settings are the probe's defaults: 48 questions at every checkpoint
(sft.save_steps = 50), eval.max_new_tokens.
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
ENV = {**os.environ, "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def ftmodel(*args: str, checkout: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**ENV, "PYTHONPATH": str(checkout)}
    res = subprocess.run(
        [sys.executable, "-m", "ftmodel", *args], cwd=checkout, env=env, capture_output=True, text=True
    )
    if res.returncode:
        sys.exit(f"ftmodel {' '.join(args)} ({checkout}) failed:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
    return res


def run_id(res: subprocess.CompletedProcess) -> str:
    return res.stdout.split("run ", 1)[1].split()[0]


def sft_runtime(ws: Path, common: list[str], extra: list[str], checkout: Path = ROOT) -> tuple[float, int, float]:
    """(train_runtime in seconds, probes scored, seconds spent probing) of one SFT run."""
    run = ws / "runs" / run_id(ftmodel("sft", *common, *extra, checkout=checkout))
    state = json.loads((run / "state.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    probes = [r for r in rows if "probe/answer_accuracy" in r]
    return float(state["summary"]["train_runtime"]), len(probes), sum(r.get("probe/seconds", 0.0) for r in probes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "default.toml"))
    p.add_argument("--workspace", help="reuse a workspace (default: a fresh temporary one)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--sft-steps", type=int, default=100)
    p.add_argument("--against", type=Path, help="another checkout: its SFT (no --set probe.*) runs beside ours")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    a = p.parse_args()
    ws = Path(a.workspace or tempfile.mkdtemp(prefix="ftmodel-bench-"))
    config = str(Path(a.config).resolve())
    common = ["--config", config, "--workspace", str(ws), *[x for o in a.overrides for x in ("--set", o)]]
    print(f"workspace {ws}; preparing data ...", flush=True)
    ftmodel("pipeline", *common, "--stages", "prepare,distill,filter", "--set", "wandb.enabled=false")
    steps = ["--force", "--set", f"sft.max_steps={a.sft_steps}", "--set", "wandb.enabled=false"]  # never reused
    variants = {
        "on": (ROOT, [*steps, "--set", "probe.enabled=true"]),
        "off": (ROOT, [*steps, "--set", "probe.enabled=false"]),
    }
    if a.against:
        variants["against"] = (a.against.resolve(), steps)
    times: dict[str, list[float]] = {k: [] for k in variants}
    shares: list[float] = []  # the probe's share of its own run's train_runtime: the same load on both
    probes = 0
    for i in range(a.rounds):
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        for who in order:
            checkout, extra = variants[who]
            seconds, n, probing = sft_runtime(ws, common, extra, checkout)
            times[who].append(seconds)
            if who == "on":
                probes = n
                shares.append(probing / seconds)
            note = f" ({n} probes, {probing:.2f} s probing)" if who == "on" else ""
            print(f"  round {i + 1} {who:7} {seconds:7.2f} s{note}", flush=True)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    print(f"\nSFT {a.sft_steps} steps, {probes} probes: median train_runtime on {on:.2f} s, off {off:.2f} s")
    print(f"probe on / off: {on / off:.3f}  ({(on - off) / max(probes, 1):.2f} s per probe)")
    share = statistics.median(shares)
    print(f"inside the probed runs: probing {share:.1%} of train_runtime (on / off without it: {1 / (1 - share):.3f})")
    if a.against:
        other = statistics.median(times["against"])
        print(f"against {a.against}: {other:.2f} s; on / against {on / other:.3f}, off / against {off / other:.3f}")


if __name__ == "__main__":
    main()
