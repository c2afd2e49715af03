"""Conversions between database rows and the shared dataclasses; runs no SQL.

Times are stored as ``YYYY-MM-DDTHH:MM:SSZ`` text in UTC, lists as JSON text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from watcher.types import Alert, AlertStatus, FeedState, ParsedItem, StoredItem

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

Row = Mapping[str, Any]


def to_text(moment: datetime) -> str:
    """Stored form of a time; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"  # %Y is not zero-padded everywhere


def to_text_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else to_text(moment)


def from_text(text: str | None) -> datetime | None:
    """A stored time back as a UTC-aware datetime (None stays None)."""
    if not text:
        return None
    if len(text) == 20 and text[4::3] == "--T::Z" and text[:4].isdigit():
        # the form to_text writes (read for every feed at every start): the C parser
        return datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def required_time(text: str) -> datetime:
    moment = from_text(text)
    if moment is None:
        raise ValueError("a required time column is empty")
    return moment


def encode_json(value: object) -> str:
    """JSON text as the database's JSON columns hold it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def decode_list(text: str | None) -> list[Any]:
    if not text:
        return []
    value = json.loads(text)
    return list(value) if isinstance(value, list) else []


def content_hash(item: ParsedItem) -> str:
    """sha256 over what a reader sees of an item: title, link, summary, content, author, tags."""
    parts = [item.title, item.link, item.summary, item.content, item.author, list(item.tags)]
    return hashlib.sha256(encode_json(parts).encode("utf-8")).hexdigest()


def item_columns(item: ParsedItem, digest: str | None = None) -> dict[str, Any]:
    """The ``items`` columns that come from the parsed item itself.

    ``digest`` is the item's ``content_hash`` when the caller already has it.
    """
    return {
        "guid": item.guid,
        "link": item.link,
        "title": item.title,
        "summary": item.summary,
        "content": item.content,
        "summary_text": item.summary_text,
        "content_text": item.content_text,
        "author": item.author,
        "tags": encode_json(list(item.tags)),
        "published_at": to_text_or_none(item.published_at),
        "updated_at": to_text_or_none(item.updated_at),
        "language": item.language,
        "content_hash": digest or content_hash(item),
    }


def feed_from_row(row: Row) -> FeedState:
    return FeedState(
        id=row["id"],
        url=row["url"],
        name=row["name"],
        title=row["title"],
        tags=tuple(decode_list(row["tags"])),
        source=row["source"],
        interval_s=row["interval_s"],
        interval_source=row["interval_source"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        last_polled_at=from_text(row["last_polled_at"]),
        last_success_at=from_text(row["last_success_at"]),
        last_status=row["last_status"],
        last_error=row["last_error"],
        consecutive_failures=row["consecutive_failures"],
        next_poll_at=from_text(row["next_poll_at"]),
        disabled_reason=row["disabled_reason"],
    )


def item_from_row(row: Row, change: str) -> StoredItem:
    return StoredItem(
        id=row["id"],
        feed_id=row["feed_id"],
        guid=row["guid"],
        title=row["title"],
        link=row["link"],
        summary_text=row["summary_text"],
        content_text=row["content_text"],
        author=row["author"],
        tags=tuple(decode_list(row["tags"])),
        published_at=from_text(row["published_at"]),
        first_seen_at=required_time(row["first_seen_at"]),
        content_hash=row["content_hash"],
        story_id=row["story_id"] if row["story_id"] is not None else row["id"],
        change=change,
        language=row.get("language"),
        article_text=row.get("article_text"),
    )


def alert_from_row(row: Row) -> Alert:
    return Alert(
        id=row["id"],
        rule_id=row["rule_id"],
        channel=row["channel"],
        item_ids=tuple(int(i) for i in decode_list(row["item_ids"])),
        status=AlertStatus(row["status"]),
        created_at=required_time(row["created_at"]),
        reason=row["reason"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_attempt_at=from_text(row["next_attempt_at"]),
        sent_at=from_text(row["sent_at"]),
    )


def terms_from_text(text: str | None) -> tuple[str, ...]:
    return tuple(str(t) for t in decode_list(text))


def tags_json(tags: Sequence[str]) -> str:
    return encode_json(list(tags))
