"""Write alert rows into the outbox (the ``alerts`` table) for a match; sends nothing.

Called inside the transaction that stores the item and its match, so an alert exists
if and only if the match that caused it does. The policy applied, in order:

    backlog / too old / muted     -> a ``suppressed`` row with that reason
    over the feed's limit         -> ``suppressed``, ``over feed limit`` (summed up per
                                     channel by the poll: summary_over_limit)
    volume rule (threshold)       -> one ``threshold`` alert when the count is reached
    the story already alerted     -> added to the pending alert, or ``duplicate of alert N``
    digest                        -> added to the rule's open digest, or a new digest
    max_alerts (rule or channel)  -> ``suppressed`` as throttled; the next alert that is
                                     allowed on the channel carries these items as a summary

The rules are pure, but this module still reads and writes through the store while it
decides (tests/test_layout.py lists it as the one module of ``decide`` that may import the
store); a match's caller hands in the runtime, seen here as an ``AlertContext``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from watcher.decide.policy import (
    MUTED,
    is_muted,
    is_over_limit,
    limits_for,
)
from watcher.decide.threshold import decide_volume, history_start, observe_arming
from watcher.store import Store
from watcher.store import outbox as sql
from watcher.store.feeds import get_feed
from watcher.store.history import volume_matches
from watcher.store.outbox import add_alert, add_alert_item, live_alert
from watcher.store.state import read_arming, read_mutes, save_arming
from watcher.types import (
    OVER_FEED_LIMIT,
    SUMMARY_KIND,
    SUMMARY_RULE_ID,
    Alert,
    AlertStatus,
    ArmState,
    Rule,
    Settings,
    StoredItem,
)


class AlertContext(Protocol):
    """What queueing an alert needs; a poll's or the daemon's Runtime has it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...


def queue_alert(
    rt: AlertContext,
    rule: Rule,
    channel: str,
    item: StoredItem,
    reason: str | None,
    now: datetime,
    *,
    over_limit: bool = False,
) -> AlertStatus | None:
    """Write the alert row for one (rule, channel, item); None when nothing was written.

    ``over_limit``: the feed's poll has queued all the alerts it may on this channel, so a
    match that would alert is recorded as suppressed, ``over feed limit``, instead.
    """
    if reason is None and _muted(rt, rule, item, now):
        reason = MUTED
    if reason is None and over_limit:
        reason = OVER_FEED_LIMIT
    if rule.threshold is not None:
        return _queue_threshold(rt, rule, channel, item, reason, now)
    store = rt.store
    if item.change == "updated" and sql.item_alerted(store, rule.id, channel, item.id):
        return None  # an item that alerted for a rule never alerts again for it
    live = live_alert(store, rule.id, channel, item.story_id)
    if live is not None:
        if item.id in live.item_ids:
            return None
        if live.status is not AlertStatus.SENT:  # pending or failed: still unsent
            add_alert_item(store, live.id, item.id)
            return None
        reason = f"duplicate of alert {live.id}"
    if rule.digest_s and reason is None:
        return _queue_digest(rt, rule, channel, item, now)
    if reason is None:
        reason = _throttled(rt, rule, channel, now)
    return _add(rt, rule, channel, item, reason, now)


def summarise_over_limit(
    rt: AlertContext, feed_id: int, feed_name: str, now: datetime
) -> list[int]:
    """Queue one ``summary`` alert per channel for the matches of the feed this poll held
    over ``poll.max_new_alerts_per_feed``; returns their ids. It lists every item held,
    once, and is sent like any alert (no cap holds it back)."""
    held: dict[str, list[Alert]] = {}
    for alert in sql.over_limit_alerts(rt.store, feed_id, now):
        held.setdefault(alert.channel, []).append(alert)
    ids = []
    for channel, alerts in held.items():
        item_ids = list(dict.fromkeys(i for alert in alerts for i in alert.item_ids))
        reason = f"feed {feed_name}: {len(alerts)} matches over the feed limit"
        ids.append(
            add_alert(
                rt.store,
                rule_id=SUMMARY_RULE_ID,
                channel=channel,
                item_ids=item_ids,
                status=AlertStatus.PENDING,
                now=now,
                reason=reason,  # readable from SQL and `watcher alerts`, as a health alert's
                kind=SUMMARY_KIND,
            )
        )
    return ids


def _add(
    rt: AlertContext, rule: Rule, channel: str, item: StoredItem, reason: str | None, now: datetime
) -> AlertStatus:
    status = AlertStatus.SUPPRESSED if reason else AlertStatus.PENDING
    alert_id = add_alert(
        rt.store,
        rule_id=rule.id,
        channel=channel,
        item_ids=[item.id],
        status=status,
        now=now,
        reason=reason,
        story_id=None if reason else item.story_id,
    )
    if reason == sql.THROTTLED:
        sql.hold_back(rt.store, alert_id, channel)
    if status is AlertStatus.PENDING:
        _summarise_held_back(rt, channel, alert_id)
    return status


