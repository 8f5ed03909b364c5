"""Load on the console: a 100,000-step finished run, and a live run logging 1,000 rows/s.

Usage: python bench/tui_load.py [--rows 100000] [--rate 1000] [--seconds 10]
1. Headless (Pilot): time from app start until the loss chart is drawn with all rows loaded.
2. In tmux: the console follows a running stage whose metrics.jsonl grows by `--rate` rows/s;
   prints the console process's CPU% over `--seconds` (from /proc/<pid>/stat).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._tmux import Tmux  # noqa: E402
from ftmodel.rundir import process_start_time  # noqa: E402


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


async def time_to_chart(ws: Path, rows: int) -> tuple[float, float, float]:
    """Return seconds from app start to: the first frame, the loss chart drawn with every row (the
    preview, sampled as the chart's store keeps them), and the exact store (every row parsed) drawn."""
    from ftmodel import config
    from tui.app import FtmodelConsole

    t0 = time.perf_counter()
    app = FtmodelConsole(config.load(ROOT / "configs/default.toml"), "configs/default.toml", ws, gpu=False)
    async with app.run_test(size=(100, 30)) as pilot:
        first = time.perf_counter() - t0
        drawn: dict[int, float] = {}  # id(store) -> when its loss chart was drawn
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            panel = app.query_one("#panel-loss")
            store = app.main.store
            if store.rows == rows and app.main.charts_ready and panel.drawn_version == store.version:
                drawn.setdefault(id(store), time.perf_counter() - t0)
                # The reader is done when nothing is left to parse: no exact pass pending.
                follower = app.main.follower
                if (
                    follower is not None
                    and not follower.history_pending()
                    and follower.caught_up()
                    and app.main.history_complete
                ):
                    times = sorted(drawn.values())
                    return first, times[0], times[-1]
            await pilot.pause(0.01)
    raise TimeoutError("the chart never drew")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def live_cpu(ws: Path, rate: int, seconds: float) -> tuple[float, int]:
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
        f"cd {shlex.quote(str(ROOT))} && exec {shlex.quote(sys.executable)} -m tui.app "
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
    ns = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftmodel-bench-") as tmp:
        ws = Path(tmp) / "ws"
        t = time.perf_counter()
        path = write_run(
            ws, "prepare-20990101-000000-0001", "prepare", "finished", ns.rows, ended=time.time(), exit_code=0
        )
        size = (path / "metrics.jsonl").stat().st_size
        print(f"wrote {ns.rows:,} rows ({size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f}s")
        first, charts, exact = asyncio.run(time_to_chart(ws, ns.rows))
        print(
            f"{ns.rows:,}-step finished run: first frame {first:.3f}s, loss chart drawn with all rows "
            f"{charts:.3f}s (every row parsed and redrawn at {exact:.3f}s)"
        )
    with tempfile.TemporaryDirectory(prefix="ftmodel-bench-") as tmp:
        cpu, rss = live_cpu(Path(tmp) / "ws", ns.rate, ns.seconds)
        print(
            f"live run at {ns.rate} rows/s: console CPU {cpu:.1f}% of one core over {ns.seconds:.0f}s, "
            f"RSS {rss / 1024:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
