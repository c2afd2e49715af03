"""Full-text search SQL over ``items_fts``; takes a translated query, never user text.

Ranked by bm25 (a title hit weighs most), then by recency, or by date alone (newest
published, else first seen, first) when asked. The best ``limit`` item ids
are found first; titles and snippets are then made for those rows only, so a query
matching half the archive stays fast. ``items_fts`` holds normalised tokens, so the marks
that FTS5's ``highlight()`` puts there are carried over to the same tokens of the item's
own text: the title is shown whole, the snippet is cut from the summary, the content or
the article text, whichever holds a matched word first. Matched words in ``title`` and
``snippet`` are wrapped in ``MARK_START``/``MARK_END``."""

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
from watcher.text import tokenize_spans

MARK_START = "\ue000"  # private-use characters: never in feed text after sanitising
MARK_END = "\ue001"
ELLIPSIS = "…"
SNIPPET_TOKENS = 16
# bm25 weights of title, summary_text, content_text, article_text.
WEIGHTS = (10.0, 3.0, 1.0, 1.0)
SNIPPET_FIELDS = ("summary_text", "content_text", "article_text")  # in this order


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
    snippet: str  # summary, content or article fragment, with marks
    rules: tuple[str, ...]  # rules that matched the item
    score: float  # bm25: lower is better
    language: str | None = None  # the item's declared language (BCP 47, lowercase)


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
       items.language, items.title, items.summary_text, items.content_text, items.article_text,
       highlight(items_fts, 0, '{MARK_START}', '{MARK_END}') AS title_marks,
       highlight(items_fts, 1, '{MARK_START}', '{MARK_END}') AS summary_text_marks,
       highlight(items_fts, 2, '{MARK_START}', '{MARK_END}') AS content_text_marks,
       highlight(items_fts, 3, '{MARK_START}', '{MARK_END}') AS article_text_marks,
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
        hits = [_details(store, fts_query, int(row[0]), float(row[1])) for row in ranked]
        return [hit for hit in hits if hit is not None]
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


def _details(store: Store, fts_query: str, item_id: int, score: float) -> SearchHit | None:
    """The hit's fields and marks; None when the item went in between (pruned)."""
    cursor = store.db.execute(_DETAILS, {"query": fts_query, "id": item_id})
    columns = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    if row is None:
        return None
    data = dict(zip(columns, row, strict=True))
    title = data["title"] or ""
    return SearchHit(
        id=data["id"],
        feed=data["feed"],
        title=mark_text(title, marked_tokens(data["title_marks"] or "")),
        link=data["link"],
        published_at=from_text(data["published_at"]),
        first_seen_at=from_text(data["first_seen_at"]) or datetime.min,
        snippet=_body_snippet(data),
        rules=_rules(data["rules"]),
        score=score,
        language=data["language"],
    )


def _body_snippet(data: dict[str, Any]) -> str:
    """A fragment of the first of summary, content and article holding a matched word,
    else the start of the first that has text."""
    for field in SNIPPET_FIELDS:
        text = data[field] or ""
        positions = marked_tokens(data[f"{field}_marks"] or "")
        if text and positions:
            return snippet_text(text, positions)
    for field in SNIPPET_FIELDS:
        if data[field]:
            return snippet_text(data[field], set())
    return ""


# --- marks on the original text ----------------------------------------------------------


def marked_tokens(highlighted: str) -> set[int]:
    """The positions of the tokens ``highlight()`` marked in a normalised field (tokens
    separated by single spaces; a mark may hold several: a phrase)."""
    positions: set[int] = set()
    inside = False
    for index, word in enumerate(highlighted.split(" ")):
        if word.startswith(MARK_START):
            inside = True
        if inside:
            positions.add(index)
        if word.endswith(MARK_END):
            inside = False
    return positions


def _first_spans(text: str, count: int) -> list[tuple[str, int, int]]:
    """The first ``count`` tokens of ``text`` with their offsets (all when fewer), from as
    short a prefix as gives them: a long article is not tokenised to its end."""
    length = 64 * (count + 16)
    while length < len(text):
        tokens = tokenize_spans(text[:length])
        if len(tokens) > count:  # the prefix's last token may be cut off; the others are whole
            return tokens[:count]
        length *= 4
    return tokenize_spans(text)


def _spans(
    tokens: list[tuple[str, int, int]], positions: set[int], offset: int = 0
) -> list[tuple[int, int]]:
    """The character spans of the tokens at ``positions`` (``tokens[i]`` is token
    ``offset + i``), adjacent ones joined into one (``**库尔斯克**``, a phrase)."""
    spans: list[tuple[int, int]] = []
    last = -2
    for index, (_, start, end) in enumerate(tokens, start=offset):
        if index in positions:
            if index == last + 1 and spans:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
            last = index
    return spans


def _insert_marks(
    text: str, spans: list[tuple[int, int]], lo: int = 0, hi: int | None = None
) -> str:
    """``text[lo:hi]`` with each span between MARK_START and MARK_END."""
    hi = len(text) if hi is None else hi
    parts: list[str] = []
    at = lo
    for start, end in spans:
        parts += [text[at:start], MARK_START, text[start:end], MARK_END]
        at = end
    parts.append(text[at:hi])
    return "".join(parts)


def mark_text(text: str, positions: set[int]) -> str:
    """``text`` with the tokens at ``positions`` between MARK_START and MARK_END."""
    return _insert_marks(text, _spans(tokenize_spans(text), positions))


def snippet_text(text: str, positions: set[int]) -> str:
    """About SNIPPET_TOKENS tokens of ``text`` around its first marked token, as written,
    with the marks, and an ellipsis where text was cut."""
    first = min(positions) if positions else 0
    begin = max(0, first - SNIPPET_TOKENS // 4)
    tokens = _first_spans(text, begin + SNIPPET_TOKENS)[begin:]
    if not tokens:
        return ""
    lo, hi = tokens[0][1], tokens[-1][2]
    body = _insert_marks(text, _spans(tokens, positions, begin), lo, hi)
    cut_before = ELLIPSIS if lo > 0 else ""
    cut_after = ELLIPSIS if text[hi:].strip() else ""
    return cut_before + " ".join(body.split()) + cut_after


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
