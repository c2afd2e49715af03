"""Download one feed over HTTP (or read a local file) into ``Fetched``; never parses it.

Redirects are followed here, one hop at a time, so that each hop's status is known
(``permanent_redirect``), a redirect's body is never read, and the whole fetch
stays inside one deadline. Bodies are streamed and decompressed here too, so the
``max_bytes`` cap counts decompressed bytes and a gzip bomb stops early.

Every expected failure is a ``FetchError``; anything else escaping is a bug.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import getproxies, proxy_bypass

import certifi
import urllib3
from urllib3.util.ssl_ import create_urllib3_context

from watcher.address_policy import AddressPolicy
from watcher.exceptions import FetchError
from watcher.poll import deadline as header_deadline
from watcher.poll import guard
from watcher.types import Fetched

ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.8, "
    "application/json;q=0.8, */*;q=0.5"
)
MAX_REDIRECTS = 10
CHUNK_BYTES = 64 * 1024
HOSTS_KEPT = 256
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class HTTPStatusError(FetchError):
    """The server answered with an HTTP error status.

    ``retry_after_s`` holds the server's ``Retry-After`` (seconds from now), if any.
    """

    def __init__(
        self, url: str, message: str, http_status: int, retry_after_s: float | None = None
    ) -> None:
        super().__init__(url, message, http_status=http_status)
        self.retry_after_s = retry_after_s


class FeedSession:
    """Keep-alive connections, default headers and proxy choice shared by feed fetches.

    Connections come from urllib3 pools (one per host, idle ones kept for up to
    ``HOSTS_KEPT`` hosts); requests sits on top of the same pools but costs several
    times more CPU per request, which a poll of thousands of mostly-unchanged feeds
    pays on every one. Proxies are read once from ``HTTP(S)_PROXY``/``NO_PROXY``.
    Safe to share between threads.
    """

    def __init__(
        self, user_agent: str, *, pool_size: int = 32, block_private: bool = False
    ) -> None:
        self.policy = AddressPolicy(block_private=block_private)
        self.headers: dict[str, str] = {
            "User-Agent": user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip, deflate",
        }
        self._pool_kwargs: dict[str, Any] = {
            "num_pools": HOSTS_KEPT,
            "maxsize": pool_size,
            "block": False,
            "retries": False,
            "ssl_context": _tls_context(),
        }
        self._direct = self._manager(None)
        self._proxies = {k: v for k, v in getproxies().items() if k in ("http", "https", "all")}
        self._by_proxy: dict[str, urllib3.PoolManager] = {}
        self._bypass: dict[str, bool] = {}
        self._lock = threading.Lock()

    def manager_for(self, scheme: str, host: str) -> urllib3.PoolManager:
        """The pool manager for a URL: direct, or through the proxy the environment names."""
        if not self._proxies:
            return self._direct
        proxy = self._proxies.get(scheme) or self._proxies.get("all")
        if not proxy or self._bypassed(host):
            return self._direct
        with self._lock:
            manager = self._by_proxy.get(proxy)
            if manager is None:
                manager = self._by_proxy[proxy] = self._manager(proxy)
            return manager

    def close(self) -> None:
        """Close every idle connection."""
        self._direct.clear()
        for manager in self._by_proxy.values():
            manager.clear()

    def __enter__(self) -> FeedSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _bypassed(self, host: str) -> bool:
        known = self._bypass.get(host)
        if known is None:
            known = self._bypass[host] = bool(proxy_bypass(host))
        return known

    def _manager(self, proxy: str | None) -> urllib3.PoolManager:
        if proxy is None:
            manager = urllib3.PoolManager(**self._pool_kwargs)
        else:
            manager = urllib3.ProxyManager(
                proxy, proxy_headers=_proxy_auth(proxy), **self._pool_kwargs
            )
        header_deadline.install(manager)
        guard.install(manager)
        return manager


def make_session(
    user_agent: str, *, pool_size: int = 32, block_private: bool = False
) -> FeedSession:
    """Return a session for feed fetches: pooled connections, no automatic retries.

    ``pool_size`` is the number of idle keep-alive connections kept per host; idle
    connections to up to ``HOSTS_KEPT`` hosts are kept (fewer made every poll close
    and reopen connections as fetches move between hosts). Every connection obeys the
    outbound address policy (``block_private``: ``poll.block_private``).
    """
    return FeedSession(user_agent, pool_size=pool_size, block_private=block_private)


def _tls_context() -> ssl.SSLContext:
    """Certificates verified against certifi's bundle (or the one the environment names)."""
    bundle = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
    )
    return _context_for(bundle)


