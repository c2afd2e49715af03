"""Digests over a growing history: a later copy of a sent digest's story is a duplicate."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests import test_delivery
from tests.test_delivery import NOW, RULES

make_world = test_delivery.make_world  # the fixture: a project, its receivers and runtime
DIGEST = RULES + "  digest: 1h\n"


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
