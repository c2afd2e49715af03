"""fetch_feed against a real HTTP server on 127.0.0.1 (tests/servers.py)."""

from __future__ import annotations

import gzip
import socket
import time
import zlib
from pathlib import Path

import pytest

from tests.servers import FeedServer
from watcher.exceptions import FetchError
from watcher.poll.fetch import (
    FeedSession,
    HTTPStatusError,
    _headers_for_hop,
    fetch_feed,
    make_session,
    parse_retry_after,
)

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'
LAST_MODIFIED = "Tue, 11 Mar 2025 08:30:00 GMT"


def test_200_then_304_with_etag(feed_server: FeedServer, http_session: FeedSession) -> None:
    feed_server.set("/feed.xml", RSS, etag='"v1"', headers={"Content-Type": "application/rss+xml"})
    first = fetch_feed(http_session, feed_server.url("/feed.xml"))
    assert (first.status, first.content, first.etag) == (200, RSS, '"v1"')
    assert first.content_type == "application/rss+xml"

    second = fetch_feed(http_session, feed_server.url("/feed.xml"), etag=first.etag)

    assert feed_server.requests[-1].header("If-None-Match") == '"v1"'
    assert second.status == 304 and second.not_modified
    assert second.content == b""
    assert second.etag == '"v1"'


def test_304_with_last_modified(feed_server: FeedServer, http_session: FeedSession) -> None:
    feed_server.set("/feed.xml", RSS, last_modified=LAST_MODIFIED)
    first = fetch_feed(http_session, feed_server.url("/feed.xml"))
    assert first.last_modified == LAST_MODIFIED

    second = fetch_feed(
        http_session, feed_server.url("/feed.xml"), last_modified=first.last_modified
    )

    assert feed_server.requests[-1].header("If-Modified-Since") == LAST_MODIFIED
    assert (second.status, second.content) == (304, b"")


def test_changed_etag_gives_the_new_body(
    feed_server: FeedServer, http_session: FeedSession
) -> None:
    feed_server.set("/feed.xml", RSS, etag='"v2"')
    fetched = fetch_feed(http_session, feed_server.url("/feed.xml"), etag='"v1"')
    assert (fetched.status, fetched.content, fetched.etag) == (200, RSS, '"v2"')


