"""Full-text search SQL over ``items_fts``; takes a translated query, never user text.

Ranked by bm25 (a title hit weighs most), then by recency, or by date alone (newest
published, else first seen, first) when asked. The best ``limit`` item ids
are found first; titles and snippets (FTS5 ``highlight()``/``snippet()``) are then
computed for those rows only, so a query matching half the archive stays fast. The
snippet comes from the summary or the content; the title is shown whole.
Matched words in ``title`` and ``snippet`` are wrapped in ``MARK_START``/``MARK_END``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.exceptions import StoreError
from watcher.store import Store
from watcher.store.errors import store_call
from watcher.store.rows import from_text, to_text

MARK_START = "\ue000"  # private-use characters: never in feed text after sanitising
MARK_END = "\ue001"
ELLIPSIS = "…"
SNIPPET_TOKENS = 16
# bm25 weights of title, summary_text, content_text.
WEIGHTS = (10.0, 3.0, 1.0)


@dataclass(frozen=True)
class SearchFilters:
    """What narrows a search besides the query; None means no limit on that side."""

    since: datetime | None = None  # published (else first seen) at or after this
    feeds: tuple[str, ...] = ()  # feed names
    rule_id: str | None = None  # only items this rule matched
    limit: int = 20
    sort: str = "relevance"  # relevance (bm25, ties newest first) | date (newest first)


@dataclass(frozen=True)
class SearchHit:
    id: int
    feed: str
    title: str  # with marks around matched words
    link: str | None
    published_at: datetime | None
    first_seen_at: datetime
    snippet: str  # summary or content fragment, with marks
    rules: tuple[str, ...]  # rules that matched the item
    score: float  # bm25: lower is better


_RANKED = """
SELECT items_fts.rowid AS id, bm25(items_fts, {weights}) AS score
FROM items_fts JOIN items ON items.id = items_fts.rowid
WHERE items_fts MATCH :query {filters}
ORDER BY {order}
LIMIT :limit
"""
SORTS = {
    "relevance": "score, coalesce(items.published_at, items.first_seen_at) DESC, items.id DESC",
    "date": "coalesce(items.published_at, items.first_seen_at) DESC, items.id DESC",
}

_DETAILS = f"""
SELECT items.id, feeds.name AS feed, items.link, items.published_at, items.first_seen_at,
       highlight(items_fts, 0, '{MARK_START}', '{MARK_END}') AS title,
       snippet(items_fts, 1, '{MARK_START}', '{MARK_END}', '{ELLIPSIS}', {SNIPPET_TOKENS})
         AS summary_snippet,
       snippet(items_fts, 2, '{MARK_START}', '{MARK_END}', '{ELLIPSIS}', {SNIPPET_TOKENS})
         AS content_snippet,
       (SELECT json_group_array(DISTINCT rule_id) FROM matches
        WHERE matches.item_id = items.id) AS rules
FROM items_fts JOIN items ON items.id = items_fts.rowid JOIN feeds ON feeds.id = items.feed_id
WHERE items_fts MATCH :query AND items_fts.rowid = :id
"""

_FILTERS = {
    "since": "coalesce(items.published_at, items.first_seen_at) >= :since",
    "feeds": "items.feed_id IN (SELECT id FROM feeds WHERE name IN"
    " (SELECT value FROM json_each(:feeds)))",
    "rule_id": "items.id IN (SELECT item_id FROM matches WHERE rule_id = :rule_id)",
}


@store_call
def search_items(store: Store, fts_query: str, filters: SearchFilters) -> list[SearchHit]:
    """The best items for an FTS5 expression (from ``translate_query``), best first."""
    params = _params(fts_query, filters)
    sql = _RANKED.format(
        weights=", ".join(map(str, WEIGHTS)),
        filters="".join(f" AND {_FILTERS[k]}" for k in _FILTERS if params.get(k) is not None),
        order=SORTS[filters.sort],
    )
    try:
        ranked = store.db.execute(sql, params).fetchall()
        return [_details(store, fts_query, int(row[0]), float(row[1])) for row in ranked]
    except sqlite3.Error as e:
        raise StoreError(f"search failed: {store.path}: {type(e).__name__}: {e}") from e


def _params(fts_query: str, filters: SearchFilters) -> dict[str, Any]:
    return {
        "query": fts_query,
        "limit": filters.limit,
        "since": None if filters.since is None else to_text(filters.since),
        "feeds": json.dumps(list(filters.feeds)) if filters.feeds else None,
        "rule_id": filters.rule_id,
    }


def _details(store: Store, fts_query: str, item_id: int, score: float) -> SearchHit:
    cursor = store.db.execute(_DETAILS, {"query": fts_query, "id": item_id})
    columns = [d[0] for d in cursor.description]
    data = dict(zip(columns, cursor.fetchone(), strict=True))
    return SearchHit(
        id=data["id"],
        feed=data["feed"],
        title=data["title"] or "",
        link=data["link"],
        published_at=from_text(data["published_at"]),
        first_seen_at=from_text(data["first_seen_at"]) or datetime.min,
        snippet=_body_snippet(data["summary_snippet"], data["content_snippet"]),
        rules=_rules(data["rules"]),
        score=score,
    )


def _body_snippet(summary: str | None, content: str | None) -> str:
    """The summary's fragment if it holds a matched word, else the content's, else either."""
    for text in (summary, content):
        if text and MARK_START in text:
            return text
    return summary or content or ""


def _rules(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


@store_call
def feed_names(store: Store, names: Sequence[str]) -> set[str]:
    """The names among ``names`` that are feeds of this database."""
    rows = store.db.execute(
        "SELECT name FROM feeds WHERE name IN (SELECT value FROM json_each(?))",
        [json.dumps(list(names))],
    )
    return {r[0] for r in rows}
