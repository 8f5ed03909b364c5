"""A tiny tmux driver for the benchmarks: a private server, screen captures, polling with deadlines."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path


class Tmux:
    """One detached tmux server (own socket) running one command in a fixed-size window."""

    def __init__(self, command: str, width: int = 100, height: int = 30, cwd: str | None = None):
        self.socket = f"ftmodel-bench-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "TERM": "xterm-256color"}
        env.pop("TMUX", None)
        self.started = time.perf_counter()
        subprocess.run(
            [
                "tmux",
                "-L",
                self.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "b",
                "-x",
                str(width),
                "-y",
                str(height),
                command,
            ],
            check=True,
            env=env,
            cwd=cwd,
        )

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, "capture-pane", "-p", "-t", "b"], capture_output=True, text=True
        ).stdout

    def pane_pid(self) -> int:
        out = subprocess.run(
            ["tmux", "-L", self.socket, "display-message", "-p", "-t", "b", "#{pane_pid}"],
            capture_output=True,
            text=True,
        ).stdout
        return int(out.strip())

    def wait(self, predicate, timeout: float = 60.0) -> float:
        """Poll the screen until `predicate(screen)`; return seconds since the server started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.screen()):
                return time.perf_counter() - self.started
            time.sleep(0.01)
        raise TimeoutError(f"screen never matched; last screen:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    """The machine's 1-minute load average (the benches print it beside their figures)."""
    return f"{os.getloadavg()[0]:.1f}"


def console_module(checkout: Path) -> str:
    """The module `ftmodel-tui` runs in a checkout: `tui` (tui/__main__.py) where it has one, else `tui.app`
    (checkouts before tui/__main__.py). Named by file: an editable install of another checkout would
    otherwise answer `python -m tui` with its own tui/__main__.py."""
    return "tui" if (Path(checkout) / "tui" / "__main__.py").exists() else "tui.app"
