"""The sync verifier's own server queries (ftmodel.sync.Server) under faults: every one is a
ServerError naming what happened (never a traceback), the timeout is an overall deadline, a
redirect to another host never gets the key, and a run's artifacts are paged past 100."""

import pytest

from ftmodel.sync import LocalRecord, Server, ServerError, compare
from tests.fake_wandb import FakeWandb
from tests.faults.loopback import RawServer, Recorder

KEY = "wandb-key-123"


def test_more_than_100_artifacts_are_paged_and_verified():
    with FakeWandb(api_key=KEY) as srv:
        rec = srv._get_run("run1", "ent", "proj")
        rec.complete = True
        for i in range(250):
            art_id = srv._new_id("Artifact")
            srv.artifacts[art_id] = {
                "id": art_id,
                "collection": f"eval-{i}",
                "type": "eval",
                "digest": f"d{i}",
                "state": "COMMITTED",
                "run": "run1",
                "version_index": 0,
            }
        remote = Server(srv.url, KEY, timeout=10).run("ent", "proj", "run1")
        ops = [r["op"] for r in srv.requests]
    edges = remote["outputArtifacts"]["edges"]
    assert len(edges) == 250 and len({e["node"]["id"] for e in edges}) == 250
    assert ops.count("FtmodelVerifyRun") == 1 and ops.count("FtmodelRunArtifacts") == 3
    local = LocalRecord(
        entity="ent",
        project="proj",
        name="run1",
        history_rows=0,
        history_steps=[],
        summary={},
        config={},
        artifacts=[{"name": f"eval-{i}", "type": "eval", "digest": f"d{i}", "missing": []} for i in range(250)],
        exited=True,
    )
    problems, counts = compare(local, remote)
    assert problems == [] and counts["artifacts_committed"] == 250


def test_a_redirect_to_another_host_is_a_server_error_and_the_key_stays_home():
    with Recorder() as second, Recorder(redirect_to=second.url("localhost")) as first:
        with pytest.raises(ServerError, match=f"redirected to http://localhost:{second.port}.*refused"):
            Server(first.url(path=""), KEY, timeout=5).viewer_entity()
    assert len(first.seen) == 1 and first.authorizations()[0].startswith("Basic ") and second.seen == []


def test_a_reply_cut_short_is_a_server_error():
    def cut(server, conn):
        server.send(
            conn, b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"data": {"viewer"'
        )

    with RawServer(cut) as srv:
        with pytest.raises(ServerError, match="closed in the middle of the reply: got 18 of 500 bytes"):
            Server(srv.url, KEY, timeout=5).viewer_entity()


def test_the_timeout_is_an_overall_deadline_for_a_trickling_reply():
    def trickle(server, conn):
        server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while not server.stop.wait(0.02):  # a byte every 0.02 s: never silent for the 0.5 s timeout
            server.send(conn, b" ")

    with RawServer(trickle) as srv:
        with pytest.raises(ServerError, match="timed out: deadline of 0.5 s passed"):
            Server(srv.url, KEY, timeout=0.5).viewer_entity()


def test_garbage_and_a_closed_port_are_server_errors():
    def garbage(server, conn):
        server.send(conn, b"SSH-2.0-OpenSSH_9.6\r\n")

    with RawServer(garbage) as srv:
        with pytest.raises(ServerError, match="not an HTTP reply"):
            Server(srv.url, KEY, timeout=5).viewer_entity()
    with Recorder(payload=["not", "an", "object"]) as srv:
        with pytest.raises(ServerError, match="JSON that is not an object"):
            Server(srv.url(path=""), KEY, timeout=5).viewer_entity()
    from tests.fake_wandb import closed_port_url

    with pytest.raises(ServerError, match="server unreachable: .*refused"):
        Server(closed_port_url(), KEY, timeout=5).viewer_entity()


@pytest.mark.parametrize(
    "payload",
    [
        {"data": {"project": []}},
        {"data": {"project": {"run": "x"}}},
        {"data": {"project": {"run": {"outputArtifacts": {"totalCount": "many"}}}}},
    ],
)
def test_a_wrong_shaped_answer_is_a_server_error(payload):
    with Recorder(payload=payload) as srv:
        with pytest.raises(ServerError, match="server at .* answered"):
            Server(srv.url(path=""), KEY, timeout=5).run("e", "p", "r")
