"""Loopback servers (127.0.0.1 only) for transport faults: a recording HTTP(S) server that answers
or redirects, a raw TCP server that breaks HTTP on purpose (bodies cut short, bytes trickled), and
a self-signed certificate for 127.0.0.1 and localhost made with the `openssl` CLI."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"


class Recorder:
    """An HTTP(S) server that records every request's path and headers, and answers 200 JSON or
    a redirect (`redirect_to`, answered with `redirect_status`)."""

    def __init__(
        self,
        *,
        redirect_to: str | None = None,
        redirect_status: int = 307,
        tls: ssl.SSLContext | None = None,
        payload: dict | None = None,
    ):
        self.redirect_to = redirect_to
        self.redirect_status = redirect_status
        self.payload = payload if payload is not None else {"data": {"viewer": {"entity": "e"}}}
        self.seen: list[dict] = []  # {method, path, headers}
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                rec.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                if rec.redirect_to:
                    self.send_response(rec.redirect_status)
                    self.send_header("Location", rec.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(rec.payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, host: str = HOST, path: str = "/graphql") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def authorizations(self) -> list[str | None]:
        return [r["headers"].get("Authorization") for r in self.seen]

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class RawServer:
    """A TCP server that reads each request's head and body, then runs `script(conn, stop)` to
    answer with whatever bytes it likes (then the connection is closed). `sent` counts bytes written."""

    def __init__(self, script: Callable[[RawServer, socket.socket], None]):
        self.script = script
        self.requests: list[bytes] = []
        self.sent = 0
        self.stop = threading.Event()
        self._sock = socket.socket()
        self._sock.bind((HOST, 0))
        self._sock.listen(8)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._sock.getsockname()[1]}"

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            self.requests.append(head)
            try:
                self.script(self, conn)
            except OSError:
                pass  # the client hung up: what a deadline does

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self._sock.close()


def self_signed_cert(folder: Path) -> tuple[Path, Path] | None:
    """(certificate, key) PEM files, self-signed for 127.0.0.1 and localhost; None without the openssl CLI."""
    openssl = shutil.which("openssl")
    if not openssl:
        return None
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx
