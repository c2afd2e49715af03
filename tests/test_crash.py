"""Crash safety, proven: SIGKILL the daemon again and again, lose no alert, repeat none anew.

``watcher run`` runs in a subprocess (its clock 100x faster) against a local feed server,
an aiosmtpd server and a webhook receiver. It is killed with SIGKILL at least 20 times,
at moments chosen at random — while it polls, while it stores, while it delivers — and
restarted each time; new items appear on the feeds after every kill. Then:

- every expected alert reached every receiver (none lost);
- every repeat of an alert carries the alert id of the first delivery (Message-ID,
  X-Watcher-Alert-Id), so a receiver can drop it;
- repeats number no more than the alerts in flight at the kills: received by a
  receiver, but not yet recorded as sent when the process died.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.feedgen import Entry, rss
from tests.receivers import SmtpReceiver, WebhookReceiver
from tests.servers import FeedServer

FEEDS = 10
ITEMS_FIRST = 6  # per feed, there at the start
GROWTH = 5  # after each kill, one new item on this many feeds
KILLS = 21
MOMENT_LIMIT_S = 1.5  # the longest a daemon lives before its kill
TICK = threading.Event()  # waited on with a timeout, never set: a polling interval


def wait_until(predicate: Callable[[], bool], limit: float) -> bool:
    for _ in range(int(limit / 0.01)):
        if predicate():
            return True
        TICK.wait(0.01)
    return predicate()


def title(feed: int, n: int) -> str:
    return f"Kursk report {n} from desk {feed}"  # every title its own story


def feed_body(feed: int, count: int, now: datetime) -> bytes:
    """The feed with its ``count`` items, newest first as feeds list them."""
    entries = [Entry(f"f{feed}-{n}", title(feed, n), published=now) for n in range(count)]
    return rss(entries[::-1])


def write_project(path: Path, feeds: FeedServer, smtp: SmtpReceiver, hook: WebhookReceiver) -> Path:
    (path / "rules").mkdir()
    (path / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n  severity: high\n")
    entries = "".join(
        f"  - {{url: '{feeds.url(f'/f{i}.xml')}', name: desk{i}}}\n" for i in range(FEEDS)
    )
    config = path / "watcher.yaml"
    config.write_text(
        "database: w.db\nrules: rules/\n"
        "defaults: {interval: 1m, first_poll_alerts: all}\n"
        "health: {notify: []}\n"  # no health alerts: the receivers get only rule alerts
        f"feeds:\n{entries}"
        "channels:\n"
        "  mail:\n    type: email\n    to: [desk@example.org]\n    from: w@example.org\n"
        f"    smtp: {{host: 127.0.0.1, port: {smtp.port}, timeout: 5s}}\n"
        f"  hook: {{type: webhook, url: '{hook.url()}', timeout: 5s}}\n"
    )
    return config


class Daemon:
    def __init__(self, config: Path) -> None:
        env = {**os.environ, "WATCHER_TIME_SCALE": "0.01", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "-q", "--config", str(config), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err.decode(errors="replace")


class Receipts:
    """What both receivers got: alert id and item title of every delivery, in order."""

    def __init__(self, smtp: SmtpReceiver, hook: WebhookReceiver) -> None:
        self.smtp, self.hook = smtp, hook

    def count(self) -> int:
        return len(self.smtp.messages) + len(self.hook.requests)

    def mail(self) -> list[tuple[str, str]]:
        out = []
        for m in list(self.smtp.messages):
            alert = str(m.message["X-Watcher-Alert-Id"])
            assert m.message["Message-ID"].startswith(f"<watcher-alert-{alert}@")
            out.append((alert, str(m.message["Subject"]).split(": ", 1)[1]))
        return out

    def hooks(self) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for r in list(self.hook.requests):
            try:
                name: str | None = r.json()["items"][0]["title"]
            except ValueError:  # the body was cut off by the kill
                name = None
            out.append((str(r.header("X-Watcher-Alert-Id")), name))
        return out

    def ids(self) -> set[tuple[str, str]]:
        return {("mail", a) for a, _ in self.mail()} | {("hook", a) for a, _ in self.hooks()}

    def settle(self) -> None:
        """Let the receivers finish requests a dead process had already sent."""
        last = -1
        while last != self.count():
            last = self.count()
            TICK.wait(0.05)


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows from the daemon's database, or none before it has made its tables."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


def pending_ids(db: Path) -> set[tuple[str, str]]:
    rows = query(
        db, "SELECT channel, id FROM alerts WHERE status = 'pending' AND rule_id = 'kursk'"
    )
    return {(str(channel), str(alert_id)) for channel, alert_id in rows}


def sent_count(db: Path) -> int:
    rows = query(db, "SELECT count(*) FROM alerts WHERE status = 'sent' AND rule_id = 'kursk'")
    return int(str(rows[0][0])) if rows else 0


INDEX_STATE = """
SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM _fts_queue),
       (SELECT count(*) FROM items_fts WHERE items_fts MATCH 'kursk')
