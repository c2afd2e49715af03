"""A total deadline for reading a response's status line and headers; knows nothing about feeds.

A socket timeout bounds each read, not their sum: a server that sends its headers a
byte at a time, each within the timeout, holds a fetch forever. Connections of a
urllib3 pool manager passed to ``install()`` read headers under a watchdog: when
the deadline set with ``limit()`` passes, one shared background thread shuts the
socket down, the read fails at once, and urllib3 raises an error the caller can
recognise by the clock.
Bodies are bounded by the caller, read by read.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import BaseHTTPResponse

_local = threading.local()


@contextmanager
def limit(deadline: float) -> Iterator[None]:
    """Make requests sent by this thread, inside the block, read headers before ``deadline``.

    ``deadline`` is a ``time.monotonic()`` value.
    """
    previous = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = previous


class _Watchdog:
    """Shuts down watched sockets whose deadline has passed; one daemon thread for all."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, socket.socket] = {}
        self._tokens = itertools.count()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, sock: socket.socket, deadline: float) -> Iterator[None]:
        token = next(self._tokens)
        with self._wakeup:
            self._live[token] = sock
            heapq.heappush(self._heap, (deadline, token))
            self._start()
            if self._heap[0][1] == token:
                self._wakeup.notify()
        try:
            yield
        finally:
            with self._wakeup:
                del self._live[token]
                self._compact()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fetch-deadline", daemon=True)
            self._thread.start()

    def _compact(self) -> None:
        """Forget finished entries once they outnumber the live ones."""
        if len(self._heap) > 2 * len(self._live) + 64:
            self._heap = [entry for entry in self._heap if entry[1] in self._live]
            heapq.heapify(self._heap)

    def _run(self) -> None:
        with self._wakeup:
            while True:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wakeup.wait()
                    continue
                deadline, token = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._wakeup.wait(wait)
                    continue
                heapq.heappop(self._heap)
                _shut(self._live[token])


def _shut(sock: socket.socket) -> None:
    """Wake a thread blocked reading ``sock``; the plain-socket call also works under TLS."""
    with suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()


def _read_headers(connection: HTTPConnection, read: Any) -> BaseHTTPResponse:
    deadline = getattr(_local, "deadline", None)
    sock = connection.sock
    if deadline is None or not isinstance(sock, socket.socket):
        response: BaseHTTPResponse = read()
        return response
    with _WATCHDOG.watch(sock, deadline):
        response = read()
        return response


class _DeadlineHTTPConnection(HTTPConnection):
    def getresponse(self) -> Any:
        return _read_headers(self, super().getresponse)


class _DeadlineHTTPSConnection(HTTPSConnection):
    def getresponse(self) -> Any:
        return _read_headers(self, super().getresponse)


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


def install(manager: PoolManager) -> None:
    """Make the connections ``manager`` opens from now on honour ``limit()`` for headers."""
    manager.pool_classes_by_scheme = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}
