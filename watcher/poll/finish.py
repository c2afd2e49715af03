"""What every parsed feed gets after its format's reader; pure, no I/O.

    lone surrogates -> U+FFFD (a last net: the readers replace them where they decode)
    fields over their size limit -> cut ("…"), noted
    what the readers noted about single items -> one note each, with a count
    entries of one document sharing an id but not a title -> distinct ids ("#" + hash)
    a link shared by entries of different titles -> not a story key for them

Each change that alters what the feed said is noted in the feed's warning.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import replace

from watcher.poll.html import cap_html
from watcher.storykeys import title_key
from watcher.surrogates import has_surrogates, scrub
from watcher.types import ParsedFeed, ParsedItem

ID_SUFFIX_HEX = 12  # hex digits of the title's SHA-256 appended to a shared id
MAX_TITLE = 2_000  # characters of a title (and of an author)
MAX_TEXT = 1_000_000  # characters of summary, content, their text (and later article_text)


def finish_feed(feed: ParsedFeed) -> ParsedFeed:
    """``feed`` with clean text, distinct ids and shared links marked; notes added to it."""
    notes = [feed.warning] if feed.warning else []
    items = [capped(_scrubbed(item)) for item in feed.items]
    notes += item_notes(items)
    keys = [title_key(item.title) or "" for item in items]
    items, renamed = distinct_ids(items, keys)
    if renamed:
        notes.append(
            f"{renamed} entr{'y' if renamed == 1 else 'ies'} shared an id with an earlier entry"
            " of another title: each was given its own id (id#title-hash)"
        )
    items = mark_shared_links(items, keys)
    title = scrub(feed.title) if feed.title else feed.title
    return replace(feed, title=title, items=tuple(items), warning="; ".join(notes) or None)


def capped(item: ParsedItem) -> ParsedItem:
    """The item with each field cut to its size limit, and a note per field cut."""
    changes: dict[str, object] = {}
    notes: list[str] = []
    for name in ("title", "author"):
        value = getattr(item, name)
        if value and len(value) > MAX_TITLE:
            changes[name] = cut_text(value, MAX_TITLE)
            notes.append(f"{name} cut to {MAX_TITLE:,} characters")
    for html_name, text_name in (("summary", "summary_text"), ("content", "content_text")):
        html, text = getattr(item, html_name), getattr(item, text_name)
        if len(html) > MAX_TEXT or len(text) > MAX_TEXT:
            changes[html_name] = cap_html(html, MAX_TEXT)
            changes[text_name] = text[:MAX_TEXT]  # no "…": plain ASCII text stays ASCII
            notes.append(f"{html_name} cut to {MAX_TEXT:,} characters")
    if not changes:
        return item
    return replace(item, notes=(*item.notes, *notes), **changes)  # type: ignore[arg-type]


def cut_text(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, ending with "…" when it was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def item_notes(items: Iterable[ParsedItem]) -> list[str]:
    """The items' own notes, each once with how many items it concerns."""
    counts: dict[str, int] = {}
    for item in items:
        for note in item.notes:
            counts[note] = counts.get(note, 0) + 1
    return [f"{n} item{'' if n == 1 else 's'}: {note}" for note, n in counts.items()]


def distinct_ids(items: Sequence[ParsedItem], keys: Sequence[str]) -> tuple[list[ParsedItem], int]:
    """Items whose id an earlier item of another title holds get ``id#<hash of title>``.

    ``keys`` are the items' normalised titles (``stories.title_key``, "" for none). The
    first item keeps the id; a later one with the same normalised title is the same entry
    repeated and keeps it too. Returns the items and how many ids were changed.
    """
    first_title: dict[str, str] = {}
    out: list[ParsedItem] = []
    renamed = 0
    for item, title in zip(items, keys, strict=True):
        known = first_title.setdefault(item.guid, title)
        if known != title:
            digest = hashlib.sha256(title.encode()).hexdigest()[:ID_SUFFIX_HEX]
            item = replace(item, guid=f"{item.guid}#{digest}")
            renamed += 1
        out.append(item)
    return out, renamed


def mark_shared_links(items: list[ParsedItem], keys: Sequence[str]) -> list[ParsedItem]:
    """Set ``shared_link`` on items whose link other items of another title carry too."""
    titles: dict[str, set[str]] = {}
    for item, title in zip(items, keys, strict=True):
        if item.link:
            titles.setdefault(item.link, set()).add(title)
    shared = {link for link, seen in titles.items() if len(seen) > 1}
    if not shared:
        return items
    return [replace(i, shared_link=True) if i.link in shared else i for i in items]


_TEXT_FIELDS = (
    "guid",
    "title",
    "link",
    "summary",
    "content",
    "summary_text",
    "content_text",
    "author",
)


def _scrubbed(item: ParsedItem) -> ParsedItem:
    texts = [getattr(item, name) or "" for name in _TEXT_FIELDS]
    if not has_surrogates("\0".join([*texts, *item.tags])):
        return item  # one search for the whole item: nearly every item
    changes: dict[str, object] = {}
    for name in _TEXT_FIELDS:
        value = getattr(item, name)
        if isinstance(value, str) and has_surrogates(value):
            changes[name] = scrub(value)
    if any(has_surrogates(tag) for tag in item.tags):
        changes["tags"] = tuple(scrub(tag) for tag in item.tags)
    return replace(item, **changes) if changes else item  # type: ignore[arg-type]
