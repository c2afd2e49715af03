"""Run rules over the stored archive and count what they would have matched; sends nothing.

    for each batch of items first seen or published since ``since`` (store.history):
        match every rule on the item as the pipeline would (same fields, same engine)
        count the matches per rule; keep the first few with highlighted snippets

Writes nothing to the database: a backtest is a dry run over what is already stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from watcher.rules.match import CompiledRules, match_input, match_item
from watcher.rules.snippets import make_snippets
from watcher.store import Store
from watcher.store.history import count_items_since, items_since
from watcher.types import FeedState, Match, MatchItem, StoredItem

EXAMPLES = 3


@dataclass(frozen=True)
class Example:
    """One item a rule would have matched, as an alert would show it."""

    item_id: int
    title: str
    link: str | None
    feed: str
    published_at: datetime | None
    terms: tuple[str, ...]
    snippets: tuple[str, ...]


@dataclass
class RuleResult:
    rule_id: str
    matches: int = 0
    examples: list[Example] = field(default_factory=list)


@dataclass
class Backtest:
    since: datetime
    items: int
    rules: list[RuleResult]


def run_backtest(
    store: Store,
    compiled: CompiledRules,
    since: datetime,
    *,
    examples: int = EXAMPLES,
    progress: Callable[[int], None] | None = None,
) -> Backtest:
    """Match every compiled rule over the archive since ``since``; ``progress(n)`` per batch."""
    results = {c.rule.id: RuleResult(c.rule.id) for c in compiled.rules}
    seen = 0
    for batch in items_since(store, since):
        for item, feed in batch:
            _tally(results, compiled, item, feed, examples)
        seen += len(batch)
        if progress is not None:
            progress(len(batch))
    return Backtest(since, seen, list(results.values()))


def count_archive(store: Store, since: datetime) -> int:
    """How many items a backtest since ``since`` will read (for a progress bar)."""
    return count_items_since(store, since)


def _tally(
    results: dict[str, RuleResult],
    compiled: CompiledRules,
    item: StoredItem,
    feed: FeedState,
    examples: int,
) -> None:
    source = match_input(item, feed)
    for match in match_item(compiled, source):
        result = results[match.rule_id]
        result.matches += 1
        if len(result.examples) < examples:
            result.examples.append(_example(item, feed, source, match))


def _example(item: StoredItem, feed: FeedState, source: MatchItem, match: Match) -> Example:
    return Example(
        item_id=item.id,
        title=item.title,
        link=item.link,
        feed=feed.name,
        published_at=item.published_at,
        terms=match.terms,
        snippets=make_snippets(source.fields, match.hits),
    )


def backtest_json(result: Backtest) -> dict[str, object]:
    """The ``rules test --since --json`` document."""
    return {
        "since": result.since.isoformat().replace("+00:00", "Z"),
        "items": result.items,
        "rules": [_rule_json(r) for r in result.rules],
    }


def _rule_json(result: RuleResult) -> dict[str, object]:
    return {
        "rule_id": result.rule_id,
        "matches": result.matches,
        "examples": [
            {
                "id": e.item_id,
                "title": e.title,
                "link": e.link,
                "feed": e.feed,
                "published_at": e.published_at.isoformat().replace("+00:00", "Z")
                if e.published_at
                else None,
                "terms": list(e.terms),
                "snippets": list(e.snippets),
            }
            for e in result.examples
        ],
    }


def backtest_lines(result: Backtest) -> list[str]:
    """Plain-text report: one line per rule, then its examples indented with snippets."""
    lines = [f"{result.items} items since {result.since:%Y-%m-%d %H:%M} UTC"]
    for rule in result.rules:
        noun = "item" if rule.matches == 1 else "items"
        lines.append(f"{rule.rule_id}: {rule.matches} {noun} would have matched")
        for e in rule.examples:
            when = f"{e.published_at:%Y-%m-%d}" if e.published_at else "undated"
            lines.append(f"  {when}  {e.title}  ({e.feed})")
            lines.extend(f"    {s}" for s in e.snippets)
    return lines
