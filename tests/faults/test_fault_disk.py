"""A disk that fills up while a stage appends its output: a named error, and a rerun loses nothing.

RLIMIT_FSIZE stands in for a full disk: past the limit every write fails (EFBIG) the way a full
disk fails it (ENOSPC), in the one process under test, without mounting anything.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

from ftmodel.data import bank
from ftmodel.data.loaders import write_jsonl
from ftmodel.rundir import create_run
from tests.conftest import ROOT, cli, read_state
from tests.faults.conftest import assert_clean

LIMIT = 24_000  # bytes: distilled.jsonl passes it after a few dozen rows; state.json and stage.log stay below


def test_distill_on_a_disk_that_fills_up_fails_clearly_and_a_rerun_completes_it(tmp_path):
    ws = tmp_path / "ws"
    train, evals = bank.generate_bank(0, 200, 8)
    write_jsonl(ws / "data" / "raw" / "train.jsonl", train)
    write_jsonl(ws / "data" / "raw" / "eval.jsonl", evals)
    config = '[distill]\nbackend = "builtin"\nbuiltin_error_rate = 0.0\n[wandb]\nenabled = false\n'
    (tmp_path / "c.toml").write_text(config)
    run = create_run(
        ws, "distill", config_toml=config, argv=["ftmodel", "distill"], args={"workspace": str(ws.resolve())}
    )

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "ftmodel.worker", str(run.path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_disk,
    )
    out = assert_clean(res)
    assert res.returncode == 1, out
    state = read_state(run.path)
    assert state["state"] == "failed" and state["error"].startswith("disk full: cannot write"), state
    assert "File too large" in state["error"]
    written = (ws / "data" / "distilled.jsonl").read_bytes()
    assert 0 < len(written) <= LIMIT

    # Space is back: the rerun keeps every whole row, drops the torn one and does the rest once.
    again = cli("distill", "--config", str(tmp_path / "c.toml"), "--workspace", str(ws), timeout=300)
    assert again.returncode == 0, assert_clean(again)
    rows = [json.loads(line) for line in (ws / "data" / "distilled.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(q["id"] for q in train)
