"""One HTTP client for our own requests (the sync verifier's GraphQL queries and the
OpenAI-compatible teacher/judge client): urllib3's connections and proxies under a safety layer
no library has.

Why not plain urllib3 or requests: they follow a redirect to another host (requests strips
Authorization but not `api-key`/`x-api-key`; urllib3 keeps every header), their timeout bounds
each socket read only (a server trickling a byte now and then holds a request forever), and a body
cut short reaches the caller as one of several library exceptions. Here:

- A redirect to another origin (scheme, host or port differ) is REFUSED when the request carries a
  secret header (Authorization, Proxy-Authorization, Cookie, api-key, x-api-key): RedirectRefused
  names both origins. (wandb's own client strips the header instead; we refuse, so the user sees
  that the server moved and names the new host themselves.) Without secrets a redirect is
  followed; same-origin redirects keep the headers; at most `max_redirects` hops.
- `timeout` bounds silence (no byte for that long); `deadline` bounds the whole request, redirects
  included: a watchdog shuts the socket down when it passes, whatever phase the request is in.
- A body shorter than its Content-Length, or a chunked body cut off, is ShortBody.
- Every failure is an HTTPError subclass with a one-line message naming the URL (never its query
  or user info), never a traceback from urllib3, http.client, socket or ssl. `retryable` says
  whether trying again may help; `retry_after(reply)` reads a 429/503's `Retry-After`.
- A Cancel aborts requests from another thread (their sockets are shut down, so the server sees
  the client go and can stop working on an abandoned request); the request raises
  `ftmodel.errors.Cancelled`, the one stop request of the engine, which is no HTTPError (a stop
  is not a failure, and no `except HTTPError` may retry or swallow it).

Connections are kept alive and reused (ftmodel.http_transport: urllib3 pools); a reply read to its
end gives its connection back, one closed early drops it. A request that fails before any byte of
a reply on a REUSED connection (the server closed it while idle) is sent again once on a new one.
Proxies come from the environment as requests reads them (`no_proxy` by domain and CIDR,
`ALL_PROXY`, https:// proxies); loopback hosts never take one. urllib3 loads on the first request
(the console imports the sync modules, never sends a request). Longer than 400 lines because the
errors, the watchdog and the exchange are one mechanism, read together.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from urllib.parse import urljoin, urlsplit

from ftmodel.errors import Cancelled, FtmodelError  # Cancelled: Cancel.cancel() during a request
from ftmodel.i18n import t

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "api-key", "x-api-key"})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_REDIRECTS = 5
MAX_BYTES = 64 << 20  # a reply larger than this is refused (ours are a few KB)
_CHUNK = 65536
FINISH_GRACE_S = 1.0  # how long `Reply.finish` waits for the rest of a body to keep its connection
RETRY_AFTER_MAX_S = 120.0  # a Retry-After longer than this is cut to it (and said so by the caller)


class HTTPError(FtmodelError):
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


class ProxyFailed(Unreachable):
    """The proxy the environment names could not be reached or refused to carry the request."""


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
    """One request's watchdog: shuts its connection's socket down at the deadline or on cancel.

    Connections are pooled, so a guard only ever touches the connection while its request owns it
    (`conn.owner is self`): a deadline that fires after the reply went back to the pool, or to
    another request, shuts nothing down."""

    _owners = threading.Lock()  # one lock for every connection's owner: taking over and aborting exclude

    def __init__(self, deadline: float | None, cancel: Cancel | None):
        self.reason: str | None = None  # "deadline" | "cancelled" once aborted
        self.deadline = deadline
        self.ends_at = time.monotonic() + deadline if deadline else None
        self._conn = None
        self._closed = False
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

    def watch(self, conn) -> None:
        """Take over `conn` (opened or reused for this request); shut it down at once if already aborted."""
        with _Guard._owners:
            if self._closed:
                return
            conn.owner, self._conn = self, conn
            if self.reason is not None:
                _shutdown(conn.raw_socket)

    def abort(self, reason: str) -> None:
        with _Guard._owners:
            if self.reason is None:
                self.reason = reason
            conn = self._conn
            if conn is not None and conn.owner is self and not self._closed:
                _shutdown(conn.raw_socket)

    def close(self) -> None:
        """The request is over: let go of its connection and stop the watchdog."""
        with _Guard._owners:
            self._closed = True
            if self._conn is not None and self._conn.owner is self:
                self._conn.owner = None
        if self._timer is not None:
            self._timer.cancel()
        if self._cancel is not None:
            self._cancel._discard(self)


def _shutdown(sock: socket.socket | None) -> None:
    """Unblock any thread reading the socket (recv returns EOF), without touching TLS state."""
    if sock is None:
        return
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class Reply:
    """A reply whose body is read with the request's silence timeout and deadline still in force.

    Use as a context manager (or call close()): a body read to its end gives the connection back
    to the pool; closing before the end drops the connection, so the server sees the client go."""

    def __init__(self, url: str, resp, guard: _Guard, timeout: float, max_bytes: int):
        self.url = url
        self.status = resp.status
        self.reason = resp.reason
        self.headers = resp.headers
        self.body: bytes | None = None  # set by read()
        self._resp, self._guard = resp, guard
        self._timeout, self._max_bytes = timeout, max_bytes
        self._expected = _content_length(resp)  # None when chunked or delimited by close
        self._got = 0
        self._eof = False
        self._closed = False

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def read_some(self) -> bytes:
        """The next piece of the body (b"" at its end); raises HTTPError on silence, deadline or a cut."""
        from urllib3 import exceptions as u3

        if self._eof:
            return b""
        where = display(self.url)
        problem: HTTPError | None = None
        try:
            data = self._resp.read1(_CHUNK)
        except u3.ReadTimeoutError:
            data = None
            problem = Timeout(
                t(
                    "{where}: timed out: no byte of the reply for {timeout:g} s (after {got} bytes)",
                    where=where,
                    timeout=self._timeout,
                    got=self._got,
                ),
                self.url,
            )
        except (u3.HTTPError, OSError, http.client.HTTPException, ValueError) as e:
            data = None
            problem = self._cut(e)
        if self._guard.reason:
            self._drop()
            raise self._aborted()
        if problem is not None:
            self._drop()
            raise problem
        if not data:
            self._eof = True
            if self._expected is not None and self._got < self._expected:
                self._drop()
                raise self._cut(None)
            return b""
        self._got += len(data)
        if self._got > self._max_bytes:
            self._drop()
            raise TooLarge(t("{where}: reply larger than {most} bytes", where=where, most=self._max_bytes), self.url)
        return data

    def _cut(self, error: Exception | None) -> HTTPError:
        where = display(self.url)
        if self._expected is not None:
            return ShortBody(
                t(
                    "{where}: the connection closed in the middle of the reply: got {got} of {expected} bytes "
                    "(Content-Length)",
                    where=where,
                    got=self._got,
                    expected=self._expected,
                ),
                self.url,
            )
        root = _root(error) if error is not None else None
        if root is None or isinstance(root, http.client.IncompleteRead):
            return ShortBody(
                t(
                    "{where}: the connection closed in the middle of the reply (after {got} bytes)",
                    where=where,
                    got=self._got,
                ),
                self.url,
            )
        return ShortBody(
            t(
                "{where}: the reply was cut off after {got} bytes ({kind}: {reason})",
                where=where,
                got=self._got,
                kind=type(root).__name__,
                reason=root,
            ),
            self.url,
        )

    def _aborted(self) -> HTTPError | Cancelled:
        where = display(self.url)
        if self._guard.reason == "cancelled":
            return Cancelled(t("{name}: cancelled", name=where), self.url)
        return DeadlineExceeded(
            t(
                "{where}: timed out: deadline of {deadline:g} s passed before the reply was complete ({got} bytes in)",
                where=where,
                deadline=self._guard.deadline,
                got=self._got,
            ),
            self.url,
        )

    def read(self) -> bytes:
        """The whole body (also kept in `.body`); the connection goes back to the pool afterwards."""
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

    def finish(self, grace: float = FINISH_GRACE_S) -> None:
        """The caller has what it needs (a stream's `[DONE]`): if the rest of the body (a few bytes,
        the end of a chunked stream) comes within `grace` seconds, keep the connection for the next
        request; otherwise drop it. Then close."""
        if not self._eof and not self._closed and self._guard.reason is None:
            conn = getattr(self._resp, "connection", None)
            sock = getattr(conn, "sock", None)
            try:
                if sock is not None:
                    sock.settimeout(min(grace, self._timeout))
                left = 64 * 1024
                while left > 0 and (data := self.read_some()):
                    left -= len(data)
            except (HTTPError, Cancelled, OSError):
                pass  # close() drops what is left
        self.close()

    def close(self) -> None:
        """End the request's watchdog; give the connection back when the body was read to its end,
        drop it otherwise."""
        if self._closed:
            return
        self._closed = True
        self._guard.close()
        if not self._eof:
            self._drop()
        else:
            self._resp.release_conn()

    def drop(self) -> None:
        """Close the connection (a redirect hop, a reply abandoned)."""
        self._drop()

    def _drop(self) -> None:
        resp = self._resp
        for step in (resp.close, resp.release_conn):  # release_conn puts the closed slot back in the pool
            try:
                step()
            except Exception:  # noqa: BLE001 - closing a broken connection must not raise
                pass

    def __enter__(self) -> Reply:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _content_length(resp) -> int | None:
    if resp.headers.get("Transfer-Encoding", "").lower().endswith("chunked"):
        return None
    try:
        length = int(resp.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


def retry_after(reply: Reply, most: float | None = RETRY_AFTER_MAX_S) -> float | None:
    """Seconds a 429/503 reply asks us to wait (`Retry-After`: seconds or an HTTP date, as urllib3
    reads it), at most `most` (None: as asked); None when it does not say or says something unreadable."""
    value = reply.headers.get("Retry-After")
    if reply.status not in (429, 503) or not value:
        return None
    import urllib3
    from urllib3 import exceptions as u3

    bound = 10**12 if most is None else int(most)
    try:
        return float(urllib3.Retry(0, retry_after_max=bound).parse_retry_after(value))
    except (u3.InvalidHeader, ValueError, OverflowError):
        return None


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
    (None: no deadline); `context`: the TLS context (default: the system's trust store). Redirects
    are followed as the module's docstring says. Raises HTTPError."""
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
                        t(
                            "{where}: the server redirected to {target} (from {origin}); refused: the request carries "
                            "{secrets}, which is never sent to a host you did not name. If {target} is the right "
                            "server, configure its URL directly.",
                            where=display(url),
                            target=origin(target),
                            origin=origin(url),
                            secrets="/".join(secrets),
                        ),
                        url,
                    )
            if reply.status == 303 or (reply.status in (301, 302) and method not in ("GET", "HEAD")):
                method, body = "GET", None  # what browsers, urllib and requests do
                headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
            url = target
        raise TooManyRedirects(t("{where}: more than {most} redirects", where=display(url), most=max_redirects), url)
    except BaseException:
        guard.close()
        raise


