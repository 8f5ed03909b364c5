"""Cold start to the first painted frame: ftmodel-tui vs `wandb leet` on the same run, side by side.

Usage: python bench/tui_startup.py [--workspace W] [--repeat 3]
Both open in a tmux window of 100×30; the time is from starting the tmux server to the first
screen that shows the run (the console: its stage list with a state; leet: any drawn frame).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._tmux import Tmux  # noqa: E402


def console_time(workspace: Path) -> float:
    python, root, ws = (shlex.quote(str(p)) for p in (sys.executable, ROOT, workspace))
    cmd = f"cd {root} && exec {python} -m tui.app --workspace {ws}"
    t = Tmux(cmd)
    try:
        return t.wait(lambda s: "stages" in s and ("finished" in s or "running" in s or "failed" in s))
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workspace", default="/tmp/ws-tui", type=Path)
    p.add_argument("--repeat", type=int, default=3)
    ns = p.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is required")
        return 2
    console = [console_time(ns.workspace) for _ in range(ns.repeat)]
    print(
        f"ftmodel-tui first frame with runs: median {statistics.median(console):.3f}s "
        f"(runs: {', '.join(f'{x:.3f}' for x in console)})"
    )
    wandb = shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))
    run_dir = find_wandb_run(ns.workspace)
    help_ok = Path(wandb).exists() and subprocess.run([wandb, "leet", "--help"], capture_output=True).returncode == 0
    if not help_ok or run_dir is None:
        print("wandb leet: not available (no wandb binary with `leet`, or no offline run in the workspace)")
        return 0
    leet = [leet_time(run_dir, wandb) for _ in range(ns.repeat)]
    print(
        f"wandb leet first frame ({run_dir.name}): median {statistics.median(leet):.3f}s "
        f"(runs: {', '.join(f'{x:.3f}' for x in leet)})"
    )
    print(f"ratio console/leet: {statistics.median(console) / statistics.median(leet):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
