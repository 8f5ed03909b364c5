"""Kept-alive connections vs a new TCP+TLS connection per request (what ftmodel's HTTP client did
before it took urllib3's pools), side by side against one local HTTPS server (HTTP/1.1, as
uvicorn and W&B serve): prints requests/s of each, the ratio, and the connections the server saw.

    python -m bench.http_reuse [--requests 300] [--rounds 3] [--plain]

`--plain` uses http:// (no TLS): what is left is the TCP handshake and the client's own work.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Server:
    """An HTTP/1.1 server answering every POST with a small JSON body; counts TCP connections."""

    def __init__(self, tls: ssl.SSLContext | None):
        self.connections = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                # As uvicorn and Go servers do: without it, a kept-alive connection waits out the
                # client's delayed ACK (~40 ms) before every reply body (Nagle's algorithm).
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().setup()
                outer.connections += 1

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps({"data": {"viewer": {"entity": "e"}}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.httpd.server_address[1]}/graphql"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def timed(server: Server, n: int, trust, fresh: bool) -> tuple[float, int]:
    from ftmodel import http_client as http
    from ftmodel import http_transport

    http_transport.clear_pools()
    before = server.connections
    headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
    started = time.perf_counter()
    for _ in range(n):
        if fresh:
            http_transport.clear_pools()  # a new connection for every request: the old client
        reply = http.request("POST", server.url, headers=headers, body=b"{}", timeout=10, deadline=30, context=trust)
        assert reply.status == 200
    return n / (time.perf_counter() - started), server.connections - before


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--plain", action="store_true", help="http:// instead of https://")
    a = p.parse_args()
    from tests.faults.loopback import self_signed_cert, server_tls

    tls = trust = None
    if not a.plain:
        pair = self_signed_cert(Path(tempfile.mkdtemp(prefix="ftmodel-bench-")))
        if pair is None:
            sys.exit("needs the openssl CLI for a certificate (or pass --plain)")
        tls, trust = server_tls(*pair), ssl.create_default_context(cafile=str(pair[0]))
    server = Server(tls)
    kept, fresh = [], []
    for r in range(a.rounds):  # interleaved, so both see the same machine load
        rate_fresh, conns_fresh = timed(server, a.requests, trust, fresh=True)
        rate_kept, conns_kept = timed(server, a.requests, trust, fresh=False)
        fresh.append(rate_fresh)
        kept.append(rate_kept)
        print(
            f"round {r + 1}: new connection each {rate_fresh:7.1f} req/s ({conns_fresh} connections)   "
            f"kept alive {rate_kept:7.1f} req/s ({conns_kept} connection(s))",
            flush=True,
        )
    ratio = statistics.median(k / f for k, f in zip(kept, fresh))
    print(
        f"{'https' if tls else 'http'}: kept-alive / new-connection requests per second, median of rounds: {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
