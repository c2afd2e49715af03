"""The outbox's digest lookup: bounded to recent alerts, served by indexes, same answers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests import test_delivery
from tests.test_delivery import NOW, RULES
from watcher.store import Store
from watcher.store.outbox import alert_with_story

make_world = test_delivery.make_world  # the fixture: a project, its receivers and runtime
DIGEST = RULES + "  digest: 1h\n"


def test_the_digest_lookup_reads_only_recent_or_pending_alerts_through_indexes(
    tmp_path: Path,
) -> None:
    with Store(tmp_path / "w.db") as store:
        statements: list[str] = []
        store.db.conn.set_trace_callback(statements.append)
        alert_with_story(store, "kursk", "mail", 3, "digest", NOW - timedelta(hours=1))
        store.db.conn.set_trace_callback(None)
        (sql,) = [s for s in statements if s.startswith("SELECT")]
        plan = [r[3] for r in store.db.execute(f"EXPLAIN QUERY PLAN {sql}")]
        scans = [p for p in plan if p.startswith("SCAN")]
        assert all(p.startswith(("SCAN recent", "SCAN j ")) for p in scans), plan
        assert any("alerts_rule (rule_id=? AND created_at>?)" in p for p in plan), plan
        assert any("alerts_pending (status=? AND rule_id=?)" in p for p in plan), plan
        assert not any("_alert_meta_live" in p for p in plan), plan  # not every live alert


def test_a_copy_after_the_digest_was_sent_is_a_duplicate_even_days_later(make_world: Any) -> None:
    w = make_world(DIGEST)
    w.ingest("a", "Kursk one")
    assert w.deliver(NOW + timedelta(hours=1)).sent == 2
    for day in range(1, 4):  # a digest a day keeps the rule's history growing
        w.ingest("a", f"Kursk day {day}", now=NOW + timedelta(days=day))
        assert w.deliver(NOW + timedelta(days=day, hours=1)).sent == 2
    w.ingest("b", "Kursk day 3", now=NOW + timedelta(days=3, hours=2))  # a copy: same title
    latest = [a for a in w.alerts() if a["channel"] == "hook"][-1]
    assert latest["status"] == "suppressed" and latest["reason"].startswith("duplicate of alert")
    assert w.deliver(NOW + timedelta(days=4)).sent == 0
