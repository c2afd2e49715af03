"""Small HTTP servers of the daemon (the WebSub callback, metrics and health); no business logic.

Each server runs the standard library's threading HTTP server in a thread of its own,
started and stopped with the daemon. What it answers is a function handed in:
``Request`` in, ``Answer`` out. Every connection has a socket timeout, a request body is
read only as far as the handler asks (``Request.body(limit)``, chunked bodies too), and at
most ``max_connections`` requests are handled at once; past that a client gets a 503 at
once, so a flood of slow clients cannot pin the daemon's memory or threads.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from watcher.exceptions import ConfigError
from watcher.types import Listen

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0  # a client silent this long is dropped
MAX_CONNECTIONS = 32
MAX_QUERY = 8192  # characters of a request's target


class BodyTooLarge(Exception):  # noqa: N818 - an answer to give, not a failure
    """The request's body is larger than the handler accepts."""


class BadBody(Exception):  # noqa: N818
    """The request's body cannot be read (a broken chunked encoding, a short body)."""


@dataclass
class Request:
    """One request: method, path, query parameters, headers (lower-cased names), and its
    body, read on demand through ``body(limit)``."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    _stream: BufferedIOBase | None = field(default=None, repr=False)
    _read: bytes | None = field(default=None, repr=False)

    def body(self, limit: int) -> bytes:
        """The body, at most ``limit`` bytes; BodyTooLarge past that, BadBody when broken."""
        if self._read is not None:
            return self._read
        if self._stream is None:
            return b""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = _read_chunked(self._stream, limit)
        else:
            length = self.headers.get("content-length", "0").strip() or "0"
            if not length.isdigit():
                raise BadBody("invalid Content-Length")
            if int(length) > limit:
                raise BodyTooLarge(f"{length} bytes")
            data = self._stream.read(int(length))
            if len(data) != int(length):
                raise BadBody("the body ended early")
        self._read = data
        return data


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Answer]


class SmallServer:
    """A threaded HTTP server on ``listen`` answering with ``handle``; ``start``/``stop``."""

    def __init__(
        self,
        listen: Listen,
        name: str,
        handle: Handler,
        *,
        max_connections: int = MAX_CONNECTIONS,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.name = name
        self.listen = listen
        self._handle = handle
        self._slots = threading.BoundedSemaphore(max_connections)
        self._timeout_s = timeout_s
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> Listen:
        """Where it listens (the port the system chose when ``listen`` asked for 0)."""
        assert self._httpd is not None, "not started"
        host, port = self._httpd.server_address[:2]
        return Listen(str(host), int(port))

    def start(self) -> None:
        """Bind and serve in a thread; ConfigError (one line) when the address is unusable."""
        try:
            self._httpd = _Server(self.listen, _handler(self))
        except (OSError, OverflowError) as e:
            raise ConfigError(f"{self.name}: cannot listen on {self.listen}: {e}") from e
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"httpd-{self.name}",
            daemon=True,
        )
        self._thread.start()
        log.info("listening server=%s address=%s", self.name, self.address)

    def stop(self) -> None:
        """Stop accepting; requests in flight finish on their own (daemon threads)."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, listen: Listen, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
        super().__init__((listen.host, listen.port), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http connection error client=%s", client_address[0], exc_info=True)


def _handler(server: SmallServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_RequestHandler):
        owner = server
        timeout = server._timeout_s

    return Handler


class _RequestHandler(BaseHTTPRequestHandler):
    owner: SmallServer
    protocol_version = "HTTP/1.1"
    server_version = "watcher"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """The handlers log what matters themselves."""

    def do_GET(self) -> None:  # noqa: N802
        self._serve(with_body=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(with_body=False, head=True)

    def do_POST(self) -> None:  # noqa: N802
        self._serve(with_body=True)

    def _serve(self, *, with_body: bool, head: bool = False) -> None:
        if not self.owner._slots.acquire(blocking=False):
            self._send(Answer(503, b"busy\n", headers={"Retry-After": "5"}), head)
            self.close_connection = True
            return
        try:
            request = self._request(with_body)
            if request is None:
                self._send(Answer(414, b"request target too long\n"), head)
                self.close_connection = True
                return
            try:
                answer = self.owner._handle(request)
            except BodyTooLarge:
                answer = Answer(413, b"request body too large\n")
                self.close_connection = True
            except BadBody as e:
                answer = Answer(400, f"bad request body: {e}\n".encode())
                self.close_connection = True
            except Exception:  # a bug: never the server's thread
                log.exception("internal error server=%s path=%s", self.owner.name, request.path)
                answer = Answer(500, b"internal error\n")
            if with_body and request._read is None:
                self.close_connection = True  # the body was not read: do not reuse the socket
            self._send(answer, head)
        finally:
            self.owner._slots.release()

    def _request(self, with_body: bool) -> Request | None:
        if len(self.path) > MAX_QUERY:
            return None
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        stream = self.rfile if with_body else None
        return Request(self.command, parts.path, query, headers, stream)

    def _send(self, answer: Answer, head: bool = False) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                self.wfile.write(answer.body)
        except OSError:
            self.close_connection = True


def _read_chunked(stream: BufferedIOBase, limit: int) -> bytes:
    """A chunked body, at most ``limit`` bytes of data (BodyTooLarge past it)."""
    parts: list[bytes] = []
    size = 0
    while True:
        line = stream.readline(1026)
        if not line.endswith(b"\n"):
            raise BadBody("a chunk size line is broken")
        try:
            length = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as e:
            raise BadBody("a chunk size is not a hexadecimal number") from e
        if length == 0:
            while stream.readline(1026) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        size += length
        if size > limit:
            raise BodyTooLarge(f"over {limit} bytes")
        data = stream.read(length)
        if len(data) != length or stream.readline(3) not in (b"\r\n", b"\n"):
            raise BadBody("a chunk ended early")
        parts.append(data)