"""


def index_complete(db: Path) -> bool:
    """Every item is found by search, whatever the kills left in the index queue."""
    rows = query(db, INDEX_STATE)
    return bool(rows) and rows[0][1] == 0 and rows[0][0] == rows[0][2]


def make_feeds_due(db: Path) -> None:
    """Every feed due now, as it would be after a real pause of one interval.

    The daemon's test clock runs 100x faster from the real time it starts at, so a
    restarted daemon would see the next polls its killed predecessor planned far ahead.
    """
    if query(db, "SELECT count(*) FROM feeds"):
        conn = sqlite3.connect(db)
        with conn:
            conn.execute("UPDATE feeds SET next_poll_at = NULL")
        conn.close()


def test_sigkill_at_random_moments_loses_no_alert_and_repeats_only_in_flight_ones(
    tmp_path: Path,
) -> None:
    rng = random.Random()
    seed = rng.randrange(10**6)
    rng.seed(seed)
    now = datetime.now(UTC)
    items = [ITEMS_FIRST] * FEEDS
    with FeedServer() as feeds, SmtpReceiver() as smtp, WebhookReceiver() as hook:
        for i in range(FEEDS):
            feeds.set(f"/f{i}.xml", feed_body(i, items[i], now))
        config = write_project(tmp_path, feeds, smtp, hook)
        db = tmp_path / "w.db"
        got = Receipts(smtp, hook)
        in_flight = 0
        for _ in range(KILLS):
            make_feeds_due(db)
            daemon = Daemon(config)
            _wait_for_a_random_moment(rng, got, feeds, db)
            daemon.kill()
            got.settle()
            in_flight += len(got.ids() & pending_ids(db))
            for i in rng.sample(range(FEEDS), GROWTH):
                items[i] += 1
                feeds.set(f"/f{i}.xml", feed_body(i, items[i], now))
        make_feeds_due(db)
        daemon = Daemon(config)
        expected = sum(items)
        done = wait_until(lambda: sent_count(db) == 2 * expected, 30)
        indexed = wait_until(lambda: index_complete(db), 30)
        code, err = daemon.stop()
    assert done, f"seed {seed}: {sent_count(db)} of {2 * expected} sent\n{err}"
    assert indexed, f"seed {seed}: search index incomplete: {query(db, INDEX_STATE)}"
    assert code == 0, err
    assert 2 * expected >= 200
    _assert_every_alert_arrived_once_or_as_a_same_id_repeat(got, items, in_flight, seed)


def _wait_for_a_random_moment(
    rng: random.Random, got: Receipts, feeds: FeedServer, db: Path
) -> None:
    """Until a randomly chosen event: some deliveries, a feed request, or a sent row."""
    mode = rng.choice(["deliveries", "deliveries", "poll", "sent", "time"])
    if mode == "deliveries":
        target = got.count() + rng.randint(1, 12)
        wait_until(lambda: got.count() >= target, MOMENT_LIMIT_S)
    elif mode == "poll":
        target_requests = len(feeds.requests) + rng.randint(1, FEEDS)
        wait_until(lambda: len(feeds.requests) >= target_requests, MOMENT_LIMIT_S)
    elif mode == "sent":
        target = sent_count(db) + rng.randint(1, 8)
        wait_until(lambda: sent_count(db) >= target, MOMENT_LIMIT_S)
    else:
        TICK.wait(rng.uniform(0.2, MOMENT_LIMIT_S))


def _assert_every_alert_arrived_once_or_as_a_same_id_repeat(
    got: Receipts, items: list[int], in_flight: int, seed: int
) -> None:
    titles = {title(f, n) for f in range(FEEDS) for n in range(items[f])}
    repeats = 0
    for name, receipts in (("mail", got.mail()), ("hook", got.hooks())):
        ids_by_title: dict[str, set[str]] = defaultdict(set)
        for alert_id, item in receipts:
            if item is not None:
                ids_by_title[item].add(alert_id)
        assert set(ids_by_title) == titles, f"seed {seed}: {name} lost alerts"
        several = {t: ids for t, ids in ids_by_title.items() if len(ids) != 1}
        assert not several, f"seed {seed}: {name} got a story under two alert ids: {several}"
        repeats += len(receipts) - len({alert_id for alert_id, _ in receipts})
    assert repeats <= in_flight, f"seed {seed}: {repeats} repeats, {in_flight} in flight"
