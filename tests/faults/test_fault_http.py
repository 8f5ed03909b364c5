"""ftmodel.http_client under transport faults: redirects to another host never carry the key (HTTP and
HTTPS), a body cut short and bytes trickling past the deadline are named errors, cancel aborts."""

import json
import ssl
import threading

import pytest

from ftmodel import http_client as http
from tests.faults.loopback import RawServer, Recorder, self_signed_cert, server_tls

AUTH = {"Authorization": "Bearer sk-secret", "Content-Type": "application/json"}
BODY = json.dumps({"query": "q"}).encode()


@pytest.mark.parametrize("other_host", ["127.0.0.1", "localhost"])
def test_a_redirect_to_another_host_is_refused_and_the_second_host_sees_nothing(other_host):
    with Recorder() as second, Recorder(redirect_to=second.url(other_host)) as first:
        with pytest.raises(http.RedirectRefused) as e:
            http.request("POST", first.url(), headers=AUTH, body=BODY, timeout=5, deadline=10)
    assert f"http://{other_host}:{second.port}" in str(e.value) and f"127.0.0.1:{first.port}" in str(e.value)
    assert "Authorization" in str(e.value) and "refused" in str(e.value)
    assert first.authorizations() == ["Bearer sk-secret"] and second.seen == []


def test_the_same_host_is_followed_with_the_key_and_another_host_without_one():
    with Recorder() as target:
        with Recorder(redirect_to="/graphql2") as same:  # relative: the same origin
            with pytest.raises(http.TooManyRedirects):  # it redirects to itself forever: bounded
                http.request("POST", same.url(), headers=AUTH, body=BODY, timeout=5, deadline=10)
        assert len(same.seen) == http.MAX_REDIRECTS + 1
        assert set(same.authorizations()) == {"Bearer sk-secret"}
        with Recorder(redirect_to=target.url("localhost", "/v2")) as hop:
            reply = http.request(
                "POST", hop.url(), headers={"Content-Type": "application/json"}, body=BODY, timeout=5, deadline=10
            )
    assert reply.status == 200 and json.loads(reply.body)["data"]["viewer"]["entity"] == "e"
    assert target.seen[0]["path"] == "/v2" and target.authorizations() == [None]


def test_https_redirect_to_another_host_is_refused(tmp_path):
    pair = self_signed_cert(tmp_path)
    if pair is None:
        pytest.skip("no openssl CLI to make a certificate")
    trust = ssl.create_default_context(cafile=str(pair[0]))
    with (
        Recorder(tls=server_tls(*pair)) as second,
        Recorder(tls=server_tls(*pair), redirect_to=second.url("localhost")) as first,
    ):
        with pytest.raises(http.RedirectRefused, match=f"https://localhost:{second.port}"):
            http.request("POST", first.url(), headers=AUTH, body=BODY, timeout=5, deadline=10, context=trust)
        assert first.authorizations() == ["Bearer sk-secret"] and second.seen == []
        # Without a key the same redirect is followed: the second server was there all along.
        reply = http.request("POST", first.url(), body=BODY, timeout=5, deadline=10, context=trust)
        assert reply.status == 200 and second.authorizations() == [None]
        # And a certificate nobody trusts is a named TLS error, not a traceback.
        with pytest.raises(http.TLSError, match="not trusted"):
            http.request("GET", second.url(), timeout=5, deadline=10)


