"""What a channel shows about one alert (an AlertMessage), read back from the database.

A match alert shows its item, later copies of the story as "also reported by", and the
items that ``max_alerts`` held back; a digest or volume alert one entry per story; a health
alert one pseudo-item naming the feed; a summary the first items a feed's poll held over
its limit, and how many. Sends nothing; the SQL lives in the store.

The terms and snippets of an item are those stored with its match when it was matched
(``_match_evidence``): delivery renders what was stored and never runs the matcher. An
alert queued before evidence was kept shows its items without snippets.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from watcher.store import Store
from watcher.store import outbox as sql
from watcher.store.feeds import get_feed
from watcher.store.matches import match_evidence, match_fields, match_terms
from watcher.store.outbox import alert_kind
from watcher.store.state import health_event
from watcher.types import (
    HEALTH_KIND,
    HEALTH_RULE_ID,
    OVER_FEED_LIMIT,
    SEVERITIES,
    SUMMARY_KIND,
    SUMMARY_RULE_ID,
    Alert,
    AlertItem,
    AlertMessage,
    AlsoReported,
    HealthEvent,
    HealthKind,
    Rule,
    Settings,
    StoredItem,
)


class MessageContext(Protocol):
    """What building a message needs; a poll's or the daemon's Runtime has all of it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def rules_by_id(self) -> Mapping[str, Rule]: ...


def build_message(rt: MessageContext, alert: Alert) -> AlertMessage:
    """Everything a channel shows about one alert, read back from the database.

    A match alert shows its item, later copies of the story as "also reported by", and
    the items that ``max_alerts`` held back since the last alert on the channel. A digest
    or volume alert shows one entry per story.
    """
    kind = alert_kind(rt.store, alert.id)
    if kind == "health":  # about a feed, not an item: see decide/health.py
        return health_alert_message(rt.store, alert, rt.settings.display_timezone)
    if kind == SUMMARY_KIND:  # about a feed's poll: its matches over the limit
        return summary_message(rt, alert)
    rule = rt.rules_by_id.get(alert.rule_id)
    items = [rt.store.item(i) for i in alert.item_ids]
    stories = _group_by_story(items) if kind != "match" else ([items] if items else [])
    entries = [_story_entry(rt, alert.rule_id, story) for story in stories]
    held = _held_back_entries(rt, alert)
    first = entries[0].title if entries else ""
    window = rule.threshold.within_s if rule and rule.threshold else 0
    subject = alert_subject(kind, alert.rule_id, first, len(entries), window)
    if held:
        subject += f" (+{len(held)} held back by max_alerts)"
    return AlertMessage(
        alert_id=alert.id,
        kind=kind,
        created_at=alert.created_at,
        rule_id=alert.rule_id,
        rule_description=rule.description if rule else "",
        severity=rule.severity if rule else "medium",
        items=tuple(entries),
        subject=subject,
        display_timezone=rt.settings.display_timezone,
        held_back=tuple(held),
    )


def _group_by_story(items: list[StoredItem]) -> list[list[StoredItem]]:
    """Items grouped by story, stories in the order of their first item."""
    groups: dict[int, list[StoredItem]] = {}
    for item in items:
        groups.setdefault(item.story_id, []).append(item)
    return list(groups.values())


def _story_entry(rt: MessageContext, rule_id: str, story: list[StoredItem]) -> AlertItem:
    first, copies = story[0], story[1:]
    also = tuple(AlsoReported(feed=get_feed(rt.store, c.feed_id).name, link=c.link) for c in copies)
    return _alert_item(rt, rule_id, first, also)


def _held_back_entries(rt: MessageContext, alert: Alert) -> list[AlertItem]:
    """The items of throttled alerts this alert summarises, one entry each."""
    entries: list[AlertItem] = []
    seen: set[int] = set(alert.item_ids)
    for held in sql.summarised_in(rt.store, alert.id):
        for item_id in held.item_ids:
            if item_id not in seen:
                seen.add(item_id)
                entries.append(_alert_item(rt, held.rule_id, rt.store.item(item_id), ()))
    return entries


def _alert_item(
    rt: MessageContext, rule_id: str, item: StoredItem, also: tuple[AlsoReported, ...]
) -> AlertItem:
    feed = get_feed(rt.store, item.feed_id)
    terms, snippets = match_evidence(rt.store, item.id, rule_id)
    return AlertItem(
        id=item.id,
        title=item.title,
        link=item.link,
        feed=feed.name,
        published_at=item.published_at,
        terms=terms,
        snippets=snippets,
        also_reported_by=also,
        matched_in=match_fields(rt.store, item.id, rule_id),
    )


# --- summaries of a feed's matches over its limit --------------------------------------------

SUMMARY_TITLES = 20  # items a summary lists; it counts the others