def request(method: str, url: str, **kwargs) -> Reply:
    """Send a request and read the whole reply (`.body`); the same arguments as `stream`."""
    reply = stream(method, url, **kwargs)
    reply.read()
    return reply


STALE_RETRIES = 2  # sends again after a reused connection turned out closed (each on another connection)


def _exchange(
    method: str, url: str, headers: dict, body: bytes | None, timeout: float, guard: _Guard, context, max_bytes: int
) -> Reply:
    """One request/response exchange (no redirects): connect or reuse a connection, send, read the
    status and headers. A connection the server closed while it sat in the pool is replaced."""
    import urllib3

    from ftmodel import http_transport as transport

    parts = urlsplit(url)
    where = display(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise HTTPError(t("{where}: not an http(s) URL", where=where), url)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise HTTPError(t("{where}: bad port", where=where), url) from None
    host = parts.hostname
    try:
        proxy = transport.proxy_for(url)
        manager = transport.pool_manager(proxy, context)
    except transport.ProxyUnsupported as e:
        raise ProxyFailed(f"{where}: {e}", url) from None
    for attempt in range(STALE_RETRIES + 1):
        remaining = guard.remaining()
        if remaining is not None and remaining <= 0:
            guard.abort("deadline")
        if guard.reason:
            raise _aborted(guard, url)
        connect_timeout = timeout if remaining is None else max(0.001, min(timeout, remaining))
        opened = transport.opened_count()
        transport.watching.watch = guard.watch
        try:
            resp = manager.urlopen(
                method,
                url,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                release_conn=False,
                timeout=urllib3.Timeout(connect=connect_timeout, read=timeout),
            )
        except Exception as e:
            if guard.reason:
                raise _aborted(guard, url) from None
            error = _network_error(e, url, host, proxy, timeout, connect_timeout)
            reused = transport.opened_count() == opened
            if (
                reused
                and isinstance(error, Unreachable)
                and attempt < STALE_RETRIES
                and not isinstance(error, ProxyFailed)
            ):
                continue  # the server closed an idle connection we reused: nothing reached it
            raise error from None
        finally:
            transport.watching.watch = None
        if guard.reason:  # aborted just as the headers came in
            Reply(url, resp, guard, timeout, max_bytes).drop()
            raise _aborted(guard, url)
        return Reply(url, resp, guard, timeout, max_bytes)
    raise AssertionError("unreachable")  # the loop returns or raises


def _aborted(guard: _Guard, url: str) -> HTTPError | Cancelled:
    if guard.reason == "cancelled":
        return Cancelled(t("{name}: cancelled", name=display(url)), url)
    return DeadlineExceeded(
        t(
            "{where}: timed out: deadline of {deadline:g} s passed before a reply came",
            where=display(url),
            deadline=guard.deadline,
        ),
        url,
    )


def _root(e: BaseException) -> BaseException:
    """The error under urllib3's wrappers (a ProtocolError's reason, a NewConnectionError's cause…)."""
    from urllib3 import exceptions as u3

    seen = set()
    while id(e) not in seen:
        seen.add(id(e))
        inner = None
        if isinstance(e, (u3.ProtocolError, u3.ProxyError, u3.SSLError)) and len(e.args) > 1:
            inner = e.args[-1] if isinstance(e.args[-1], BaseException) else None
        if inner is None and isinstance(e, u3.SSLError) and e.args and isinstance(e.args[0], BaseException):
            inner = e.args[0]
        if inner is None and isinstance(e, u3.HTTPError):
            inner = e.__cause__ or e.__context__
        if inner is None:
            return e
        e = inner
    return e


def _network_error(
    e: Exception, url: str, host: str, proxy: str | None, timeout: float, connect_timeout: float
) -> HTTPError:
    """The HTTPError for an exception raised while connecting or waiting for the status line."""
    from urllib3 import exceptions as u3

    where = display(url)
    if isinstance(e, u3.ProxyError):
        root = _root(e)
        return ProxyFailed(
            t(
                "{where}: cannot go through the proxy {proxy}: {kind}: {reason}",
                where=where,
                proxy=display(proxy or ""),
                kind=type(root).__name__,
                reason=getattr(root, "strerror", None) or root,
            ),
            url,
        )
    if isinstance(e, u3.ConnectTimeoutError) and not isinstance(e, u3.NewConnectionError):
        return Timeout(
            t("{where}: timed out: no connection within {timeout:g} s", where=where, timeout=connect_timeout), url
        )
    if isinstance(e, u3.ReadTimeoutError):
        return Timeout(t("{where}: timed out: no reply for {timeout:g} s", where=where, timeout=timeout), url)
    root = _root(e)
    if isinstance(root, ssl.SSLCertVerificationError):
        return TLSError(
            t(
                "{where}: TLS certificate not trusted for {host}: {reason}",
                where=where,
                host=host,
                reason=root.verify_message or root,
            ),
            url,
        )
    if isinstance(root, (ssl.SSLError, ssl.CertificateError)) or isinstance(e, u3.SSLError):
        return TLSError(
            t("{where}: TLS handshake failed: {reason}", where=where, reason=getattr(root, "reason", None) or root), url
        )
    if isinstance(root, (TimeoutError, socket.timeout)):
        return Timeout(t("{where}: timed out: no reply for {timeout:g} s", where=where, timeout=timeout), url)
    if isinstance(root, http.client.RemoteDisconnected):
        return Unreachable(t("{where}: the server closed the connection without replying", where=where), url)
    if isinstance(root, http.client.HTTPException):
        return BadReply(
            t(
                "{where}: not an HTTP reply ({kind}: {reason})",
                where=where,
                kind=type(root).__name__,
                reason=str(root)[:120],
            ),
            url,
        )
    if isinstance(root, socket.gaierror) or isinstance(e, u3.NameResolutionError):
        reason = getattr(root, "strerror", None) or root
        return Unreachable(t("{where}: unknown host {host} ({reason})", where=where, host=host, reason=reason), url)
    if isinstance(root, OSError):
        reason = root.strerror or str(root) or type(root).__name__
        kind = type(root).__name__
        if isinstance(e, u3.NewConnectionError):
            return Unreachable(
                t("{where}: cannot connect: {kind}: {reason}", where=where, kind=kind, reason=reason), url
            )
        return Unreachable(
            t("{where}: cannot talk to the server: {kind}: {reason}", where=where, kind=kind, reason=reason), url
        )
    if isinstance(e, u3.LocationParseError):
        return HTTPError(t("{where}: not a valid URL", where=where), url)
    return HTTPError(f"{where}: {type(root).__name__}: {root}", url)
