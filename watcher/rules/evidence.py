"""What a match shows, cut where matching happens: the matched fields and the snippets; pure.

The hits of a match are token positions in the text the matcher saw, so they are turned
into text at once, beside the matcher (in a worker process or a poll thread): the snippets
are stored with the match, and delivery shows them without running the matcher again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from watcher.rules.match import CompiledRules, match_item
from watcher.rules.snippets import make_snippets
from watcher.types import FIELDS, Match, MatchItem


def find_matches(compiled: CompiledRules, item: MatchItem) -> tuple[Match, ...]:
    """Every rule matching ``item``, each with its evidence instead of its hits."""
    return with_evidence(match_item(compiled, item), item)


def with_evidence(matches: Iterable[Match], item: MatchItem) -> tuple[Match, ...]:
    """The matches with their matched fields and snippets; the hits, now cut, are dropped."""
    return tuple(
        replace(
            match,
            hits=(),
            fields=matched_fields(match),
            snippets=make_snippets(item.fields, match.hits),
        )
        for match in matches
    )


def matched_fields(match: Match) -> tuple[str, ...]:
    """The fields a match's hits are in, in the order of ``FIELDS``."""
    found = {hit.field for hit in match.hits}
    return tuple(name for name in FIELDS if name in found)
