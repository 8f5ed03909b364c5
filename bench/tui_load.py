"""Load on the console: a 100,000-step finished run, and a live run logging 1,000 rows/s.

Usage (from the repository root): python -m bench.tui_load [--rows 100000] [--rate 1000] [--seconds 10]
                                                           [--repeat 3] [--against DIR]
1. Headless (Pilot): time from app start until the loss chart is drawn with all rows loaded.
2. In tmux: the console follows a running stage whose metrics.jsonl grows by `--rate` rows/s;
   prints the console process's CPU% over `--seconds` (from /proc/<pid>/stat).
Each part is repeated (medians printed) and prints the load average beside its figures.
--against DIR measures another checkout of this repository (say a worktree of main) the same way,
with the same Python, alternating with this one: a before/after measured side by side.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._tmux import Tmux, console_module, cpu_seconds, load_average
from ftmodel.rundir import process_start_time

ROOT = Path(__file__).resolve().parents[1]
# Runs in the checkout under test (its working directory), so that checkout's console is the one timed.
CHART_PROBE = f"import runpy; runpy.run_path({str(ROOT / 'bench' / '_chart_probe.py')!r}, run_name='__main__')"


def write_run(ws: Path, run_id: str, stage: str, state: str, rows: int, **extra) -> Path:
    path = ws / "runs" / run_id
    path.mkdir(parents=True)
    st = {
        "run_id": run_id,
        "stage": stage,
        "state": state,
        "created": time.time(),
        "started": time.time(),
        "progress": {"step": rows, "total": rows or 100_000},
        **extra,
    }
    (path / "state.json").write_text(json.dumps(st))
    (path / "config.toml").write_text("[grpo]\nbeta = 0.04\n")
    (path / "stage.log").write_text("bench\n")
    with open(path / "metrics.jsonl", "w") as fh:
        t0 = time.time()
        for i in range(1, rows + 1):
            fh.write(json.dumps(row(i, t0)) + "\n")
    return path


def row(i: int, t0: float) -> dict:
    return {
        "step": i,
        "time": t0 + i * 0.01,
        "loss": 5.0 / (1 + i / 1000),
        "reward": 0.5 + i * 1e-6,
        "format_reward": 1.0,
        "accuracy_reward": 0.2,
        "kl_divergence": 0.01,
        "learning_rate": 5e-4,
        "grad_norm": 0.3,
        "frac_reward_zero_std": 0.1,
        "completions/clipped_ratio": 0.0,
    }


def time_to_chart(checkout: Path, ws: Path, rows: int) -> tuple[float, float, float]:
    """Seconds from app start to: the first frame, the loss chart drawn with every row, every row parsed and drawn."""
    out = subprocess.run(
        [sys.executable, "-c", CHART_PROBE, str(ws), str(rows)], cwd=checkout, capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(f"the chart probe failed in {checkout}:\n{out.stderr[-3000:]}")
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


WRITER = """
import json, sys, time
path, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
batch = max(1, rate // 20)
t0 = time.time(); i = 0
with open(path, "a") as fh:
    while time.time() - t0 < seconds:
        for _ in range(batch):
            i += 1
            fh.write(json.dumps({"step": i, "time": time.time(), "loss": 1.0 / i, "reward": 0.5,
                                 "kl_divergence": 0.01, "learning_rate": 5e-4, "grad_norm": 0.3}) + "\\n")
        fh.flush()
        time.sleep(max(0.0, t0 + i / rate - time.time()))
print(i)
"""


def live_cpu(checkout: Path, ws: Path, rate: int, seconds: float) -> tuple[float, int]:
    """The console's CPU% of one core while it follows a run that logs `rate` rows/s, and its RSS."""
    writer_path = ws / "runs" / "prepare-20990101-000000-beef"
    writer_path.mkdir(parents=True)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(writer_path / "metrics.jsonl"), str(rate), str(seconds + 15)]
    )
    st = {
        "run_id": writer_path.name,
        "stage": "prepare",
        "state": "running",
        "created": time.time(),
        "started": time.time(),
        "progress": {"step": 0, "total": None},
        "pid": writer.pid,
        "pgid": writer.pid,
        "proc_start": process_start_time(writer.pid),
    }
    (writer_path / "state.json").write_text(json.dumps(st))
    (writer_path / "stage.log").write_text("")
    cmd = (
        f"cd {shlex.quote(str(checkout))} && exec {shlex.quote(sys.executable)} -m {console_module(checkout)} "
        f"--workspace {shlex.quote(str(ws))}"
    )
    t = Tmux(cmd)
    try:
        # "prepare" is the first stage, selected at start: its running run is the one shown.
        t.wait(lambda s: "running" in s and "loss" in s, timeout=60)
        pid = t.pane_pid()
        c0, w0 = cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)  # the measurement window itself, not a synchronisation
        c1, w1 = cpu_seconds(pid), time.monotonic()
        rss = int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0])
        return 100.0 * (c1 - c0) / (w1 - w0), rss
    finally:
        t.kill()
        writer.kill()
        writer.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--against", type=Path, help="another checkout measured the same way in the same run")
    ns = p.parse_args()
    checkouts = {"this checkout": ROOT}
    if ns.against:
        checkouts[str(ns.against)] = ns.against.resolve()
    with tempfile.TemporaryDirectory(prefix="ftmodel-bench-") as tmp:
        ws = Path(tmp) / "ws"
        t = time.perf_counter()
        path = write_run(
            ws, "prepare-20990101-000000-0001", "prepare", "finished", ns.rows, ended=time.time(), exit_code=0
        )
        size = (path / "metrics.jsonl").stat().st_size
        print(f"wrote {ns.rows:,} rows ({size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f}s")
        print(f"load average before: {load_average()}")
        charts: dict[str, list[tuple[float, float, float]]] = {name: [] for name in checkouts}
        for _ in range(ns.repeat):
            for name, checkout in checkouts.items():
                charts[name].append(time_to_chart(checkout, ws, ns.rows))
        print(f"load average after: {load_average()}")
        for name, times in charts.items():
            first, chart, exact = (statistics.median(x[k] for x in times) for k in range(3))
            print(
                f"{name}: {ns.rows:,}-step finished run: first frame {first:.3f}s, loss chart drawn with all rows "
                f"{chart:.3f}s (every row parsed and redrawn at {exact:.3f}s); medians of {ns.repeat}, "
                f"charts: {', '.join(f'{x[1]:.3f}' for x in times)}"
            )
    print(f"load average before: {load_average()}")
    live: dict[str, list[tuple[float, int]]] = {name: [] for name in checkouts}
    for _ in range(ns.repeat):
        for name, checkout in checkouts.items():
            with tempfile.TemporaryDirectory(prefix="ftmodel-bench-") as tmp:
                live[name].append(live_cpu(checkout, Path(tmp) / "ws", ns.rate, ns.seconds))
    print(f"load average after: {load_average()}")
    for name, samples in live.items():
        cpu, rss = statistics.median(x[0] for x in samples), statistics.median(x[1] for x in samples)
        print(
            f"{name}: live run at {ns.rate} rows/s: console CPU {cpu:.1f}% of one core over {ns.seconds:.0f}s "
            f"(median of {ns.repeat}: {', '.join(f'{x[0]:.1f}' for x in samples)}), RSS {rss / 1024:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
