"""The poll's snapshot and intent against a real database: indexes, the 304 batch, evidence."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests import test_delivery
from tests.storing import poll, upsert_item
from tests.test_delivery import RULES
from watcher.intent import ItemRef, RuleNeeds, SnapshotRequest, ThrottleWindow
from watcher.rules.load import load_rules
from watcher.rules.match import compile_rules
from watcher.store import Store
from watcher.store.feeds import add_feed
from watcher.types import ParsedItem

make_world = test_delivery.make_world  # the fixture: a project, its receivers and runtime
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Tables the outbox grows without bound: the snapshot must never read them whole.
GROWING = ("alerts", "_alert_meta", "items", "matches", "_held_back", "_story_keys", "polls")


def test_every_query_of_a_snapshot_is_served_by_an_index(tmp_path: Path) -> None:
    with Store(tmp_path / "w.db") as store:
        feed = add_feed(store, "https://example.org/f", name="wire", now=T0)
        stored = upsert_item(store, feed.id, ParsedItem("g1", "Kursk", "https://a.example/1"), T0)
        window = ThrottleWindow("mail", "kursk", T0 - timedelta(hours=1), 5)
        request = SnapshotRequest(
            feed.id,
            T0,
            items=(
                ItemRef("g1", "changed", ("kursk", "surge"), lambda: (("link", "a.example/1"),)),
                ItemRef("g2", "new", ("kursk",), lambda: (("title", "kursk front"),)),
            ),
            rules=(
                RuleNeeds("kursk", ("mail",), digest_s=3600, throttles=(window,)),
                RuleNeeds("surge", ("mail",), volume=True),
            ),
        )
        statements: list[str] = []
        store.db.conn.set_trace_callback(statements.append)
        snapshot = store.snapshot(request)
        store.volume_history({"surge": T0 - timedelta(hours=2)})
        store.db.conn.set_trace_callback(None)
        assert snapshot.known["g1"].id == stored.id and snapshot.story_heads == {stored.id: T0}
        used: set[str] = set()
        for sql in statements:
            if not sql.lstrip().startswith(("SELECT", "WITH")):
                continue
            plan = [r[3] for r in store.db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            for step in plan:
                scanned = re.match(r"SCAN (\w+)", step)
                assert not (scanned and scanned.group(1) in GROWING), (sql, plan)
                used.update(re.findall(r"INDEX (\w+)", step))
        assert {
            "alerts_rule",  # digests of the rule created lately, and which items alerted
            "alerts_pending",  # and its pending digests
            "alerts_channel",  # a channel's recent alerts, for max_alerts
            "_alert_meta_story",  # the live alerts of the stories touched
            "_alert_meta_live",  # a volume rule's last firing
            "matches_rule",  # a volume rule's recent matches
        } <= used, used
        assert used & {"_held_back_open", "_held_back_summary"}  # held back, not summarised


def test_a_batch_of_304s_writes_what_the_same_polls_write_one_by_one(tmp_path: Path) -> None:
    batch, single = Store(tmp_path / "batch.db"), Store(tmp_path / "single.db")
    try:
        for store in (batch, single):
            for n in range(3):
                feed = add_feed(store, f"https://f{n}.example/rss", now=T0)
                poll(store, feed.id, T0, etag='"v1"')  # a first, full poll
        later = T0 + timedelta(minutes=15)
        intents = [
            poll(single, feed_id, later, status=304, etag=etag, duration_ms=feed_id)
            for feed_id, etag in ((1, '"v2"'), (2, None), (3, '"v3"'))
        ]
        assert all(i.is_plain for i in intents)
        batch.apply_many(intents)
        for sql in (
            "SELECT * FROM polls ORDER BY id",
            "SELECT * FROM feeds ORDER BY id",
            "SELECT * FROM _feed_health ORDER BY feed_id",
        ):
            assert rows(batch, sql) == rows(single, sql)
    finally:
        batch.close()
        single.close()


def rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in store.db.execute(sql).fetchall()]


# --- evidence: cut where matching happens, shown at delivery -------------------------------------


def test_an_alert_shows_the_snippets_cut_when_its_item_was_matched(make_world: Any) -> None:
    w = make_world()
    w.ingest("a", "Shelling near Kursk overnight")
    stored = w.rt.store.db.execute("SELECT fields, snippets FROM _match_evidence").fetchall()
    # the title's snippet is shown whole by the summary's, which takes its place
    snippets = ["Report: Shelling near **Kursk** overnight."]
    assert [(r[0], json.loads(r[1])) for r in stored] == [('["title","summary"]', snippets)]
    # the rule changes before delivery: what was matched is still what is shown
    (w.path / "rules" / "r.yaml").write_text(RULES.replace("[Kursk]", "[Belgorod]"))
    w.rt.rules = load_rules([w.path / "rules" / "r.yaml"])
    w.rt.compiled = compile_rules(w.rt.rules)
    assert w.deliver().sent == 2
    body = w.hook.requests[-1].json()
    assert body["items"][0]["snippets"] == snippets
    assert body["items"][0]["terms"] == ["kursk"]


def test_an_alert_queued_before_evidence_was_kept_is_sent_without_snippets(
    make_world: Any,
) -> None:
    w = make_world()
    w.ingest("a", "Shelling near Kursk overnight")
    w.rt.store.db.execute("DELETE FROM _match_evidence")  # as a database before 0010 holds it
    assert w.deliver().sent == 2
    item = w.hook.requests[-1].json()["items"][0]
    assert (item["title"], item["terms"], item["snippets"]) == (
        "Shelling near Kursk overnight",
        ["kursk"],
        [],
    )
    mail = w.smtp.messages[-1].message
    assert mail["Subject"] == "[watcher] kursk: Shelling near Kursk overnight"
