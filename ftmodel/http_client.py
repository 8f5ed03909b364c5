"""One small stdlib HTTP client for our own requests: the sync verifier's GraphQL queries and the
OpenAI-compatible teacher/judge client.

Why not urllib: it follows a redirect to any host with every header still on (an API key
included), its timeout bounds each socket read only (a server trickling a byte now and then holds
a request forever), and a body cut short is an IncompleteRead traceback or, read in pieces, a
silently shorter body. Here:

- A redirect to another origin (scheme, host or port differ) is REFUSED when the request carries a
  secret header (Authorization, Proxy-Authorization, Cookie, api-key, x-api-key): RedirectRefused
  names both origins. (wandb's own client strips the header instead; we refuse, so the user sees
  that the server moved and names the new host themselves.) Without secrets a redirect is
  followed; same-origin redirects keep the headers; at most `max_redirects` hops.
- `timeout` bounds silence (no byte for that long); `deadline` bounds the whole request, redirects
  included: a watchdog shuts the socket down when it passes, whatever phase the request is in.
- A body shorter than its Content-Length, or a chunked body cut off, is ShortBody.
- Every failure is an HTTPError subclass with a one-line message naming the URL (never its query
  or user info), never a traceback from http.client, socket or ssl. `retryable` says whether
  trying again may help.
- A Cancel aborts requests from another thread (their sockets are shut down, so the server sees
  the client go and can stop working on an abandoned request).

Proxies from the environment (`https_proxy`, `http_proxy`, `no_proxy`) are honoured as urllib
honours them, except for loopback hosts. Stdlib only; `urllib.request` loads lazily. Longer than
400 lines because the errors, the watchdog and the exchange are one mechanism, read together.
"""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from urllib.parse import unquote, urljoin, urlsplit

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "api-key", "x-api-key"})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_REDIRECTS = 5
MAX_BYTES = 64 << 20  # a reply larger than this is refused (ours are a few KB)
_CHUNK = 65536


class HTTPError(Exception):
    """A request that failed; the message names the URL and says what happened."""

    retryable = False

    def __init__(self, message: str, url: str = ""):
        super().__init__(message)
        self.url = url


class Unreachable(HTTPError):
    """No reply: connection refused or reset, unknown host, closed before the status line."""

    retryable = True


class Timeout(HTTPError):
    """No byte arrived for `timeout` seconds (the server went silent)."""

    retryable = True


class DeadlineExceeded(Timeout):
    """The request's overall deadline passed before the reply was complete."""


class ShortBody(HTTPError):
    """The connection closed in the middle of the reply's body."""

    retryable = True


class BadReply(HTTPError):
    """What came back is not HTTP (a garbled status line or headers)."""

    retryable = True


class TLSError(HTTPError):
    """The TLS handshake failed (certificate not trusted, wrong host name, protocol mismatch)."""


class RedirectRefused(HTTPError):
    """A redirect to another origin while the request carries a secret header."""


class TooManyRedirects(HTTPError):
    """More redirects than `max_redirects`."""


class TooLarge(HTTPError):
    """A reply larger than `max_bytes`."""


class Cancelled(HTTPError):
    """Cancel.cancel() was called while the request was under way."""


def origin(url: str) -> str:
    """`scheme://host:port` of a URL, lower case, with the default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    host = (parts.hostname or "").lower()
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


def display(url: str) -> str:
    """The URL without user info, query or fragment (they may hold secrets): for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Cancel:
    """Aborts, from any thread, the requests it was passed to (their sockets are shut down)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._guards: set[_Guard] = set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        """Abort every request under way with this token, and every later one."""
        with self._lock:
            self._event.set()
            guards = list(self._guards)
        for guard in guards:
            guard.abort("cancelled")

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on cancel; True when cancelled."""
        return self._event.wait(seconds)

    def _add(self, guard: _Guard) -> None:
        with self._lock:
            self._guards.add(guard)
            cancelled = self._event.is_set()
        if cancelled:
            guard.abort("cancelled")

    def _discard(self, guard: _Guard) -> None:
        with self._lock:
            self._guards.discard(guard)