def summary_message(rt: MessageContext, alert: Alert) -> AlertMessage:
    """The message for a ``summary`` alert: how many of a feed's matches one poll held over
    ``poll.max_new_alerts_per_feed`` on this channel, and the first of their items."""
    items = [rt.store.item(i) for i in alert.item_ids[:SUMMARY_TITLES]]
    feed = get_feed(rt.store, items[0].feed_id).name if items else "unknown"
    held = (
        sql.over_limit_alerts(rt.store, items[0].feed_id, alert.created_at, alert.channel)
        if items
        else []
    )
    rule_of = {i: a.rule_id for a in reversed(held) for i in a.item_ids}  # the first rule
    rules = [rt.rules_by_id[a.rule_id] for a in held if a.rule_id in rt.rules_by_id]
    limit = rt.settings.poll.max_new_alerts_per_feed
    count = f"{len(held):,} match{'' if len(held) == 1 else 'es'}"
    return AlertMessage(
        alert_id=alert.id,
        kind=SUMMARY_KIND,
        created_at=alert.created_at,
        rule_id=SUMMARY_RULE_ID,
        rule_description=(
            f"{count} of feed {feed} in one poll came after the first {limit:,} alerts"
            " (poll.max_new_alerts_per_feed): recorded as suppressed, reason"
            f" '{OVER_FEED_LIMIT}', and not sent one by one"
        ),
        severity=max((r.severity for r in rules), key=SEVERITIES.index, default="medium"),
        items=tuple(_listed_entry(rt, item, rule_of.get(item.id, "")) for item in items),
        subject=f"[watcher] {SUMMARY_RULE_ID}: {feed}: {count} over the feed limit",
        display_timezone=rt.settings.display_timezone,
        omitted=len(alert.item_ids) - len(items),
    )


def _listed_entry(rt: MessageContext, item: StoredItem, rule_id: str) -> AlertItem:
    """An item as a summary lists it: title, link, feed, date and the terms it matched."""
    return AlertItem(
        id=item.id,
        title=item.title,
        link=item.link,
        feed=get_feed(rt.store, item.feed_id).name,
        published_at=item.published_at,
        terms=match_terms(rt.store, item.id, rule_id) if rule_id else (),
        snippets=(),
    )


def sample_message(channel: str, now: datetime, display_timezone: str = "UTC") -> AlertMessage:
    """A sample alert for ``watcher channels test``: clearly a test, never stored.

    Its id is negative (from the clock), so it never collides with a stored alert and
    two tests never share a Message-ID.
    """
    item = AlertItem(
        id=0,
        title="watcher test alert",
        link=None,
        feed="watcher",
        published_at=now,
        terms=("test",),
        snippets=(f"This is a **test** of the channel {channel}.",),
    )
    return AlertMessage(
        alert_id=-int(now.timestamp()),
        kind="match",
        created_at=now,
        rule_id="test",
        rule_description="a test alert sent by `watcher channels test`",
        severity="info",
        items=(item,),
        subject=f"[watcher] test: channel {channel}",
        display_timezone=display_timezone,
    )


# --- subjects ------------------------------------------------------------------------------


def format_window(seconds: int) -> str:
    """``2h``, ``90m``, ``1d``: the largest unit that divides the window."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def alert_subject(kind: str, rule_id: str, title: str, count: int, window_s: int = 0) -> str:
    """The SPEC §5 subject of an alert of ``kind``."""
    if kind == "digest":
        return f"[watcher] {rule_id}: {count} new item{'' if count == 1 else 's'}"
    if kind == "threshold":
        items = f"{count} item{'' if count == 1 else 's'}"
        return f"[watcher] {rule_id}: {items} in {format_window(window_s)}"
    return f"[watcher] {rule_id}: {title}"


# --- health alerts -------------------------------------------------------------------------

_SEVERITY = {HealthKind.FAILING: "high", HealthKind.RECOVERED: "info", HealthKind.QUIET: "low"}


def health_alert_message(store: Store, alert: Alert, display_timezone: str) -> AlertMessage:
    """The message for a health alert, from the event saved when it was queued."""
    event = health_event(store, alert.id) or HealthEvent(
        feed="unknown", kind=HealthKind.FAILING, detail=alert.reason or ""
    )
    return health_message(alert.id, alert.created_at, event, display_timezone)


def health_message(
    alert_id: int, created_at: datetime, event: HealthEvent, display_timezone: str = "UTC"
) -> AlertMessage:
    """The message channels render for a health alert: one pseudo-item (id 0) for the feed."""
    item = AlertItem(
        id=0,
        title=f"feed {event.feed} is {_phrase(event.kind)}",
        link=event.url or None,
        feed=event.feed,
        published_at=created_at,
        terms=(),
        snippets=(event.detail,),
    )
    return AlertMessage(
        alert_id=alert_id,
        kind=HEALTH_KIND,
        created_at=created_at,
        rule_id=HEALTH_RULE_ID,
        rule_description=f"feed {event.feed} is {_phrase(event.kind)}: {event.detail}",
        severity=_SEVERITY[event.kind],
        items=(item,),
        subject=f"[watcher] health: {event.feed}: {event.kind}",
        display_timezone=display_timezone,
    )


def _phrase(kind: HealthKind) -> str:
    return {"failing": "failing", "recovered": "back", "quiet": "quiet"}[kind.value]
