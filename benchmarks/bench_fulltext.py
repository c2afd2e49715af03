"""full_text: the first poll of teaser feeds whose articles stand on a local article server.

Run: ``.venv/bin/python benchmarks/bench_fulltext.py [--feeds 200] [--items 20] [--hosts 16]``.

A server process on ``--hosts`` loopback addresses (127.0.0.2, .3, …, one port) serves
``--feeds`` RSS feeds of ``--items`` teaser items each (a title and one sentence), each
item linking to its own article page: one of the project's test pages
(tests/data/articles), spread over the addresses so that ``poll.per_host`` is not the
bound, and a ``robots.txt`` per address that allows everything. Each poll runs in a child
process on a fresh database, as ``watcher poll --all`` would (worker processes from 200
feeds on): once with ``full_text: never`` and once with ``full_text: always``. Reported:
the poll's wall time for each and the difference (the time full text adds to a first
poll), the articles fetched and extracted and their rate, the article errors by kind, and
the peak memory of the polling process and of its largest worker process.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.articles import pages  # noqa: E402

TEASER = "Officials gave few details; the full report follows."


def address(hosts: int, n: int) -> str:
    return f"127.0.0.{2 + n % hosts}"


# --- the article server (a child process) ----------------------------------------------------


def serve(port: int, hosts: int, items: int, ready: Any) -> None:
    bodies = [page.html for page in pages()]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet."""

        def do_GET(self) -> None:  # noqa: N802
            path = self.path
            if path == "/robots.txt":
                self._send(b"User-agent: *\nAllow: /\n", "text/plain")
            elif path.startswith("/feed/"):
                self._send(feed_body(int(path[6:].split(".")[0])), "application/rss+xml")
            elif path.startswith("/a/"):
                feed, item = (int(part) for part in path[3:].split("/"))
                self._send(bodies[(feed * items + item) % len(bodies)], "text/html")
            else:
                self._send(b"no\n", "text/plain", 404)

        def _send(self, body: bytes, kind: str, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def feed_body(feed: int) -> bytes:
        parts = [
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>',
            f"<title>Teasers {feed}</title><link>http://example.org/</link>",
        ]
        for item in range(items):
            link = f"http://{address(hosts, feed * items + item)}:{port}/a/{feed}/{item}"
            parts.append(
                f"<item><guid>{feed}-{item}</guid><title>Report {feed}.{item}</title>"
                f"<link>{escape(link)}</link><description>{TEASER}</description></item>"
            )
        parts.append("</channel></rss>")
        return "".join(parts).encode()

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    servers = [Server((address(hosts, n), port), Handler) for n in range(hosts)]
    import threading

    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ready.set()
    threading.Event().wait()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        return int(sock.getsockname()[1])


# --- one poll (a child process) --------------------------------------------------------------


def poll_once(config: Path) -> None:
    """Poll every feed of ``config`` once; print the figures as JSON."""
    from datetime import UTC, datetime

    from watcher.config import load_settings
    from watcher.poll.pipeline import poll_feeds, select_feeds
    from watcher.poll.runtime import open_runtime

    rt = open_runtime(load_settings(config, {}))
    now = datetime.now(UTC)
    feeds = select_feeds(rt, now, all_feeds=True)
    started = time.perf_counter()
    report = poll_feeds(rt, feeds, now)
    seconds = time.perf_counter() - started
    rows = rt.store.db.query(
        "SELECT article_error, article_text IS NOT NULL AS got FROM items"
        " WHERE article_fetched_at IS NOT NULL"
    )
    errors: Counter[str] = Counter()
    articles = 0
    for row in rows:
        articles += bool(row["got"])
        if row["article_error"]:
            errors[row["article_error"]] += 1
    if rt.articles is not None:
        rt.articles.close()
    rt.store.close()
    figures = {
        "seconds": seconds,
        "items": report.new_items,
        "failed": len(report.failed),
        "articles": articles,
        "errors": dict(errors),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    print(json.dumps(figures))


def run_poll(folder: Path, port: int, args: argparse.Namespace, full_text: str) -> dict[str, Any]:
    folder.mkdir()
    (folder / "rules").mkdir()
    (folder / "rules" / "r.yaml").write_text('- id: r\n  any: ["fiber-optic drones"]\n')
    feeds = [
        {"url": f"http://{address(args.hosts, n)}:{port}/feed/{n}.xml", "name": f"f{n}"}
        for n in range(args.feeds)
    ]
    config = {
        "database": "watcher.db",
        "rules": "rules/",
        "defaults": {"full_text": full_text, "first_poll_alerts": "none"},
        "feeds": feeds,
        "channels": {"console": {"type": "console"}},
    }
    path = folder / "watcher.yaml"
    path.write_text(json.dumps(config))
    out = subprocess.run(
        [sys.executable, __file__, "--poll", str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--poll", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.poll is not None:
        poll_once(args.poll)
        return
    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(
        target=serve, args=(port, args.hosts, args.items, ready), daemon=True
    )
    server.start()
    ready.wait(30)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            never = run_poll(Path(tmp) / "never", port, args, "never")
            always = run_poll(Path(tmp) / "always", port, args, "always")
    finally:
        server.terminate()
        server.join()
    added = always["seconds"] - never["seconds"]
    print(f"python {platform.python_version()}, {multiprocessing.cpu_count()} CPUs")
    print(
        f"first poll of {args.feeds} teaser feeds x {args.items} items over {args.hosts}"
        " loopback addresses"
    )
    print(f"  full_text: never   {never['seconds']:7.2f} s  items {never['items']}")
    print(
        f"  full_text: always  {always['seconds']:7.2f} s  items {always['items']},"
        f" articles {always['articles']}, errors {always['errors'] or 'none'}"
    )
    rate = always["articles"] / added if added > 0 else float("inf")
    print(f"  added by full text {added:7.2f} s  ({rate:.0f} articles/s fetched and extracted)")
    for name, figures in (("never", never), ("always", always)):
        print(
            f"  peak memory ({name}): poll {figures['peak_mb']:.0f} MB,"
            f" largest worker {figures['worker_peak_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