class _Guard:
    """One request's watchdog: shuts its socket down at the deadline or on cancel."""

    def __init__(self, deadline: float | None, cancel: Cancel | None):
        self.reason: str | None = None  # "deadline" | "cancelled" once aborted
        self.deadline = deadline
        self.ends_at = time.monotonic() + deadline if deadline else None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._cancel = cancel
        self._timer = None
        if deadline:
            self._timer = threading.Timer(deadline, self.abort, args=("deadline",))
            self._timer.daemon = True
            self._timer.start()
        if cancel is not None:
            cancel._add(self)

    def remaining(self) -> float | None:
        return None if self.ends_at is None else self.ends_at - time.monotonic()

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            aborted = self.reason is not None
        if aborted and sock is not None:
            _shutdown(sock)

    def abort(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            sock = self._sock
        if sock is not None:
            _shutdown(sock)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._cancel is not None:
            self._cancel._discard(self)


def _shutdown(sock: socket.socket) -> None:
    """Unblock any thread reading the socket (recv returns EOF), without touching TLS state."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class Reply:
    """A reply whose body is read with the request's silence timeout and deadline still in force.

    Use as a context manager (or call close()): closing before the body is read drops the
    connection, so the server sees the client go."""

    def __init__(
        self,
        url: str,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        guard: _Guard,
        timeout: float,
        max_bytes: int,
    ):
        self.url = url
        self.status = resp.status
        self.reason = resp.reason
        self.headers = resp.headers
        self.body: bytes | None = None  # set by read()
        self._conn, self._resp, self._guard = conn, resp, guard
        self._timeout, self._max_bytes = timeout, max_bytes
        self._expected = resp.length  # None when chunked or delimited by close
        self._got = 0
        self._eof = False

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def read_some(self) -> bytes:
        """The next piece of the body (b"" at its end); raises HTTPError on silence, deadline or a cut."""
        if self._eof:
            return b""
        where = display(self.url)
        try:
            data = self._resp.read1(_CHUNK)
        except http.client.IncompleteRead:
            data = None
            problem: HTTPError = ShortBody(
                f"{where}: the connection closed in the middle of the reply (after {self._got} bytes)", self.url
            )
        except TimeoutError:
            data = None
            problem = Timeout(
                f"{where}: timed out: no byte of the reply for {self._timeout:g} s (after {self._got} bytes)", self.url
            )
        except (OSError, http.client.HTTPException, ValueError) as e:
            data = None
            problem = ShortBody(
                f"{where}: the reply was cut off after {self._got} bytes ({type(e).__name__}: {e})", self.url
            )
        if self._guard.reason:
            raise self._aborted()
        if data is None:
            raise problem
        if not data:
            self._eof = True
            if self._expected is not None and self._got < self._expected:
                raise ShortBody(
                    f"{where}: the connection closed in the middle of the reply: got {self._got} "
                    f"of {self._expected} bytes (Content-Length)",
                    self.url,
                )
            return b""
        self._got += len(data)
        if self._got > self._max_bytes:
            raise TooLarge(f"{where}: reply larger than {self._max_bytes} bytes", self.url)
        return data

    def _aborted(self) -> HTTPError:
        where = display(self.url)
        if self._guard.reason == "cancelled":
            return Cancelled(f"{where}: cancelled", self.url)
        return DeadlineExceeded(
            f"{where}: timed out: deadline of {self._guard.deadline:g} s passed before the reply was "
            f"complete ({self._got} bytes in)",
            self.url,
        )

    def read(self) -> bytes:
        """The whole body (also kept in `.body`); the connection is closed afterwards."""
        chunks = []
        try:
            while data := self.read_some():
                chunks.append(data)
        finally:
            self.close()
        self.body = b"".join(chunks)
        return self.body

    def iter_lines(self) -> Iterator[bytes]:
        """The body line by line as it arrives (without the line ending), e.g. server-sent events."""
        pending = b""
        while data := self.read_some():
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r")
        if pending:
            yield pending.rstrip(b"\r")

    def close(self) -> None:
        """Drop the connection and end the request's watchdog."""
        self._guard.close()
        self.drop()

    def drop(self) -> None:
        """Close the connection (the file object first: the socket stays open while it refers to it)."""
        for thing in (self._resp, self._conn):
            try:
                thing.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not raise
                pass

    def __enter__(self) -> Reply:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stream(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30.0,
    deadline: float | None = None,
    max_redirects: int = MAX_REDIRECTS,
    context=None,
    cancel: Cancel | None = None,
    max_bytes: int = MAX_BYTES,
) -> Reply:
    """Send a request and return the Reply once its status and headers are in (any status).

    `timeout`: seconds of silence allowed; `deadline`: seconds for the whole request, body included
    (None: no deadline). Redirects are followed as the module's docstring says. Raises HTTPError."""
    headers = dict(headers or {})
    guard = _Guard(deadline, cancel)
    try:
        for _hop in range(max_redirects + 1):
            reply = _exchange(method, url, headers, body, timeout, guard, context, max_bytes)
            location = reply.headers.get("Location")
            if reply.status not in REDIRECT_STATUS or not location:
                return reply
            reply.drop()  # this hop's connection; the request's deadline and cancel live on
            target = urljoin(url, location.strip())
            if origin(target) != origin(url):
                secrets = sorted({h for h in headers if h.lower() in SECRET_HEADERS})
                if secrets:
                    raise RedirectRefused(
                        f"{display(url)}: the server redirected to {origin(target)} (from {origin(url)}); refused: "
                        f"the request carries {'/'.join(secrets)}, which is never sent to a host you did not name. "
                        f"If {origin(target)} is the right server, configure its URL directly.",
                        url,
                    )
            if reply.status == 303 or (reply.status in (301, 302) and method not in ("GET", "HEAD")):
                method, body = "GET", None  # what browsers, urllib and requests do
                headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
            url = target
        raise TooManyRedirects(f"{display(url)}: more than {max_redirects} redirects", url)
    except BaseException:
        guard.close()
        raise


def request(method: str, url: str, **kwargs) -> Reply:
    """Send a request and read the whole reply (`.body`); the same arguments as `stream`."""
    reply = stream(method, url, **kwargs)
    reply.read()
    return reply


def _proxy_for(scheme: str, host: str) -> str | None:
    if host in LOOPBACK:
        return None
    import urllib.request  # lazily: only for non-loopback hosts

    proxy = urllib.request.getproxies().get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _connection(scheme: str, host: str, port: int, timeout: float, context) -> tuple[http.client.HTTPConnection, bool]:
    """A connection to the host, through the environment's proxy if any; (connection, absolute-form path)."""
    proxy = _proxy_for(scheme, host)
    proxy_headers = {}
    if proxy:
        p = urlsplit(proxy)
        if p.username is not None:
            creds = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
            proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(creds).decode()
        phost, pport = p.hostname or "", p.port or DEFAULT_PORTS.get(p.scheme, 80)
    if scheme == "https":
        import ssl

        ctx = context or ssl.create_default_context()
        if proxy:
            conn = http.client.HTTPSConnection(phost, pport, timeout=timeout, context=ctx)
            conn.set_tunnel(host, port, headers=proxy_headers)
            return conn, False
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx), False
    if proxy:
        conn = http.client.HTTPConnection(phost, pport, timeout=timeout)
        conn._ftmodel_proxy_headers = proxy_headers  # sent with the request, in absolute form
        return conn, True
    return http.client.HTTPConnection(host, port, timeout=timeout), False


