"""Teacher and judge clients against a local OpenAI-compatible server with injected faults."""

import json
import os
import signal

import pytest

from ftmodel.judge import Judge, parse_score
from ftmodel.llm import LLMError, OpenAIChatClient, map_chat
from tests.conftest import cli, openai_teacher, read_metrics, read_state, wait_for
from tests.engine.test_cli_and_launcher import only_run, prepared_workspace
from tests.fake_openai import FakeOpenAI, Faults, closed_port_url

MSG = [{"role": "user", "content": "hi"}]


def client(url, **kw):
    kw.setdefault("backoff_s", 0.01)
    return OpenAIChatClient(url, "teacher-model", **kw)


def test_reply_usage_and_key_from_the_named_env_var(monkeypatch):
    monkeypatch.setenv("MY_TEST_KEY", "sk-secret")
    with FakeOpenAI(responder=lambda m: "hello") as srv:
        reply = client(srv.base_url, api_key_env="MY_TEST_KEY").chat(MSG)
        monkeypatch.delenv("MY_TEST_KEY")
        client(srv.base_url, api_key_env="MY_TEST_KEY").chat(MSG)
    assert reply.text == "hello" and reply.prompt_tokens == 10 and reply.completion_tokens == 5
    assert srv.auth_headers == ["Bearer sk-secret", None]
    assert srv.requests[0]["model"] == "teacher-model" and srv.requests[0]["messages"] == MSG


def test_5xx_and_malformed_replies_are_retried():
    with FakeOpenAI(responder=lambda m: "ok", faults=Faults(status_first=2, status=503)) as srv:
        busy = client(srv.base_url, max_retries=3)
        assert busy.chat(MSG).text == "ok"
    assert len(srv.requests) == 3
    with FakeOpenAI(responder=lambda m: "ok", faults=Faults(malformed_first=1)) as srv:
        assert client(srv.base_url, max_retries=1).chat(MSG).text == "ok"


def test_401_fails_at_once_naming_the_env_var():
    with FakeOpenAI(faults=Faults(status_always=401)) as srv:
        with pytest.raises(LLMError, match=r"unauthorized\): check the key in \$TEACHER_API_KEY") as e:
            client(srv.base_url, api_key_env="TEACHER_API_KEY", max_retries=5).chat(MSG)
    assert e.value.fatal and len(srv.requests) == 1


def test_slow_server_times_out_and_gives_up_bounded():
    with FakeOpenAI(faults=Faults(delay_s=2.0)) as srv:
        # Each attempt ends on the client's 0.2 s timeout, never on the slow reply.
        with pytest.raises(LLMError, match="gave up after 2 attempts: .*timed out"):
            client(srv.base_url, timeout_s=0.2, max_retries=1).chat(MSG)
        assert len(srv.requests) == 2


def test_refused_connection_and_persistent_errors_give_up():
    with pytest.raises(LLMError, match="gave up after 3 attempts.*(refused|Errno)"):
        client(closed_port_url(), max_retries=2).chat(MSG)
    with FakeOpenAI(faults=Faults(status_always=500)) as srv:
        with pytest.raises(LLMError, match="HTTP 500"):
            client(srv.base_url, max_retries=2).chat(MSG)
    assert len(srv.requests) == 3


def test_map_chat_bounds_concurrency_and_reports_errors_per_item():
    with FakeOpenAI(responder=lambda m: m[-1]["content"].upper(), faults=Faults(delay_s=0.05)) as srv:
        results = list(
            map_chat(
                client(srv.base_url),
                [f"q{i}" for i in range(12)],
                lambda q: [{"role": "user", "content": q}],
                concurrency=3,
            )
        )
    assert sorted(r.text for _, r, _ in results) == sorted(f"Q{i}" for i in range(12))
    assert 1 < srv.max_in_flight <= 3
    results = list(map_chat(client(closed_port_url(), max_retries=0), ["a", "b"], lambda q: MSG, concurrency=2))
    assert all(r is None and isinstance(e, LLMError) for _, r, e in results)


@pytest.mark.parametrize(
    "text,score",
    [
        ("Score: 8", 0.8),
        ("**Score:** 10", 1.0),
        ('{"score": 3}', 0.3),
        ("I'd give it 7/10.", 0.7),
        ("5", 0.5),
        ("score = 0", 0.0),
        ("no idea", None),
        ("Score: 42", None),
        ("", None),
    ],
)
def test_parse_score(text, score):
    assert parse_score(text) == score


