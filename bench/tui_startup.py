"""Cold start to the first painted frame: ftmodel-tui vs `wandb leet` on the same run, side by side.

Usage (from the repository root): python -m bench.tui_startup [--workspace W] [--repeat 7] [--against DIR]

Both open in a tmux window of 100×30; the time is from starting the tmux server to the first
screen that shows the run (the console: its stage list with a state; leet: any drawn frame).
The runs alternate (console, leet, console, …) so that a change in the machine's load falls on
both alike; the load average is printed before and after. The console's CPU time at its first
frame is printed too: on a busy machine it varies far less than the wall time.
--against DIR also times the console of another checkout of this repository (say a worktree of
main), with the same Python, in the same alternation: a before/after measured side by side.
W must hold an offline wandb run under runs/ (any workspace a training stage ran in).
Both sides start from byte-compiled modules, as every start after the first does: wandb's were
compiled by pip, and the checkouts' ftmodel/ and tui/ are compiled here first (into __pycache__,
which git ignores), so that an environment with PYTHONDONTWRITEBYTECODE set (which keeps Python
from caching what it compiles) does not time our sources being compiled at every start.
--no-compile leaves that out and times whatever the checkouts hold.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench._tmux import Tmux, console_module, cpu_seconds, load_average

ROOT = Path(__file__).resolve().parents[1]


def console_time(checkout: Path, workspace: Path) -> tuple[float, float]:
    """Seconds to the console's first frame that shows the runs, and the CPU seconds it had used by then."""
    python, root, ws = (shlex.quote(str(p)) for p in (sys.executable, checkout, workspace))
    t = Tmux(f"cd {root} && exec {python} -m {console_module(checkout)} --workspace {ws}")
    try:
        wall = t.wait(lambda s: "stages" in s and ("finished" in s or "running" in s or "failed" in s))
        return wall, cpu_seconds(t.pane_pid())
    finally:
        t.kill()


def leet_time(run_dir: Path, wandb: str) -> float:
    cmd = f"exec timeout --foreground 60 {shlex.quote(wandb)} leet {shlex.quote(str(run_dir))}"
    t = Tmux(cmd)
    try:
        # leet paints its frame in one go: count it as painted once the screen holds real content.
        return t.wait(lambda s: sum(not c.isspace() for c in s) > 200)
    finally:
        t.kill()


def find_wandb_run(workspace: Path) -> Path | None:
    """The newest offline wandb run in the workspace, preferring training stages (they have history)."""
    for stage in ("grpo", "sft", ""):
        found = sorted(workspace.glob(f"runs/{stage}*/wandb/offline-run-*"))
        if found:
            return found[-1]
    return None


def compile_checkout(checkout: Path) -> None:
    """Byte-compile a checkout's packages (what Python caches on a first start where it may write)."""
    for package in ("ftmodel", "tui"):
        if not compileall.compile_dir(checkout / package, quiet=1):
            raise SystemExit(f"{checkout / package}: does not compile")


def runs_text(values: list[float]) -> str:
    return ", ".join(f"{x:.3f}" for x in values)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workspace", default="/tmp/ws-tui", type=Path)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--against", type=Path, help="another checkout whose console is timed in the same run")
    p.add_argument("--no-compile", action="store_true", help="do not byte-compile the checkouts first")
    ns = p.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is required")
        return 2
    wandb = shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))
    run_dir = find_wandb_run(ns.workspace)
    has_leet = Path(wandb).exists() and subprocess.run([wandb, "leet", "--help"], capture_output=True).returncode == 0
    if not has_leet or run_dir is None:
        print("wandb leet: not available (no wandb binary with `leet`, or no offline run in the workspace)")
    checkouts = {"ftmodel-tui": ROOT}
    if ns.against:
        checkouts[f"ftmodel-tui of {ns.against}"] = ns.against.resolve()
    if not ns.no_compile:
        for checkout in checkouts.values():
            compile_checkout(checkout)
    cached = "not compiled here (--no-compile)" if ns.no_compile else "byte-compiled first"
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        cached += "; PYTHONDONTWRITEBYTECODE is set (Python does not cache what it compiles)"
    print(f"the checkouts' modules: {cached}")
    print(f"load average before: {load_average()}")
    wall: dict[str, list[float]] = {name: [] for name in checkouts}
    cpu: dict[str, list[float]] = {name: [] for name in checkouts}
    leet: list[float] = []
    for _ in range(ns.repeat):
        for name, checkout in checkouts.items():
            seconds, used = console_time(checkout, ns.workspace)
            wall[name].append(seconds)
            cpu[name].append(used)
        if has_leet and run_dir is not None:
            leet.append(leet_time(run_dir, wandb))
    print(f"load average after: {load_average()}")
    for name in checkouts:
        print(
            f"{name} first frame with runs: median {statistics.median(wall[name]):.3f}s "
            f"(runs: {runs_text(wall[name])}); CPU by then: median {statistics.median(cpu[name]):.2f}s"
        )
    if leet:
        print(
            f"wandb leet first frame ({run_dir.name}): median {statistics.median(leet):.3f}s (runs: {runs_text(leet)})"
        )
        for name in checkouts:
            label = "console/leet" if name == "ftmodel-tui" else f"console of {ns.against}/leet"
            print(f"ratio {label}: {statistics.median(wall[name]) / statistics.median(leet):.2f}")
    if ns.against:
        this, other = (statistics.median(wall[name]) for name in checkouts)
        print(f"ratio this checkout/{ns.against}: {this / other:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
