"""The address policy at connect time, on every hop, against servers on 127.0.0.1 only.

Every test here runs with ``socket.connect`` limited to the loopback interface, so even a
broken guard cannot send a packet anywhere else.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from watcher.address_policy import AddressPolicy
from watcher.cli import cli
from watcher.exceptions import FetchError
from watcher.poll import guard
from watcher.poll.fetch import FeedSession, fetch_feed, make_session

REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        assert host in ("127.0.0.1", "::1") or not isinstance(address, tuple), address
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def strict_session() -> Iterator[FeedSession]:
    session = make_session("watcher-tests/1.0", block_private=True)
    yield session
    session.close()


def resolver(names: dict[str, list[str]], calls: list[str]) -> Callable[..., Any]:
    """getaddrinfo answering ``names`` from the table (counting the look-ups), others as usual."""

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in names:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        calls.append(host)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in names[host]
        ]

    return getaddrinfo


def test_block_private_refuses_loopback_before_any_request(
    feed_server: FeedServer, strict_session: FeedSession
) -> None:
    feed_server.set("/f.xml", rss([]))
    with pytest.raises(FetchError) as info:
        fetch_feed(strict_session, feed_server.url("/f.xml"))
    assert info.value.message == (
        "refused to connect to 127.0.0.1 (127.0.0.1):"
        " poll.block_private refuses loopback and private addresses"
    )
    assert feed_server.requests == []


def test_a_feed_on_a_private_address_may_redirect_within_it(
    feed_server: FeedServer, http_session: FeedSession
) -> None:
    feed_server.redirect("/f.xml", feed_server.url("/g.xml").replace("127.0.0.1", "localhost"))
    feed_server.set("/g.xml", rss([]))
    assert fetch_feed(http_session, feed_server.url("/f.xml")).status == 200


def test_after_a_public_start_a_redirect_hop_may_not_reach_loopback(
    feed_server: FeedServer, http_session: FeedSession
) -> None:
    """As the second hop of a fetch that began on a public address: refused at connect."""
    feed_server.set("/inside", b"secret")
    manager = http_session.manager_for("http", "127.0.0.1")
    state = guard.FetchScope(AddressPolicy(), hop=1, started_internal=False)
    with guard.scope(state), pytest.raises(guard.AddressRefused) as info:
        manager.urlopen("GET", feed_server.url("/inside"), retries=False)
    assert "a redirect may not lead from a public address" in info.value.reason
    assert feed_server.requests == []


def test_a_kept_alive_connection_is_checked_again_for_each_request(
    feed_server: FeedServer, http_session: FeedSession
) -> None:
    feed_server.set("/f.xml", rss([]))
    fetch_feed(http_session, feed_server.url("/f.xml"))  # leaves an idle connection
    manager = http_session.manager_for("http", "127.0.0.1")
    state = guard.FetchScope(AddressPolicy(), hop=1, started_internal=False)
    with guard.scope(state), pytest.raises(guard.AddressRefused):
        manager.urlopen("GET", feed_server.url("/f.xml"), retries=False)
    assert len(feed_server.requests) == 1
    assert fetch_feed(http_session, feed_server.url("/f.xml")).status == 200


def test_the_address_checked_is_the_address_connected_to(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One look-up per connection: a name cannot answer one address to the check and
    another to the connection (DNS rebinding)."""
    feed_server.set("/f.xml", rss([]))
    calls: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", resolver({"feed.test": ["127.0.0.1"]}, calls))
    url = f"http://feed.test:{feed_server.port}/f.xml"
    with make_session("t") as session:
        assert fetch_feed(session, url).status == 200
    assert calls == ["feed.test"]
    with make_session("t", block_private=True) as session, pytest.raises(FetchError) as info:
        fetch_feed(session, url)
    assert "feed.test (127.0.0.1): poll.block_private" in info.value.message
    assert calls == ["feed.test", "feed.test"] and len(feed_server.requests) == 1


def test_an_allowed_address_is_used_when_another_of_the_name_is_refused(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch, http_session: FeedSession
) -> None:
    feed_server.set("/f.xml", rss([]))
    answers = {"mixed.test": ["169.254.169.254", "127.0.0.1"]}
    monkeypatch.setattr(socket, "getaddrinfo", resolver(answers, []))
    assert fetch_feed(http_session, f"http://mixed.test:{feed_server.port}/f.xml").status == 200


# --- through `watcher poll` ----------------------------------------------------------------


def project(tmp_path: Path, url: str, extra: str = "") -> Path:
    (tmp_path / "watcher.yaml").write_text(
        f"database: w.db\nrules: []\n{extra}feeds:\n  - url: {url}\n    name: wire\n"
    )
    return tmp_path


def poll(folder: Path) -> str:
    result = CliRunner().invoke(cli, ["--config", str(folder / "watcher.yaml"), "poll", "--all"])
    assert result.exit_code == 0, result.output
    return result.output


def feed_row(folder: Path) -> tuple[str, str, str]:
    with sqlite3.connect(folder / "w.db") as db:
        row = db.execute("SELECT url, last_status, last_error FROM feeds").fetchone()
    db.close()
    return row


def test_poll_with_block_private_records_an_error_for_a_loopback_feed(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/f.xml", rss([Entry("1", "Kursk")]))
    folder = project(tmp_path, feed_server.url("/f.xml"), "poll: {block_private: true}\n")
    output = poll(folder)
    assert "feed wire failed: refused to connect to 127.0.0.1" in output
    url, status, error = feed_row(folder)
    assert status == "error" and "poll.block_private" in error
    assert feed_server.requests == []


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/feed"]
)
def test_a_permanent_redirect_to_a_refused_address_never_moves_the_feed(
    tmp_path: Path, feed_server: FeedServer, target: str
) -> None:
    feed_server.redirect("/f.xml", target, status=301)
    folder = project(tmp_path, feed_server.url("/f.xml"))
    poll(folder)
    url, status, error = feed_row(folder)
    assert url == feed_server.url("/f.xml")
    assert status == "error" and "link-local addresses" in error
