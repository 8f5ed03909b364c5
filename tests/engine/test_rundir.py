"""The run-directory contract: atomic state, tailing metrics, liveness, lookups."""

import json
import os
import subprocess
import sys

import pytest

from ftmodel import rundir
from ftmodel.rundir import MetricsReader, MetricsWriter, create_run, find_run, latest_run, list_runs


def make(tmp_path, stage="sft", **state):
    run = create_run(tmp_path, stage, config_toml="[sft]\n", argv=["ftmodel", stage], args={"x": 1})
    if state:
        run.update_state(**state)
    return run


def test_create_run_writes_snapshot_and_queued_state(tmp_path):
    run = make(tmp_path)
    st = run.read_state()
    assert run.path.parent == tmp_path / "runs" and run.id.startswith("sft-")
    assert st["state"] == "queued" and st["stage"] == "sft" and st["args"] == {"x": 1}
    assert st["host"] and st["progress"] == {"step": 0, "total": None}
    assert run.config_path.read_text() == "[sft]\n"


def test_update_state_merges_nested_and_leaves_no_temp_files(tmp_path):
    run = make(tmp_path)
    run.update_state(progress={"step": 5})
    run.update_state(progress={"total": 10}, state="running")
    st = run.read_state()
    assert st["progress"] == {"step": 5, "total": 10} and st["state"] == "running"
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]


def test_metrics_reader_keeps_partial_line_and_survives_truncation(tmp_path):
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    assert reader.read_new() == []  # missing file is not an error
    w = MetricsWriter(path)
    w.write({"step": 1, "loss": 2.0})
    with open(path, "a") as fh:
        fh.write('{"step": 2, "lo')  # a writer caught mid-line
    assert reader.read_new() == [{"step": 1, "loss": 2.0}]
    with open(path, "a") as fh:
        fh.write('ss": 1.5}\nnot json\n')
    assert reader.read_new() == [{"step": 2, "loss": 1.5}]
    path.write_text('{"step": 1, "loss": 9.0}\n')  # truncated and rewritten
    assert reader.read_new() == [{"step": 1, "loss": 9.0}] and reader.resets == 1
    w.close()


def test_metrics_stay_strict_json_and_keep_nonfinite_values(tmp_path):
    """A diverged run's NaN and infinities are written as strings (RFC 8259 has no bare NaN) and read
    back as floats; an old file with Python's bare tokens, a wrong type and a torn line still read."""
    import math

    path = tmp_path / "metrics.jsonl"
    w = MetricsWriter(path)
    w.write({"step": 1, "loss": float("nan"), "grad_norm": float("inf"), "reward": -float("inf"), "lr": 1e308})
    w.write({"step": 2, "loss": 0.5})
    w.close()
    for line in path.read_text().splitlines():
        json.loads(line, parse_constant=lambda tok, line=line: pytest.fail(f"bare {tok} in {line}"))  # strict
    with open(path, "ab") as fh:
        fh.write(b'{"step": 3, "loss": NaN, "kl": -Infinity}\n{"step": 4, "loss": "high", "x": [1]}\n')
        fh.write(b'\xff\xfe not utf-8\n{"step": 5, "lo')
    rows = MetricsReader(path).read_new()
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert math.isnan(rows[0]["loss"]) and rows[0]["grad_norm"] == math.inf and rows[0]["reward"] == -math.inf
    assert rows[0]["lr"] == 1e308 and math.isnan(rows[2]["loss"]) and rows[2]["kl"] == -math.inf
    assert rows[3]["loss"] == "high"  # a wrong type is the reader's to skip, not the parser's


def test_state_json_keeps_real_characters_and_strict_numbers(tmp_path):
    run = make(tmp_path, error="答案缺失", summary={"train_loss": float("nan")})
    text = run.state_path.read_text(encoding="utf-8")
    assert "答案缺失" in text and "\\u" not in text and "NaN" in text
    json.loads(text, parse_constant=lambda tok: pytest.fail(f"bare {tok} in state.json"))
    assert run.read_state()["error"] == "答案缺失"


