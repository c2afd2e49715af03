"""Politeness per host, shared by feed and article fetches of one process.

``HostSlots``: at most ``per_host`` fetches to one host at a time. ``HostPauses``: a host
that answered 429 or 503 is left alone until its ``Retry-After`` (or a default) passes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

DEFAULT_PAUSE_S = 600.0  # a 429/503 without Retry-After pauses the host this long
MAX_PAUSE_S = 7 * 86400.0  # as for feeds: a larger Retry-After is taken as 7 days
PAUSE_STATUSES = frozenset({429, 503})


def host_of(url: str) -> str | None:
    """The host name of ``url``, lower-case; None for a local file or an unreadable URL."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower() if host else None


class HostSlots:
    """At most ``per_host`` fetches to one host at a time."""

    def __init__(self, per_host: int) -> None:
        self.per_host = max(1, per_host)
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    @contextmanager
    def slot(self, url: str, timeout: float | None = None) -> Iterator[bool]:
        """Hold one of the host's slots; yields False (holding none) if ``timeout``
        seconds passed first."""
        host = host_of(url)
        if not host:  # a local file
            yield True
            return
        with self._lock:
            semaphore = self._slots.setdefault(host, threading.BoundedSemaphore(self.per_host))
        if not semaphore.acquire(timeout=None if timeout is None else max(0.0, timeout)):
            yield False
            return
        try:
            yield True
        finally:
            semaphore.release()


class HostPauses:
    """Hosts paused by a 429/503: until when, and the status that paused them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until: dict[str, tuple[float, int]] = {}

    def pause(self, url: str, status: int, retry_after_s: float | None) -> None:
        host = host_of(url)
        if host is None or status not in PAUSE_STATUSES:
            return
        seconds = DEFAULT_PAUSE_S if retry_after_s is None else min(retry_after_s, MAX_PAUSE_S)
        with self._lock:
            self._until[host] = (self._clock() + seconds, status)

    def paused(self, url: str) -> int | None:
        """The status that paused ``url``'s host, while the pause lasts; else None."""
        host = host_of(url)
        if host is None:
            return None
        with self._lock:
            held = self._until.get(host)
            if held is None:
                return None
            if self._clock() >= held[0]:
                del self._until[host]
                return None
            return held[1]