def _muted(rt: AlertContext, rule: Rule, item: StoredItem, now: datetime) -> bool:
    mutes = read_mutes(rt.store)
    if not mutes:
        return False
    return is_muted(mutes, rule.id, get_feed(rt.store, item.feed_id).name, now)


def _throttled(rt: AlertContext, rule: Rule, channel: str, now: datetime) -> str | None:
    """``throttled by max_alerts`` when a rule or channel cap is used up, else None."""
    for limit, per_rule in limits_for(rule, rt.settings, channel):
        since = now - timedelta(seconds=limit.per_s)
        queued = sql.count_alerts_since(rt.store, channel, since, rule.id if per_rule else None)
        if is_over_limit(limit, queued):
            return sql.THROTTLED
    return None


def _summarise_held_back(rt: AlertContext, channel: str, alert_id: int) -> None:
    """Attach the channel's throttled, not yet summarised alerts to an allowed alert."""
    held = [a.id for a in sql.held_back(rt.store, channel) if a.id != alert_id]
    sql.mark_summarised(rt.store, held, alert_id)


def _queue_digest(
    rt: AlertContext, rule: Rule, channel: str, item: StoredItem, now: datetime
) -> AlertStatus | None:
    """Add the item to the rule's open digest on this channel, or open a new one.

    A digest that holds the story takes the copy while unsent, or makes it a duplicate once
    sent. Only digests created at most one interval before the story began can hold it, so
    older ones are not searched.
    """
    store = rt.store
    assert rule.digest_s is not None
    began = min(now, sql.story_started_at(store, item.story_id) or now)
    since = began - timedelta(seconds=rule.digest_s)
    sent = sql.alert_with_story(store, rule.id, channel, item.story_id, "digest", since)
    if sent is not None and item.id in sent.item_ids:
        return None
    if sent is not None and sent.status is AlertStatus.SENT:
        return _add(rt, rule, channel, item, f"duplicate of alert {sent.id}", now)
    digest = sent or sql.open_digest(store, rule.id, channel, now)
    if digest is not None:
        add_alert_item(store, digest.id, item.id)
        return None
    throttled = _throttled(rt, rule, channel, now)
    if throttled:
        return _add(rt, rule, channel, item, throttled, now)
    due = now + timedelta(seconds=rule.digest_s)
    alert_id = add_alert(
        store,
        rule_id=rule.id,
        channel=channel,
        item_ids=[item.id],
        status=AlertStatus.PENDING,
        now=now,
        kind="digest",
        next_attempt_at=due,
    )
    sql.set_retry_from(store, alert_id, due)
    _summarise_held_back(rt, channel, alert_id)
    return AlertStatus.PENDING


def _queue_threshold(
    rt: AlertContext, rule: Rule, channel: str, item: StoredItem, reason: str | None, now: datetime
) -> AlertStatus | None:
    """A volume rule alerts once when its count is reached within the window.

    It fires again only after re-arming: the window held fewer than count at some moment
    after the last firing (threshold.decide_volume). Every match is looked at, suppressed
    or not, so the re-arming kept in ``_volume_arming`` is current and the read stays two windows.
    """
    threshold = rule.threshold
    assert threshold is not None
    store = rt.store
    last = sql.last_alert_of_kind(store, rule.id, channel, "threshold")
    state = _arm_state(rt, rule.id, channel, last.created_at if last is not None else None)
    history = volume_matches(store, rule.id, history_start(threshold, state, now))
    if reason is not None or _adds_to_pending(rt, last, item, threshold.within_s, now):
        save_arming(store, rule.id, channel, observe_arming(threshold, history, state, now)[0])
        return _add(rt, rule, channel, item, reason, now) if reason is not None else None
    item_ids, state = decide_volume(threshold, history, state, now)
    save_arming(store, rule.id, channel, state)
    if item_ids is None:
        return None
    add_alert(
        store,
        rule_id=rule.id,
        channel=channel,
        item_ids=list(item_ids),
        status=AlertStatus.PENDING,
        now=now,
        kind="threshold",
    )
    return AlertStatus.PENDING


def _adds_to_pending(
    rt: AlertContext, last: Alert | None, item: StoredItem, within_s: int, now: datetime
) -> bool:
    """Add the item to the volume alert fired within the window and still unsent, if any."""
    if last is None or last.status is not AlertStatus.PENDING:
        return False
    if last.created_at <= now - timedelta(seconds=within_s):
        return False
    if item.id not in last.item_ids:  # unsent yet: it carries every contributing item
        add_alert_item(rt.store, last.id, item.id)
    return True


def _arm_state(rt: AlertContext, rule_id: str, channel: str, fired: datetime | None) -> ArmState:
    """The saved re-arming progress, if it is about the rule's last firing on the channel."""
    saved = read_arming(rt.store, rule_id, channel)
    if fired is None or saved is None or saved.fired != fired:
        return ArmState(fired)
    return saved
