"""A fetch session keeps its connections open across polls of many hosts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from watcher.poll.fetch import fetch_feed, make_session

BODY = b'<?xml version="1.0"?><rss version="2.0"><channel><title>k</title></channel></rss>'


class _Counting(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0

    def get_request(self) -> Any:
        self.connections += 1
        return super().get_request()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.headers.get("If-None-Match") == '"v1"':
            self.send_response(304)
            self.send_header("ETag", '"v1"')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        self.wfile.write(BODY)


@pytest.fixture
def server() -> Iterator[_Counting]:
    httpd = _Counting(("", 0), _Handler)  # every loopback address: many "hosts"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_connections_to_many_hosts_are_reused_across_rounds(server: _Counting) -> None:
    port = server.server_address[1]
    urls = [f"http://127.0.0.{n}:{port}/feed" for n in range(2, 42)]  # 40 hosts
    session = make_session("watcher-tests/1.0", pool_size=2)
    for url in urls:
        assert fetch_feed(session, url).status == 200
    for _ in range(2):
        for url in urls:
            assert fetch_feed(session, url, etag='"v1"').not_modified
    session.close()
    assert server.connections == len(urls)  # one per host, not one per request
