"""What a run writes cannot hurt the CLI: NaN and absurd numbers, wrong shapes, and text holding
terminal control sequences (a model's completion, a run directory's name, an error quoting a file).

The CLI runs for real, once with pipes (what scripts and cron see) and once on a pseudo-terminal
(what a user in tmux sees), over the hostile workspace of tests/hostile_runs.py. Nothing ends in a
traceback; nothing reaches a terminal raw: ESC [2J is printed as ␛[2J.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

from tests.conftest import ROOT, cli
from tests.hostile_runs import DIVERGED, RAW_CONTROL, make_hostile_workspace


def raw_on_a_terminal(text: str) -> list[str]:
    """Control characters in terminal output that should not be there: the line discipline turns
    \n into \r\n, a log's progress bars keep their \r, and tabs pass."""
    return sorted({repr(c) for c in RAW_CONTROL.findall(text) if c not in "\r\t"})


def on_a_terminal(*args: str, timeout: float = 60) -> tuple[int, str]:
    """Run `python -m ftmodel ARGS` with a pseudo-terminal as stdin, stdout and stderr; return (exit code, output)."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FTMODEL_LANG": "en", "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftmodel", *args], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env
    )
    os.close(slave)
    out = b""
    try:
        while chunk := os.read(master, 1 << 16):
            out += chunk
    except OSError:  # EIO: the child closed the terminal
        pass
    finally:
        os.close(master)
    return proc.wait(timeout=timeout), out.decode("utf-8", "replace")


@pytest.fixture
def hostile_ws(tmp_path):
    ws = tmp_path / "ws"
    make_hostile_workspace(ws)
    return ws


COMMANDS = [
    ("runs",),
    ("queue", "ls"),
    ("sync", "--status"),
    ("logs", DIVERGED),
    ("follow", DIVERGED),
    ("sweep", "show", "sweep-esc"),  # a sweep record of the wrong shape: a named error, exit 2
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_the_cli_on_hostile_runs_shows_their_text_and_never_fails_with_a_traceback(hostile_ws, command):
    args = (*command, "--workspace", str(hostile_ws))
    piped = cli(*args, timeout=120)
    assert "Traceback" not in piped.stderr + piped.stdout, piped.stderr
    assert piped.returncode in (0, 1, 2), piped.stderr
    code, shown = on_a_terminal(*args)
    assert "Traceback" not in shown, shown
    assert code == piped.returncode
    raw = raw_on_a_terminal(shown)
    assert not raw, f"raw control characters reached the terminal: {raw}\n{shown}"
    assert "␛" in shown, shown  # shown, not obeyed (and not dropped)


def test_tables_of_hostile_runs_are_clean_even_through_a_pipe(hostile_ws):
    """A table is for people wherever it goes: its cells are shown as text through a pipe too."""
    for command in (("runs",), ("queue", "ls"), ("sync", "--status")):
        res = cli(*command, "--workspace", str(hostile_ws))
        assert res.returncode in (0, 1) and not RAW_CONTROL.findall(res.stdout.replace("\t", " ")), res.stdout
    listing = cli("runs", "--workspace", str(hostile_ws)).stdout
    assert all(name in listing for name in ("sft-20260101-000001-␛[2J\\u202e[b]odd", DIVERGED)), listing


def test_a_log_through_a_pipe_keeps_its_bytes(hostile_ws):
    """`ftmodel logs RUN > file` is the log as written (only a terminal gets the escapes shown)."""
    res = cli("logs", DIVERGED, "--workspace", str(hostile_ws))
    assert res.returncode == 0 and "\x1b[2J" in res.stdout and "\x1b]0;pwned\x07" in res.stdout
