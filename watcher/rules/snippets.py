"""Snippets of a matched item: the text around each hit, matched words between ``**``; pure.

The hits are the matcher's (token positions in ``MatchItem.fields``); channels render the
snippets (watcher.deliver.render), the backtest prints them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

from watcher.text import tokenize_spans
from watcher.types import Hit

SNIPPET_CONTEXT = 70  # characters shown on each side of a highlighted span
# How far a snippet's edge moves outwards to end on a space; text without spaces (Chinese,
# Japanese, Thai) is cut where the window ends instead, never inside a character's marks.
WORD_REACH = 20
MAX_SNIPPETS = 3
SNIPPET_HITS = 64  # hits of one value looked at for its snippets, the first in the text

_SPACES = re.compile(r"\s+")


def make_snippets(fields: Mapping[str, Sequence[str]], hits: tuple[Hit, ...]) -> tuple[str, ...]:
    """Build up to MAX_SNIPPETS snippets, one per hit region, matched words as ``**bold**``.

    ``fields`` maps a field name to its plain-text values (``MatchItem.fields``): the
    texts the hit positions refer to.
    """
    texts = {(name, i): v for name, values in fields.items() for i, v in enumerate(values)}
    by_value: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for hit in hits:
        if (hit.field, hit.index) in texts and hit.field not in ("link", "feed", "tags"):
            by_value.setdefault((hit.field, hit.index), []).append((hit.start, hit.end))
    snippets: list[str] = []
    for key, spans in sorted(by_value.items(), key=lambda kv: _field_order(kv[0][0])):
        text = texts[key]
        spans = sorted(spans)[:SNIPPET_HITS]  # the first ones are all the snippets can show
        tokens = _first_tokens(text, max(e for _, e in spans))
        char_spans = sorted(
            (tokens[s][1], tokens[e - 1][2]) for s, e in spans if 0 <= s < e <= len(tokens)
        )
        for group in _group_spans(char_spans):
            _add_unrepeated(snippets, _snippet(text, group))
            if len(snippets) == MAX_SNIPPETS:
                return tuple(snippets)
    return tuple(snippets)


def _add_unrepeated(snippets: list[str], snippet: str) -> None:
    """Add ``snippet`` unless an earlier one already shows its text (a summary repeated at
    the start of the content); one whose text it shows whole gives it its place."""
    core = _core(snippet)
    for n, earlier in enumerate(snippets):
        if core in _core(earlier):
            return
        if _core(earlier) in core:
            snippets[n] = snippet
            return
    snippets.append(snippet)


def _core(snippet: str) -> str:
    """A snippet's text without its marks and its cut ellipses."""
    return snippet.replace("**", "").strip(" …")


def _first_tokens(text: str, count: int) -> list[tuple[str, int, int]]:
    """The first ``count`` tokens of ``text`` with their offsets (all of them when fewer),
    from as short a prefix as gives them: a long text is not tokenised to its end."""
    length = 64 * (count + 16)
    while length < len(text):
        tokens = tokenize_spans(text[:length])
        if len(tokens) > count:  # the prefix's last token may be cut off; the others are whole
            return tokens[:count]
        length *= 4
    return tokenize_spans(text)


def _field_order(name: str) -> int:
    order = ("title", "summary", "content", "article", "author")
    return order.index(name) if name in order else len(order)


def _group_spans(spans: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Group character spans that fit into one snippet window, merging overlaps."""
    groups: list[list[tuple[int, int]]] = []
    for start, end in spans:
        if groups and start - groups[-1][0][0] <= 2 * SNIPPET_CONTEXT:
            last = groups[-1][-1]
            if start <= last[1]:
                groups[-1][-1] = (last[0], max(last[1], end))
            else:
                groups[-1].append((start, end))
        else:
            groups.append([(start, end)])
    return groups


def _snippet(text: str, spans: list[tuple[int, int]]) -> str:
    lo = _start_edge(text, max(0, spans[0][0] - SNIPPET_CONTEXT))
    hi = _end_edge(text, min(len(text), spans[-1][1] + SNIPPET_CONTEXT))
    parts: list[str] = []
    pos = lo
    for start, end in spans:
        parts.append(text[pos:start])
        parts.append("**" + text[start:end] + "**")
        pos = end
    parts.append(text[pos:hi])
    body = _SPACES.sub(" ", "".join(parts)).strip()
    return ("… " if lo > 0 else "") + body + (" …" if hi < len(text) else "")


def _start_edge(text: str, lo: int) -> int:
    """Where a snippet starting near ``lo`` starts: after a space at most WORD_REACH before."""
    for at in range(lo, max(0, lo - WORD_REACH) - 1, -1):
        if at == 0 or text[at - 1].isspace():
            return at
    while lo > 0 and unicodedata.category(text[lo])[0] == "M":
        lo -= 1
    return lo


def _end_edge(text: str, hi: int) -> int:
    """Where a snippet ending near ``hi`` ends: at a space at most WORD_REACH after."""
    for at in range(hi, min(len(text), hi + WORD_REACH) + 1):
        if at == len(text) or text[at].isspace():
            return at
    while hi < len(text) and unicodedata.category(text[hi])[0] == "M":
        hi += 1
    return hi


# --- text and HTML -------------------------------------------------------------------------
