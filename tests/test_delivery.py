"""Outbox delivery and alert policy against a real SMTP server and a real webhook receiver.

Items enter through the pipeline's store stage (as a parsed feed would give them), then
``deliver_pending`` sends them; every assertion is on what the receivers got or on what
a user reads with ``watcher alerts``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.receivers import SmtpReceiver, WebhookReceiver, free_port
from watcher.cli import cli
from watcher.config import load_settings
from watcher.deliver.send import DeliveryReport, deliver_pending
from watcher.poll.pipeline import PollReport, select_feeds, store_result
from watcher.poll.result import FeedResult
from watcher.poll.runtime import Runtime, open_runtime
from watcher.store import Store
from watcher.store.feeds import feed_by_name
from watcher.store.outbox import list_alerts
from watcher.types import Fetched, ParsedFeed, ParsedItem

NOW = datetime.now(UTC).replace(microsecond=0)

RULES = """\
- id: kursk
  description: Fighting around Kursk
  any: [Kursk]
  severity: high
"""


@dataclass
class World:
    """A project folder, its runtime, and the two receivers its channels point at."""

    path: Path
    smtp: SmtpReceiver
    hook: WebhookReceiver
    rt: Runtime
    seq: list[int] = field(default_factory=lambda: [0])

    def ingest(self, feed: str, *titles: str, now: datetime = NOW, **kw: Any) -> PollReport:
        """Store items in a feed as one poll would, matching and queueing alerts."""
        state = next(f for f in select_feeds(self.rt, now, all_feeds=True) if f.name == feed)
        items = []
        for title in titles:
            self.seq[0] += 1
            link = kw.get("link") or f"https://{feed}.example.org/{self.seq[0]}"
            items.append(
                ParsedItem(
                    guid=f"g{self.seq[0]}",
                    title=title,
                    link=link,
                    summary_text=f"Report: {title}.",
                    published_at=kw.get("published", now),
                )
            )
        fetched = Fetched(url=state.url, final_url=state.url, status=200)
        parsed = ParsedFeed(title=feed, link=None, format="rss20", items=tuple(items))
        result = FeedResult(feed=state, options=_options(self.rt, feed), fetched=fetched)
        result.parsed = parsed
        report = PollReport()
        store_result(self.rt, result, now, report)
        return report

    def deliver(self, now: datetime = NOW) -> DeliveryReport:
        return deliver_pending(self.rt, now)

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.rt.store.db.query("SELECT * FROM alerts ORDER BY id"))

    def cli(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, ["--config", str(self.path / "watcher.yaml"), *args])
        return result.exit_code, result.stdout, result.stderr


def _options(rt: Runtime, feed: str) -> Any:
    from watcher.poll.pipeline import feed_options

    return feed_options(rt.settings, feed_by_name(rt.store, feed))  # type: ignore[arg-type]


def write_project(
    path: Path, smtp_port: int, hook_url: str, rules: str = RULES, extra: str = ""
) -> Path:
    (path / "rules").mkdir(exist_ok=True)
    (path / "rules" / "r.yaml").write_text(rules)
    config = path / "watcher.yaml"
    config.write_text(
        "database: w.db\nrules: rules/\n"
        "defaults: {first_poll_alerts: all}\n"
        "feeds:\n"
        + "".join(f"  - {{url: 'https://{n}.example.org/feed', name: {n}}}\n" for n in "abc")
        + "channels:\n"
        "  mail:\n"
        "    type: email\n    to: [desk@example.org]\n    from: watcher@example.org\n"
        f"    smtp: {{host: 127.0.0.1, port: {smtp_port}, timeout: 5s}}\n"
        f"  hook: {{type: webhook, url: '{hook_url}', secret: hush, timeout: 5s}}\n" + extra
    )
    return config


@pytest.fixture
def make_world(
    tmp_path: Path, smtp_server: SmtpReceiver, webhook_server: WebhookReceiver
) -> Iterator[Any]:
    opened: list[Runtime] = []

    def make(
        rules: str = RULES, extra: str = "", smtp: SmtpReceiver | None = None, port: int = 0
    ) -> World:
        mail = smtp or smtp_server
        config = write_project(tmp_path, port or mail.port, webhook_server.url(), rules, extra)
        rt = open_runtime(load_settings(config))
        opened.append(rt)
        return World(tmp_path, mail, webhook_server, rt)

    yield make
    for rt in opened:
        rt.store.close()


# --- retries and failures -------------------------------------------------------------------


def test_webhook_500_then_200_delivers_the_same_alert_id_and_body(make_world: Any) -> None:
    w = make_world()
    w.hook.statuses = [500]
    w.ingest("a", "Shelling near Kursk")
    first = w.deliver()
    assert (first.sent, first.retrying) == (1, 1)  # the mail went, the hook will be retried
    hook_alert = next(a for a in w.alerts() if a["channel"] == "hook")
    assert hook_alert["status"] == "pending" and "HTTP 500" in hook_alert["last_error"]
    assert w.deliver(NOW + timedelta(seconds=29)).sent == 0  # not due before 30 s
    assert w.deliver(NOW + timedelta(seconds=30)).sent == 1
    one, two = w.hook.requests
    assert one.header("X-Watcher-Alert-Id") == two.header("X-Watcher-Alert-Id")
    assert one.body == two.body
    assert next(a for a in w.alerts() if a["channel"] == "hook")["status"] == "sent"


def test_an_alert_sent_on_a_retry_shows_its_error_as_history(make_world: Any) -> None:
    w = make_world()
    w.hook.statuses = [500, 503]
    w.ingest("a", "Shelling near Kursk")
    for seconds in (0, 30, 90):  # the first retry after 30 s, the next 60 s later
        w.deliver(NOW + timedelta(seconds=seconds))
    assert len(w.hook.requests) == 3
    code, out, _ = w.cli("alerts")
    row = next(line for line in out.splitlines() if " hook " in line)
    assert code == 0 and " sent " in row
    assert row.split("  ")[-1].startswith("sent on attempt 3; earlier: receiver failed")
    code, out, _ = w.cli("alerts", "--json")
    hook = next(a for a in json.loads(out) if a["channel"] == "hook")
    assert (hook["status"], hook["attempts"], hook["last_error"]) == ("sent", 3, None)
    assert "HTTP 503" in hook["earlier_error"]
    assert hook["note"] == f"sent on attempt 3; earlier: {hook['earlier_error']}"
    mail = next(a for a in json.loads(out) if a["channel"] == "mail")
    assert (mail["attempts"], mail["earlier_error"], mail["note"]) == (1, None, None)


def test_smtp_down_for_a_while_then_up_delivers_everything(make_world: Any) -> None:
    later = SmtpReceiver()  # its port is chosen now; it starts listening later
    w = make_world(smtp=later)
    w.ingest("a", "Kursk one", "Kursk two", "Kursk three")
    down = w.deliver()
    assert down.retrying == 1 and down.deferred == 2  # one attempt tells the server is down
    assert down.sent == 3  # the webhook was not held up by the dead mail server
    assert w.deliver(NOW + timedelta(seconds=1)).retrying == 1
    with later:
        up = w.deliver(NOW + timedelta(minutes=5))
    assert up.sent == 3
    subjects = sorted(m.message["Subject"] for m in later.messages)
    assert subjects == [f"[watcher] kursk: Kursk {n}" for n in ("one", "three", "two")]
    assert {a["status"] for a in w.alerts()} == {"sent"}


def test_an_alert_still_failing_after_24h_is_failed_with_its_last_error(make_world: Any) -> None:
    w = make_world(port=free_port())  # nothing listens there
    w.ingest("a", "Kursk")
    w.deliver()
    report = w.deliver(NOW + timedelta(hours=24))
    assert report.failed == 1
    mail = next(a for a in w.alerts() if a["channel"] == "mail")
    assert mail["status"] == "failed" and "cannot connect to the SMTP server" in mail["last_error"]
    assert mail["attempts"] == 2


def test_400_fails_at_once_is_listed_and_retry_delivers_once_fixed(make_world: Any) -> None:
    w = make_world()
    w.hook.statuses = [400]
    w.ingest("a", "Kursk bridge hit")
    report = w.deliver()
    assert report.failed == 1
    code, out, _ = w.cli("alerts", "--status", "failed", "--json")
    listed = json.loads(out)
    assert code == 0 and [a["channel"] for a in listed] == ["hook"]
    assert "receiver refused the alert" in listed[0]["last_error"]
    assert "HTTP 400" in listed[0]["last_error"]
    w.rt.store.close()  # the command opens its own connection; this one is done
    code, out, err = w.cli("alerts", "retry")
    assert code == 0, err
    assert "retried 1 alert: 1 sent" in out
    refused, delivered = w.hook.requests
    assert refused.header("X-Watcher-Alert-Id") == delivered.header("X-Watcher-Alert-Id")
    with Store(w.path / "w.db") as store:
        assert [a.status.value for a in list_alerts(store, rule_id="kursk")] == ["sent", "sent"]
    assert w.cli("alerts", "retry")[1] == "no failed alerts to retry\n"


def test_a_slow_channel_never_delays_the_others(make_world: Any) -> None:
    w = make_world()
    w.hook.hang = True  # takes the POST and never answers
    w.ingest("a", "Kursk one", "Kursk two")
    seen: list[bool] = []

    def watch() -> None:
        """While the hook hangs, both mails must already be recorded as sent."""
        with Store(w.path / "w.db") as reader:
            seen.append(_wait_for(lambda: _sent_mail(reader) == 2))
            seen.append(_wait_for(lambda: len(w.hook.requests) == 1))  # still hanging
        w.hook.stopping.set()  # then hang up on the waiting request

    watcher = threading.Thread(target=watch)
    watcher.start()
    report = w.deliver()
    watcher.join()
    assert seen == [True, True]
    assert len(w.smtp.messages) == 2
    assert (report.sent, report.retrying, report.deferred) == (2, 1, 1)


def _sent_mail(store: Store) -> int:
    return sum(1 for a in list_alerts(store) if a.channel == "mail" and a.status.value == "sent")


def _wait_for(predicate: Any, limit: float = 4.0) -> bool:
    """Wait (on an event, not a sleep) until ``predicate`` holds or ``limit`` seconds pass."""
    tick = threading.Event()
    for _ in range(int(limit / 0.02)):
        if predicate():
            return True
        tick.wait(0.02)
    return bool(predicate())


# --- stories ---------------------------------------------------------------------------------


def test_one_story_from_two_feeds_alerts_once_with_also_reported_by(make_world: Any) -> None:
    w = make_world()
    w.ingest("a", "Kursk offensive stalls - Reuters", link="https://www.a.org/k?utm_source=x#top")
    w.ingest("b", "Kursk offensive stalls | Kyiv Independent", link="https://b.org/other")
    # the same canonical link under a new title
    w.ingest("c", "Another piece on Kursk", link="http://a.org/k/")
    w.deliver()
    assert len(w.smtp.messages) == 1 and len(w.hook.requests) == 1
    body = w.hook.requests[0].json()
    assert body["items"][0]["feed"] == "a"
    assert body["items"][0]["also_reported_by"] == [
        {"feed": "b", "link": "https://b.org/other"},
        {"feed": "c", "link": "http://a.org/k/"},
    ]
    text = w.smtp.messages[0].message.get_body(("plain",)).get_content()
    assert "also reported by b: https://b.org/other" in text


def test_a_copy_after_the_alert_was_sent_is_recorded_as_a_duplicate(make_world: Any) -> None:
    w = make_world()
    w.ingest("a", "Kursk dam breached")
    w.deliver()
    w.ingest("b", "Kursk dam breached", now=NOW + timedelta(hours=1))
    assert w.deliver(NOW + timedelta(hours=1)).sent == 0
    rows = w.alerts()
    dupes = [r for r in rows if r["status"] == "suppressed"]
    sent = {r["channel"]: r["id"] for r in rows if r["status"] == "sent"}
    assert sorted((r["channel"], r["reason"]) for r in dupes) == [
        ("hook", f"duplicate of alert {sent['hook']}"),
        ("mail", f"duplicate of alert {sent['mail']}"),
    ]


def test_the_same_title_more_than_48h_later_is_a_new_story(make_world: Any) -> None:
    w = make_world()
    w.ingest("a", "Kursk update", published=NOW - timedelta(hours=50))
    w.ingest("b", "Kursk update")
    w.deliver()
    assert len(w.smtp.messages) == 2


# --- digest, max_alerts, threshold, mute ---------------------------------------------------

DIGEST = RULES + "  digest: 1h\n"


def test_digest_sends_one_alert_per_rule_and_channel_per_interval(make_world: Any) -> None:
    w = make_world(DIGEST)
    w.ingest("a", "Kursk one", "Kursk two")
    w.ingest("b", "Kursk three", now=NOW + timedelta(minutes=10))
    w.ingest("c", "Kursk two", now=NOW + timedelta(minutes=20))  # a copy: same title
    assert w.deliver(NOW + timedelta(minutes=59)).sent == 0
    assert w.deliver(NOW + timedelta(hours=1)).sent == 2
    (mail,) = w.smtp.messages
    assert mail.message["Subject"] == "[watcher] kursk: 3 new items"
    body = w.hook.requests[0].json()
    assert body["kind"] == "digest"
    assert [i["title"] for i in body["items"]] == ["Kursk one", "Kursk two", "Kursk three"]
    assert body["items"][1]["also_reported_by"][0]["feed"] == "c"
    w.ingest("a", "Kursk four", now=NOW + timedelta(hours=2))
    assert w.deliver(NOW + timedelta(hours=3)).sent == 2  # the next interval's digest


def test_max_alerts_holds_back_the_excess_and_summarises_it_next(make_world: Any) -> None:
    w = make_world(RULES + "  max_alerts: {count: 2, per: 1h}\n")
    w.ingest("a", *[f"Kursk {n}" for n in range(5)])
    assert w.deliver().sent == 4  # 2 per channel
    held = [a for a in w.alerts() if a["status"] == "suppressed"]
    assert len(held) == 6 and {a["reason"] for a in held} == {"throttled by max_alerts"}
    w.ingest("b", "Kursk later", now=NOW + timedelta(hours=1, seconds=1))
    w.deliver(NOW + timedelta(hours=1, seconds=1))
    last = w.smtp.messages[-1].message
    assert last["Subject"] == "[watcher] kursk: Kursk later (+3 held back by max_alerts)"
    body = w.hook.requests[-1].json()
    assert [i["title"] for i in body["items"]] == ["Kursk later"]
    assert [i["title"] for i in body["held_back"]] == ["Kursk 2", "Kursk 3", "Kursk 4"]
    text = last.get_body(("plain",)).get_content()
    assert "Held back by max_alerts (3):" in text and "Kursk 4" in text
    assert {a["reason"] for a in w.alerts() if a["status"] == "suppressed"} == {
        f"throttled by max_alerts; summarised in alert {i}"
        for i in (body_id(w, "mail"), int(body["alert_id"]))
    }


def body_id(w: World, channel: str) -> int:
    return max(a["id"] for a in w.alerts() if a["channel"] == channel and a["status"] == "sent")


def test_channel_max_alerts_caps_only_that_channel(make_world: Any) -> None:
    w = make_world(extra="  capped: {type: eml, dir: out, max_alerts: {count: 1, per: 1d}}\n")
    w.ingest("a", "Kursk one", "Kursk two", "Kursk three")
    w.deliver()
    assert len(list((w.path / "out").glob("*.eml"))) == 1
    assert len(w.smtp.messages) == 3


def test_threshold_rule_alerts_once_when_enough_feeds_report(make_world: Any) -> None:
    rules = RULES.replace("id: kursk", "id: surge") + (
        "  threshold: {count: 3, within: 2h, distinct: feed}\n"
    )
    w = make_world(rules)
    w.ingest("a", "Kursk one", "Kursk two")
    w.ingest("b", "Kursk three")
    assert w.deliver().sent == 0
    w.ingest("c", "Kursk four", now=NOW + timedelta(minutes=5))
    w.ingest("c", "Kursk five", now=NOW + timedelta(minutes=6))
    assert w.deliver(NOW + timedelta(minutes=6)).sent == 2
    (mail,) = w.smtp.messages
    assert mail.message["Subject"] == "[watcher] surge: 5 items in 2h"
    assert w.hook.requests[0].json()["kind"] == "threshold"


def test_mute_suppresses_for_a_while_and_unmute_ends_it(make_world: Any) -> None:
    w = make_world()
    code, out, err = w.cli("mute", "kursk", "--for", "2h")
    assert code == 0, err
    assert out.startswith("muted rule kursk until ")
    w.ingest("a", "Kursk muted")
    assert w.deliver().sent == 0
    assert {a["reason"] for a in w.alerts()} == {"muted"}
    assert w.cli("mute", "--json")[1].count('"rule:kursk"') == 1
    assert w.cli("unmute", "kursk")[1] == "unmuted rule kursk\n"
    w.ingest("b", "Kursk unmuted")
    assert w.deliver().sent == 2


def test_a_mute_ends_by_itself(make_world: Any) -> None:
    w = make_world()
    assert w.cli("mute", "feed:a", "--for", "1h")[0] == 0
    w.ingest("a", "Kursk early")
    w.ingest("a", "Kursk late", now=NOW + timedelta(hours=2))
    w.deliver(NOW + timedelta(hours=2))
    assert [m.message["Subject"] for m in w.smtp.messages] == ["[watcher] kursk: Kursk late"]


def test_mute_of_an_unknown_name_is_an_error(make_world: Any) -> None:
    w = make_world()
    code, _, err = w.cli("mute", "nothing", "--for", "1h")
    assert code == 1 and "no rule or feed named 'nothing'" in err


# --- channels test ----------------------------------------------------------------------------


def test_channels_test_sends_a_test_alert_and_reports_failure(make_world: Any) -> None:
    w = make_world()
    code, out, _ = w.cli("channels", "test", "mail")
    assert code == 0 and out.startswith("sent a test alert through email mail")
    assert w.smtp.messages[0].message["Subject"] == "[watcher] test: channel mail"
    w.hook.statuses = [403]
    code, _, err = w.cli("channels", "test", "hook")
    assert code == 1 and "HTTP 403" in err and "(permanent)" in err
    assert w.cli("channels", "test", "nope")[0] == 1
    assert w.alerts() == []  # a test alert is never stored


def test_an_alert_for_a_removed_channel_fails_with_a_reason(make_world: Any) -> None:
    w = make_world()
    w.ingest("a", "Kursk")
    del w.rt.channels["hook"]
    w.deliver()
    hook = next(a for a in w.alerts() if a["channel"] == "hook")
    assert (hook["status"], hook["last_error"]) == ("failed", "channel hook is not configured")


# --- alerts in flight -------------------------------------------------------------------------


def test_while_outcomes_cannot_be_recorded_a_channel_sends_only_its_alerts_in_flight(
    make_world: Any,
) -> None:
    """A crash re-sends at most the alerts sent but not yet recorded: 8 per channel, or 50
    for an eml channel, whose re-send rewrites the same file (docs/channels.md)."""
    w = make_world(extra="  files: {type: eml, dir: out}\n")
    w.ingest("a", *[f"Kursk report {n}" for n in range(60)])
    locked, release = threading.Event(), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def hold_the_write_lock() -> None:  # no outcome can be recorded meanwhile
        with Store(w.path / "w.db") as other, other.transaction():
            locked.set()
            release.wait(30)

    def sent() -> tuple[int, int, int]:
        files = len(list((w.path / "out").glob("*.eml")))
        return files, len(w.hook.requests), len(w.smtp.messages)

    def watch() -> None:
        _wait_for(lambda: sent() == (50, 8, 8))
        threading.Event().wait(0.3)  # and no more than that
        seen.append(sent())
        release.set()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    assert locked.wait(5)
    watcher = threading.Thread(target=watch)
    watcher.start()
    report = w.deliver()
    watcher.join()
    holder.join()
    assert seen == [(50, 8, 8)]
    assert report.sent == 180 and sent() == (60, 60, 60)
