"""Which rule ids, feed names and alert ids the database knows; reads only, no wording."""

from __future__ import annotations

import json
from collections.abc import Sequence

from watcher.store import Store
from watcher.store.errors import store_call


@store_call
def stored_rule_ids(store: Store) -> set[str]:
    """Every rule id that has matches or alerts (``health`` included once it alerted)."""
    rows = store.db.execute(
        "SELECT DISTINCT rule_id FROM matches UNION SELECT DISTINCT rule_id FROM alerts"
    )
    return {str(r[0]) for r in rows}


@store_call
def stored_feed_names(store: Store) -> set[str]:
    return {str(r[0]) for r in store.db.execute("SELECT name FROM feeds")}


@store_call
def missing_alert_ids(store: Store, ids: Sequence[int]) -> list[int]:
    """The ids among ``ids`` that name no alert, in order."""
    found = {
        int(r[0])
        for r in store.db.execute(
            "SELECT id FROM alerts WHERE id IN (SELECT value FROM json_each(?))",
            [json.dumps(list(ids))],
        )
    }
    return [i for i in dict.fromkeys(ids) if i not in found]
