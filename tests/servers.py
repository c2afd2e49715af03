"""A real HTTP server on 127.0.0.1 for tests: routes set by the test, requests recorded.

It answers conditional GETs itself (304 when ``If-None-Match`` matches the route's
ETag or ``If-Modified-Since`` equals its Last-Modified), gzip-encodes a body on
request, redirects, and dribbles slow bodies. It serves nothing it was not told to.
"""

from __future__ import annotations

import gzip
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Route:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    delay: float = 0.0  # seconds before the response starts
    dribble: float = 0.0  # seconds between chunks of the body
    chunk_size: int = 1
    gzip: bool = False


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class ThreadedServer:
    """Runs an HTTP server on 127.0.0.1 (a free port) in a thread: start/stop, or ``with``."""

    def serve(self, handler: Callable[..., BaseHTTPRequestHandler]) -> None:
        self.stopping = threading.Event()
        self._httpd = QuietServer(("127.0.0.1", 0), handler)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FeedServer(ThreadedServer):
    """``server.set(path, body, ...)``, ``server.url(path)``, ``server.requests``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self.serve(_make_handler(self))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set(
        self,
        path: str,
        body: bytes,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        delay: float = 0.0,
        dribble: float = 0.0,
        chunk_size: int = 1,
        gzip: bool = False,
    ) -> None:
        """Serve ``body`` at ``path`` (the path includes any query string)."""
        route = Route(
            body, status, dict(headers or {}), etag, last_modified, delay, dribble, chunk_size, gzip
        )
        with self._lock:
            self.routes[path] = route

    def redirect(self, path: str, to: str, status: int = 302) -> None:
        """Answer ``path`` with a redirect to ``to`` (a path on this server or a URL)."""
        self.set(path, b"", status=status, headers={"Location": to})

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def route(self, path: str) -> Route | None:
        with self._lock:
            return self.routes.get(path)


class QuietServer(ThreadingHTTPServer):
    """Threads die with the test; a client hanging up mid-response is not an error."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _make_handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_FeedHandler):
        feed_server = server

    return Handler


class _FeedHandler(BaseHTTPRequestHandler):
    feed_server: FeedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep test output quiet."""

    def do_GET(self) -> None:  # noqa: N802
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.feed_server.record(Request("GET", self.path, headers))
        route = self.feed_server.route(self.path)
        if route is None:
            self._answer(404, b"no such route\n", {"Content-Type": "text/plain"})
            return
        if route.delay and self.feed_server.stopping.wait(route.delay):
            return
        if _not_modified(route, headers):
            self._answer(304, b"", _validators(route), send_body=False)
            return
        self._serve(route, headers)

    def _serve(self, route: Route, headers: dict[str, str]) -> None:
        body = route.body
        extra = {**_validators(route), **route.headers}
        if route.gzip:
            body = gzip.compress(body)
            extra["Content-Encoding"] = "gzip"
        if not route.dribble:
            self._answer(route.status, body, extra)
            return
        self._start(route.status, len(body), extra)
        for start in range(0, len(body), route.chunk_size):
            if self.feed_server.stopping.wait(route.dribble):
                return
            if not self._write(body[start : start + route.chunk_size]):
                return

    def _answer(
        self, status: int, body: bytes, headers: dict[str, str], *, send_body: bool = True
    ) -> None:
        self._start(status, None if not send_body else len(body), headers)
        if send_body:
            self._write(body)

    def _start(self, status: int, length: int | None, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if length is not None and "content-length" not in {k.lower() for k in headers}:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return False
        return True


def _validators(route: Route) -> dict[str, str]:
    found: dict[str, str] = {}
    if route.etag:
        found["ETag"] = route.etag
    if route.last_modified:
        found["Last-Modified"] = route.last_modified
    return found


def _not_modified(route: Route, headers: dict[str, str]) -> bool:
    if_none_match = headers.get("if-none-match")
    if route.etag and if_none_match:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or route.etag.removeprefix("W/") in tags
    since = headers.get("if-modified-since")
    return bool(route.last_modified and since and since == route.last_modified)
