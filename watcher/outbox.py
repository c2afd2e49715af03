"""Write alert rows into the outbox (the ``alerts`` table) for a match; sends nothing.

Called inside the transaction that stores the item and its match, so an alert exists
if and only if the match that caused it does.
"""

from __future__ import annotations

from datetime import datetime

from watcher.runtime import Runtime
from watcher.types import AlertStatus, Rule, StoredItem


def queue_alert(
    rt: Runtime, rule: Rule, channel: str, item: StoredItem, reason: str | None, now: datetime
) -> AlertStatus | None:
    """Write the alert row for one (rule, channel, item); None when nothing was written."""
    store = rt.store
    live = store.live_alert(rule.id, channel, item.story_id)
    if live is not None:
        if item.id in live.item_ids:
            return None  # an item that alerted for a rule never alerts again for it
        if live.status is AlertStatus.PENDING:
            store.add_alert_item(live.id, item.id)
            return None
        reason = f"duplicate of alert {live.id}"
    status = AlertStatus.SUPPRESSED if reason else AlertStatus.PENDING
    store.add_alert(
        rule_id=rule.id,
        channel=channel,
        item_ids=[item.id],
        status=status,
        now=now,
        reason=reason,
        story_id=None if reason else item.story_id,
    )
    return status
