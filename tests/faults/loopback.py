"""Loopback servers for transport faults: a recording HTTP(S) server that answers or redirects, a
raw TCP server that breaks HTTP on purpose (bodies cut short, bytes trickled), a self-signed
certificate for 127.0.0.1 and localhost (and any address asked for) made with the `openssl` CLI,
and a real forward proxy (Debian's `tinyproxy`, installed by .ci/run) on 127.0.0.1 whose log says
which requests went through it. `own_address()` finds an address of this machine that is not
loopback, for servers the proxy rules must treat as remote."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
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
        host: str = HOST,
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

        self.host = host
        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, host: str | None = None, path: str = "/graphql") -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

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


def self_signed_cert(folder: Path, *addresses: str) -> tuple[Path, Path] | None:
    """(certificate, key) PEM files, self-signed for 127.0.0.1, localhost and `addresses` (IPs);
    None without the openssl CLI."""
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
            ",".join(["subjectAltName=DNS:localhost,IP:127.0.0.1", *(f"IP:{a}" for a in addresses)]),
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


def own_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (`ip -4 addr`, scope global), or None."""
    ip = shutil.which("ip")
    if ip:
        out = subprocess.run([ip, "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True)
        for match in re.finditer(r"inet (\d+\.\d+\.\d+\.\d+)/", out.stdout):
            if not ipaddress.ip_address(match.group(1)).is_loopback:
                return match.group(1)
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return None
    found = [i[4][0] for i in infos if not ipaddress.ip_address(i[4][0]).is_loopback]
    return found[0] if found else None


class TinyProxy:
    """The real `tinyproxy` forward proxy (HTTP, absolute-form requests and CONNECT) on 127.0.0.1,
    started from a config in `folder`; `requests()` reads what its log says it carried."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.log = folder / "tinyproxy.log"
        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port = s.getsockname()[1]
        self.conf = folder / "tinyproxy.conf"
        self.conf.write_text(
            f'Port {self.port}\nListen {HOST}\nTimeout 30\nLogFile "{self.log}"\nLogLevel Info\n'
            f'PidFile "{folder / "tinyproxy.pid"}"\nMaxClients 20\nAllow {HOST}\n'
        )
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def requests(self) -> list[str]:
        """What the proxy carried, from its log: `GET http://host:port/path` or `CONNECT host:port`."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return [m.group(1) for m in re.finditer(r"Request \(file descriptor \d+\): (\S+ \S+)", text)]

    def __enter__(self) -> TinyProxy:
        exe = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        self._proc = subprocess.Popen(
            [exe, "-d", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # poll until it accepts connections (bounded)
            if self._proc.poll() is not None:
                raise RuntimeError(f"tinyproxy exited with {self._proc.returncode}: {self.log.read_text()[-500:]}")
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("tinyproxy did not start listening within 20 s")

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


class TLSFront:
    """A TLS front for a plain TCP service (what stunnel does): accepts TLS on 127.0.0.1 and pipes
    the decrypted bytes to `target_port`. Puts an https:// face on tinyproxy, which speaks plain HTTP."""

    def __init__(self, tls: ssl.SSLContext, target_port: int):
        self.tls, self.target_port = tls, target_port
        self._sock = socket.socket()
        self._sock.bind((HOST, 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            client = self.tls.wrap_socket(raw, server_side=True)
            upstream = socket.create_connection((HOST, self.target_port), timeout=30)
        except OSError:
            raw.close()
            return

        def pipe(src, dst) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def __enter__(self) -> TLSFront:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._sock.close()
