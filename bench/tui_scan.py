"""What the console's workspace scan costs (every 0.5 s while it is open), with the alerts it now counts.

Usage (from the repository root): python -m bench.tui_scan [--runs 500] [--repeat 5] [--against DIR]

A workspace of `--runs` finished runs, every other one with an alerts.jsonl, and one running run
(this process) with alerts; `WorkspaceScanner.scan()` is timed 20 times per sample after a first
scan, and the median sample is printed in ms per scan. --against DIR times another checkout of this
repository (say a worktree of main) with the same Python, alternating with this one, and prints the
ratio: a before/after measured side by side. The load average is printed before and after.
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

from bench._tmux import load_average

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import statistics, sys, time
sys.path.insert(0, sys.argv[1])
from tui.rundata.summary import WorkspaceScanner
scanner = WorkspaceScanner(sys.argv[2])
scanner.scan()
t0 = time.perf_counter()
for _ in range(20):
    scanner.scan()
print((time.perf_counter() - t0) / 20)
"""


def write_workspace(ws: Path, runs: int) -> None:
    alert = {"rule": "stall", "stage": "sft", "step": 1, "time": 1.0, "key": "stall@1", "values": {}, "params": {}}
    for i in range(runs + 1):
        path = ws / "runs" / f"sft-20260101-{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}-{i:04d}"
        path.mkdir(parents=True)
        state = {"stage": "sft", "state": "finished", "created": 1.0 + i}
        if i == runs:  # the one live run: its process is this one, so the scanner sees it running
            from ftmodel.rundir import process_start_time

            state.update(state="running", pid=os.getpid(), proc_start=process_start_time(os.getpid()))
        (path / "state.json").write_text(json.dumps(state))
        if i % 2 or i == runs:
            (path / "alerts.jsonl").write_text(json.dumps(alert) + "\n")


def scan_time(checkout: Path, ws: Path) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, str(checkout), str(ws)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return float(out.stdout)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--against", type=Path, help="another checkout timed the same way in the same run")
    ns = p.parse_args()
    checkouts = {"this checkout": ROOT}
    if ns.against:
        checkouts[str(ns.against)] = ns.against.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        write_workspace(ws, ns.runs)
        print(f"load average before: {load_average()}")
        times: dict[str, list[float]] = {name: [] for name in checkouts}
        for _ in range(ns.repeat):
            for name, checkout in checkouts.items():  # alternating: a change of load falls on both
                times[name].append(scan_time(checkout, ws))
        print(f"load average after: {load_average()}")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        shown = ", ".join(f"{v * 1000:.1f}" for v in times[name])
        print(f"{name}: scan of {ns.runs + 1} runs (half with alerts, one running) {value * 1000:.1f} ms ({shown})")
    if ns.against:
        print(f"ratio this checkout/{ns.against}: {medians['this checkout'] / medians[str(ns.against)]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