@functools.cache
def _context_for(bundle: str) -> ssl.SSLContext:
    """Made once per bundle and process (loading it takes ~20 ms): a poll's worker
    processes are forked after the poll made its own, and start with it loaded."""
    context = create_urllib3_context()
    context.load_verify_locations(bundle)
    return context


def _proxy_auth(proxy: str) -> dict[str, str] | None:
    """A ``Proxy-Authorization`` header for credentials written in the proxy URL."""
    auth = urllib3.util.parse_url(proxy).auth
    return urllib3.util.make_headers(proxy_basic_auth=unquote(auth)) if auth else None


def fetch_feed(
    session: FeedSession,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    timeout: float = 20.0,
    max_bytes: int = 10 * 1024 * 1024,
    headers: Mapping[str, str] | None = None,
) -> Fetched:
    """Fetch ``url`` (http, https, file:// or a local path) within ``timeout`` seconds.

    ``etag``/``last_modified`` make the request conditional: an unchanged feed
    gives ``Fetched(status=304)`` with no content. Raises ``FetchError``.
    """
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as e:
        raise FetchError(url, f"invalid URL ({_cause(e)})") from e
    if scheme in ("http", "https"):
        request_headers = _request_headers(headers, etag, last_modified)
        configured = frozenset(name.lower() for name in headers or {})
        return _fetch_http(session, url, request_headers, configured, timeout, max_bytes)
    if scheme == "file" or not scheme or _is_windows_drive(scheme, url):
        return read_local_feed(url, max_bytes)
    raise FetchError(url, f"unsupported URL scheme {scheme!r}: use http(s), file:// or a path")


def read_local_feed(url: str, max_bytes: int) -> Fetched:
    """Read a feed from a local path or ``file://`` URL, at most ``max_bytes`` of it."""
    path = _local_path(url)
    try:
        with path.open("rb") as file:
            content = file.read(max_bytes + 1)
    except OSError as e:
        raise FetchError(url, f"cannot read file ({e.strerror or e}): check the path") from e
    if len(content) > max_bytes:
        raise FetchError(url, f"file larger than max_bytes ({max_bytes} bytes)")
    return Fetched(url=url, final_url=url, status=200, content=content)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return a ``Retry-After`` header (seconds or an HTTP date) as seconds from ``now``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --- HTTP ---------------------------------------------------------------------------------


def _request_headers(
    extra: Mapping[str, str] | None, etag: str | None, last_modified: str | None
) -> dict[str, str]:
    request_headers = dict(extra or {})
    if etag:
        request_headers["If-None-Match"] = etag
    if last_modified:
        request_headers["If-Modified-Since"] = last_modified
    return request_headers


def _fetch_http(
    session: FeedSession,
    url: str,
    headers: dict[str, str],
    configured: frozenset[str],
    timeout: float,
    max_bytes: int,
) -> Fetched:
    deadline = time.monotonic() + timeout
    hops: list[int] = []
    current = url
    with guard.scope(guard.FetchScope(session.policy)) as state:
        while True:
            headers = _with_url_credentials(headers, current)
            response = _send(session, url, current, headers, deadline)
            try:
                if response.status not in _REDIRECTS:
                    return _finish(response, url, current, hops, deadline, max_bytes, headers)
                target = _redirect_target(response, url, current)
            finally:
                _close(response)
            hops.append(response.status)
            if len(hops) > MAX_REDIRECTS:
                raise FetchError(url, f"more than {MAX_REDIRECTS} redirects: check for a loop")
            headers = _headers_for_hop(headers, current, target, configured)
            current = target
            state.hop += 1


def _send(
    session: FeedSession,
    url: str,
    current: str,
    headers: dict[str, str],
    deadline: float,
) -> urllib3.BaseHTTPResponse:
    remaining = _remaining(url, deadline)
    try:
        target = urllib3.util.parse_url(current)
        if not target.host:
            raise FetchError(url, "invalid URL (no host)")
        manager = session.manager_for(target.scheme or "http", target.host)
        if isinstance(manager, urllib3.ProxyManager):
            guard.check_host(target.host)
        with header_deadline.limit(deadline):
            return manager.urlopen(
                "GET",
                target.url,
                headers=_merged(session.headers, headers),
                timeout=urllib3.Timeout(connect=min(remaining, 10.0), read=remaining),
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
            )
    except guard.AddressRefused as e:
        raise FetchError(url, f"refused to connect to {e.host} ({e.address}): {e.reason}") from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        if isinstance(e, ValueError):  # LocationParseError: a URL urllib3 cannot use
            raise FetchError(url, f"invalid URL ({_cause(e)})") from e
        if time.monotonic() >= deadline:  # the headers did not all arrive in time
            raise FetchError(url, "took longer than the timeout: the server is too slow") from e
        raise _connection_error(url, e, remaining) from e
    except ValueError as e:  # a URL that cannot even be split
        raise FetchError(url, f"invalid URL ({_cause(e)})") from e


