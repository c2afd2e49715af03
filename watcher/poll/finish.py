"""What every parsed feed gets after its format's reader; pure, no I/O.

    lone surrogates -> U+FFFD (a last net: the readers replace them where they decode)
    what the readers noted about single items -> one note each, with a count
    entries of one document sharing an id but not a title -> distinct ids ("#" + hash)
    a link shared by entries of different titles -> not a story key for them

Each change that alters what the feed said is noted in the feed's warning.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import fields, replace

from watcher.storykeys import title_key
from watcher.surrogates import has_surrogates, scrub
from watcher.types import ParsedFeed, ParsedItem

ID_SUFFIX_HEX = 12  # hex digits of the title's SHA-256 appended to a shared id


def finish_feed(feed: ParsedFeed) -> ParsedFeed:
    """``feed`` with clean text, distinct ids and shared links marked; notes added to it."""
    notes = [feed.warning] if feed.warning else []
    items = [_scrubbed(item) for item in feed.items]
    notes += item_notes(items)
    items, renamed = distinct_ids(items)
    if renamed:
        notes.append(
            f"{renamed} entr{'y' if renamed == 1 else 'ies'} shared an id with an earlier entry"
            " of another title: each was given its own id (id#title-hash)"
        )
    items = mark_shared_links(items)
    title = scrub(feed.title) if feed.title else feed.title
    return replace(feed, title=title, items=tuple(items), warning="; ".join(notes) or None)


def item_notes(items: Iterable[ParsedItem]) -> list[str]:
    """The items' own notes, each once with how many items it concerns."""
    counts: dict[str, int] = {}
    for item in items:
        for note in item.notes:
            counts[note] = counts.get(note, 0) + 1
    return [f"{n} item{'' if n == 1 else 's'}: {note}" for note, n in counts.items()]


def distinct_ids(items: Iterable[ParsedItem]) -> tuple[list[ParsedItem], int]:
    """Items whose id an earlier item of another title holds get ``id#<hash of title>``.

    The first item keeps the id; a later one with the same normalised title is the same
    entry repeated and keeps it too. Returns the items and how many ids were changed.
    """
    first_title: dict[str, str] = {}
    out: list[ParsedItem] = []
    renamed = 0
    for item in items:
        title = title_key(item.title) or ""
        known = first_title.setdefault(item.guid, title)
        if known != title:
            digest = hashlib.sha256(title.encode()).hexdigest()[:ID_SUFFIX_HEX]
            item = replace(item, guid=f"{item.guid}#{digest}")
            renamed += 1
        out.append(item)
    return out, renamed


def mark_shared_links(items: list[ParsedItem]) -> list[ParsedItem]:
    """Set ``shared_link`` on items whose link other items of another title carry too."""
    titles: dict[str, set[str]] = {}
    for item in items:
        if item.link:
            titles.setdefault(item.link, set()).add(title_key(item.title) or "")
    shared = {link for link, seen in titles.items() if len(seen) > 1}
    if not shared:
        return items
    return [replace(i, shared_link=True) if i.link in shared else i for i in items]


_TEXT_FIELDS = tuple(f.name for f in fields(ParsedItem) if f.name not in ("tags", "notes"))


def _scrubbed(item: ParsedItem) -> ParsedItem:
    changes: dict[str, object] = {}
    for name in _TEXT_FIELDS:
        value = getattr(item, name)
        if isinstance(value, str) and has_surrogates(value):
            changes[name] = scrub(value)
    if any(has_surrogates(tag) for tag in item.tags):
        changes["tags"] = tuple(scrub(tag) for tag in item.tags)
    return replace(item, **changes) if changes else item  # type: ignore[arg-type]