def test_a_body_cut_short_is_a_named_error():
    def cut(server, conn):
        server.send(
            conn, b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"data": {"vie'
        )

    with RawServer(cut) as srv:
        with pytest.raises(http.ShortBody, match="closed in the middle of the reply: got 14 of 1000 bytes"):
            http.request("POST", srv.url + "/graphql", headers=AUTH, body=BODY, timeout=5, deadline=10)


def test_a_chunked_body_cut_short_is_a_named_error():
    def cut(server, conn):
        server.send(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789")

    with RawServer(cut) as srv:
        with pytest.raises(http.ShortBody, match="closed in the middle"):
            http.request("GET", srv.url, timeout=5, deadline=10)


def test_a_closed_connection_before_any_reply_is_unreachable_not_a_traceback():
    with RawServer(lambda server, conn: None) as srv:
        with pytest.raises(http.Unreachable, match="closed the connection without replying"):
            http.request("GET", srv.url, timeout=5, deadline=10)


def trickle(head: bytes, body_len: int):
    """A script sending `head` then one byte of body at a time, quickly enough to beat any silence
    timeout, for ever (until the client hangs up or the server stops)."""

    def script(server, conn):
        server.send(conn, head)
        for _ in range(body_len):
            if server.stop.wait(0.02):
                return
            server.send(conn, b"x")

    return script


def test_bytes_trickling_past_the_deadline_fail_the_request():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    with RawServer(trickle(head, 100000)) as srv:
        # No silence ever reaches the 5 s timeout; only the 0.5 s deadline can end this.
        with pytest.raises(http.DeadlineExceeded, match="deadline of 0.5 s passed"):
            http.request("GET", srv.url, timeout=5, deadline=0.5)
    assert srv.sent < len(head) + 100000  # the client hung up long before the end


def test_headers_trickling_past_the_deadline_fail_the_request():
    def script(server, conn):
        server.send(conn, b"HTTP/1.1 200 OK\r\n")
        while not server.stop.wait(0.02):
            server.send(conn, b"X-Slow: y\r\n")

    with RawServer(script) as srv:
        with pytest.raises(http.DeadlineExceeded, match="deadline"):
            http.request("GET", srv.url, timeout=5, deadline=0.5)


def test_silence_is_a_timeout():
    with RawServer(lambda server, conn: server.stop.wait(30)) as srv:
        with pytest.raises(http.Timeout, match="timed out: no reply for 0.3 s") as e:
            http.request("GET", srv.url, timeout=0.3, deadline=30)
    assert not isinstance(e.value, http.DeadlineExceeded)


def test_cancel_aborts_a_request_under_way():
    cancel = http.Cancel()
    seen = threading.Event()

    def hang(server, conn):
        seen.set()
        server.stop.wait(30)

    errors = []
    with RawServer(hang) as srv:
        worker = threading.Thread(target=lambda: errors.append(_catch(srv.url, cancel)))
        worker.start()
        assert seen.wait(10)
        cancel.cancel()
        worker.join(10)
    assert not worker.is_alive() and isinstance(errors[0], http.Cancelled)
    assert not isinstance(errors[0], Exception)  # the engine's one stop request: no `except Exception` eats it


def _catch(url, cancel):
    try:
        http.request("GET", url, timeout=30, deadline=60, cancel=cancel)
    except (http.HTTPError, http.Cancelled) as e:  # Cancelled: a stop request, no HTTPError
        return e
    return None


def test_refused_port_and_unknown_scheme_are_named():
    from tests.fake_openai import closed_port_url

    with pytest.raises(http.Unreachable, match="Connection refused"):
        http.request("GET", closed_port_url(), timeout=2, deadline=5)
    with pytest.raises(http.HTTPError, match="not an http"):
        http.request("GET", "ftp://127.0.0.1/x", timeout=2)


def test_the_environment_proxy_carries_requests_to_other_hosts_but_never_loopback(monkeypatch):
    with Recorder() as proxy, Recorder() as direct:
        monkeypatch.setenv("http_proxy", f"http://user:pw@127.0.0.1:{proxy.port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        reply = http.request("GET", "http://wandb.example.invalid/graphql?x=1", timeout=5, deadline=10)
        assert reply.status == 200 and proxy.seen[0]["path"] == "http://wandb.example.invalid/graphql?x=1"
        assert proxy.seen[0]["headers"]["Proxy-Authorization"] == "Basic dXNlcjpwdw=="
        http.request("GET", direct.url(), timeout=5, deadline=10)  # loopback: straight there
    assert len(proxy.seen) == 1 and len(direct.seen) == 1


def test_a_kept_alive_connection_the_server_closed_is_replaced_once():
    """A server that closes an idle kept-alive connection just as the next request arrives (the
    race no pool can see coming): the request is sent again on a new connection, once, because
    nothing of it reached the server; the caller gets its reply."""
    connections = []

    def answer_then_drop_the_next(server, conn):
        connections.append(conn)
        body = b'{"data": {"viewer": {"entity": "e"}}}'
        server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        conn.recv(65536)  # the next request on this connection: read, never answered

    with RawServer(answer_then_drop_the_next) as srv:
        first = http.request("POST", srv.url + "/graphql", headers=AUTH, body=BODY, timeout=5, deadline=10)
        second = http.request("POST", srv.url + "/graphql", headers=AUTH, body=BODY, timeout=5, deadline=10)
    assert first.status == second.status == 200 and json.loads(second.body)["data"]["viewer"]["entity"] == "e"
    assert len(connections) == 2 and len(srv.requests) == 2  # the dropped request was read, not answered
