"""Two stages writing one shared workspace output at once: the second is refused, naming the first."""

from __future__ import annotations

import json
import threading

from ftmodel.data import bank
from ftmodel.data.loaders import write_jsonl
from ftmodel.rundir import create_run
from tests.conftest import cli, read_state, wait_for
from tests.fake_openai import FakeOpenAI
from tests.faults.conftest import assert_clean, worker


def test_two_distills_in_one_workspace_never_duplicate_a_row(tmp_path):
    ws = tmp_path / "ws"
    train, evals = bank.generate_bank(0, 24, 8)
    write_jsonl(ws / "data" / "raw" / "train.jsonl", train)
    write_jsonl(ws / "data" / "raw" / "eval.jsonl", evals)
    solutions = {q["question"]: q["solution"] for q in train}
    gate = threading.Event()  # the teacher answers nothing until the test has tried the second distill

    def teacher(messages):
        gate.wait(60)
        return solutions[messages[-1]["content"]]

    flags = [
        "--workspace",
        str(ws),
        "--set",
        "distill.backend=openai",
        "--set",
        "distill.model=teacher",
        "--set",
        "wandb.enabled=false",
        "--set",
        "distill.timeout_s=120",
        "--set",
        "distill.concurrency=2",
    ]
    with FakeOpenAI(responder=teacher) as srv:
        flags += ["--set", f"distill.base_url={srv.base_url}"]
        first = cli("distill", "--detach", *flags, timeout=120)
        assert first.returncode == 0, first.stdout + first.stderr
        (run1,) = (ws / "runs").iterdir()
        wait_for(lambda: srv.requests, timeout=120, what="the first distill to ask its teacher")

        # A second distill from another terminal: refused before it makes a run or asks the teacher.
        second = cli("distill", *flags, timeout=120)
        out = assert_clean(second)
        assert second.returncode == 2, out
        assert f"run {run1.name} is already writing data/distilled.jsonl" in out
        assert [p.name for p in (ws / "runs").iterdir()] == [run1.name]

        # Two started in the same instant both pass that check: the worker's lock refuses the later one.
        config = (run1 / "config.toml").read_text()
        racer = create_run(
            ws, "distill", config_toml=config, argv=["ftmodel", "distill"], args={"workspace": str(ws.resolve())}
        )
        res = worker(racer.path)
        assert res.returncode == 2 and f"run {run1.name} is already writing data/distilled.jsonl" in assert_clean(res)
        state = read_state(racer.path)
        assert state["state"] == "failed" and "already writing data/distilled.jsonl" in state["error"]
        assert len(srv.requests) <= 2  # only the first run's requests in flight: the racer asked nothing

        gate.set()
        done = wait_for(
            lambda: (s := read_state(run1)).get("state") in ("finished", "failed", "cancelled") and s,
            timeout=180,
            what="the first distill to end",
        )
    assert done["state"] == "finished", done
    rows = [json.loads(line) for line in (ws / "data" / "distilled.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in rows]
    assert sorted(ids) == sorted(q["id"] for q in train)  # every question once: nothing lost, nothing doubled
    assert len(srv.requests) == len(train)
    # The lock died with its holder: the next distill runs (and has nothing left to do).
    again = cli("distill", *flags[:-2], "--set", "distill.base_url=http://127.0.0.1:9/v1", timeout=120)
    assert again.returncode == 0 and "0 to do" in assert_clean(again), again.stdout + again.stderr
