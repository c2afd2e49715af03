"""Deliver the outbox: send due alerts through their channels, then mark sent, retry or failed.

An alert is only ever marked ``sent`` after its channel accepted it; a failure is
retried with backoff (policy.next_attempt) or marked ``failed``, never dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from watcher.alerts.render import make_snippets
from watcher.exceptions import DeliveryError
from watcher.pipeline import match_input
from watcher.policy import next_attempt
from watcher.rules.match import match_item
from watcher.runtime import Runtime
from watcher.types import Alert, AlertItem, AlertMessage, AlsoReported, FeedState, StoredItem

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    bugs: int = 0


def deliver_pending(rt: Runtime, now: datetime) -> DeliveryReport:
    """Send every due alert; a failure is retried later or marked failed, never dropped."""
    report = DeliveryReport()
    for alert in rt.store.due_alerts(now):
        channel = rt.channels.get(alert.channel)
        if channel is None:
            rt.store.mark_failed(alert.id, f"channel {alert.channel} is not configured", now)
            report.failed += 1
            continue
        try:
            message = build_message(rt, alert)
            channel.send(message)
        except DeliveryError as e:
            _after_failure(rt, alert, e, now, report)
            continue
        except Exception as e:  # a bug: keep the alert for a retry, report exit 3
            log.exception("internal error delivering alert=%d channel=%s", alert.id, alert.channel)
            report.bugs += 1
            _after_failure(rt, alert, DeliveryError(alert.channel, alert.id, repr(e)), now, report)
            continue
        rt.store.mark_sent(alert.id, now)
        report.sent += 1
        log.info("sent alert=%d rule=%s channel=%s", alert.id, alert.rule_id, alert.channel)
    return report


def _after_failure(
    rt: Runtime, alert: Alert, error: DeliveryError, now: datetime, report: DeliveryReport
) -> None:
    retry_at = next_attempt(rt.settings, alert, now)
    if error.permanent or retry_at is None:
        rt.store.mark_failed(alert.id, error.message, now)
        report.failed += 1
        log.error(
            "alert failed alert=%d channel=%s error=%r", alert.id, alert.channel, error.message
        )
    else:
        rt.store.mark_retry(alert.id, error.message, retry_at, now)
        report.retrying += 1
        log.warning(
            "alert retry alert=%d channel=%s at=%s error=%r",
            alert.id,
            alert.channel,
            retry_at.isoformat(),
            error.message,
        )


def build_message(rt: Runtime, alert: Alert) -> AlertMessage:
    """Everything a channel shows about one alert, read back from the database."""
    rule = rt.rules_by_id.get(alert.rule_id)
    items = [rt.store.item(i) for i in alert.item_ids]
    feeds = {f.id: f for f in (rt.store.feed(i.feed_id) for i in items)}
    first, copies = items[0], items[1:]
    also = tuple(AlsoReported(feed=feeds[c.feed_id].name, link=c.link) for c in copies)
    main = _alert_item(rt, alert.rule_id, first, feeds[first.feed_id], also)
    return AlertMessage(
        alert_id=alert.id,
        kind="match",
        created_at=alert.created_at,
        rule_id=alert.rule_id,
        rule_description=rule.description if rule else "",
        severity=rule.severity if rule else "medium",
        items=(main,),
        subject=f"[watcher] {alert.rule_id}: {first.title}",
        display_timezone=rt.settings.display_timezone,
    )


def _alert_item(
    rt: Runtime, rule_id: str, item: StoredItem, feed: FeedState, also: tuple[AlsoReported, ...]
) -> AlertItem:
    source = match_input(item, feed)
    matches = [m for m in match_item(rt.compiled, source) if m.rule_id == rule_id]
    hits = matches[0].hits if matches else ()
    texts = {(name, i): v for name, values in source.fields.items() for i, v in enumerate(values)}
    return AlertItem(
        id=item.id,
        title=item.title,
        link=item.link,
        feed=feed.name,
        published_at=item.published_at,
        terms=rt.store.match_terms(item.id, rule_id),
        snippets=make_snippets(texts, hits),
        also_reported_by=also,
    )
