"""Datasette plugin: SQL functions that search ``items_fts`` as ``watcher search`` does.

Installed with watcher (entry point ``datasette``: ``watcher``), so any Datasette in the
same environment, ``watcher serve`` included, has them on every connection:

    watcher_query(q)             a rule query (SPEC §4 grammar) as an FTS5 MATCH expression
                                 over the normalised tokens: Straße, 库尔斯克, "north korean";
                                 a bad query fails with "no such column: query_error_..."
    watcher_snippet(text, hl)    the item's own text around the words that ``highlight()``
                                 marked (with chars 57344/57345) in its normalised copy,
                                 matched words as **bold**; NULL when none is marked
    watcher_tokens(text)         text as items_fts holds it (for sqlite3 users: the same)
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from pluggy import HookimplMarker

from watcher.archive.search import SearchQueryError, translate_query
from watcher.store.fts import MARK_END, MARK_START, marked_tokens, snippet_text
from watcher.text import index_form

hookimpl = HookimplMarker("datasette")  # datasette's own marker, typed


def watcher_query(query: Any) -> str:
    """The FTS5 form of a rule query. A bad query becomes an FTS5 expression whose error
    says what is wrong (``no such column: query_error_unbalanced_parenthesis_at_column_4``):
    an exception in an SQL function would only say that the function failed."""
    try:
        return translate_query(str(query or "")).fts
    except SearchQueryError as error:
        words = re.findall(r"[a-z0-9]+", str(error).lower().removeprefix("query: "))
        return "{query_error_" + "_".join(words)[:200] + "} : x"


def watcher_snippet(text: Any, highlighted: Any) -> str | None:
    positions = marked_tokens(str(highlighted or ""))
    if not text or not positions:
        return None
    return snippet_text(str(text), positions).replace(MARK_START, "**").replace(MARK_END, "**")


def watcher_tokens(text: Any) -> str:
    return index_form(str(text or ""))


def register_functions(conn: sqlite3.Connection) -> None:
    """Register the functions on one connection (also for plain sqlite3 in Python)."""
    conn.create_function("watcher_query", 1, watcher_query, deterministic=True)
    conn.create_function("watcher_snippet", 2, watcher_snippet, deterministic=True)
    conn.create_function("watcher_tokens", 1, watcher_tokens, deterministic=True)


@hookimpl
def prepare_connection(conn: sqlite3.Connection) -> None:
    register_functions(conn)