def test_sends_user_agent_and_extra_headers(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", RSS)
    with make_session("watcher/9.9 (+test)") as session:
        fetch_feed(session, feed_server.url("/feed.xml"), headers={"Authorization": "Basic eA=="})
    request = feed_server.requests[-1]
    assert request.header("User-Agent") == "watcher/9.9 (+test)"
    assert request.header("Authorization") == "Basic eA=="
    assert "gzip" in (request.header("Accept-Encoding") or "")


def test_gzip_body_is_decoded(feed_server: FeedServer, http_session: FeedSession) -> None:
    feed_server.set("/feed.xml", RSS * 50, gzip=True)
    fetched = fetch_feed(http_session, feed_server.url("/feed.xml"))
    assert fetched.headers["content-encoding"] == "gzip"
    assert fetched.content == RSS * 50


def test_deflate_body_is_decoded(feed_server: FeedServer, http_session: FeedSession) -> None:
    feed_server.set("/z", zlib.compress(RSS), headers={"Content-Encoding": "deflate"})
    assert fetch_feed(http_session, feed_server.url("/z")).content == RSS


def test_corrupt_gzip_is_a_fetch_error(feed_server: FeedServer, http_session: FeedSession) -> None:
    feed_server.set("/bad", b"not gzip at all", headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="not valid gzip"):
        fetch_feed(http_session, feed_server.url("/bad"))


@pytest.mark.parametrize("status", [301, 308])
def test_permanent_redirect_reports_the_new_url(
    feed_server: FeedServer, http_session: FeedSession, status: int
) -> None:
    feed_server.set("/new.xml", RSS)
    feed_server.redirect("/old.xml", "/middle.xml", status=status)
    feed_server.redirect("/middle.xml", feed_server.url("/new.xml"), status=301)

    fetched = fetch_feed(http_session, feed_server.url("/old.xml"))

    assert fetched.content == RSS
    assert fetched.url == feed_server.url("/old.xml")
    assert fetched.final_url == feed_server.url("/new.xml")
    assert fetched.permanent_redirect == feed_server.url("/new.xml")


@pytest.mark.parametrize("status", [302, 307])
def test_temporary_hop_means_no_permanent_redirect(
    feed_server: FeedServer, http_session: FeedSession, status: int
) -> None:
    feed_server.set("/new.xml", RSS)
    feed_server.redirect("/old.xml", "/middle.xml", status=301)
    feed_server.redirect("/middle.xml", "/new.xml", status=status)

    fetched = fetch_feed(http_session, feed_server.url("/old.xml"))

    assert fetched.final_url == feed_server.url("/new.xml")
    assert fetched.permanent_redirect is None


def test_redirect_loop_is_a_fetch_error(feed_server: FeedServer, http_session: FeedSession) -> None:
    feed_server.redirect("/a", "/b")
    feed_server.redirect("/b", "/a")
    with pytest.raises(FetchError, match="redirects"):
        fetch_feed(http_session, feed_server.url("/a"))


def test_redirect_to_another_host_drops_credentials(
    feed_server: FeedServer, http_session: FeedSession
) -> None:
    with FeedServer() as other:
        other.set("/feed.xml", RSS)
        target = other.url("/feed.xml").replace("127.0.0.1", "localhost")
        feed_server.redirect("/feed.xml", target)
        fetch_feed(
            http_session, feed_server.url("/feed.xml"), headers={"Authorization": "Bearer s3"}
        )
        assert feed_server.requests[-1].header("Authorization") == "Bearer s3"
        assert other.requests[-1].header("Authorization") is None


def test_redirect_to_another_port_drops_credentials_and_configured_headers(
    feed_server: FeedServer, http_session: FeedSession
) -> None:
    with FeedServer() as other:
        other.set("/feed.xml", RSS)
        feed_server.redirect("/feed.xml", "/same.xml")
        feed_server.redirect("/same.xml", other.url("/feed.xml"))  # same host, another port
        headers = {"Authorization": "Bearer s3", "Cookie": "sid=1", "X-Api-Key": "k3y"}
        fetch_feed(http_session, feed_server.url("/feed.xml"), headers=headers)
        same = feed_server.requests[-1]
        assert (same.path, same.header("X-Api-Key"), same.header("Cookie")) == (
            "/same.xml",
            "k3y",
            "sid=1",
        )
        moved = other.requests[-1]
        assert [moved.header(h) for h in headers] == [None, None, None]
        assert moved.header("User-Agent") == same.header("User-Agent")


@pytest.mark.parametrize(
    ("old", "new", "kept"),
    [
        ("https://h.example/a", "https://h.example/b", True),
        ("https://h.example/a", "https://H.EXAMPLE:443/b", True),
        ("https://h.example/a", "http://h.example/a", False),  # never in clear text
        ("http://h.example/a", "https://h.example/a", False),
        ("https://h.example/a", "https://h.example:8443/a", False),
        ("https://h.example/a", "https://other.example/a", False),
    ],
)
def test_credentials_follow_a_redirect_only_to_the_same_scheme_host_and_port(
    old: str, new: str, kept: bool
) -> None:
    headers = {"Authorization": "Basic eA==", "X-Key": "k", "Accept": "*/*"}
    after = _headers_for_hop(headers, old, new, frozenset({"x-key"}))
    assert after == (headers if kept else {"Accept": "*/*"})


def test_user_and_password_in_the_url_are_sent_as_basic_auth(
    feed_server: FeedServer, http_session: FeedSession
) -> None:
    feed_server.set("/feed.xml", RSS)
    url = feed_server.url("/feed.xml").replace("http://", "http://al%40ce:p%3Ass@")
    fetch_feed(http_session, url)
    assert feed_server.requests[-1].header("Authorization") == "Basic YWxAY2U6cDpzcw=="


@pytest.mark.parametrize(
    ("status", "message"), [(404, "HTTP 404 Not Found"), (500, "HTTP 500 Internal Server Error")]
)
def test_http_errors(
    feed_server: FeedServer, http_session: FeedSession, status: int, message: str
) -> None:
    feed_server.set("/feed.xml", b"oops", status=status)
    with pytest.raises(FetchError) as caught:
        fetch_feed(http_session, feed_server.url("/feed.xml"))
    assert caught.value.message == message
    assert caught.value.http_status == status
    assert caught.value.url == feed_server.url("/feed.xml")


def test_retry_after_is_reported(feed_server: FeedServer, http_session: FeedSession) -> None:
    feed_server.set("/busy", b"", status=429, headers={"Retry-After": "120"})
    with pytest.raises(HTTPStatusError) as caught:
        fetch_feed(http_session, feed_server.url("/busy"))
    assert caught.value.http_status == 429
    assert caught.value.retry_after_s == 120.0


def test_parse_retry_after_date() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 3, 11, 8, 29, 0, tzinfo=UTC)
    assert parse_retry_after(LAST_MODIFIED, now) == 60.0
    assert parse_retry_after("soon", now) is None


