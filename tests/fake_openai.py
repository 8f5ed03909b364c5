"""A local stand-in for an OpenAI-compatible chat-completions server (127.0.0.1 only), with
injectable slowness, HTTP errors, malformed replies and garbage content. It speaks the real
protocol, so the real client code is what gets tested: a request with `"stream": true` gets
server-sent events (`data: {chunk}` lines, a usage chunk when `stream_options.include_usage`,
then `data: [DONE]`), unless `no_stream` plays a server that only answers whole replies.
Transport faults: one request at a time (`serial`, like `transformers serve` without continuous
batching), pauses between streamed pieces, a redirect, a body cut short, a trickled reply, a
`Retry-After` on injected 429/503s. `keep_alive` speaks HTTP/1.1 (streams chunked, connections
kept open, as uvicorn does) and `connections` counts the TCP connections clients opened; `host`
binds another address of this machine than 127.0.0.1 (proxy tests need a non-loopback one)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Faults:
    """What the server does wrong: to the first N requests, or to all of them."""

    delay_s: float = 0.0  # every request waits this long before answering
    status_first: int = 0  # the first N requests get `status`
    status: int = 500
    status_always: int | None = None  # every request gets this status (e.g. 401)
    malformed_first: int = 0  # the first N requests get a body that is not JSON
    content: str | None = None  # answer this text instead of asking the responder
    no_stream: bool = False  # answer whole replies even when asked to stream
    piece_chars: int = 8  # streamed: characters per event
    token_delay_s: float = 0.0  # streamed: pause before each piece (a slow generator)
    serial: bool = False  # one request at a time; the others wait, silent, in a queue
    redirect_to: str | None = None  # answer 307 with this Location
    short_body: bool = False  # whole reply: announce more bytes than are sent, then close
    trickle_s: float = 0.0  # whole reply: send it one byte at a time, this far apart
    reject_fields: tuple = ()  # answer 422 to a request holding any of these fields (a strict server)
    stream_cut_after: int | None = None  # streamed: close the connection after this many events
    no_done: bool = False  # streamed: end without `data: [DONE]` (as `transformers serve` does)
    retry_after: str | None = None  # sent as `Retry-After` with the injected `status` (429/503)
    fail_if: Callable[[list[dict]], bool] | None = None  # requests whose messages match get `status`, every time


@dataclass
class FakeOpenAI:
    """The server; `responder(messages) -> text` writes the assistant's reply."""

    responder: Callable[[list[dict]], str] = lambda messages: "Score: 7"
    faults: Faults = field(default_factory=Faults)
    requests: list[dict] = field(default_factory=list)
    auth_headers: list[str | None] = field(default_factory=list)
    max_in_flight: int = 0
    streamed: int = 0  # replies sent as a stream to the end
    abandoned: int = 0  # replies the client hung up on before the end
    keep_alive: bool = False
    host: str = "127.0.0.1"
    connections: int = 0  # TCP connections accepted
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each request

    def __post_init__(self):
        self._lock = threading.Lock()
        self._serial = threading.Lock()
        self._in_flight = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if fake.keep_alive else "HTTP/1.0"

            def log_message(self, *args):  # keep test output clean
                pass

            def setup(self):
                # As uvicorn does: kept alive, Nagle's algorithm would hold each reply ~40 ms.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().setup()
                with fake._lock:
                    fake.connections += 1

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with fake._lock:
                    n = len(fake.requests)
                    fake.arrivals.append(time.monotonic())
                    fake.requests.append(body)
                    fake.auth_headers.append(self.headers.get("Authorization"))
                    fake._in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake._in_flight)
                try:
                    if fake.faults.serial:
                        with fake._serial:
                            self._answer(n, body)
                    else:
                        self._answer(n, body)
                finally:
                    self._leave()

            def _leave(self):
                """This request is answered (once): before its last bytes go out, so a client that
                sends its next request on reading them is never counted twice."""
                if not getattr(self, "_left", False):
                    self._left = True
                    with fake._lock:
                        fake._in_flight -= 1

            def _send(self, status: int, payload: bytes, headers: dict | None = None):
                self._leave()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def _answer(self, n: int, body: dict):
                f = fake.faults
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, b'{"error": {"message": "not found"}}')
                if f.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", f.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if f.delay_s:
                    time.sleep(f.delay_s)
                wait = {"Retry-After": f.retry_after} if f.retry_after else None
                if f.status_always:
                    return self._send(f.status_always, b'{"error": {"message": "injected"}}', wait)
                if n < f.status_first:
                    return self._send(f.status, b'{"error": {"message": "injected"}}', wait)
                if f.fail_if is not None and f.fail_if(body.get("messages") or []):
                    return self._send(f.status, b'{"error": {"message": "injected, lasting"}}')
                if n < f.malformed_first:
                    return self._send(200, b"<html>not json")
                unexpected = sorted(set(f.reject_fields) & set(body))
                if unexpected:
                    return self._send(
                        422, json.dumps({"detail": f"Unexpected fields in the request: {unexpected}"}).encode()
                    )
                text = f.content if f.content is not None else fake.responder(body["messages"])
                if body.get("stream") and not f.no_stream:
                    return self._stream(n, body, text)
                if f.token_delay_s:  # a whole reply costs the generation of every piece, then comes at once
                    time.sleep(f.token_delay_s * -(-len(text) // max(1, f.piece_chars)))
                reply = {
                    "id": f"chatcmpl-{n}",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }
                payload = json.dumps(reply).encode()
                if f.short_body or f.trickle_s:
                    return self._send_badly(payload)
                self._send(200, payload)

            def _stream(self, n: int, body: dict, text: str):
                f = fake.faults
                step = max(1, f.piece_chars)
                pieces = [{"role": "assistant", "content": ""}] + [
                    {"content": text[i : i + step]} for i in range(0, len(text), step)
                ]
                chunk = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "model": body.get("model")}
                events = [{**chunk, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in pieces]
                events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    events.append(
                        {
                            **chunk,
                            "choices": [],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                        }
                    )
                chunked = fake.keep_alive

                def write(data: bytes) -> None:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                    self.wfile.flush()

                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    if chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()  # HTTP/1.0: the body ends when the connection closes
                    for i, event in enumerate(events):
                        if f.stream_cut_after is not None and i >= f.stream_cut_after:
                            self.close_connection = True
                            return  # the connection closes mid-stream
                        if f.token_delay_s and 0 < i < len(pieces):
                            time.sleep(f.token_delay_s)
                        write(b"data: " + json.dumps(event).encode() + b"\n\n")
                    self._leave()
                    if not f.no_done:
                        write(b"data: [DONE]\n\n")
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    with fake._lock:
                        fake.abandoned += 1
                    return
                with fake._lock:
                    fake.streamed += 1

            def _send_badly(self, payload: bytes):
                f = fake.faults
                self.close_connection = True
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload) + (100 if f.short_body else 0)))
                    self.end_headers()
                    if f.short_body:
                        self.wfile.write(payload[: len(payload) // 2])
                        return
                    for i in range(len(payload)):
                        self.wfile.write(payload[i : i + 1])
                        self.wfile.flush()
                        time.sleep(f.trickle_s)
                except (BrokenPipeError, ConnectionResetError):
                    with fake._lock:
                        fake.abandoned += 1

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"