def _merged(defaults: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The session's headers overridden by the fetch's own (names compared case-blind)."""
    if not extra:
        return dict(defaults)
    replaced = {name.lower() for name in extra}
    merged = {k: v for k, v in defaults.items() if k.lower() not in replaced}
    merged.update(extra)
    return merged


def _close(response: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back: reusable if the body was read, else closed first."""
    if not response.closed:
        response.close()
    response.release_conn()


def _finish(
    response: urllib3.BaseHTTPResponse,
    url: str,
    final_url: str,
    hops: list[int],
    deadline: float,
    max_bytes: int,
    sent: Mapping[str, str],
) -> Fetched:
    """Build ``Fetched``; a 304 keeps the validators sent when the server omits them."""
    status = response.status
    if status >= 400 or (status >= 300 and status != 304):
        raise _status_error(url, response)
    try:
        content = _read_body(response, url, deadline, max_bytes) if status != 304 else b""
        if status == 304:
            response.release_conn()  # a 304 has no body: keep the connection
    except FetchError as e:
        e.http_status = status  # the server did answer: polls shows its status
        raise
    permanent = final_url if hops and all(h in _PERMANENT for h in hops) else None
    response_headers = {k.lower(): response.headers[k] for k in response.headers}
    return Fetched(
        url=url,
        final_url=final_url,
        status=status,
        content=content,
        content_type=response_headers.get("content-type"),
        etag=response_headers.get("etag") or _kept(status, sent, "If-None-Match"),
        last_modified=response_headers.get("last-modified")
        or _kept(status, sent, "If-Modified-Since"),
        permanent_redirect=permanent,
        headers=response_headers,
    )


def _kept(status: int, sent: Mapping[str, str], name: str) -> str | None:
    return sent.get(name) if status == 304 else None


def _redirect_target(response: urllib3.BaseHTTPResponse, url: str, current: str) -> str:
    location = response.headers.get("Location")
    if not location:
        raise FetchError(url, f"HTTP {response.status} redirect without a Location header")
    try:
        target = urljoin(current, location.strip())
        scheme = urlsplit(target).scheme.lower()
    except ValueError as e:
        raise FetchError(url, f"redirect to an invalid URL ({_cause(e)})") from e
    if scheme not in ("http", "https"):
        raise FetchError(url, f"redirect to a non-HTTP URL refused: {target}")
    return target


def _headers_for_hop(
    headers: dict[str, str], old: str, new: str, configured: frozenset[str]
) -> dict[str, str]:
    """The headers for a redirect's next hop: when the scheme, host or port changes, the
    credentials (``Authorization``, ``Cookie``) and every configured header are dropped."""
    if _origin(old) == _origin(new):
        return headers
    dropped = _SECRET_HEADERS | configured
    return {k: v for k, v in headers.items() if k.lower() not in dropped}


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def _with_url_credentials(headers: dict[str, str], url: str) -> dict[str, str]:
    """``user:password@`` in the URL sent as HTTP Basic auth (a configured Authorization wins)."""
    parts = urlsplit(url)
    if parts.username is None or any(k.lower() == "authorization" for k in headers):
        return headers
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return {**headers, "Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def _status_error(url: str, response: urllib3.BaseHTTPResponse) -> HTTPStatusError:
    status = response.status
    reason = response.reason or _standard_reason(status)
    message = f"HTTP {status} {reason}".rstrip()
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return HTTPStatusError(url, message, http_status=status, retry_after_s=retry_after)


def _standard_reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _remaining(url: str, deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError(url, "took longer than the timeout: the server is too slow")
    return remaining


# --- body ---------------------------------------------------------------------------------


def _read_body(
    response: urllib3.BaseHTTPResponse, url: str, deadline: float, max_bytes: int
) -> bytes:
    """Read and decode the body, stopping at the deadline or past ``max_bytes``."""
    decoder = _Decoder(url, response.headers.get("Content-Encoding", ""))
    parts: list[bytes] = []
    size = 0
    for raw in _raw_chunks(response, url, deadline):
        data = decoder.decode(raw, max_bytes - size + 1)
        size += len(data)
        if size > max_bytes:
            raise FetchError(url, f"response larger than max_bytes ({max_bytes} bytes)")
        parts.append(data)
    parts.append(decoder.finish())
    response.release_conn()  # read to the end: the connection can serve the next fetch
    return b"".join(parts)


def _raw_chunks(raw: urllib3.BaseHTTPResponse, url: str, deadline: float) -> Iterator[bytes]:
    """Yield the body as it arrives (still encoded), each read bounded by the deadline."""
    while True:
        _limit_socket_wait(raw, _remaining(url, deadline))
        try:
            chunk = raw.read1(CHUNK_BYTES, decode_content=False)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _read_error(url, e, deadline) from e
        if not chunk:
            return
        yield chunk


def _limit_socket_wait(raw: urllib3.BaseHTTPResponse, seconds: float) -> None:
    """Make the next socket read give up when the deadline passes."""
    connection = getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with suppress(OSError):
            sock.settimeout(seconds)


def _read_error(url: str, error: Exception, deadline: float) -> FetchError:
    if time.monotonic() >= deadline or _is_timeout(error):
        return FetchError(url, "took longer than the timeout: the server is too slow")
    return FetchError(url, f"connection broken while reading ({_cause(error)}): try again later")


class _Decoder:
    """Content-Encoding decoder that never inflates more than it is asked for."""

    def __init__(self, url: str, encoding: str) -> None:
        self.url = url
        self.encoding = encoding.strip().lower()
        if self.encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise FetchError(url, f"unsupported Content-Encoding {encoding!r}")
        self._zlib: zlib._Decompress | None = None

    def decode(self, data: bytes, limit: int) -> bytes:
        """Decode ``data``; return at most ``limit`` bytes (more would be over the cap)."""
        if self.encoding in ("", "identity"):
            return data
        out = bytearray()
        try:
            while data and len(out) < limit:
                if self._zlib is None or self._zlib.eof:
                    self._zlib = zlib.decompressobj(self._wbits(data))
                out += self._zlib.decompress(data, limit - len(out))
                data = self._zlib.unconsumed_tail or self._zlib.unused_data
        except zlib.error as e:
            raise FetchError(self.url, f"body is not valid {self.encoding} data: {e}") from e
        return bytes(out)

    def finish(self) -> bytes:
        if self._zlib is None or self._zlib.eof:
            return b""
        try:
            return self._zlib.flush()
        except zlib.error as e:
            raise FetchError(self.url, f"body is not valid {self.encoding} data: {e}") from e

    def _wbits(self, data: bytes) -> int:
        if self.encoding != "deflate":
            return 16 + zlib.MAX_WBITS
        # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate.
        has_zlib_header = (
            len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        )
        return zlib.MAX_WBITS if has_zlib_header else -zlib.MAX_WBITS


# --- errors -------------------------------------------------------------------------------


def _connection_error(url: str, error: Exception, timeout: float) -> FetchError:
    errors = urllib3.exceptions
    cause = _cause(error)
    if isinstance(error, errors.NewConnectionError | errors.NameResolutionError):
        message = f"cannot connect ({cause}): check the host name, the network and proxies"
    elif isinstance(error, errors.ConnectTimeoutError):
        message = f"could not connect within {timeout:.0f}s: check that the host is up"
    elif isinstance(error, errors.ReadTimeoutError):
        message = f"no response within {timeout:.0f}s: the server is too slow or stuck"
    elif isinstance(error, errors.SSLError):
        message = f"TLS error ({cause}): check the certificate and the URL's scheme"
    elif isinstance(error, errors.ProxyError):
        message = f"proxy error ({cause}): check HTTP(S)_PROXY and NO_PROXY"
    elif isinstance(error, errors.ProtocolError | OSError):
        message = f"cannot connect ({cause}): check the host name, the network and proxies"
    else:
        message = f"request failed ({cause})"
    return FetchError(url, message)


def _cause(error: BaseException) -> str:
    """Name the innermost cause of ``error`` in a short "Type: detail" form."""
    inner: BaseException = error
    for _ in range(5):
        reason = getattr(inner, "reason", None) or getattr(inner, "original_error", None)
        nested = reason if isinstance(reason, BaseException) else None
        if nested is None and inner.args and isinstance(inner.args[0], BaseException):
            nested = inner.args[0]
        if nested is None:
            break
        inner = nested
    detail = _POOL_PREFIX.sub("", str(inner))
    return f"{type(inner).__name__}: {detail}" if detail else type(inner).__name__


_POOL_PREFIX = re.compile(r"^\w+\((?:host=)?[^)]*\):\s*")


def _is_timeout(error: BaseException) -> bool:
    timeouts = (TimeoutError, socket.timeout, urllib3.exceptions.TimeoutError)
    return isinstance(error, timeouts) or isinstance(error.__context__, timeouts)


# --- local files --------------------------------------------------------------------------


def _local_path(url: str) -> Path:
    if urlsplit(url).scheme.lower() == "file":
        return Path(unquote(urlsplit(url).path))
    return Path(url).expanduser()


def _is_windows_drive(scheme: str, url: str) -> bool:
    return len(scheme) == 1 and url[1:3] in (":\\", ":/")