def test_status_reports_lost_when_the_process_is_gone(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = rundir.process_start_time(proc.pid)
    proc.wait()
    run = make(tmp_path, state="running", pid=proc.pid, proc_start=start)
    assert run.status() == "lost"
    run.update_state(state="finished")
    assert run.status() == "finished"


def test_status_guards_against_pid_reuse(tmp_path):
    me = os.getpid()
    run = make(tmp_path, state="running", pid=me, proc_start=rundir.process_start_time(me))
    assert run.status() == "running"
    run.update_state(proc_start=rundir.process_start_time(me) - 1)  # same pid, another process
    assert run.status() == "lost"


def test_list_latest_and_find(tmp_path):
    a = make(tmp_path, "sft", state="finished")
    b = make(tmp_path, "sft", state="failed")
    c = make(tmp_path, "grpo", state="finished")
    assert [r.id for r in list_runs(tmp_path)] == [a.id, b.id, c.id]  # creation order, even within one second
    assert latest_run(tmp_path, "sft").id == a.id
    assert latest_run(tmp_path, "sft", state=None).id == b.id
    assert find_run(tmp_path, c.id).id == c.id
    assert find_run(tmp_path, "grpo-").id == c.id
    with pytest.raises(LookupError, match="ambiguous"):
        find_run(tmp_path, "sft-")
    with pytest.raises(LookupError, match="no run"):
        find_run(tmp_path, "nope")


def test_state_json_is_valid_json_after_many_concurrent_updates(tmp_path):
    run = make(tmp_path)
    code = (
        "import sys; from ftmodel.rundir import Run; from pathlib import Path; r = Run(Path(sys.argv[1]));\n"
        "[r.update_state(**{sys.argv[2]: i}) for i in range(200)]"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(run.path), k]) for k in ("a", "b")]
    assert [p.wait() for p in procs] == [0, 0]
    st = json.loads(run.state_path.read_text())
    assert st["a"] == 199 and st["b"] == 199  # no lost updates


def test_one_reader_coerces_state_shape_and_names_what_is_wrong(tmp_path):
    run = make(tmp_path)
    run.state_path.write_text(
        '{"state": "running", "progress": {"step": true, "total": -3}, "pid": 1.5, '
        '"argv": "x", "stop_request": [], "extra": {"kept": 1}, "stage": null, "error": null}'
    )
    st = run.read_state()
    assert st["progress"] == {"step": 0, "total": None} and st["extra"] == {"kept": 1}
    assert "stage" not in st and st["error"] is None
    assert "pid" not in st and "argv" not in st and "stop_request" not in st and run.problem() is None
    run.state_path.write_text("[1, 2]")
    assert run.read_state() == {} and run.status() == rundir.BROKEN and "not a JSON object" in run.problem()
    with pytest.raises(rundir.BrokenRun, match=f"run {run.id} is broken"):
        run.check_state()


@pytest.mark.parametrize("ref", ["..", ".", "../x", "/etc", "a/b", ".creating-x", ""])
def test_find_run_refuses_anything_but_a_name_inside_runs(tmp_path, ref):
    make(tmp_path)
    with pytest.raises(LookupError, match="not a run id"):
        find_run(tmp_path, ref)


def test_create_run_leaves_nothing_when_it_cannot_write(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(TypeError):  # fails after the temp dir exists: config_toml must be text
        create_run(tmp_path, "sft", config_toml=None, argv=[])
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_shared_output_has_one_writer_and_the_refusal_names_it(tmp_path):
    from ftmodel.launcher import stage_contract
    from ftmodel.workspace import OutputBusy, check_outputs_free, output_holder, writing_outputs

    distill, filter_ = stage_contract("distill").shared_outputs, stage_contract("filter").shared_outputs
    with writing_outputs(tmp_path, distill, "distill-1"):
        assert output_holder(tmp_path, "data/distilled.jsonl") == "distill-1"
        with pytest.raises(OutputBusy, match="run distill-1 is already writing data/distilled.jsonl"):
            check_outputs_free(tmp_path, distill)
        with writing_outputs(tmp_path, filter_, "filter-1"):  # another output: no conflict
            pass
    assert output_holder(tmp_path, "data/distilled.jsonl") is None
    check_outputs_free(tmp_path, distill)
