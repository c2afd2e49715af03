"""Translate a rule query into an FTS5 MATCH expression; runs no SQL and ranks nothing.

The query is parsed by :mod:`watcher.rules.query` (so search and rules share one grammar)
and each node is rewritten into FTS5 syntax built only from quoted strings, so no user
text ever reaches SQLite unquoted::

    Kursk                    ->  "kursk"
    drone*                   ->  "drone"*
    "North Korean troops"    ->  "north" + "korean" + "troops"
    fiber-optic              ->  ("fiber" + "optic" OR "fiberoptic")
    a NEAR/3 b               ->  NEAR("a" "b", 2)
    a -b -c                  ->  ("a") NOT ("b" OR "c")
    title:x                  ->  {title} : "x"

What FTS5 cannot express is a ``ConfigError`` naming the column: a ``/regex/`` (rules
only), and the scopes ``author:``, ``link:``, ``tags:`` and ``feed:`` (not in the index; use
``--feed``). Search never stems (``stem:`` is a rule option).

``items_fts`` holds each field's tokens as rules see them (SPEC §4, ``text.index_form``),
and the rule grammar's leaves are those same normalised tokens, so a word is found exactly
when a one-word rule on the same fields matches it: ``Straße`` is ``"strasse"``, ``库尔斯克``
the phrase ``"库" + "尔" + "斯" + "克"``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from watcher.exceptions import ConfigError, Problem
from watcher.rules.query import (
    And,
    Leaf,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    QueryError,
    Regex,
    Scope,
    Term,
    TermLists,
    Word,
    lex,
    parse_query,
)

# Query scope -> FTS5 columns of items_fts; ``text`` (and no scope) means every column.
SCOPE_COLUMNS: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "summary": ("summary_text",),
    "content": ("content_text",),
    "article": ("article_text",),
    "text": (),
}
STEM_IS_A_RULE_OPTION = (
    "stem: is a rule option, not part of a query; search never stems (write troop* instead)"
)
MAX_EXPANSION = 64  # phrase alternatives a NEAR or phrase may expand into
FTS_MAX_DEPTH = 31  # see _fts_depth


@dataclass(frozen=True)
class SearchQuery:
    """A query as typed and its FTS5 form, ready to bind as the MATCH parameter."""

    text: str
    fts: str


class SearchQueryError(ConfigError):
    """A query search cannot run; ``column`` (1-based) and ``text`` allow a caret."""

    def __init__(self, message: str, text: str, column: int | None) -> None:
        self.text = text
        self.column = column
        where = f" at column {column}" if column else ""
        super().__init__(Problem(file="", message=f"query: {message}{where}"))


def translate_query(text: str, lists: TermLists | None = None) -> SearchQuery:
    """Parse ``text`` with the rule grammar (``$NAME`` from the rule files' ``lists``) and
    return its FTS5 form.

    Raises SearchQueryError for a syntax error or a construct FTS5 cannot express.
    """
    try:
        node = parse_query(text, lists)
        fts = _node(node, ())
        if _fts_depth(fts) > FTS_MAX_DEPTH:
            raise QueryError(
                "the query nests too deeply for the search index; use fewer nested"
                " parentheses, NOT and field scopes",
                _deepest_column(text),
            )
        return SearchQuery(text, fts)
    except QueryError as error:
        message = error.message
        if message.startswith("unknown field 'stem'"):
            message = STEM_IS_A_RULE_OPTION
        raise SearchQueryError(message, text, error.column) from None


def _fts_depth(fts: str) -> int:
    """How deep an FTS5 expression nests: parentheses and column filters count 1 each.

    SQLite's FTS5 parser has a fixed stack: about 32 levels of ``(a OR (…))`` and 19 of
    ``{title} : (…)`` fit; deeper ones fail with "fts5: parser stack overflow".
    """
    depth = deepest = 0
    quoted = False
    for char in fts:
        if char == '"':
            quoted = not quoted  # a doubled quote inside a string toggles twice
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "{":
            depth += 1  # a column filter applies to what follows, up to the enclosing ")"
        deepest = max(deepest, depth)
    return deepest


def _deepest_column(text: str) -> int | None:
    """The column of the first opening parenthesis at the query's deepest nesting."""
    depth, deepest, column = 0, 0, None
    for lexeme in lex(text):
        depth += {"lparen": 1, "rparen": -1}.get(lexeme.kind, 0)
        if depth > deepest:
            deepest, column = depth, lexeme.column
    return column


# --- nodes ---------------------------------------------------------------------------------


def _node(node: Node, columns: tuple[str, ...]) -> str:
    """FTS5 text for ``node``; ``columns`` is the current scope (empty: every column)."""
    if isinstance(node, Term | Prefix | Phrase):
        return _scoped(_leaf(node), columns)
    if isinstance(node, Regex):
        raise QueryError(
            "a /regex/ works in rules only; search takes words, phrases and prefix*",
            node.column,
        )
    if isinstance(node, Scope):
        return _node(node.child, _scope_columns(node))
    if isinstance(node, Near):
        return _scoped(_near(node), columns)
    if isinstance(node, Or):
        return "(" + " OR ".join(_node(c, columns) for c in node.children) + ")"
    if isinstance(node, And):
        return _and(node.children, columns)
    # A NOT is handled by the And around it; the parser rejects one standing alone.
    raise QueryError("a query needs a word to look for, not only NOT", node.column or None)


def _and(children: Sequence[Node], columns: tuple[str, ...]) -> str:
    """FTS5's NOT is binary (``a NOT b``): positive parts first, then each excluded one."""
    excluded = [_excluded(c) for c in children]
    positive = [_node(c, columns) for c, e in zip(children, excluded, strict=True) if e is None]
    negative = [_node(e, columns) for e in excluded if e is not None]
    if not positive:
        column = children[0].column if children else None
        raise QueryError("a query needs a word to look for, not only NOT", column or None)
    text = "(" + " AND ".join(positive) + ")" if len(positive) > 1 else positive[0]
    if not negative:
        return text
    # One NOT of an OR-group: ``a -b -c`` is ``a NOT (b OR c)``, flat however many there are.
    return f"({text}) NOT ({' OR '.join(negative)})"


def _excluded(node: Node) -> Node | None:
    """What a NOT child excludes (a scope kept around it), or None for a positive child."""
    if isinstance(node, Not):
        return node.child
    if isinstance(node, Scope):
        inner = _excluded(node.child)
        return None if inner is None else Scope(node.field, inner, node.column)
    return None


def _scope_columns(scope: Scope) -> tuple[str, ...]:
    if scope.field not in SCOPE_COLUMNS:
        raise QueryError(
            f"search cannot look in {scope.field}: (only title:, summary:, content:,"
            " article:, text:; --feed picks feeds)",
            scope.column,
        )
    return SCOPE_COLUMNS[scope.field]


def _scoped(text: str, columns: tuple[str, ...]) -> str:
    if not columns:
        return text
    return "{" + " ".join(columns) + "} : " + text


# --- leaves --------------------------------------------------------------------------------


def _leaf(leaf: Leaf) -> str:
    """One term, prefix or phrase; a phrase with joined forms becomes an OR of phrases."""
    alternatives = list(_phrases(leaf))
    if len(alternatives) == 1:
        return alternatives[0]
    return "(" + " OR ".join(alternatives) + ")"


def _phrases(leaf: Leaf) -> Iterator[str]:
    """Each FTS5 phrase ``leaf`` may be written as (one per joined-form combination)."""
    if isinstance(leaf, Term):
        yield _string(leaf.token)
        return
    if isinstance(leaf, Prefix):
        yield _string(leaf.prefix) + "*"
        return
    choices = [_word_forms(word) for word in leaf.words]
    count = 1
    for forms in choices:
        count *= len(forms)
    if count > MAX_EXPANSION:
        raise QueryError("the phrase has too many joined forms to search", leaf.column or None)
    for combination in itertools.product(*choices):
        yield " + ".join(combination)


def _word_forms(word: Word) -> list[str]:
    """The written and joined forms of one word, as FTS5 phrase parts."""
    forms = []
    for tokens in word.alternatives:
        parts = [_string(t) for t in tokens]
        if word.prefix:
            parts[-1] += "*"
        forms.append(" + ".join(parts))
    return forms


def _near(node: Near) -> str:
    """``a NEAR/n b`` -> ``NEAR(a b, n-1)``: FTS5 counts the tokens between the two."""
    lefts = [p for leaf in node.left for p in _phrases(leaf)]
    rights = [p for leaf in node.right for p in _phrases(leaf)]
    if len(lefts) * len(rights) > MAX_EXPANSION:
        raise QueryError("the NEAR operands have too many forms to search", node.column or None)
    groups = [f"NEAR({a} {b}, {node.distance - 1})" for a, b in itertools.product(lefts, rights)]
    return groups[0] if len(groups) == 1 else "(" + " OR ".join(groups) + ")"


def _string(token: str) -> str:
    """An FTS5 string literal: double quotes, inner quotes doubled."""
    return '"' + token.replace('"', '""') + '"'
