"""WebSub: a feed's hub is found, subscribed to, checked, renewed and left; signed pushes are
stored and alerted like polled items, once; mis-signed, unsigned and oversized ones never are.

The end-to-end tests run `watcher run` in a subprocess (its clock 100x faster) with a local
hub written for the tests (tests/hub.py), a feed server and a webhook receiver.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.hub import Hub, hub_feed
from tests.receivers import WebhookReceiver, free_port
from tests.servers import FeedServer
from tests.test_daemon import Daemon, wait_for
from tests.test_metrics import get, listening, samples
from watcher.cli import cli
from watcher.decide.websub import (
    Action,
    check_verification,
    next_action,
    push_status,
    renewal_due,
    signature_ok,
)
from watcher.poll.fetch import make_session
from watcher.poll.parse import parse_feed
from watcher.poll.websub import HubError, ask_hub, find_offer, link_header
from watcher.types import Fetched, Mode, Subscription, SubState

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


# --- discovery -----------------------------------------------------------------------------


def test_the_link_header_comes_before_the_document() -> None:
    body = hub_feed("https://body-hub.example/", "https://example.org/self.xml", ["a"])
    parsed = parse_feed(body, "https://example.org/feed.xml")
    assert parsed.hubs == ("https://body-hub.example/",)
    assert parsed.self_url == "https://example.org/self.xml"
    plain = Fetched("https://example.org/feed.xml", "https://example.org/feed.xml", 200)
    offer = find_offer(plain, parsed)
    assert (offer.hub, offer.topic) == ("https://body-hub.example/", "https://example.org/self.xml")
    linked = Fetched(
        plain.url,
        plain.final_url,
        200,
        headers={"link": '<https://hub.example/>; rel="hub", </topic>; rel="self"'},
    )
    offer = find_offer(linked, parsed)
    assert (offer.hub, offer.topic) == ("https://hub.example/", "https://example.org/topic")


def test_atom_and_json_feeds_name_their_hubs() -> None:
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>x</id>'
        b'<link rel="hub" href="https://pubsubhubbub.example/"/>'
        b'<link rel="self" href="https://example.org/atom.xml"/>'
        b"<entry><id>1</id><title>one</title></entry></feed>"
    )
    parsed = parse_feed(atom, "https://example.org/atom.xml", "application/atom+xml")
    assert (parsed.hubs, parsed.self_url) == (
        ("https://pubsubhubbub.example/",),
        "https://example.org/atom.xml",
    )
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "j",
        "feed_url": "https://example.org/feed.json",
        "hubs": [
            {"type": "rssCloud", "url": "https://cloud.example/"},
            {"type": "WebSub", "url": "https://hub.example/"},
        ],
        "items": [{"id": "1", "title": "one"}],
    }
    parsed = parse_feed(json.dumps(document).encode(), "https://example.org/feed.json")
    assert (parsed.hubs, parsed.self_url) == (
        ("https://hub.example/",),
        "https://example.org/feed.json",
    )


def test_a_feed_without_a_hub_offers_nothing_and_bad_links_are_ignored() -> None:
    fetched = Fetched(
        "https://e.example/f",
        "https://e.example/f",
        200,
        headers={"link": '<javascript:x>; rel="hub", <http://[::1>; rel=hub'},
    )
    assert find_offer(fetched, None).hub is None
    assert link_header('<a>; rel="self hub", <b>; title=x', "https://e.example/") == {
        "self": ["https://e.example/a"],
        "hub": ["https://e.example/a"],
    }


# --- the pure decisions --------------------------------------------------------------------


def sub(**fields: object) -> Subscription:
    base: dict[str, object] = {
        "id": 1,
        "feed_id": 7,
        "feed_name": "wire",
        "feed_active": True,
        "hub": "https://hub.example/",
        "topic": "https://example.org/feed.xml",
    }
    return Subscription(**{**base, **fields})  # type: ignore[arg-type]


def held(**fields: object) -> Subscription:
    base: dict[str, object] = {
        "state": SubState.SUBSCRIBED,
        "sub_hub": "https://hub.example/",
        "sub_topic": "https://example.org/feed.xml",
        "token": "tok",
        "secret": "s",
        "requested_at": NOW - timedelta(days=1),
        "lease_until": NOW + timedelta(days=9),
    }
    return sub(**{**base, **fields})


def test_what_to_ask_a_hub_next() -> None:
    hub, topic = "https://hub.example/", "https://example.org/feed.xml"
    assert next_action(sub(), NOW) == Action(Mode.SUBSCRIBE, hub, topic, fresh=True)
    assert next_action(held(), NOW) is None  # nine days of a ten-day lease left
    assert next_action(held(lease_until=NOW + timedelta(hours=2)), NOW) == Action(
        Mode.SUBSCRIBE, hub, topic
    )  # renewed with the same callback and secret
    assert next_action(held(feed_active=False), NOW) == Action(Mode.UNSUBSCRIBE, hub, topic)
    assert next_action(held(hub=None, topic=None), NOW) == Action(Mode.UNSUBSCRIBE, hub, topic)
    moved = held(hub="https://other-hub.example/")
    assert next_action(moved, NOW) == Action(
        Mode.SUBSCRIBE, "https://other-hub.example/", topic, fresh=True
    )
    assert next_action(sub(pending=Mode.SUBSCRIBE, requested_at=NOW), NOW) is None
    assert next_action(sub(retry_at=NOW + timedelta(minutes=1), failures=1), NOW) is None
    assert next_action(sub(state=SubState.DENIED, sub_hub=hub, sub_topic=topic), NOW) is None
    assert next_action(sub(feed_active=False), NOW) is None


def test_a_lease_is_renewed_a_tenth_before_it_ends_at_least_half_an_hour_at_most_a_day() -> None:
    ten_days = held(requested_at=NOW, lease_until=NOW + timedelta(days=10))
    assert not renewal_due(ten_days, NOW + timedelta(days=8, hours=23))
    assert renewal_due(ten_days, NOW + timedelta(days=9))
    hour = held(requested_at=NOW, lease_until=NOW + timedelta(hours=1))
    assert not renewal_due(hour, NOW + timedelta(minutes=29))
    assert renewal_due(hour, NOW + timedelta(minutes=30))


def test_a_check_is_agreed_to_only_for_what_was_asked() -> None:
    asked = held(pending=Mode.SUBSCRIBE)
    topic = "https://example.org/feed.xml"
    assert check_verification(asked, "subscribe", topic, "c", "864000").agree
    assert check_verification(asked, "subscribe", topic, "c", "864000").lease_s == 864000
    assert not check_verification(asked, "unsubscribe", topic, "c", None).agree
    assert not check_verification(asked, "subscribe", "https://evil.example/", "c", "60").agree
    assert not check_verification(asked, "subscribe", topic, "c", None).agree  # no lease
    assert not check_verification(asked, "subscribe", topic, "c", "-5").agree
    assert not check_verification(asked, "subscribe", topic, "", "60").agree
    assert not check_verification(held(), "subscribe", topic, "c", "60").agree  # not asked
    assert not check_verification(None, "subscribe", topic, "c", "60").agree
    assert check_verification(held(pending=Mode.UNSUBSCRIBE), "unsubscribe", topic, "c", None).agree


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_signatures_of_every_recognised_method(method: str) -> None:
    import hashlib
    import hmac

    body = b"<rss/>"
    good = f"{method}={hmac.new(b'key', body, getattr(hashlib, method)).hexdigest()}"
    assert signature_ok(body, good, "key") == (True, "signed")
    assert signature_ok(body + b" ", good, "key")[0] is False
    assert signature_ok(body, good, "other")[0] is False


def test_unsigned_and_unknown_signatures_fail() -> None:
    assert signature_ok(b"x", None, "key") == (False, "unsigned (no X-Hub-Signature)")
    assert signature_ok(b"x", "md5=abc", "key")[1] == "unknown signature method 'md5'"
    assert signature_ok(b"x", "sha256=zz", None)[0] is False


def test_status_says_subscribed_or_why_not() -> None:
    assert push_status(None, True, NOW) == ""
    assert push_status(sub(), False, NOW).startswith("off")
    assert push_status(held(), True, NOW) == "subscribed (lease until 2026-11-29 12:00 UTC)"
    asked = sub(pending=Mode.SUBSCRIBE, requested_at=NOW)
    assert push_status(asked, True, NOW).startswith("requested 2026-11-20 12:00 UTC")
    failing = sub(failures=2, last_error="the hub answered HTTP 503", retry_at=NOW)
    assert push_status(failing, True, NOW).startswith("failing: the hub answered HTTP 503")
    denied = sub(state=SubState.DENIED, last_error="spam")
    assert push_status(denied, True, NOW) == "denied by the hub: spam"


def test_hub_urls_obey_the_outbound_address_policy() -> None:
    with Hub() as hub:
        strict = make_session("watcher-test", block_private=True)
        with pytest.raises(HubError, match="refused to connect to 127.0.0.1"):
            ask_hub(strict, hub.url, {"hub.mode": "subscribe"})
        assert hub.requests == []
        link_local = make_session("watcher-test")
        with pytest.raises(HubError, match="link-local"):
            ask_hub(link_local, "http://169.254.169.254/hub", {"hub.mode": "subscribe"})
        assert (
            ask_hub(
                make_session("watcher-test"),
                hub.url,
                {"hub.mode": "x", "hub.topic": "t", "hub.callback": "http://127.0.0.1:9/"},
            )
            == 202
        )


# --- end to end ------------------------------------------------------------------------------


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.close()


class World:
    """A hub, a feed server naming it, a webhook receiver and a project using them."""

    def __init__(self, tmp: Path, hub: Hub, feeds: FeedServer, hook: WebhookReceiver) -> None:
        self.tmp, self.hub, self.feeds, self.hook = tmp, hub, feeds, hook
        self.topic = feeds.url("/wire.xml")
        self.port = free_port()
        self.titles: list[str] = ["Weather report"]
        self.serve()
        self.write()

    def serve(self) -> None:
        self.feeds.set("/wire.xml", hub_feed(self.hub.url, self.topic, self.titles))

    def write(self, feeds: bool = True, extra: str = "") -> None:
        (self.tmp / "rules").mkdir(exist_ok=True)
        (self.tmp / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
        lines = [
            "database: w.db",
            "rules: rules/",
            "defaults: {interval: 1h, first_poll_alerts: all}",
            "poll: {max_bytes: 4KB}",
            "feeds:" if feeds else "feeds: []",
        ]
        if feeds:
            lines += [f"  - url: {self.topic}", "    name: wire"]
        lines += [
            "channels:",
            f"  hook: {{type: webhook, url: {self.hook.url()}}}",
            f"websub: {{listen: 127.0.0.1:{self.port},"
            f" public_url: http://127.0.0.1:{self.port}/websub}}",
        ]
        (self.tmp / "watcher.yaml").write_text("\n".join(lines) + "\n" + extra)

    def alerted(self, title: str) -> int:
        return sum(title.encode() in r.body for r in self.hook.requests)

    def stored(self, title: str) -> int:
        with sqlite3.connect(self.tmp / "w.db") as db:
            return int(
                db.execute("SELECT count(*) FROM items WHERE title = ?", [title]).fetchone()[0]
            )

    def status(self) -> str:
        result = CliRunner().invoke(cli, ["--config", str(self.tmp / "watcher.yaml"), "status"])
        return result.output

    def push(self, titles: list[str], **how: str) -> list[int]:
        return self.hub.publish(self.topic, hub_feed(self.hub.url, self.topic, titles), **how)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with Hub(lease_s=600) as hub, FeedServer() as feeds, WebhookReceiver() as hook:
        yield World(tmp_path, hub, feeds, hook)


def test_subscribe_push_renew_and_unsubscribe(world: World, daemons: list[Daemon]) -> None:
    daemon = Daemon(world.tmp, run_args=("--metrics", "127.0.0.1:0"))
    daemons.append(daemon)
    wait_for(lambda: world.hub.subscribers(world.topic), "a verified subscription")
    (form,) = world.hub.asked("subscribe")[:1]
    assert form["hub.topic"] == world.topic
    assert form["hub.callback"].startswith(f"http://127.0.0.1:{world.port}/websub/")
    assert len(form["hub.secret"]) >= 32 and int(form["hub.lease_seconds"]) > 0
    wait_for(lambda: "wire: push: subscribed (lease until" in world.status(), "status")

    # a signed push alerts at once, though the feed's interval is an hour
    assert world.push(["Kursk push one"]) == [202]
    wait_for(lambda: world.alerted("Kursk push one"), "the pushed item's alert")
    # mis-signed and unsigned pushes are answered 2xx, and dropped
    assert world.push(["Kursk forged"], sign="bad") == [202]
    assert world.push(["Kursk unsigned"], sign="none") == [202]
    assert world.push(["Kursk push two"], sign="good", method="sha1") == [202]
    wait_for(lambda: world.alerted("Kursk push two"), "the second pushed alert")
    assert world.stored("Kursk forged") == world.stored("Kursk unsigned") == 0
    assert daemon.logged("websub push rejected feed=wire reason='sha256 signature does not match'")
    assert daemon.logged("reason='unsigned (no X-Hub-Signature)'")
    found = samples(get(f"http://{listening(daemon)}/metrics")[2])
    assert found[("watcher_websub_subscriptions", (("state", "subscribed"),))] == 1
    assert found[("watcher_websub_pushes_total", (("result", "rejected"),))] == 2
    assert found[("watcher_websub_pushes_total", (("result", "stored"),))] == 2

    # the polled feed brings the pushed item too: stored and alerted once
    world.titles += ["Kursk push one"]
    world.serve()
    polls = len([r for r in world.feeds.requests if r.path == "/wire.xml"])
    CliRunner().invoke(cli, ["--config", str(world.tmp / "watcher.yaml"), "poll", "--feed", "wire"])
    wait_for(
        lambda: len([r for r in world.feeds.requests if r.path == "/wire.xml"]) > polls,
        "the asked poll",
    )
    wait_for(lambda: "next poll" in world.status(), "the poll stored")
    assert world.stored("Kursk push one") == 1 and world.alerted("Kursk push one") == 1
    # with a live subscription, the hour-long interval gives way to the 6 h safety poll
    with sqlite3.connect(world.tmp / "w.db") as db:
        polled, planned = db.execute(
            "SELECT last_polled_at, next_poll_at FROM feeds WHERE name = 'wire'"
        ).fetchone()
    wait_s = (datetime.fromisoformat(planned) - datetime.fromisoformat(polled)).total_seconds()
    assert wait_s == 6 * 3600

    # a lease of 600 s is renewed before it ends, with the same callback
    wait_for(lambda: len(world.hub.asked("subscribe")) >= 2, "the renewal", timeout=20)
    renewal = world.hub.asked("subscribe")[1]
    assert renewal["hub.callback"] == form["hub.callback"]

    # the feed leaves the config: the daemon unsubscribes, the hub checks, the callback agrees
    world.write(feeds=False)
    wait_for(lambda: world.hub.asked("unsubscribe"), "the unsubscription")
    wait_for(lambda: not world.hub.subscribers(world.topic), "the hub to drop it")
    assert ("unsubscribe", form["hub.callback"], 200) in world.hub.checks
    # a push to the old callback now gets 410 Gone
    request = urllib.request.Request(form["hub.callback"], data=b"<rss/>")
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(request, timeout=5)
    assert gone.value.code == 410
    gone.value.close()
    assert daemon.stop() == 0


def test_a_hub_that_is_down_is_asked_again_later(world: World, daemons: list[Daemon]) -> None:
    world.hub.status = 503
    daemon = Daemon(world.tmp)
    daemons.append(daemon)
    wait_for(lambda: world.hub.requests, "a first request")
    wait_for(lambda: "push: failing: the hub answered HTTP 503" in world.status(), "status")
    world.hub.status = 202
    wait_for(lambda: world.hub.subscribers(world.topic), "the retried subscription")
    assert daemon.logged("websub subscribe failed feed=wire")
    assert daemon.stop() == 0


def test_hostile_pushes_obey_the_poll_rules(world: World, daemons: list[Daemon]) -> None:
    daemon = Daemon(world.tmp)
    daemons.append(daemon)
    wait_for(lambda: world.hub.subscribers(world.topic), "a verified subscription")
    # over poll.max_bytes (4 KB): answered, dropped, nothing stored
    assert world.push(["Kursk " + "x" * 5000]) == [202]
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b"<rss version='2.0'><channel><title>&c;</title><item><title>Kursk &c;</title>"
        b"<guid>bomb</guid></item></channel></rss>"
    )
    assert world.hub.publish(world.topic, bomb) == [202]
    assert world.push(["Kursk after the hostile ones"]) == [202]
    wait_for(lambda: world.alerted("Kursk after the hostile ones"), "the good push")
    with sqlite3.connect(world.tmp / "w.db") as db:
        titles = [r[0] for r in db.execute("SELECT title FROM items")]
    assert not any("x" * 100 in t or "aaaaaaaaaa" * 8 in t for t in titles)
    assert daemon.logged("websub push dropped feed=wire reason='larger than poll.max_bytes")
    # the hub denies the subscription: status says so
    assert world.hub.deny(world.topic, "publisher asked") == [200]
    wait_for(lambda: "push: denied by the hub: publisher asked" in world.status(), "status")
    assert daemon.stop() == 0
