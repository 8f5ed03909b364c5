"""Requests through a real forward proxy (`tinyproxy` on 127.0.0.1) to servers on an address of
this machine that is not loopback: `no_proxy` by CIDR and by domain bypasses the proxy, everything
else goes through it (its own log says what it carried), https targets go through a CONNECT
tunnel, `ALL_PROXY` and https:// proxies are honoured, and a proxy that is down or unusable is
a named error, never a silent direct connection."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import ssl

import pytest

from ftmodel import http_client as http
from ftmodel.llm import OpenAIChatClient
from tests.fake_openai import FakeOpenAI, closed_port_url
from tests.faults.loopback import Recorder, TinyProxy, TLSFront, own_address, self_signed_cert, server_tls

MSG = [{"role": "user", "content": "hi"}]
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")

pytestmark = pytest.mark.skipif(
    not shutil.which("tinyproxy"), reason="tinyproxy is not installed (.ci/run installs it)"
)


@pytest.fixture
def proxy(tmp_path, monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    with TinyProxy(tmp_path) as p:
        yield p


@pytest.fixture
def address():
    found = own_address()
    if found is None:
        pytest.skip("this machine has no address but loopback (loopback hosts never take a proxy)")
    return found


def ask(url: str) -> str:
    return OpenAIChatClient(url, "teacher", max_retries=0, timeout_s=10).chat(MSG).text


def test_no_proxy_by_cidr_bypasses_the_proxy_and_other_hosts_go_through_it(proxy, address, monkeypatch):
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("https_proxy", proxy.url)
    with FakeOpenAI(responder=lambda m: "hello", host=address) as teacher:
        target = f"POST http://{address}:{teacher.base_url.rsplit(':', 1)[1].split('/')[0]}/v1/chat/completions"
        assert ask(teacher.base_url) == "hello"
        assert proxy.requests() == [target]  # no no_proxy: through the proxy
        a, b, _, _ = address.split(".")
        monkeypatch.setenv("no_proxy", f"example.org, {a}.{b}.0.0/16")
        assert ask(teacher.base_url) == "hello"
        assert proxy.requests() == [target]  # in the /16: straight there
        monkeypatch.setenv("NO_PROXY", "")
        monkeypatch.setenv("no_proxy", "10.0.0.0/8,192.168.77.0/24")
        assert ask(teacher.base_url) == "hello"
        assert proxy.requests() == [target, target]  # other blocks: through the proxy again
    assert len(teacher.requests) == 3


def test_no_proxy_by_domain_bypasses_the_proxy(proxy, monkeypatch):
    name = socket.gethostname()
    try:
        where = socket.gethostbyname(name)
    except OSError:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    monkeypatch.setenv("http_proxy", proxy.url)
    with FakeOpenAI(responder=lambda m: "hello", host=where) as teacher:
        url = teacher.base_url.replace(where, name)
        monkeypatch.setenv("no_proxy", "example.org")
        assert ask(url) == "hello"
        assert [r.split("/")[2].split(":")[0] for r in proxy.requests()] == [name]  # not listed: through it
        monkeypatch.setenv("no_proxy", f"example.org,{name}")
        assert ask(url) == "hello"
        monkeypatch.setenv("no_proxy", f".{name}")
        assert ask(url) == "hello"
    assert len(proxy.requests()) == 1 and len(teacher.requests) == 3


def test_https_goes_through_a_connect_tunnel_and_all_proxy_is_honoured(proxy, address, tmp_path, monkeypatch):
    pair = self_signed_cert(tmp_path, address)
    if pair is None:
        pytest.skip("no openssl CLI to make a certificate")
    trust = ssl.create_default_context(cafile=str(pair[0]))
    with Recorder(tls=server_tls(*pair), host=address) as target:
        monkeypatch.setenv("https_proxy", proxy.url)
        reply = http.request("GET", target.url(), timeout=10, deadline=20, context=trust)
        assert reply.status == 200 and target.seen[0]["path"] == "/graphql"  # the tunnel carried TLS end to end
        assert proxy.requests() == [f"CONNECT {address}:{target.port}"]
        monkeypatch.delenv("https_proxy")
        monkeypatch.setenv("ALL_PROXY", proxy.url)  # no proxy for the scheme: the catch-all one
        assert http.request("GET", target.url(), timeout=10, deadline=20, context=trust).status == 200
    assert proxy.requests() == [f"CONNECT {address}:{target.port}"] * 2 and len(target.seen) == 2


def test_an_https_proxy_is_spoken_to_over_tls(proxy, address, tmp_path, monkeypatch):
    pair = self_signed_cert(tmp_path, address)
    if pair is None:
        pytest.skip("no openssl CLI to make a certificate")
    monkeypatch.setenv("SSL_CERT_FILE", str(pair[0]))  # trusts the proxy's certificate (and the target's)
    with TLSFront(server_tls(*pair), proxy.port) as front, FakeOpenAI(responder=lambda m: "hi", host=address) as srv:
        monkeypatch.setenv("http_proxy", f"https://localhost:{front.port}")
        assert ask(srv.base_url) == "hi"
    assert [r.split(" ")[0] for r in proxy.requests()] == ["POST"] and len(srv.requests) == 1


def test_a_proxy_that_is_down_or_unusable_is_named_never_bypassed(proxy, address, monkeypatch):
    down = closed_port_url().removesuffix("/v1")
    with FakeOpenAI(responder=lambda m: "hello", host=address) as teacher:
        monkeypatch.setenv("http_proxy", down)
        with pytest.raises(http.ProxyFailed, match=f"cannot go through the proxy {down}.*refused"):
            http.request("POST", teacher.base_url + "/chat/completions", body=b"{}", timeout=5, deadline=10)
        if importlib.util.find_spec("socks") is None:
            monkeypatch.setenv("http_proxy", "socks5://127.0.0.1:1080")
            with pytest.raises(http.ProxyFailed, match="SOCKS proxy .* needs PySocks"):
                http.request("POST", teacher.base_url + "/chat/completions", body=b"{}", timeout=5, deadline=10)
    assert teacher.requests == []  # nothing went around the proxy the environment names
