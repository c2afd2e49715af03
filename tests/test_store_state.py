"""The internal state tables: migration 0009 carries every old ``_state`` row over, and
the store functions read back what they wrote."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlite_utils import Database

from watcher.store import Store, schema
from watcher.store import outbox as sql
from watcher.store.feeds import add_feed
from watcher.store.outbox import get_alert
from watcher.store.state import (
    add_health_alert,
    delete_mutes,
    health_event,
    held_feed_ids,
    instance_id,
    mark_quiet_reported,
    quiet_reported_for,
    read_arming,
    read_heartbeat,
    read_mutes,
    retry_hold,
    save_arming,
    save_mute,
    set_retry_hold,
)
from watcher.types import AlertStatus, ArmState, HealthEvent, HealthKind, Mute

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
T = "2025-03-01T12:00:00Z"
LATER = "2025-03-01T14:00:00Z"
INTERNAL = ("_instance", "_mutes", "_volume_arming", "_held_back", "_feed_health")

STATE_ROWS = {
    "instance_id": "0123456789abcdef0123456789abcdef",
    "heartbeat": {"at": T, "pid": 4242},
    "mutes": {"rule:kursk": LATER, "feed:wire": LATER, "odd": LATER},
    "threshold_arming:surge:mail": {"fired": T, "checked": LATER, "armed": True},
    "threshold_arming:a:b:hook": {"fired": T, "checked": None, "armed": False},
    "retry_after:1": LATER,
    "retry_after:99": LATER,  # a feed deleted since: dropped
    "quiet:2": T,
    "health_alert:5": {"feed": "wire", "kind": "quiet", "detail": "no news", "url": "u"},
    "health_alert:77": {"feed": "gone", "kind": "failing", "detail": "", "url": ""},
    "retry_after:oops": LATER,  # not a feed id: dropped
}
ALERTS = [  # id, rule, channel, status, reason
    (1, "kursk", "mail", "sent", None),
    (2, "kursk", "mail", "suppressed", "throttled by max_alerts; summarised in alert 1"),
    (3, "kursk", "mail", "suppressed", "throttled by max_alerts"),
    (4, "a:b", "hook", "sent", None),
    (5, "health", "mail", "pending", "feed wire: quiet"),
    (6, "kursk", "mail", "suppressed", "muted"),
]


def make_version_8(path: Path) -> None:
    """A database as release 0008 left it, with ``_state`` rows of every kind."""
    db = Database(path)
    schema.MIGRATIONS.apply(db, stop_before="0009_state_tables")
    db.execute(
        "INSERT INTO feeds (id, url, name) VALUES"
        " (1, 'https://a.example.org/f', 'wire'), (2, 'https://b.example.org/f', 'quiet')"
    )
    for alert_id, rule, channel, status, reason in ALERTS:
        db.execute(
            "INSERT INTO alerts (id, rule_id, channel, status, reason, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [alert_id, rule, channel, status, reason, T],
        )
    db.execute(
        "INSERT INTO _alert_meta (alert_id, kind, rule_id, channel, live)"
        " VALUES (4, 'threshold', 'a:b', 'hook', 1)"
    )
    for key, value in STATE_ROWS.items():
        db.execute("INSERT INTO _state (key, value) VALUES (?, ?)", [key, json.dumps(value)])
    db.execute("INSERT INTO _state (key, value) VALUES ('quiet:1', 'not json')")
    db.close()


def test_the_migration_carries_every_state_row_over_and_drops_state(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    make_version_8(path)
    with Store(path) as store:
        assert "_state" not in store.db.table_names()
        assert set(INTERNAL) <= set(store.db.table_names())
        assert instance_id(store) == STATE_ROWS["instance_id"]
        assert read_heartbeat(store) == NOW
        until = NOW + timedelta(hours=2)
        assert read_mutes(store) == [Mute("feed", "wire", until), Mute("rule", "kursk", until)]
        assert read_arming(store, "surge", "mail") == ArmState(NOW, until, True)
        # "a:b:hook" splits where a volume alert names the rule and channel
        assert read_arming(store, "a:b", "hook") == ArmState(NOW, None, False)
        assert retry_hold(store, 1) == until and retry_hold(store, 2) is None
        assert held_feed_ids(store, NOW) == {1}
        assert quiet_reported_for(store, 2) == NOW and quiet_reported_for(store, 1) is None
        assert health_event(store, 5) == HealthEvent("wire", HealthKind.QUIET, "no news", "u")
        assert health_event(store, 77) is None  # no such alert
        # held back by max_alerts: alert 3 still waits, alert 2 was carried by alert 1
        open_ = "SELECT alert_id FROM _held_back WHERE channel = 'mail' AND summarised_in IS NULL"
        assert [r[0] for r in store.db.execute(open_)] == [3]
        assert [a.id for a in sql.summarised_in(store, 1)] == [2]
        reasons = [r[0] for r in store.db.execute("SELECT reason FROM alerts ORDER BY id")]
        assert reasons == [a[4] for a in ALERTS]  # what users read is unchanged
        counts = {t: store.db[t].count for t in (*INTERNAL, "_health_alerts")}
    assert counts == {
        "_instance": 1,
        "_mutes": 2,
        "_volume_arming": 2,
        "_held_back": 2,
        "_feed_health": 2,
        "_health_alerts": 1,
    }


def test_a_new_database_has_an_instance_row_and_no_state_table(tmp_path: Path) -> None:
    with Store(tmp_path / "w.db") as store:
        assert "_state" not in store.db.table_names()
        assert len(instance_id(store)) == 32
        assert read_heartbeat(store) is None


def test_state_functions_read_back_what_they_wrote(tmp_path: Path) -> None:
    with Store(tmp_path / "w.db") as store:
        feed = add_feed(store, "https://example.org/f", now=NOW)
        hour = timedelta(hours=1)
        save_mute(store, Mute("rule", "kursk", NOW + hour), NOW)
        save_mute(store, Mute("feed", "wire", NOW + hour), NOW)
        save_mute(store, Mute("rule", "kursk", NOW + 3 * hour), NOW)  # extended
        assert read_mutes(store) == [
            Mute("feed", "wire", NOW + hour),
            Mute("rule", "kursk", NOW + 3 * hour),
        ]
        save_mute(store, Mute("rule", "other", NOW + 4 * hour), NOW + 2 * hour)  # wire ended
        assert [m.key for m in read_mutes(store)] == ["rule:kursk", "rule:other"]
        delete_mutes(store, [Mute("rule", "kursk", NOW)])
        assert [m.key for m in read_mutes(store)] == ["rule:other"]

        assert read_arming(store, "surge", "mail") is None
        save_arming(store, "surge", "mail", ArmState(NOW))
        save_arming(store, "surge", "mail", ArmState(NOW, NOW + hour, True))
        assert read_arming(store, "surge", "mail") == ArmState(NOW, NOW + hour, True)

        set_retry_hold(store, feed.id, NOW + hour)
        mark_quiet_reported(store, feed.id, NOW)
        assert held_feed_ids(store, NOW) == {feed.id}
        assert held_feed_ids(store, NOW + hour) == set()
        set_retry_hold(store, feed.id, None)
        assert retry_hold(store, feed.id) is None
        assert quiet_reported_for(store, feed.id) == NOW

        event = HealthEvent("f", HealthKind.FAILING, "HTTP 500", "https://example.org/f")
        ids = add_health_alert(store, event, ["mail", "hook"], NOW)
        assert [health_event(store, i) for i in ids] == [event, event]
        assert {get_alert(store, i).status for i in ids} == {AlertStatus.PENDING}
