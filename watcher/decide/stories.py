"""Which items of a poll are new or changed, and which story each joins; pure, no I/O.

    an item whose guid is not stored          -> new: the next free id, first seen now
    a stored guid with another content hash   -> changed: same id, first seen kept
    the same guid and hash                    -> unchanged: nothing to write

Two items are copies of one story when they share a canonical link, or a title key within
48 h of the story's first copy (SPEC §4; the keys are watcher.storykeys'). An item joins the
story its keys (and, when changed, its current story) name; a key not known yet, or a title
key whose story began more than 48 h away, is written for the item's story. When an item's
keys name several stories they become one: the lowest id absorbs the others, with their
items, keys and live alerts. A story's id is the id of its first item.

The keys are read once per poll (the snapshot) and kept here as a working copy, so that
later items of the same poll see the keys and merges of earlier ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.intent import (
    FeedSnapshot,
    ItemRef,
    ItemWrite,
    KnownItem,
    StoryKey,
    StoryKeyWrite,
    StoryMerge,
    StoryRef,
    whole_seconds,
)
from watcher.storykeys import canonical_link, title_key
from watcher.types import ParsedItem, StoredItem

STORY_TITLE_WINDOW = timedelta(hours=48)


def story_keys(item: ParsedItem) -> tuple[StoryKey, ...]:
    """The keys an item is known by: its canonical link and its title key.

    A link that entries of other titles share in the item's feed document
    (``ParsedItem.shared_link``) is no key: such an item is known by its title alone.
    """
    keys: list[StoryKey] = []
    link = "" if item.shared_link else canonical_link(item.link or "")
    if link:
        keys.append(("link", link))
    title = title_key(item.title or "")
    if title:
        keys.append(("title", title))
    return tuple(keys)


@dataclass
class Stories:
    """A working copy of the story keys a poll reads, with the merges and keys it makes."""

    keys: dict[StoryKey, StoryRef]
    into: dict[int, int] = field(default_factory=dict)  # merged story -> the one it joined
    merges: list[StoryMerge] = field(default_factory=list)
    written: dict[StoryKey, StoryRef] = field(default_factory=dict)

    def resolve(self, story_id: int) -> int:
        """The story ``story_id`` is part of now, after the merges so far."""
        while story_id in self.into:
            story_id = self.into[story_id]
        return story_id

    def assign(
        self, item_id: int, current: int | None, keys: Sequence[StoryKey], at: datetime
    ) -> int:
        """The story of item ``item_id`` (in story ``current`` until now, if stored), whose
        keys are ``keys`` and whose time (published, else first seen) is ``at``."""
        found = {self.resolve(current)} if current is not None else set()
        fresh: list[StoryKey] = []
        for key in keys:
            ref = self.keys.get(key)
            if ref is None or (key[0] == "title" and abs(at - ref.first_at) > STORY_TITLE_WINDOW):
                fresh.append(key)
            else:
                found.add(self.resolve(ref.story_id))
        story_id = min(found) if found else item_id
        for other in sorted(found - {story_id}):
            self.into[other] = story_id
            self.merges.append(StoryMerge(other, story_id))
        for key in fresh:
            self.keys[key] = self.written[key] = StoryRef(story_id, at)
        return story_id

    def key_writes(self) -> tuple[StoryKeyWrite, ...]:
        """The keys to write, each pointing at its story as it is after every merge."""
        return tuple(
            StoryKeyWrite(key, self.resolve(ref.story_id), ref.first_at)
            for key, ref in self.written.items()
        )


def plan_items(
    feed_id: int,
    items: Sequence[ParsedItem],
    refs: Sequence[ItemRef],
    snapshot: FeedSnapshot,
    now: datetime,
) -> tuple[list[ItemWrite], Stories]:
    """The new and changed items in feed order, with their ids and final stories.

    ``refs`` give each item's content hash and (worked out only if needed) story keys.
    """
    stories = Stories(dict(snapshot.story_keys))
    known: dict[str, KnownItem] = dict(snapshot.known)
    seen_at = whole_seconds(now)
    next_id = snapshot.next_item_id
    planned: list[tuple[ParsedItem, KnownItem, str]] = []
    for item, ref in zip(items, refs, strict=True):
        stored = known.get(item.guid)
        if stored is not None and stored.content_hash == ref.content_hash:
            continue
        published = None if item.published_at is None else whole_seconds(item.published_at)
        if stored is None:
            item_id, first_seen, current, change = next_id, seen_at, None, "new"
            next_id += 1
        else:
            item_id, first_seen, current, change = (
                stored.id,
                stored.first_seen_at,
                stored.story_id,
                "updated",
            )
        story = stories.assign(item_id, current, ref.story_keys, published or first_seen)
        known[item.guid] = KnownItem(item_id, ref.content_hash, story, first_seen)
        planned.append((item, known[item.guid], change))
    writes = [
        ItemWrite(_stored(feed_id, item, ref, stories.resolve(ref.story_id), change), item)
        for item, ref, change in planned
    ]
    return writes, stories


def _stored(
    feed_id: int, item: ParsedItem, ref: KnownItem, story_id: int, change: str
) -> StoredItem:
    """The StoredItem a read-back of the written row would give."""
    return StoredItem(
        id=ref.id,
        feed_id=feed_id,
        guid=item.guid,
        title=item.title,
        link=item.link,
        summary_text=item.summary_text,
        content_text=item.content_text,
        author=item.author,
        tags=tuple(item.tags),
        published_at=None if item.published_at is None else whole_seconds(item.published_at),
        first_seen_at=ref.first_seen_at,
        content_hash=ref.content_hash,
        story_id=story_id,
        change=change,
        language=item.language,
    )


def story_heads(snapshot: FeedSnapshot, writes: Sequence[ItemWrite]) -> Mapping[int, datetime]:
    """When each story began (its first item first seen), for the stories of this poll."""
    heads = dict(snapshot.story_heads)
    for write in writes:
        if write.stored.change == "new":
            heads[write.stored.id] = write.stored.first_seen_at
    return heads
