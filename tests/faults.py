"""Hostile feed bodies and a raw TCP server that misbehaves below HTTP; for the bad-input tests.

``FeedServer`` (tests/servers.py) covers faults that are well-formed HTTP: odd bodies,
redirects, delays and dribbled bodies. ``RawServer`` here sends whatever bytes a test
scripts, with pauses between them, so it can dribble the status line and headers too.
Nothing here knows about watcher.
"""

from __future__ import annotations

import gzip
import socket
import threading
from dataclasses import dataclass

# --- hostile bodies ---------------------------------------------------------------------------


def gzip_bomb(expanded_bytes: int, member_bytes: int = 16 * 1024 * 1024) -> bytes:
    """A gzip stream of zeros that inflates to ``expanded_bytes``: concatenated gzip members.

    Each member holds ``member_bytes`` of zeros (about 1000:1); the members are
    identical, so building a multi-gigabyte bomb costs one small compression.
    """
    member = gzip.compress(b"\0" * member_bytes, compresslevel=9)
    return member * max(1, expanded_bytes // member_bytes)


def billion_laughs(levels: int = 9, prolog_padding: int = 0) -> bytes:
    """An RSS document whose item title references a nested entity worth 10**levels "lol"s.

    ``prolog_padding`` puts a comment of that many bytes before the DOCTYPE.
    """
    entities = ['<!ENTITY lol0 "lol">']
    for level in range(1, levels + 1):
        entities.append(f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">')
    pad = f"<!--{'x' * prolog_padding}-->" if prolog_padding else ""
    return _rss_with_doctype(pad, "".join(entities), f"laughs &lol{levels}; end")


def external_entity(target: str = "file:///etc/passwd", prolog_padding: int = 0) -> bytes:
    """An RSS document whose item title references an external entity at ``target``."""
    pad = f"<!--{'x' * prolog_padding}-->" if prolog_padding else ""
    return _rss_with_doctype(pad, f'<!ENTITY xxe SYSTEM "{target}">', "secret &xxe; end")


def _rss_with_doctype(pad: str, subset: str, title: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{pad}<!DOCTYPE rss [{subset}]>'
        '<rss version="2.0"><channel><title>Hostile</title><link>https://h.example/</link>'
        f"<item><guid>h1</guid><title>{title}</title><link>https://h.example/1</link></item>"
        "</channel></rss>"
    ).encode()


def angle_storm(size: int = 100 * 1024) -> str:
    """``<a <a <a …`` of about ``size`` characters: worst case for naive tag scanners."""
    return "<a " * (size // 3)


# --- a server below HTTP ------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """Send ``data``, then wait ``pause`` seconds (cut short when the server stops)."""

    data: bytes
    pause: float = 0.0


class RawServer:
    """A TCP server on 127.0.0.1 that answers every connection with the same ``steps``.

    The request is read (up to its blank line) and ignored; the steps are then sent in
    order and the connection closed. ``connections`` counts the clients served.
    """

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.connections = 0
        self.stopping = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            try:
                _read_request(client)
                for step in self.steps:
                    client.sendall(step.data)
                    if step.pause and self.stopping.wait(step.pause):
                        return
            except OSError:
                return  # the client hung up: what a fetch that gives up does


def _read_request(client: socket.socket) -> None:
    client.settimeout(5)
    received = b""
    while b"\r\n\r\n" not in received and len(received) < 65536:
        chunk = client.recv(4096)
        if not chunk:
            return
        received += chunk


def dribble(data: bytes, pause: float, size: int = 1) -> list[Step]:
    """``data`` as steps of ``size`` bytes, each followed by ``pause`` seconds."""
    return [Step(data[i : i + size], pause) for i in range(0, len(data), size)]