def test_judge_caches_by_content_and_counts_garbage(tmp_path):
    cache = tmp_path / "judge_cache.jsonl"
    with FakeOpenAI(responder=lambda m: "Score: 9" if "Candidate answer: 42" in m[-1]["content"] else "hmm") as srv:
        judge = Judge(client(srv.base_url, max_retries=0), model_id="m", cache_path=cache, concurrency=2)
        scores = judge.score_many([("q1", "42", "42"), ("q2", "7", "8"), ("q1", "42", "42")])
        assert scores == [0.9, None, 0.9] and judge.errors == 1
        assert judge.score_many([("q1", "42", "42")]) == [0.9]
        again = Judge(client(srv.base_url), model_id="m", cache_path=cache)
        assert again.score_many([("q1", "42", "42")]) == [0.9]
    # q1 was asked once (its duplicate in the batch and both later calls hit the cache), q2 once.
    assert len(srv.requests) == 2


def test_judge_reward_function_speaks_trl(tmp_path):
    with FakeOpenAI(faults=Faults(content="Score: 6")) as srv:
        reward = Judge(client(srv.base_url), model_id="m").reward_function()
        out = reward(
            completions=[[{"role": "assistant", "content": "<think>x</think><answer>5</answer>"}]],
            answer=["5"],
            question=["what?"],
            qtype=["t"],
        )
    assert reward.__name__ == "judge_reward" and out == [0.6]
    assert "Candidate answer: 5" in srv.requests[0]["messages"][-1]["content"]


def _solutions(ws):
    by_question = {}
    for line in (ws / "data" / "raw" / "train.jsonl").read_text().splitlines():
        r = json.loads(line)
        by_question[r["question"]] = r["solution"]
    return lambda messages: by_question[messages[-1]["content"]]


