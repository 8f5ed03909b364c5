"""Fault-injection suite: each test injects one fault into real processes and real files.

What it covers (docs/FAULTS.md has the "what survives what" table that points here):

- ``test_fault_rundir.py`` — run-directory trust: `stop|logs|follow` refuse `../x`, absolute paths
  and symlinks out of ``<workspace>/runs``; a pid recorded without its start time is never
  signalled; wrong-shaped and corrupt ``state.json`` give a named error (non-zero for
  `stop`/`follow`) or a "broken" row in `runs`, never a traceback; a run dir without state.json
  is listed; an unwritable or full disk at run creation is one clear line and leaves no run dir.
- ``test_fault_concurrency.py`` — two `distill` runs in one workspace: the second is refused
  naming the first ("run X is already writing data/distilled.jsonl"), before or after it
  started; no row is duplicated or lost.
- ``test_fault_disk.py`` — a disk that fills up while distill appends rows (RLIMIT_FSIZE stands in
  for ENOSPC): the run fails with "disk full: …", no traceback, and a rerun completes it without
  duplicates.
- ``test_fault_stop.py`` — two stops at once keep the checkpoint (real SFT on the tiny model); a
  stop during the embedded base-model build in `prepare` is honoured at once and the build
  reports step/total; SIGKILL during checkpoint saves, then `--resume` takes the newest complete
  checkpoint and names the partial one it skipped.

Rules: real subprocesses (the `ftmodel` CLI, detached workers), real files, a loopback
OpenAI-compatible server for the teacher. Waits poll with a bound (``wait_for``); no test asserts
a time. Each asserts what a user would check: nothing lost, a named error, no traceback, a
non-zero exit where a command failed, no process outside the workspace signalled. The tests
that train (SFT, the base-model build) are marked ``slow``; the rest take seconds.
Network faults (server down/slow/truncated/redirecting, two syncs) belong here too: TODO-LEAD.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def assert_clean(res: subprocess.CompletedProcess) -> str:
    """Return stdout+stderr after checking it holds no traceback."""
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out
    return out


@pytest.fixture
def sleeper():
    """A live process in its own session that no test may kill (it stands for an unrelated process)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def worker(run_dir: Path, **kw) -> subprocess.CompletedProcess:
    """Run a run directory's worker in the foreground, as the launcher would in the background."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "ftmodel.worker", str(run_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )
