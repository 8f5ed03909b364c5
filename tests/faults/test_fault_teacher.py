"""The teacher/judge client and distill under server faults: a redirect to another host (the key
stays home), replies cut short or trickled, a slow one-at-a-time server, a server that does not
stream, abandoned requests, and a teacher that is down."""

import json

import pytest

from ftmodel import http_client as http
from ftmodel.context import StageError
from ftmodel.judge import Judge
from ftmodel.llm import LLMError, OpenAIChatClient, map_chat
from tests.conftest import cli, openai_teacher, read_state, wait_for
from tests.engine.test_cli_and_launcher import only_run, prepared_workspace
from tests.fake_openai import FakeOpenAI, Faults, closed_port_url
from tests.faults.loopback import Recorder, self_signed_cert, server_tls

MSG = [{"role": "user", "content": "hi"}]


def client(url, **kw):
    kw.setdefault("backoff_s", 0.01)
    return OpenAIChatClient(url, "teacher-model", api_key_env="FAULT_TEST_KEY", **kw)


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("FAULT_TEST_KEY", "sk-secret")


def test_a_redirect_to_another_host_is_refused_at_once_and_the_key_stays_home():
    with FakeOpenAI() as second:
        elsewhere = second.base_url.replace("127.0.0.1", "localhost") + "/chat/completions"
        with FakeOpenAI(faults=Faults(redirect_to=elsewhere)) as first:
            with pytest.raises(LLMError, match="redirected to http://localhost.*refused") as e:
                client(first.base_url, max_retries=3).chat(MSG)
    assert e.value.fatal and first.auth_headers == ["Bearer sk-secret"]  # fatal: not retried
    assert second.requests == [] and second.auth_headers == []


def test_an_https_redirect_to_another_host_is_refused(tmp_path, monkeypatch):
    pair = self_signed_cert(tmp_path)
    if pair is None:
        pytest.skip("no openssl CLI to make a certificate")
    monkeypatch.setenv("SSL_CERT_FILE", str(pair[0]))  # what a user with a private CA sets
    with (
        Recorder(tls=server_tls(*pair)) as second,
        Recorder(tls=server_tls(*pair), redirect_to=second.url("localhost", "/v1/chat/completions")) as first,
    ):
        with pytest.raises(LLMError, match=f"https://localhost:{second.port}.*refused"):
            client(first.url(path="/v1")).chat(MSG)
    assert first.authorizations() == ["Bearer sk-secret"] and second.seen == []


def test_the_judge_goes_through_the_same_client(tmp_path):
    with FakeOpenAI() as second:
        with FakeOpenAI(faults=Faults(redirect_to=second.base_url + "/chat/completions")) as first:
            judge = Judge(client(first.base_url.replace("127.0.0.1", "localhost")), model_id="m")
            with pytest.raises(StageError, match="judge: .*refused"):
                judge.score_many([("q", "1", "1")])
    assert second.requests == []


def test_a_reply_cut_short_is_retried_then_named():
    with FakeOpenAI(faults=Faults(no_stream=True, short_body=True)) as srv:
        with pytest.raises(LLMError, match="gave up after 2 attempts: .*closed in the middle of the reply"):
            client(srv.base_url, max_retries=1).chat(MSG)
    assert len(srv.requests) == 2


def test_a_trickled_reply_ends_at_the_deadline():
    with FakeOpenAI(faults=Faults(no_stream=True, trickle_s=0.05)) as srv:
        with pytest.raises(LLMError, match="deadline of 0.5 s passed"):
            client(srv.base_url, max_retries=0, timeout_s=5, deadline_s=0.5).chat(MSG)


SLOW = Faults(serial=True, piece_chars=4, token_delay_s=0.04, content="<think>" + "x" * 45 + "</think>")


def test_a_slow_one_at_a_time_server_defeats_whole_replies():
    # 15 pieces of 0.04 s: a whole reply comes after 0.6 s of silence, past the 0.5 s timeout, every time.
    with FakeOpenAI(faults=SLOW) as srv:
        with pytest.raises(LLMError, match="gave up after 2 attempts: .*timed out"):
            client(srv.base_url, stream=False, timeout_s=0.5, max_retries=1).chat(MSG)


def test_a_slow_one_at_a_time_server_is_served_by_streaming_with_backed_off_concurrency():
    logged = []
    with FakeOpenAI(faults=SLOW) as srv:
        teacher = client(srv.base_url, timeout_s=0.5, max_retries=6, concurrency=4)
        results = list(
            map_chat(
                teacher,
                [f"q{i}" for i in range(6)],
                lambda q: [{"role": "user", "content": q}],
                concurrency=4,
                log=logged.append,
            )
        )
    assert [e for _, _, e in results] == [None] * 6 and srv.streamed == 6
    assert all(r.text == SLOW.content and r.completion_tokens == 5 for _, r, _ in results)
    # Queued requests waited in silence: the client halved what it keeps in flight and said so.
    assert teacher.pace.limit < 4 and any("requests in flight" in line for line in logged)
    assert any("request(s) at a time" in line and "replies/min" in line for line in logged), logged


def test_a_server_that_does_not_stream_is_asked_for_whole_replies():
    logged = []
    with FakeOpenAI(responder=lambda m: "whole", faults=Faults(no_stream=True)) as srv:
        teacher = client(srv.base_url)
        results = map_chat(teacher, ["a", "b"], lambda q: MSG, concurrency=1, log=logged.append)
        assert [r.text for _, r, _ in results] == ["whole", "whole"]
    assert srv.requests[0]["stream"] is True and "stream" not in srv.requests[1]
    assert any("does not stream: asking for whole replies" in line for line in logged)
    with FakeOpenAI(responder=lambda m: "streamed", faults=Faults(reject_fields=("stream_options",))) as srv:
        teacher = client(srv.base_url)
        assert [teacher.chat(MSG).text for _ in range(2)] == ["streamed", "streamed"]
    # The first ask was refused (422) and asked again without stream_options; then it streams.
    assert len(srv.requests) == 3 and srv.streamed == 2
    assert all(r["stream"] and "stream_options" not in r for r in srv.requests[1:])


def test_requests_abandoned_by_the_caller_are_closed_not_retried():
    # "a" is answered in two pieces; the others would stream 400 pieces, 0.05 s apart (20 s).
    slow = Faults(piece_chars=1, token_delay_s=0.05)
    with FakeOpenAI(responder=lambda m: "ok" if m[-1]["content"] == "a" else "y" * 400, faults=slow) as srv:
        teacher = client(srv.base_url, max_retries=3, concurrency=3)
        teacher.pace.limit = 3  # past the slow start: all three are sent at once
        replies = map_chat(teacher, ["a", "b", "c"], lambda q: [{"role": "user", "content": q}], concurrency=3)
        item, reply, error = next(replies)
        assert (item, reply.text, error) == ("a", "ok", None)
        replies.close()  # the caller stops (a stop request, a fatal error elsewhere)
        wait_for(lambda: srv.abandoned == 2, timeout=30, what="the server to see the client hang up twice")
    assert len(srv.requests) == 3 and srv.streamed == 1  # nothing retried after the close


def test_distill_against_a_teacher_that_is_down_fails_and_says_why(tmp_path):
    ws = prepared_workspace(tmp_path, n_train=8)
    down = closed_port_url()
    res = cli(
        "distill",
        "--workspace",
        str(ws),
        *openai_teacher(down, "--set", "distill.max_samples=3", "--set", "distill.max_retries=0"),
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "the teacher failed 3 times and answered nothing: first error:" in out and "refused" in out
    assert "Traceback" not in out and read_state(only_run(ws, "distill"))["state"] == "failed"
    # A resumed run (some questions already distilled) is judged on this run's answers alone.
    first = json.loads((ws / "data" / "raw" / "train.jsonl").read_text().splitlines()[0])
    (ws / "data" / "distilled.jsonl").write_text(json.dumps({**first, "solution": "s"}) + "\n")
    res = cli(
        "distill",
        "--workspace",
        str(ws),
        *openai_teacher(down, "--set", "distill.max_samples=3", "--set", "distill.max_retries=0"),
    )
    assert res.returncode != 0 and "the teacher failed 2 times and answered nothing" in res.stdout + res.stderr


def test_a_429_with_retry_after_is_waited_for_before_the_retry():
    """A busy server says when to come back: the client waits that long (not its 0.01 s backoff),
    bounded by RETRY_AFTER_MAX_S and said in the pace notes when cut."""
    slept = []
    with FakeOpenAI(responder=lambda m: "ok", faults=Faults(status_first=1, status=429, retry_after="3")) as srv:
        assert client(srv.base_url, sleep=slept.append).chat(MSG).text == "ok"
    assert len(srv.requests) == 2 and slept == [3.0]
    slept.clear()
    teacher = None
    with FakeOpenAI(responder=lambda m: "ok", faults=Faults(status_first=1, status=503, retry_after="86400")) as srv:
        teacher = client(srv.base_url, sleep=slept.append)
        assert teacher.chat(MSG).text == "ok"
    assert slept == [http.RETRY_AFTER_MAX_S]
    assert any("asked to wait 86400 s (Retry-After): waiting 120 s" in n for n in teacher.pace.take_notes())
    # An HTTP date is read too; nonsense is ignored (the usual backoff).
    slept.clear()
    with FakeOpenAI(responder=lambda m: "ok", faults=Faults(status_first=1, status=429, retry_after="soon")) as srv:
        assert client(srv.base_url, sleep=slept.append).chat(MSG).text == "ok"
    assert len(slept) == 1 and slept[0] < 1


def test_retry_after_is_honoured_in_real_time_under_map_chat():
    """As a user meets it: distill's map_chat (which waits on its cancel token, not `sleep`) sends
    the retry no sooner than the server's Retry-After: 1 (measured by the server)."""
    with FakeOpenAI(responder=lambda m: "ok", faults=Faults(status_first=1, status=429, retry_after="1")) as srv:
        ((_, reply, error),) = list(map_chat(client(srv.base_url), ["q"], lambda q: MSG, concurrency=1))
    assert error is None and reply.text == "ok"
    assert len(srv.arrivals) == 2 and srv.arrivals[1] - srv.arrivals[0] >= 1.0