def test_distill_with_an_openai_teacher_logs_progress(tmp_path):
    ws = prepared_workspace(tmp_path)
    with FakeOpenAI(responder=_solutions(ws)) as srv:
        res = cli("distill", "--workspace", str(ws), *openai_teacher(srv.base_url, "--set", "distill.concurrency=4"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(srv.requests) == 120 and srv.max_in_flight <= 4
    rows = [json.loads(line) for line in (ws / "data" / "distilled.jsonl").read_text().splitlines()]
    assert len(rows) == 120 and all(r["teacher"] == "openai:teacher" and "<answer>" in r["solution"] for r in rows)
    last = read_metrics(only_run(ws, "distill"))[-1]
    assert last["distill/done"] == 120 and last["distill/errors"] == 0 and last["distill/tokens"] == 120 * 15
    assert last["distill/rate"] > 0


def test_distill_bad_endpoint_is_a_clear_error_not_a_hang(tmp_path):
    ws = prepared_workspace(tmp_path)
    with FakeOpenAI(faults=Faults(status_always=401)) as srv:
        res = cli("distill", "--workspace", str(ws), *openai_teacher(srv.base_url))
    assert res.returncode == 2 and "teacher:" in res.stdout and "unauthorized" in res.stdout
    res = cli("distill", "--workspace", str(ws), *openai_teacher(closed_port_url(), "--set", "distill.max_retries=0"))
    assert res.returncode == 2 and "the teacher failed 20 times" in res.stdout
    res = cli("distill", "--workspace", str(ws), "--set", "distill.backend=openai", "--set", "wandb.enabled=false")
    assert res.returncode == 2 and "distill.model: name the model" in res.stderr


def test_distill_killed_half_way_resumes_without_redoing_or_duplicating(tmp_path):
    ws = prepared_workspace(tmp_path)
    out = ws / "data" / "distilled.jsonl"
    with FakeOpenAI(responder=_solutions(ws), faults=Faults(delay_s=0.05)) as srv:
        res = cli(
            "distill",
            "--workspace",
            str(ws),
            "--detach",
            *openai_teacher(srv.base_url, "--set", "distill.concurrency=2"),
        )
        run = only_run(ws, "distill")
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 30, timeout=60, what="30 records")
        os.killpg(read_state(run)["pgid"], signal.SIGKILL)  # a crash: no chance to clean up
        wait_for(lambda: run_status(run) == "lost", timeout=30, what="the killed run to show as lost")
        done_before = {json.loads(line)["id"] for line in out.read_text().splitlines() if line.endswith("}")}
        first_requests = len(srv.requests)
        res = cli("distill", "--workspace", str(ws), *openai_teacher(srv.base_url, "--set", "distill.concurrency=2"))
        assert res.returncode == 0, res.stdout
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 120
    asked_again = {m["messages"][-1]["content"] for m in srv.requests[first_requests:]}
    questions = {
        json.loads(line)["question"]: json.loads(line)["id"]
        for line in (ws / "data" / "raw" / "train.jsonl").read_text().splitlines()
    }
    assert not {questions[q] for q in asked_again} & done_before  # nothing done was asked again
    assert len(srv.requests) - first_requests <= 120 - len(done_before)


def run_status(run_dir):
    from ftmodel.rundir import Run

    return Run(run_dir).status()


def test_replies_are_streamed_and_a_stream_without_done_is_complete():
    text = "<think>两步</think><answer>42</answer>"
    with FakeOpenAI(faults=Faults(content=text, piece_chars=3, no_done=True)) as srv:
        reply = client(srv.base_url).chat(MSG)
    assert srv.requests[0]["stream"] is True and srv.requests[0]["stream_options"] == {"include_usage": True}
    assert reply.text == text and srv.streamed == 1
    assert (reply.prompt_tokens, reply.completion_tokens) == (10, 5)


def test_a_stream_cut_mid_way_is_retried_then_named():
    with FakeOpenAI(faults=Faults(content="a long answer", piece_chars=2, stream_cut_after=3)) as srv:
        with pytest.raises(LLMError, match="gave up after 2 attempts: the stream ended before the reply was finished"):
            client(srv.base_url, max_retries=1).chat(MSG)
    assert len(srv.requests) == 2


def test_pace_starts_slow_halves_once_per_congestion_and_grows_back_slowly():
    from ftmodel.llm import Pace

    pace = Pace(8, slow_s=10)

    def replies(n):
        for _ in range(n):
            t = pace.acquire()
            pace.release(t, t, "ok")

    assert pace.limit == 1  # slow start: one request, doubled after each round of replies in time
    replies(1)
    assert pace.limit == 2
    replies(2 + 4)
    assert pace.limit == 8
    sent = [pace.acquire() for _ in range(8)]
    for t in sent:  # eight requests sent together all time out: one congestion, one cut
        pace.release(t, None, "timeout")
    assert pace.limit == 4 and pace.timeouts == 8 and len(pace.take_notes()) == 1
    t = pace.acquire()
    pace.release(t, None, "timeout")  # sent after the cut: a new congestion
    assert pace.limit == 2
    replies(15)  # no more slow start; the run needed to grow doubled with each cut: 4 -> 8 -> 16
    assert pace.limit == 2
    replies(1)
    assert pace.limit == 3 and pace.in_flight == 0
    t = pace.acquire()
    pace.release(t, t + 11, "ok")  # the first token waited 11 s, past slow_s: the server queues us
    assert pace.limit == 1 and "wait 11 s for their first token" in pace.take_notes()[-1]
    assert "request(s) at a time" in pace.summary(left=30) and "30 items left" in pace.summary(left=30)
    busy = Pace(4, slow_s=10)
    t = busy.acquire()
    busy.release(t, t, "ok")
    t = busy.acquire()
    busy.release(t, None, "busy")  # HTTP 429/503: the server says it is overloaded
    assert busy.limit == 1 and "429/503" in busy.take_notes()[0]


def test_connections_are_kept_alive_between_requests():
    """Streamed and whole replies, one after another and a few at a time, over kept-alive
    connections (HTTP/1.1, chunked streams, as uvicorn serves): the server counts TCP connections."""
    with FakeOpenAI(responder=lambda m: "answer " * 20, keep_alive=True) as srv:
        teacher = client(srv.base_url)
        assert [teacher.chat(MSG).text for _ in range(5)] == ["answer " * 20] * 5
        assert srv.streamed == 5 and srv.connections == 1
        whole = client(srv.base_url, stream=False)
        assert [whole.chat(MSG).text for _ in range(3)] == ["answer " * 20] * 3
        assert srv.connections == 1
        results = list(map_chat(client(srv.base_url), range(12), lambda q: MSG, concurrency=3))
    assert [e for _, _, e in results] == [None] * 12 and len(srv.requests) == 20
    assert srv.connections <= 1 + 3  # at most one more per request in flight, not one per request
