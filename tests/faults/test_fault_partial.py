"""A stage that ends with less than it was asked for (a teacher failing on some items for good, a judge
that gives no score) is marked partial, is never reused as whole, and its rerun asks only for what
is missing. (The evaluate counterpart, on a trained model, is in tests/engine/test_stages.py.)"""

import json

from ftmodel.judge import Judge
from ftmodel.llm import OpenAIChatClient
from ftmodel.rundir import Run, create_run, partial_note
from tests.conftest import cli, openai_teacher, read_state
from tests.engine.test_cli_and_launcher import only_run, prepared_workspace
from tests.fake_openai import FakeOpenAI, Faults


def _questions(ws) -> dict[str, dict]:
    rows = [json.loads(line) for line in (ws / "data" / "raw" / "train.jsonl").read_text().splitlines()]
    return {r["question"]: r for r in rows}


def test_a_partial_distill_is_rerun_and_asks_the_teacher_only_for_the_missing_items(tmp_path):
    ws = prepared_workspace(tmp_path, n_train=10)
    questions = _questions(ws)
    failing = set(list(questions)[3:5])  # the teacher fails on these two for good (HTTP 500, no retries)
    solve = lambda messages: questions[messages[-1]["content"]]["solution"]
    flags = lambda url: openai_teacher(url, "--set", "distill.max_retries=0")
    faults = Faults(status=500, fail_if=lambda messages: messages[-1]["content"] in failing)
    with FakeOpenAI(responder=solve, faults=faults) as srv:  # one server: its URL is part of the fingerprint
        res = cli("pipeline", "--stages", "distill", "--workspace", str(ws), *flags(srv.base_url))
        assert res.returncode == 0, res.stdout + res.stderr
        first, driver = only_run(ws, "distill"), only_run(ws, "pipeline")
        state = read_state(first)
        assert state["state"] == "finished"
        assert state["partial"]["missing"] == 2 and state["partial"]["total"] == 10
        assert sorted(state["partial"]["items"]) == sorted(questions[q]["id"] for q in failing)
        assert partial_note(read_state(driver)) == f"{first.name} is partial: the teacher failed on 2 of 10 items"
        lineage = cli("lineage", first.name, "--workspace", str(ws)).stdout
        assert "partial: the teacher failed on 2 of 10 items" in lineage.splitlines()[0]

        missing, failing = set(failing), set()  # the teacher is well again
        asked_before = len(srv.requests)
        res = cli("distill", "--workspace", str(ws), *flags(srv.base_url))
        assert res.returncode == 0, res.stdout + res.stderr
        assert (
            f"distill: running again: {first.name} is partial (the teacher failed on 2 of 10 items): "
            "running again to fetch the missing ones"
        ) in res.stdout
        assert sorted(r["messages"][-1]["content"] for r in srv.requests[asked_before:]) == sorted(missing)
        second = next(p for p in (ws / "runs").iterdir() if p.name.startswith("distill-") and p != first)
        assert read_state(second)["state"] == "finished" and "partial" not in read_state(second)
        res = cli("distill", "--workspace", str(ws), *flags(srv.base_url))  # whole now: reused, nothing asked
        assert f"distill: reusing {second.name} (same inputs)" in res.stdout
        assert len(srv.requests) == asked_before + 2
    ids = [json.loads(line)["id"] for line in (ws / "data" / "distilled.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 10  # nothing lost, nothing twice


def test_the_judge_cache_keeps_scores_only_so_a_second_pass_asks_only_for_the_missing(tmp_path):
    cache = tmp_path / "judge_cache.jsonl"
    verdicts = {"a": "Score: 8", "b": "I cannot grade this.", "c": "Score: 3"}
    triples = [("q1", "g", "a"), ("q2", "g", "b"), ("q3", "g", "c")]
    responder = lambda messages: verdicts[messages[-1]["content"].rsplit(": ", 1)[-1]]
    with FakeOpenAI(responder=responder) as srv:
        judge = Judge(OpenAIChatClient(srv.base_url, "judge", max_retries=0), model_id="m", cache_path=cache)
        assert judge.score_many(triples) == [0.8, None, 0.3] and judge.errors == 1
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    assert sorted(r["score"] for r in rows) == [0.3, 0.8]  # the failure is not stored as an answer
    # A foreign or hand-edited line is never read as a verdict for the missing answer.
    key_b = judge._key(*triples[1])
    with open(cache, "a", encoding="utf-8") as fh:
        for bad in (None, "7", 7, float("nan"), True):
            fh.write(json.dumps({"key": key_b, "score": bad}) + "\n")
        fh.write('{"key": "torn')
    verdicts["b"] = "Score: 5"
    with FakeOpenAI(responder=responder) as srv:
        again = Judge(OpenAIChatClient(srv.base_url, "judge", max_retries=0), model_id="m", cache_path=cache)
        assert again.score_many(triples) == [0.8, 0.5, 0.3]
        assert [r["messages"][-1]["content"].rsplit(": ", 1)[-1] for r in srv.requests] == ["b"]


def test_a_damaged_partial_mark_still_counts_and_its_text_is_made_safe(tmp_path):
    assert partial_note({}) is None and partial_note({"partial": None}) is None
    assert partial_note({"partial": "yes"}) == "its partial mark in state.json does not say what is missing"
    assert partial_note({"partial": {"missing": 3}}) == "its partial mark in state.json does not say what is missing"
    assert partial_note({"partial": {"reason": "2 failed\x1b[31m\n"}}) == "2 failed [31m"
    # A finished run with such a mark is not reused: the start runs again and says why.
    ws = prepared_workspace(tmp_path, n_train=6)
    assert cli("distill", "--workspace", str(ws), "--set", "wandb.enabled=false").returncode == 0
    run = Run(only_run(ws, "distill"))
    run.update_state(partial="garbage")
    res = cli("distill", "--workspace", str(ws), "--set", "wandb.enabled=false")
    assert res.returncode == 0 and "reusing" not in res.stdout
    assert f"running again: {run.id} is partial (its partial mark" in res.stdout


def test_marks_add_up_and_only_rank_0_writes_them(tmp_path):
    from ftmodel import config as config_mod
    from ftmodel.context import StageContext
    from ftmodel.workspace import Workspace
    from tests.conftest import DEFAULT_CONFIG

    run = create_run(tmp_path, "ablation", config_toml="", argv=[])
    cfg = config_mod.load(DEFAULT_CONFIG)
    ctx = StageContext(run=run, cfg=cfg, ws=Workspace(tmp_path), stage="ablation", args={})
    ctx.mark_partial("base: no score for 2 of 4", missing=2, total=4, retry="ask again", items=["a", "b"])
    ctx.mark_partial("sft: no score for 1 of 4", missing=1, total=4, retry="ask again", items=["c"])
    mark = run.read_state()["partial"]
    assert mark == {
        "reason": "base: no score for 2 of 4; sft: no score for 1 of 4",
        "missing": 3,
        "total": 8,
        "retry": "ask again",
        "items": ["a", "b", "c"],
    }
    other = create_run(tmp_path, "ablation", config_toml="", argv=[])
    StageContext(run=other, cfg=cfg, ws=Workspace(tmp_path), stage="ablation", rank=1).mark_partial(
        "x", missing=1, retry="y"
    )
    assert "partial" not in other.read_state()
