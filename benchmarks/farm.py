"""A local feed farm for benchmarks: N RSS feeds over HTTP on loopback; no watcher code.

Each feed ``/feed/<i>`` holds ``--items`` items (~2.5 KB each, so ~50 KB a feed) and
answers conditional requests: ``If-None-Match`` with the current ETag (or
``If-Modified-Since`` with the current Last-Modified) gets a bare 304. A feed's
content is a pure function of (feed, generation); ``GET /_bump?fraction=F&seed=S``
advances the generation of that fraction of the feeds, which puts ``--new`` new items
at the top of each and drops as many old ones. ``GET /_stats`` reports the requests
served so far; ``GET /_first`` the ``time.time()`` of the first feed request since the
last ``GET /_mark`` (0.0: none yet), which times a client's start-up (one farm process).

The server is a minimal asyncio protocol (HTTP/1.1 keep-alive, no parsing beyond
the request line and two headers) in one or more processes sharing the port
(``SO_REUSEPORT``) and a shared array of generations, so that it is not what a
benchmark measures. It listens on several loopback addresses (127.0.0.2, .3, ...)
so that feeds are spread over "hosts" as real ones are.

Run alone: ``python benchmarks/farm.py --feeds 5000 --port 8800`` (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.sharedctypes
import os
import random
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

SYLLABLES = (
    "ka", "ro", "mi", "tu", "sen", "dra", "vol", "ne", "pik", "lo", "gor", "an", "esk", "bu",
    "ter", "xa", "il", "om", "zu", "fe",
)  # fmt: skip
VOCABULARY_SIZE = 20_000
PARAGRAPHS = 4_000
BASE_TIME = 1_900_000_000.0  # a fixed origin for Last-Modified; items are dated from "now"


def vocabulary(seed: int = 7, size: int = VOCABULARY_SIZE) -> list[str]:
    """Synthetic words, most common first (rank order of a Zipf-like draw)."""
    rng = random.Random(seed)
    words: dict[str, None] = {}
    while len(words) < size:
        words.setdefault("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    return list(words)


class Corpus:
    """Pre-built sentences and paragraphs that items are assembled from (cheaply)."""

    def __init__(self, seed: int = 7) -> None:
        rng = random.Random(seed)
        words = vocabulary(seed)
        weights = [1 / (rank + 1) ** 1.1 for rank in range(len(words))]
        self.titles = [
            " ".join(rng.choices(words, weights, k=rng.randint(7, 12))).capitalize()
            for _ in range(PARAGRAPHS)
        ]
        self.paragraphs = [self._paragraph(rng, words, weights) for _ in range(PARAGRAPHS)]

    @staticmethod
    def _paragraph(rng: random.Random, words: list[str], weights: list[float]) -> str:
        sentences = []
        for _ in range(4):
            text = " ".join(rng.choices(words, weights, k=rng.randint(10, 16))).capitalize()
            sentences.append(escape(text) + ".")
        link = rng.choice(words)
        return f'<p>{" ".join(sentences)} <a href="/topics/{link}">{link}</a></p>'


class Farm:
    """Builds feed bodies from (feed, generation); shared by every server process."""

    def __init__(self, feeds: int, items: int, new: int, generations: Any) -> None:
        self.feeds = feeds
        self.items = items
        self.new = new
        self.generations = generations  # shared array of int, one per feed
        self.corpus = Corpus()
        self.started = time.time()

    def validators(self, feed: int) -> tuple[str, str]:
        generation = self.generations[feed]
        etag = f'"f{feed}-g{generation}"'
        return etag, formatdate(BASE_TIME + generation * 60, usegmt=True)

    def body(self, feed: int) -> bytes:
        generation = self.generations[feed]
        top = generation * self.new + self.items  # the newest item's number
        parts = [
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
            f"<title>Farm feed {feed}</title><link>http://farm.test/{feed}/</link>",
            "<description>a benchmark feed</description>",
        ]
        parts.extend(self._item(feed, number) for number in range(top, top - self.items, -1))
        parts.append("</channel></rss>\n")
        return "\n".join(parts).encode()

    def _item(self, feed: int, number: int) -> str:
        corpus = self.corpus
        key = (feed * 7919 + number * 104729) % PARAGRAPHS
        text = "".join(corpus.paragraphs[(key + k * 131) % PARAGRAPHS] for k in range(5))
        published = formatdate(self.started - (10_000 - number % 10_000) * 5, usegmt=True)
        return (
            f'<item><guid isPermaLink="false">farm-{feed}-{number}</guid>'
            f"<title>{escape(corpus.titles[key])} {feed}x{number}</title>"
            f"<link>http://farm.test/{feed}/{number}</link>"
            f"<pubDate>{published}</pubDate>"
            f"<description>{escape(text)}</description></item>"
        )

    def bump(self, fraction: float, seed: int) -> int:
        """Advance the generation of ``fraction`` of the feeds; return how many."""
        chosen = random.Random(seed).sample(range(self.feeds), round(self.feeds * fraction))
        for feed in chosen:
            self.generations[feed] += 1
        return len(chosen)


class FarmProtocol(asyncio.Protocol):
    """One keep-alive connection: read requests, write responses, in order."""

    stats: dict[str, int] = {"200": 0, "304": 0, "404": 0}
    first_request_at = [0.0]  # time.time() of the first feed request since ``/_mark``

    def __init__(self, farm: Farm) -> None:
        self.farm = farm
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            assert self.transport is not None
            self.transport.write(self.respond(head))

    def respond(self, head: bytes) -> bytes:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        target = parts[1] if len(parts) > 1 else "/"
        if target.startswith("/feed/"):
            if not self.first_request_at[0]:
                self.first_request_at[0] = time.time()
            return self.feed(target[6:], headers)
        if target.startswith("/_mark"):
            self.first_request_at[0] = 0.0
            return _response(200, b"marked\n", {})
        if target.startswith("/_first"):
            return _response(200, repr(self.first_request_at[0]).encode(), {})
        if target.startswith("/_bump"):
            query = parse_qs(urlsplit(target).query)
            count = self.farm.bump(float(query["fraction"][0]), int(query.get("seed", ["1"])[0]))
            return _response(200, f"{count}\n".encode(), {})
        if target.startswith("/_stats"):
            return _response(200, repr(self.stats).encode(), {})
        return self.missing()

    def feed(self, number: str, headers: dict[str, str]) -> bytes:
        if not number.isdigit() or int(number) >= self.farm.feeds:
            return self.missing()
        feed = int(number)
        etag, modified = self.farm.validators(feed)
        validators = {"ETag": etag, "Last-Modified": modified}
        if headers.get("if-none-match") == etag or (
            "if-none-match" not in headers and headers.get("if-modified-since") == modified
        ):
            self.stats["304"] += 1
            return _response(304, b"", validators)
        self.stats["200"] += 1
        return _response(200, self.farm.body(feed), validators)

    def missing(self) -> bytes:
        self.stats["404"] += 1
        return _response(404, b"not found\n", {})


_REASONS = {200: "OK", 304: "Not Modified", 404: "Not Found"}


def _response(status: int, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}"]
    if status != 304:
        lines.append("Content-Type: application/rss+xml; charset=utf-8")
        lines.append(f"Content-Length: {len(body)}")
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _listening_sockets(hosts: list[str], port: int) -> list[socket.socket]:
    sockets = []
    for host in hosts:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sockets.append(sock)
    return sockets


def serve(farm: Farm, hosts: list[str], port: int) -> None:
    """Serve until SIGTERM/SIGINT (one server process)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set_result, None)
        servers = [
            await loop.create_server(lambda: FarmProtocol(farm), sock=sock)
            for sock in _listening_sockets(hosts, port)
        ]
        await stop
        for server in servers:
            server.close()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def farm_hosts(count: int) -> list[str]:
    return [f"127.0.0.{2 + n}" for n in range(count)]


