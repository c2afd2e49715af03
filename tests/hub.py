"""A WebSub hub for tests, on 127.0.0.1: takes subscription requests, checks each at its
callback as a real hub does, and delivers content signed, mis-signed or unsigned.

    hub = Hub(lease_s=3600).start()
    hub.url                         the hub URL a feed names
    hub.status = 503                answer requests with this instead of 202 ("hub down")
    hub.requests                    the form fields of every request, in order
    hub.subscribers(topic)          callback -> secret of the verified subscriptions
    hub.publish(topic, body, sign=...)  POST the body to every subscriber; their statuses
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode

from tests.servers import QuietServer, ThreadedServer


class Hub(ThreadedServer):
    def __init__(self, lease_s: int = 3600) -> None:
        self.lease_s = lease_s
        self.status = 202
        self.requests: list[dict[str, str]] = []
        self.checks: list[tuple[str, str, int]] = []  # (mode, callback, callback's status)
        self._subs: dict[tuple[str, str], str] = {}  # (topic, callback) -> secret
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._httpd = QuietServer(("127.0.0.1", 0), _handler(self))
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub"

    def subscribers(self, topic: str) -> dict[str, str]:
        with self._lock:
            return {cb: secret for (t, cb), secret in self._subs.items() if t == topic}

    def asked(self, mode: str) -> list[dict[str, str]]:
        with self._lock:
            return [r for r in self.requests if r.get("hub.mode") == mode]

    def receive(self, form: dict[str, str]) -> int:
        with self._lock:
            self.requests.append(form)
            status = self.status
        if status == 202:
            threading.Thread(target=self._verify, args=(form,), daemon=True).start()
        return status

    def _verify(self, form: dict[str, str]) -> None:
        """Check the request at its callback, as section 5.3 of the recommendation says."""
        mode, topic, callback = form["hub.mode"], form["hub.topic"], form["hub.callback"]
        challenge = secrets.token_hex(8)
        query = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            query["hub.lease_seconds"] = str(self.lease_s)
        status, body = _get(f"{callback}?{urlencode(query)}")
        with self._lock:
            self.checks.append((mode, callback, status))
            if status != 200 or body != challenge.encode():
                return
            if mode == "subscribe":
                self._subs[(topic, callback)] = form.get("hub.secret", "")
            else:
                self._subs.pop((topic, callback), None)

    def deny(self, topic: str, reason: str) -> list[int]:
        """Tell every subscriber of ``topic`` its subscription is denied."""
        query = urlencode({"hub.mode": "denied", "hub.topic": topic, "hub.reason": reason})
        return [_get(f"{callback}?{query}")[0] for callback in self.subscribers(topic)]

    def publish(
        self,
        topic: str,
        body: bytes,
        *,
        sign: str = "good",
        method: str = "sha256",
        content_type: str = "application/rss+xml",
    ) -> list[int]:
        """Deliver ``body`` to each subscriber: ``sign`` good, bad (another key) or none."""
        statuses = []
        for callback, secret in self.subscribers(topic).items():
            headers = {
                "Content-Type": content_type,
                "Link": f'<{self.url}>; rel="hub", <{topic}>; rel="self"',
            }
            key = secret if sign == "good" else "not the secret"
            if sign != "none":
                digest = hmac.new(key.encode(), body, getattr(hashlib, method)).hexdigest()
                headers["X-Hub-Signature"] = f"{method}={digest}"
            request = urllib.request.Request(callback, data=body, headers=headers)
            statuses.append(_open(request)[0])
        return statuses


def hub_feed(hub: str, topic: str, titles: list[str]) -> bytes:
    """An RSS feed naming ``hub`` and its own ``topic`` (atom:link), one item per title."""
    items = "".join(
        f"<item><guid isPermaLink='false'>{t}</guid><title>{t}</title>"
        f"<link>https://news.example/{t.replace(' ', '-')}</link></item>"
        for t in titles
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        "<title>Wire</title><link>https://news.example/</link><description>d</description>"
        f'<atom:link rel="hub" href="{hub}"/><atom:link rel="self" href="{topic}"/>'
        f"{items}</channel></rss>"
    ).encode()


def _get(url: str) -> tuple[int, bytes]:
    return _open(urllib.request.Request(url))


def _open(request: urllib.request.Request) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()
    except OSError:
        return 0, b""


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Keep test output quiet."""

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            status = hub.receive(form)
            body = b"" if status == 202 else b"hub is down for maintenance\n"
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
