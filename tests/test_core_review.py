"""Outbox and story corner cases found in review, through real receivers and a real database.

Each test drives the pipeline's store stage and ``deliver_pending`` as the daemon does and
asserts on what the receivers got and on the ``alerts`` rows a user reads.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests import test_delivery
from tests.receivers import SmtpReceiver
from tests.test_delivery import NOW, RULES
from watcher.store import Store
from watcher.store.outbox import requeue_failed, summarised_in

make_world = test_delivery.make_world  # the fixture: a project, its receivers and runtime


def test_a_copy_of_a_failed_alert_joins_it_and_is_reported_when_retried(make_world: Any) -> None:
    w = make_world()
    w.hook.statuses = [400]  # the hook refuses the first alert for good
    w.ingest("a", "Kursk bridge hit")
    assert w.deliver().failed == 1
    w.ingest("b", "Kursk bridge hit", now=NOW + timedelta(minutes=5))
    hook = [a for a in w.alerts() if a["channel"] == "hook"]
    assert [a["status"] for a in hook] == ["failed"]  # unsent: the copy joins it
    requeue_failed(w.rt.store, None, NOW + timedelta(minutes=10))
    assert w.deliver(NOW + timedelta(minutes=10)).sent == 1
    body = w.hook.requests[-1].json()
    assert body["items"][0]["also_reported_by"][0]["feed"] == "b"


def test_a_throttled_item_that_changes_later_does_not_alert_again(make_world: Any) -> None:
    w = make_world(RULES + "  max_alerts: {count: 1, per: 1h}\n")
    w.ingest("a", "Kursk one", "Kursk two")  # the second is held back
    w.deliver()
    w.ingest("b", "Kursk later", now=NOW + timedelta(hours=2))  # carries the held-back one
    w.deliver(NOW + timedelta(hours=2))
    sent = len(w.hook.requests)
    assert [i["title"] for i in w.hook.requests[-1].json()["held_back"]] == ["Kursk two"]
    # the held-back item is edited by its publisher: matched again, never a second alert
    w.seq[0] = 1
    w.ingest(
        "a", "Kursk two (updated)", now=NOW + timedelta(hours=4), link="https://a.example.org/2"
    )
    assert w.deliver(NOW + timedelta(hours=4)).sent == 0
    assert len(w.hook.requests) == sent


def test_the_outbox_lookups_made_for_each_new_alert_use_an_index(tmp_path: Path) -> None:
    """The alerts table only grows; what every alert's message asks must not read all of it
    (what a poll reads is checked in test_store_snapshot.py)."""
    with Store(tmp_path / "w.db") as store:
        asked = {  # what each lookup must narrow by, through an index
            "_held_back_summary (summarised_in=?)": lambda: summarised_in(store, 7),
        }
        plans: dict[str, list[str]] = {}
        store.db.conn.set_trace_callback(lambda sql: plans[name].append(sql))
        for name, ask in asked.items():
            plans[name] = []
            ask()
        store.db.conn.set_trace_callback(None)
        for narrowed_by, statements in plans.items():
            for sql in (s for s in statements if s.startswith("SELECT")):
                plan = " ".join(r[3] for r in store.db.execute(f"EXPLAIN QUERY PLAN {sql}"))
                assert "SCAN" not in plan and narrowed_by in plan, plan


def test_an_alert_first_tried_a_day_late_still_gets_its_retries(make_world: Any) -> None:
    """Down over a weekend: the first attempt after the restart meets a mail server that
    is briefly down; the alert is retried, not failed after that single attempt."""
    later = SmtpReceiver()  # its port is chosen now; it starts listening later
    w = make_world(smtp=later)
    w.ingest("a", "Kursk bridge hit")
    back = NOW + timedelta(hours=60)
    report = w.deliver(back)
    assert (report.sent, report.retrying, report.failed) == (1, 1, 0)
    mail = next(a for a in w.alerts() if a["channel"] == "mail")
    assert mail["status"] == "pending"
    with later:
        assert w.deliver(back + timedelta(minutes=1)).sent == 1
    assert [m.message["Subject"] for m in later.messages] == ["[watcher] kursk: Kursk bridge hit"]