class RunningFarm:
    """A farm running in child processes; ``url(i)`` spreads feeds over the hosts."""

    def __init__(self, feeds: int, hosts: list[str], port: int) -> None:
        self.feeds = feeds
        self.hosts = hosts
        self.port = port

    def url(self, feed: int) -> str:
        return f"http://{self.hosts[feed % len(self.hosts)]}:{self.port}/feed/{feed}"

    def control(self, path: str) -> str:
        with urllib.request.urlopen(f"http://{self.hosts[0]}:{self.port}{path}") as response:
            return str(response.read().decode())

    def bump(self, fraction: float, seed: int = 1) -> int:
        return int(self.control(f"/_bump?fraction={fraction}&seed={seed}"))

    def mark(self) -> None:
        """Forget the first request seen so far (``first_request_at`` starts again)."""
        self.control("/_mark")

    def first_request_at(self) -> float:
        """``time.time()`` of the first feed request since ``mark()``; 0.0 if none."""
        return float(self.control("/_first"))


@contextmanager
def running_farm(
    feeds: int, *, items: int = 20, new: int = 2, processes: int = 1, hosts: int = 16
) -> Iterator[RunningFarm]:
    """Start the farm in ``processes`` child processes; stop them on exit."""
    context = multiprocessing.get_context("fork")
    generations = context.Array("i", feeds, lock=False)
    addresses = farm_hosts(hosts)
    port = free_port()
    children = [
        context.Process(
            target=_child, args=(feeds, items, new, generations, addresses, port), daemon=True
        )
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    running = RunningFarm(feeds, addresses, port)
    try:
        _wait_ready(running)
        yield running
    finally:
        for child in children:
            if child.pid is not None:
                with suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)
            child.join(10)


def _child(feeds: int, items: int, new: int, generations: Any, hosts: list[str], port: int) -> None:
    serve(Farm(feeds, items, new, generations), hosts, port)


def _wait_ready(farm: RunningFarm, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            farm.control("/_stats")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--new", type=int, default=2, help="new items per bumped feed")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--hosts", type=int, default=16)
    args = parser.parse_args()
    with running_farm(
        args.feeds, items=args.items, new=args.new, processes=args.processes, hosts=args.hosts
    ) as farm:
        print(f"serving {args.feeds} feeds, e.g. {farm.url(0)}", flush=True)
        with suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