def test_max_bytes_plain(feed_server: FeedServer, http_session: FeedSession) -> None:
    feed_server.set("/big", b"x" * 5000)
    assert len(fetch_feed(http_session, feed_server.url("/big"), max_bytes=5000).content) == 5000
    with pytest.raises(FetchError, match="max_bytes"):
        fetch_feed(http_session, feed_server.url("/big"), max_bytes=4999)


def _gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed without holding them in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, packer.flush()])


def test_gzip_bomb_is_stopped_early(feed_server: FeedServer, http_session: FeedSession) -> None:
    bomb = _gzip_bomb(64 * 1024 * 1024)
    assert len(bomb) < 100_000
    feed_server.set("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    started = time.monotonic()
    with pytest.raises(FetchError, match="max_bytes"):
        fetch_feed(http_session, feed_server.url("/bomb"), max_bytes=1024 * 1024)
    assert time.monotonic() - started < 5.0  # inflating 64 MB would take far longer


def test_compressed_size_under_cap_but_decoded_over_it(
    feed_server: FeedServer, http_session: FeedSession
) -> None:
    body = b"drones over Kursk " * 1000
    feed_server.set("/feed", gzip.compress(body), headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="max_bytes"):
        fetch_feed(http_session, feed_server.url("/feed"), max_bytes=len(body) - 1)


def test_dribbling_server_hits_the_deadline(
    feed_server: FeedServer, http_session: FeedSession
) -> None:
    feed_server.set("/slow", b"x" * 10_000, dribble=0.02)
    started = time.monotonic()
    with pytest.raises(FetchError, match="timeout"):
        fetch_feed(http_session, feed_server.url("/slow"), timeout=0.5)
    assert 0.45 <= time.monotonic() - started < 5.0  # the whole body takes 200 s


def test_server_that_never_answers_times_out(
    feed_server: FeedServer, http_session: FeedSession
) -> None:
    feed_server.set("/stuck", RSS, delay=30)
    started = time.monotonic()
    with pytest.raises(FetchError, match="too slow"):
        fetch_feed(http_session, feed_server.url("/stuck"), timeout=0.3)
    assert time.monotonic() - started < 5.0  # the server waits 30 s


def test_connection_refused_says_what_to_check(http_session: FeedSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError) as caught:
        fetch_feed(http_session, f"http://127.0.0.1:{port}/feed.xml", timeout=2)
    assert "cannot connect" in caught.value.message
    assert "check" in caught.value.message
    assert caught.value.http_status is None


def test_local_file_by_path_and_file_url(tmp_path: Path, http_session: FeedSession) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(RSS)
    by_path = fetch_feed(http_session, str(path))
    by_url = fetch_feed(http_session, path.as_uri())
    assert (by_path.status, by_path.content) == (200, RSS)
    assert (by_url.status, by_url.content) == (200, RSS)


def test_local_file_cap_and_missing_file(tmp_path: Path, http_session: FeedSession) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(RSS)
    with pytest.raises(FetchError, match="max_bytes"):
        fetch_feed(http_session, str(path), max_bytes=len(RSS) - 1)
    with pytest.raises(FetchError, match="cannot read file"):
        fetch_feed(http_session, str(tmp_path / "missing.xml"))


def test_unsupported_scheme(http_session: FeedSession) -> None:
    with pytest.raises(FetchError, match="unsupported URL scheme"):
        fetch_feed(http_session, "ftp://example.org/feed.xml")


@pytest.mark.parametrize("url", ["http://", "http://[::1", "http://a..b/", "http://h:99999/"])
def test_invalid_urls_are_fetch_errors(http_session: FeedSession, url: str) -> None:
    with pytest.raises(FetchError, match="invalid URL"):
        fetch_feed(http_session, url, timeout=2)


def test_redirect_without_location(feed_server: FeedServer, http_session: FeedSession) -> None:
    feed_server.set("/r", b"", status=302)
    with pytest.raises(FetchError, match="without a Location"):
        fetch_feed(http_session, feed_server.url("/r"))