def _exchange(
    method: str, url: str, headers: dict, body: bytes | None, timeout: float, guard: _Guard, context, max_bytes: int
) -> Reply:
    """One request/response exchange (no redirects): connect, send, read the status and headers."""
    parts = urlsplit(url)
    where = display(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise HTTPError(f"{where}: not an http(s) URL", url)
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise HTTPError(f"{where}: bad port", url) from None
    host = parts.hostname
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    remaining = guard.remaining()
    if remaining is not None and remaining <= 0:
        guard.abort("deadline")
    if guard.reason:
        raise _aborted(guard, url)
    connect_timeout = timeout if remaining is None else max(0.001, min(timeout, remaining))
    conn = None
    phase = "connect"
    try:
        conn, absolute = _connection(scheme, host, port, connect_timeout, context)
        conn.connect()
        guard.attach(conn.sock)
        conn.sock.settimeout(timeout)
        phase = "reply"
        send_headers = dict(headers)
        if absolute:
            send_headers.update(conn._ftmodel_proxy_headers)
            path = f"{scheme}://{parts.netloc.rpartition('@')[2]}{path}"
        conn.request(method, path, body=body, headers=send_headers)
        resp = conn.getresponse()
    except BaseException as e:
        if conn is not None:
            conn.close()
        if guard.reason:
            raise _aborted(guard, url) from None
        if not isinstance(e, Exception):
            raise
        raise _network_error(e, phase, url, host, timeout, connect_timeout) from None
    return Reply(url, conn, resp, guard, timeout, max_bytes)


def _aborted(guard: _Guard, url: str) -> HTTPError:
    if guard.reason == "cancelled":
        return Cancelled(f"{display(url)}: cancelled", url)
    return DeadlineExceeded(
        f"{display(url)}: timed out: deadline of {guard.deadline:g} s passed before a reply came", url
    )


def _network_error(e: Exception, phase: str, url: str, host: str, timeout: float, connect_timeout: float) -> HTTPError:
    """The HTTPError for an exception raised while connecting or waiting for the status line."""
    import ssl

    where = display(url)
    if isinstance(e, ssl.SSLCertVerificationError):
        return TLSError(f"{where}: TLS certificate not trusted for {host}: {e.verify_message or e}", url)
    if isinstance(e, ssl.SSLError):
        return TLSError(f"{where}: TLS handshake failed: {e.reason or e}", url)
    if isinstance(e, (TimeoutError, socket.timeout)):
        if phase == "connect":
            return Timeout(f"{where}: timed out: no connection within {connect_timeout:g} s", url)
        return Timeout(f"{where}: timed out: no reply for {timeout:g} s", url)
    if isinstance(e, http.client.RemoteDisconnected):
        return Unreachable(f"{where}: the server closed the connection without replying", url)
    if isinstance(e, http.client.HTTPException):
        return BadReply(f"{where}: not an HTTP reply ({type(e).__name__}: {str(e)[:120]})", url)
    if isinstance(e, socket.gaierror):
        return Unreachable(f"{where}: unknown host {host} ({e.strerror or e})", url)
    if isinstance(e, OSError):
        reason = e.strerror or str(e) or type(e).__name__
        return Unreachable(
            f"{where}: cannot {'connect' if phase == 'connect' else 'talk to the server'}: "
            f"{type(e).__name__}: {reason}",
            url,
        )
    return HTTPError(f"{where}: {type(e).__name__}: {e}", url)
