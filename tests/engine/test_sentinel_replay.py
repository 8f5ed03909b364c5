"""Replaying the sentinel's rules over a run recorded before the sentinel existed: `replay_alerts` and
`ftmodel alerts RUN --replay [--record]` (a finished run with metrics.jsonl and no alerts.jsonl)."""

from __future__ import annotations

import json
import math
import os
import time

import pytest

from ftmodel.rundir import create_run, dumps_strict, process_start_time
from ftmodel.sentinel import REPLAY_SOURCE, StillActive, count_alerts, read_alerts, replay_alerts
from tests.conftest import cli


def nan_rows(n: int, from_step: int) -> list[dict]:
    """An SFT run that diverged: loss and grad norm non-finite from `from_step` on."""
    rows = [{"step": s, "time": 1764000000.0 + s, "loss": 2.0 - s / 100, "grad_norm": 1.0} for s in range(1, n + 1)]
    for row in rows[from_step - 1 :]:
        row.update(loss=math.nan, grad_norm=math.inf)
    return rows


def old_run(ws, rows: list[dict], *, state: str = "finished", tail: bytes = b""):
    """A run as an ftmodel without the sentinel left it: metrics.jsonl (strict JSON), no alerts.jsonl."""
    run = create_run(ws, "sft", config_toml="", argv=[])
    me = {"pid": os.getpid(), "proc_start": process_start_time(os.getpid())}
    extra = me if state == "running" else {"ended": time.time()}
    run.update_state(state=state, started=time.time() - 60, **extra)
    with open(run.metrics_path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(dumps_strict(row) + "\n")
    with open(run.metrics_path, "ab") as fh:
        fh.write(tail)
    return run


def test_replay_says_what_the_rules_say_and_records_nothing(tmp_path):
    run = old_run(tmp_path, nan_rows(12, 6))
    replay = replay_alerts(run)
    assert [a.rule for a in replay.alerts] == ["nonfinite_loss", "nonfinite_grad_norm"]
    assert {a.source for a in replay.alerts} == {REPLAY_SOURCE} and {a.step for a in replay.alerts} == {6}
    assert replay.rows == 12 and replay.whole
    assert not (run.path / "alerts.jsonl").exists()


def test_replay_is_bounded_says_so_and_never_replays_an_active_run(tmp_path):
    run = old_run(tmp_path, nan_rows(2500, 2400))
    cut = replay_alerts(run, max_rows=1000)
    assert (cut.rows, cut.whole, cut.alerts) == (1000, False, [])  # the divergence lies after the bound
    whole = replay_alerts(run, max_rows=2500)
    assert (whole.rows, whole.whole, [a.step for a in whole.alerts]) == (2500, True, [2400, 2400])
    live = old_run(tmp_path, nan_rows(5, 2), state="running")
    with pytest.raises(StillActive, match=live.id):
        replay_alerts(live)
    with pytest.raises(StillActive):
        replay_alerts(run, "queued")  # the caller's status (the scheduler's) wins


def test_hostile_metrics_are_skipped_never_fatal(tmp_path):
    hostile = (
        b'{"step": 2, "loss": "\x1b[31mred", "grad_norm": [1]}\n'  # a raw control character: no JSON
        b'{"step": 2, "loss": "\\u001b[31mred", "grad_norm": [1]}\n'
        b"\x00\xff not json\n"
        b'["a list"]\n'
        b'{"step": "3", "loss": {"x": 1}}\n'
        b'{"step": 1e308, "loss": "NaN", "time": "Infinity"}\n'
        b'{"step": 9, "loss": "Na'  # torn: the run was killed while writing
    )
    ws = tmp_path / "ws"
    run = old_run(ws, nan_rows(1, 2), tail=hostile)
    replay = replay_alerts(run)
    assert replay.rows == 4 and [a.rule for a in replay.alerts] == ["nonfinite_loss"]  # the "NaN" row
    shown = cli("alerts", run.id, "--replay", "--record", "--workspace", str(ws))  # a time of inf, a step of 1e308
    assert shown.returncode == 0 and "REPLAYED nonfinite_loss" in shown.stdout, shown.stderr
    assert "\x1b" not in shown.stdout and read_alerts(run)[0].rule == "nonfinite_loss"


def test_the_cli_prints_replayed_alerts_and_records_them_only_when_asked(tmp_path):
    ws = tmp_path / "ws"
    run = old_run(ws, nan_rows(12, 6))
    shown = cli("alerts", run.id, "--replay", "--workspace", str(ws))
    assert shown.returncode == 0, shown.stderr
    assert f"REPLAYED nonfinite_loss in {run.id} at step 6" in shown.stdout
    assert "replayed 12 rows, 2 alerts (not recorded: --record writes them)" in shown.stdout
    assert not (run.path / "alerts.jsonl").exists()
    records = [
        json.loads(x)
        for x in cli("alerts", run.id, "--replay", "--json", "--workspace", str(ws)).stdout.split("\n")
        if x
    ]
    assert [(r["rule"], r["source"], r["replayed"]) for r in records] == [
        ("nonfinite_loss", "replay", True),
        ("nonfinite_grad_norm", "replay", True),
    ]
    zh = cli("alerts", run.id, "--replay", "--workspace", str(ws), env={"FTMODEL_LANG": "zh"}).stdout
    assert "重放" in zh and "REPLAYED" not in zh
    assert cli("alerts", run.id, "--record", "--workspace", str(ws)).returncode != 0  # --record alone: refused
    assert not (run.path / "alerts.jsonl").exists()
    recorded = cli("alerts", run.id, "--replay", "--record", "--workspace", str(ws))
    assert "2 new written to alerts.jsonl" in recorded.stdout
    assert [(a.rule, a.source) for a in read_alerts(run)] == [
        ("nonfinite_loss", "replay"),
        ("nonfinite_grad_norm", "replay"),
    ]
    again = cli("alerts", run.id, "--replay", "--record", "--workspace", str(ws))
    assert "0 new written" in again.stdout and count_alerts(run) == 2  # keyed like the trainer's: once
    assert not (run.path / "alerts_command.log").exists()  # no [alerts] command for an old run
    listed = cli("alerts", run.id, "--workspace", str(ws)).stdout  # recorded, they stay marked as replayed
    assert f"REPLAYED nonfinite_loss in {run.id}" in listed and "ALERT " not in listed


def test_the_cli_never_replays_a_running_run(tmp_path):
    ws = tmp_path / "ws"
    live = old_run(ws, nan_rows(5, 2), state="running")
    said = cli("alerts", live.id, "--replay", "--record", "--workspace", str(ws))
    assert said.returncode == 1 and f"not replayed: {live.id} is still running" in said.stderr
    assert not (live.path / "alerts.jsonl").exists()


def test_a_pipeline_is_replayed_with_the_runs_it_started_and_only_those(tmp_path):
    ws = tmp_path / "ws"
    child = old_run(ws, nan_rows(6, 4))
    outside = tmp_path / "outside"  # a directory a hostile state.json names: never written to
    outside.mkdir()
    (outside / "state.json").write_text('{"stage": "sft", "state": "finished"}')
    (outside / "metrics.jsonl").write_text(dumps_strict({"step": 1, "loss": math.nan}) + "\n")
    pipe = create_run(ws, "pipeline", config_toml="", argv=[])
    pipe.update_state(state="finished", children=[child.id, child.id, "../../outside", "no-such-run", pipe.id])
    said = cli("alerts", pipe.id, "--replay", "--record", "--workspace", str(ws))
    assert said.returncode == 0, said.stderr
    assert said.stdout.count(f"REPLAYED nonfinite_loss in {child.id} at step 4") == 1
    assert [line.split(":")[0] for line in said.stdout.splitlines() if "rows," in line] == [pipe.id, child.id]
    assert count_alerts(child) == 2 and not (outside / "alerts.jsonl").exists()
