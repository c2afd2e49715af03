"""Which items of a poll have their article page fetched (``full_text``); pure.

    never    no item
    short    a new item whose summary and content together hold under ``SHORT_TOKENS``
             tokens (counted as rules count them, SPEC §4)
    always   every new item

An item counts as new when the feed had no item of its guid, or had one with another link;
an item seen before under the same link is never fetched again, edited or not. Only
http(s) links are fetched (anything else is refused, never read).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from watcher.intent import ItemWrite
from watcher.text import tokenize
from watcher.types import Article, FullText, ParsedItem

SHORT_TOKENS = 100
# The newest stored items of a feed whose links its fetcher is told (``known_links``): an
# item still in the feed but older than these would have its article fetched again.
KNOWN_ITEMS = 2000
# A prefix this long that already holds SHORT_TOKENS tokens settles it: the rest is not read.
_PREFIX_CHARS = 4096


def is_short(item: ParsedItem) -> bool:
    """Whether the item's own text (summary and content) holds under ``SHORT_TOKENS`` tokens."""
    text = f"{item.summary_text}\n{item.content_text}"
    if len(text) > _PREFIX_CHARS and len(tokenize(text[:_PREFIX_CHARS])) >= SHORT_TOKENS + 1:
        return False
    return len(tokenize(text)) < SHORT_TOKENS


def wants_article(full_text: FullText, item: ParsedItem, known: Mapping[str, str | None]) -> bool:
    """Whether ``item``'s article page is fetched; ``known``: the feed's stored guids and links."""
    if full_text is FullText.NEVER or not item.link:
        return False
    if item.guid in known and known[item.guid] == item.link:
        return False  # seen before under this link: fetched then, or not wanted then
    return full_text is FullText.ALWAYS or is_short(item)


def items_wanting_articles(
    full_text: FullText, items: Sequence[ParsedItem], known: Mapping[str, str | None]
) -> list[ParsedItem]:
    """The items of a poll whose article is fetched, once each (the first of a guid)."""
    seen: set[str] = set()
    wanted = []
    for item in items:
        if item.guid not in seen and wants_article(full_text, item, known):
            wanted.append(item)
        seen.add(item.guid)
    return wanted


def with_articles(
    writes: Sequence[ItemWrite], articles: Mapping[str, Article] | None
) -> list[ItemWrite]:
    """The poll's item writes, each with the article fetched for it (text, or the error)."""
    if not articles:
        return list(writes)
    out = []
    for write in writes:
        article = articles.get(write.stored.guid)
        if article is not None:
            stored = replace(write.stored, article_text=article.text)
            write = replace(write, stored=stored, article=article)
        out.append(write)
    return out
