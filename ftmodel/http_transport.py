"""Connections and proxies for ftmodel.http_client, taken from the ecosystem's own tools.

- Connections: urllib3 pools, one per (proxy, TLS context), kept for the process: a teacher asked
  thousands of times talks over a few kept-alive connections instead of a new TCP+TLS handshake
  per request. urllib3 also does the proxy transport: plain HTTP proxies (absolute-form requests),
  CONNECT tunnels for https targets, and https:// proxies (TLS to the proxy, TLS inside the tunnel).
- Which proxy a URL takes: requests' own reading of the environment (`requests.utils`:
  `http_proxy`, `https_proxy`, `ALL_PROXY`, `no_proxy` by domain, `host:port` and CIDR, lower
  case first, as curl reads them). Loopback hosts never take a proxy (as Go's and wandb-core's
  clients do): a teacher on 127.0.0.1 is this machine, whatever the environment says.
- The safety layer (ftmodel.http_client) watches each connection's socket: `watching` names, per
  thread, the function that is handed every connection a request opens or reuses, so a deadline or
  a cancel can shut that socket down whatever phase the request is in.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ftmodel.errors import FtmodelError
from ftmodel.i18n import t

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
PER_HOST = 64  # connections kept per host: above a teacher's usual concurrency (its schema allows 256)
MAX_MANAGERS = 16  # (proxy, TLS context) pairs kept; the oldest is closed beyond that


class ProxyUnsupported(FtmodelError, ValueError):
    """The environment names a proxy this process cannot use (a SOCKS proxy without PySocks)."""


# ---------------------------------------------------------------------------------------------
# Watched connections
# ---------------------------------------------------------------------------------------------

watching = threading.local()  # .watch: Callable[[connection], None] | None, set around one request
_opened = threading.local()  # .count: connections this thread tried to open (to tell a reused one)


def _hand_over(conn) -> None:
    watch: Callable | None = getattr(watching, "watch", None)
    if watch is not None:
        watch(conn)


def opened_count() -> int:
    """How many connections this thread has tried to open so far (a request that tried none reused one)."""
    return getattr(_opened, "count", 0)


class _Watched:
    """A urllib3 connection that hands its raw socket to the request using it (new or reused)."""

    raw_socket = None  # the TCP socket under any TLS layers: shutting it down ends every layer
    owner = None  # the watcher (http_client's guard) of the request using it now

    def _new_conn(self):
        _opened.count = opened_count() + 1  # before connecting: a refused connection was not a reused one
        sock = super()._new_conn()
        self.raw_socket = sock
        _hand_over(self)
        return sock

    def request(self, *args, **kwargs):
        if self.sock is not None:  # reused from the pool: this request is its user now
            _hand_over(self)
        return super().request(*args, **kwargs)


class WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


# ---------------------------------------------------------------------------------------------
# Which proxy
# ---------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether a URL's host is this machine's loopback (a name or a 127/8 or ::1 address)."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_for(url: str) -> str | None:
    """The proxy URL the environment names for `url` (None: go straight there), read as requests
    reads it: `<scheme>_proxy`, then `all_proxy`, unless `no_proxy` matches the host (a domain and
    its subdomains, `host:port`, an IP address or a CIDR block such as 10.0.0.0/8; `*` for all)."""
    host = urlsplit(url).hostname or ""
    if not host or is_loopback(host):
        return None
    from requests.utils import get_environ_proxies, select_proxy  # lazily: only for non-loopback hosts

    proxy = select_proxy(url, get_environ_proxies(url))
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


# ---------------------------------------------------------------------------------------------
# Pools
# ---------------------------------------------------------------------------------------------

_lock = threading.Lock()
_managers: OrderedDict[tuple, tuple[urllib3.PoolManager, ssl.SSLContext | None]] = OrderedDict()
_default_contexts: dict[tuple, ssl.SSLContext] = {}


def default_tls() -> ssl.SSLContext:
    """The system's trust store as Python reads it (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured), one
    context per setting of those variables: a new context per request would defeat the pools."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _lock:
        ctx = _default_contexts.get(key)
        if ctx is None:
            ctx = _default_contexts[key] = ssl.create_default_context()
        return ctx


def pool_manager(proxy: str | None, context: ssl.SSLContext | None) -> urllib3.PoolManager:
    """The kept pool manager for requests through `proxy` (None: direct) with TLS `context`."""
    context = context or default_tls()
    proxy_tls = default_tls() if proxy and proxy.lower().startswith("https:") else None
    key = (proxy, id(context))
    with _lock:  # creating a manager does no I/O: one per key, even when threads ask at once
        found = _managers.get(key)
        if found is not None and found[1] is context:
            _managers.move_to_end(key)
            return found[0]
        manager = _new_manager(proxy, context, proxy_tls)
        _managers[key] = (manager, context)  # the context is kept with it: its id is never reused
        while len(_managers) > MAX_MANAGERS:
            _, (old, _ctx) = _managers.popitem(last=False)
            old.clear()
    return manager


def _new_manager(proxy: str | None, context: ssl.SSLContext, proxy_tls: ssl.SSLContext | None) -> urllib3.PoolManager:
    common = {"num_pools": 32, "maxsize": PER_HOST, "block": False, "ssl_context": context}
    if proxy is None:
        manager = urllib3.PoolManager(**common)
    else:
        parts = urlsplit(proxy)
        scheme = parts.scheme.lower()
        headers = {}
        if parts.username is not None:
            creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers = {"Proxy-Authorization": urllib3.make_headers(proxy_basic_auth=creds)["proxy-authorization"]}
        if scheme.startswith("socks"):
            try:
                with warnings.catch_warnings():  # urllib3 warns before it raises: the error says it all
                    warnings.simplefilter("ignore")
                    from urllib3.contrib.socks import SOCKSProxyManager
            except ImportError:
                raise ProxyUnsupported(
                    t(
                        "the environment names a SOCKS proxy ({proxy}), which needs PySocks: `pip install pysocks`, "
                        "or name an http:// proxy, or add the host to no_proxy",
                        proxy=f"{scheme}://{parts.hostname}:{parts.port}",
                    )
                ) from None
            return SOCKSProxyManager(proxy, **common)
        if scheme not in ("http", "https"):
            raise ProxyUnsupported(
                t("the environment names a proxy with an unknown scheme: {scheme}://", scheme=scheme)
            )
        bare = f"{scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        manager = urllib3.ProxyManager(bare, proxy_headers=headers, proxy_ssl_context=proxy_tls, **common)
    manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return manager


def clear_pools() -> None:
    """Close every kept connection (tests, and a process about to fork)."""
    with _lock:
        managers = [m for m, _ in _managers.values()]
        _managers.clear()
    for manager in managers:
        manager.clear()
