"""Where the words that matched an item stand in its title and text, for ``watcher show``;
pure: no SQL, no I/O.

The text shown is the item's article when one was fetched, else its content, else its
summary. The words are found by matching the terms each recorded match kept (``matches.terms``)
against that text, stemmed as the rule is when it is still configured; so an item matched by
a rule since removed or changed still shows the words that made it match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from watcher.rules.match import compile_rules, match_item_unindexed
from watcher.rules.query import QueryError
from watcher.store.item_record import ItemRecord
from watcher.text import tokenize_spans
from watcher.types import Hit, MatchItem, Rule

Span = tuple[int, int]
# The fields the terms are looked for in: the title, and the shown text as if the content.
_ON = ("title", "content")


@dataclass(frozen=True)
class MarkedText:
    """A text and the character spans of its matched words (sorted, disjoint)."""

    field: str  # title | article | content | summary
    text: str
    spans: tuple[Span, ...] = ()

    def marked(self, start: str = "**", end: str = "**", show: Callable[[str], str] = str) -> str:
        """The text with each matched span between ``start`` and ``end``; ``show`` is
        applied to the text's own pieces (``printable``), never to the marks."""
        parts: list[str] = []
        pos = 0
        for lo, hi in self.spans:
            parts += [show(self.text[pos:lo]), start, show(self.text[lo:hi]), end]
            pos = hi
        parts.append(show(self.text[pos:]))
        return "".join(parts)


def shown_text(record: ItemRecord) -> tuple[str, str]:
    """(field, text): the article when there is one, else the content, else the summary."""
    item = record.item
    for field, text in (
        ("article", record.article_text),
        ("content", item.content_text),
        ("summary", item.summary_text),
    ):
        if text and text.strip():
            return field, text
    return "summary", ""


def mark_evidence(
    record: ItemRecord, rules_by_id: Mapping[str, Rule]
) -> tuple[MarkedText, MarkedText]:
    """The item's title and shown text, each with the words its matches matched marked."""
    field, text = shown_text(record)
    title = record.item.title
    rules = _term_rules(record, rules_by_id)
    hits: list[Hit] = []
    if rules:
        compiled = compile_rules(rules, scan=False)
        source = MatchItem(fields={"title": (title,), "content": (text,)}, language=record.language)
        hits = [h for m in match_item_unindexed(compiled, source) for h in m.hits]
    return (
        MarkedText("title", title, _char_spans(title, hits, "title")),
        MarkedText(field, text, _char_spans(text, hits, "content")),
    )


def _term_rules(record: ItemRecord, rules_by_id: Mapping[str, Rule]) -> list[Rule]:
    """One rule per recorded match holding its terms (any of them), and one per regex term;
    a term that no longer parses is left out."""
    rules: list[Rule] = []
    for n, match in enumerate(record.matches):
        configured = rules_by_id.get(match.rule_id)
        stem = configured.stem if configured else None
        words = tuple(t for t in match.terms if not _is_regex(t))
        candidates = [Rule(id=f"m{n}", file="", any=words, stem=stem, fields=_ON)] if words else []
        candidates += [
            Rule(id=f"m{n}r{i}", file="", query=t, fields=_ON)
            for i, t in enumerate(match.terms)
            if _is_regex(t)
        ]
        for rule in candidates:
            try:
                compile_rules([rule], scan=False)
            except (QueryError, ValueError):
                continue
            rules.append(rule)
    return rules


def _is_regex(term: str) -> bool:
    return len(term) > 2 and term.startswith("/") and term.endswith("/")


def _char_spans(text: str, hits: list[Hit], field: str) -> tuple[Span, ...]:
    """The character spans of the hits on ``field``, overlaps merged."""
    token_spans = sorted((h.start, h.end) for h in hits if h.field == field and h.index == 0)
    if not token_spans:
        return ()
    tokens = tokenize_spans(text)
    chars = sorted(
        (tokens[s][1], tokens[e - 1][2]) for s, e in token_spans if 0 <= s < e <= len(tokens)
    )
    merged: list[Span] = []
    for lo, hi in chars:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)
