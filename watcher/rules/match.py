"""Decide which rules match an item; pure: no I/O, no clock, no alert decisions.

``compile_rules`` turns rules into condition trees and an anchor index: every rule that can
only match when some token, token pair or token prefix is present is filed under one such
anchor, so ``match_item`` tokenises an item once and fully evaluates only the rules whose
anchor occurs in it (plus the few rules with no anchor, such as regex-only ones).

The anchor look-up of unstemmed rules runs in the C module ``_scan`` when it was built (one
pass over the item's text, no Python object per token); otherwise, and for stemmed rules,
in Python with sets. Both give the same candidates; the tests run both.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import ahocorasick

from watcher.rules.query import (
    And,
    Leaf,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Regex,
    Scope,
    Term,
    Word,
    parse_entry,
    parse_query,
)
from watcher.text import is_unspaced, spaced, tokenize_spans
from watcher.types import FeedState, Hit, Match, MatchItem, ParsedItem, Rule, StoredItem

if TYPE_CHECKING:
    import snowballstemmer

try:
    from watcher._scan import Found
    from watcher._scan import Index as ScanIndex
    from watcher._scan import starts as c_starts
except ImportError:  # built without a C compiler: the Python path gives the same results
    Found = ScanIndex = c_starts = None  # type: ignore[assignment,misc]
SCAN_BUILT = ScanIndex is not None

Span = tuple[int, int, int]  # value index, first token, end token (exclusive)
MAX_HITS_PER_VALUE = 1000  # hits a match records in one field value (for its snippets)
Needles = tuple[tuple[str, ...], ...]
Key = tuple[str, str | None, str]
_SECOND = operator.itemgetter(1)  # kind ("t" token, "b" token pair, "p" prefix), language, text
MAX_EXPANSIONS = 32
# Above this many distinct rule tokens, probing the vocabulary for every token of an item
# misses the CPU cache often enough to cost more than building the item's own token set
# (measured: 8,700 tokens at 3,000 rules gain 15 %, 22,000 at 10,000 rules lose 3 %).
VOCABULARY_LIMIT = 16_384
_STEM_CACHE_LIMIT = 200_000


class TokenSet(Protocol):
    """The rule words an item holds: a set, or what ``ScanIndex.scan`` found."""

    def __contains__(self, token: object, /) -> bool: ...

    def isdisjoint(self, tokens: Iterable[str], /) -> bool: ...


# --- stemming ------------------------------------------------------------------------------


class _Stems:
    """Snowball stemmers by language, with a bounded cache of stems per language."""

    def __init__(self) -> None:
        self._stemmers: dict[str, snowballstemmer.stemmer] = {}
        self._cache: dict[str, dict[str, str]] = {}

    def stem(self, language: str, tokens: Sequence[str]) -> list[str]:
        cache = self._cache.setdefault(language, {})
        missing = [t for t in tokens if t not in cache]
        if missing:
            if len(cache) > _STEM_CACHE_LIMIT:
                cache.clear()
            stemmer = self._stemmers.get(language)
            if stemmer is None:
                import snowballstemmer  # on use: most rule sets stem nothing

                stemmer = self._stemmers[language] = snowballstemmer.stemmer(language)
            cache.update(zip(missing, stemmer.stemWords(missing), strict=True))
        return [cache[t] for t in tokens]


STEMS = _Stems()


def _stem_node(node: Node, language: str) -> Node:
    """The same condition with every non-prefix token stemmed."""
    if isinstance(node, Term):
        return Term(STEMS.stem(language, [node.token])[0], node.label, node.column)
    if isinstance(node, Phrase):
        words = tuple(_stem_word(w, language) for w in node.words)
        return Phrase(words, node.label, node.column)
    if isinstance(node, And | Or):
        children = tuple(_stem_node(c, language) for c in node.children)
        return And(children, node.column) if isinstance(node, And) else Or(children, node.column)
    if isinstance(node, Not):
        return Not(_stem_node(node.child, language), node.column)
    if isinstance(node, Scope):
        return Scope(node.field, _stem_node(node.child, language), node.column)
    if isinstance(node, Near):
        left = tuple(_stem_leaf(x, language) for x in node.left)
        right = tuple(_stem_leaf(x, language) for x in node.right)
        return Near(left, right, node.distance, node.column)
    return node


def _stem_leaf(leaf: Leaf, language: str) -> Leaf:
    stemmed = _stem_node(leaf, language)
    assert isinstance(stemmed, Term | Prefix | Phrase)
    return stemmed


def _stem_word(word: Word, language: str) -> Word:
    alternatives = []
    for tokens in word.alternatives:
        fixed = tokens[-1:] if word.prefix else ()
        body = tokens[:-1] if word.prefix else tokens
        alternatives.append((*STEMS.stem(language, body), *fixed))
    return Word(tuple(alternatives), word.prefix)


# --- compiled rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class Clause:
    """A necessary condition: the item holds one of ``tokens`` or a token with a ``prefixes``."""

    tokens: frozenset[str]
    prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    condition: Node
    fields: tuple[str, ...]
    language: str | None
    feed_names: frozenset[str]
    feed_tags: frozenset[str]
    # Necessary conditions, narrowest first: an item failing one cannot match.
    clauses: tuple[Clause, ...] = ()
    # Per leaf (by id), substring groups a field value must all hold for the leaf to occur.
    needles: Mapping[int, Needles] = field(default_factory=dict)
    # Necessary conditions on one field (from ``title:`` and other scopes): the field must
    # hold one of the substrings (`` drone `` for a token, `` dron`` for a prefix).
    scoped: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Necessary runs of tokens of scripts written without spaces, each group one of which
    # the item's spaced text must hold as it stands (`` 库 尔 斯 克 ``): single characters
    # are too common for ``clauses`` to rule much out.
    runs: tuple[tuple[str, ...], ...] = ()

    def __reduce__(self) -> tuple[Callable[..., CompiledRule], tuple[Any, ...]]:
        """Pickle ``needles`` by the position of each leaf in the tree, not by its id (an
        unpickled tree's leaves are new objects); the rest as it is."""
        needles = tuple(self.needles.get(id(leaf)) for leaf in _leaves(self.condition))
        state = (self.fields, self.language, self.feed_names, self.feed_tags, self.clauses)
        return _unpickle_rule, (self.rule, self.condition, needles, *state, self.scoped, self.runs)


def _unpickle_rule(
    rule: Rule, condition: Node, needles: tuple[Needles | None, ...], *rest: Any
) -> CompiledRule:
    by_id = {
        id(leaf): found
        for leaf, found in zip(_leaves(condition), needles, strict=True)
        if found is not None
    }
    fields, language, names, tags, clauses, scoped, runs = rest
    return CompiledRule(
        rule, condition, fields, language, names, tags, clauses, by_id, scoped, runs
    )


def rule_condition(rule: Rule) -> Node:
    """The rule's ``any``/``all``/``none``/``query`` as one tree, ``$NAME`` lists expanded;
    raises QueryError."""
    lists = dict(rule.term_lists)

    def entries(texts: tuple[str, ...]) -> list[Node]:
        return [node for text in texts if (node := parse_entry(text, lists)) is not None]

    parts: list[Node] = []
    any_of = entries(rule.any)
    if any_of:
        parts.append(any_of[0] if len(any_of) == 1 else Or(tuple(any_of)))
    parts.extend(entries(rule.all))
    if rule.query is not None:
        parts.append(parse_query(rule.query, lists))
    parts.extend(Not(node) for node in entries(rule.none))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def compile_rule(rule: Rule) -> CompiledRule:
    condition = rule_condition(rule)
    if rule.stem:
        condition = _stem_node(condition, rule.stem)
    names = frozenset(f for f in rule.feeds if not f.startswith("tag:"))
    tags = frozenset(f[4:].casefold() for f in rule.feeds if f.startswith("tag:"))
    keys = sorted(set(required(condition)), key=lambda c: (len(c), sorted(c)))
    clauses = tuple(_clause(c) for c in keys)
    needles = {} if rule.stem else {id(leaf): _needles(leaf) for leaf in _leaves(condition)}
    scoped = () if rule.stem else tuple(dict.fromkeys(_scoped(condition, None)))
    runs = () if rule.stem else tuple(dict.fromkeys(required_runs(condition)))
    return CompiledRule(
        rule,
        condition,
        rule.fields,
        rule.stem or None,
        names,
        tags,
        clauses,
        needles,
        scoped,
        runs,
    )


def _scoped(node: Node, scope: str | None) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Necessary substrings of one field, for the parts of ``node`` under a field scope."""
    if isinstance(node, Scope):
        yield from _scoped(node.child, None if node.field == "text" else node.field)
    elif isinstance(node, And):
        for child in node.children:
            yield from _scoped(child, scope)
    elif scope is not None and isinstance(node, Term | Prefix | Phrase | Near):
        for clause in map(_clause, required(node)):
            starts = (f" {prefix}" for prefix in clause.prefixes)
            yield scope, (*sorted(f" {token} " for token in clause.tokens), *starts)


def _leaves(node: Node) -> Iterator[Leaf]:
    """Every term, prefix and phrase of a condition tree."""
    if isinstance(node, Term | Prefix | Phrase):
        yield node
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from _leaves(child)
    elif isinstance(node, Not | Scope):
        yield from _leaves(node.child)
    elif isinstance(node, Near):
        yield from (*node.left, *node.right)


def _needles(leaf: Leaf) -> Needles:
    """Substrings of a spaced value (``text.spaced``) that a leaf's occurrence implies.

    Each group lists alternatives, one of which must occur: `` drone `` for a token,
    `` dron`` for a prefix, and for a phrase one group per word.
    """
    if isinstance(leaf, Term):
        return ((f" {leaf.token} ",),)
    if isinstance(leaf, Prefix):
        return ((f" {leaf.prefix}",),)
    return tuple(
        tuple(map(_word_needle, word.alternatives, itertools.repeat(word.prefix)))
        for word in leaf.words
    )


def _word_needle(tokens: tuple[str, ...], prefix: bool) -> str:
    """What a value holding one spelling of a word holds: its first token (`` drone``
    if a prefix), or, when a token is not ASCII, every token as it stands (such values are
    spaced with single spaces): `` 库 尔 斯 克 ``."""
    if all(map(str.isascii, tokens)):
        return f" {tokens[0]}" if prefix and len(tokens) == 1 else f" {tokens[0]} "
    return f" {' '.join(tokens)}" + ("" if prefix else " ")


def _clause(keys: frozenset[str]) -> Clause:
    """Split clause keys into exact tokens and prefixes (written ``drone*``)."""
    prefixes = tuple(sorted(k[:-1] for k in keys if k.endswith("*")))
    return Clause(frozenset(k for k in keys if not k.endswith("*")), prefixes)


def fields_used(rule: CompiledRule) -> set[str]:
    """Every field the rule may look at: its own fields and those of its scopes."""
    found = set(rule.fields)
    stack: list[Node] = [rule.condition]
    while stack:
        node = stack.pop()
        if isinstance(node, Scope):
            if node.field != "text":
                found.add(node.field)
            stack.append(node.child)
        elif isinstance(node, And | Or):
            stack.extend(node.children)
        elif isinstance(node, Not):
            stack.append(node.child)
    return found


# --- necessary token sets ------------------------------------------------------------------


def required(node: Node) -> list[frozenset[str]]:
    """Clauses that hold whenever ``node`` does: each lists tokens one of which must occur.

    An item lacking every token of a clause cannot match, which a set test shows without
    locating anything. A prefix ``drone*`` is held by an item with a token that starts so.
    An empty list means nothing is known (a NOT, a regex).
    """
    if isinstance(node, Term):
        return [frozenset({node.token})]
    if isinstance(node, Prefix):
        return [frozenset({node.prefix + "*"})]
    if isinstance(node, Phrase):
        return [_word_clause(word) for word in node.words]
    if isinstance(node, And):
        return [c for child in node.children for c in required(child)]
    if isinstance(node, Or):
        return _either(required(c) for c in node.children)
    if isinstance(node, Scope):
        return required(node.child)
    if isinstance(node, Near):
        return _either(map(required, node.left)) + _either(map(required, node.right))
    return []


def required_runs(node: Node) -> list[tuple[str, ...]]:
    """Like ``required`` for runs of tokens that hold a character of a script written
    without spaces: each group lists runs (`` 库 尔 斯 克 ``), one of which a spaced value
    holds wherever ``node`` matches. Such values are spaced with single spaces."""
    if isinstance(node, Phrase):
        runs = _phrase_runs(node)
        return [runs] if runs else []
    if isinstance(node, And):
        return [g for child in node.children for g in required_runs(child)]
    if isinstance(node, Or):
        return _either_runs(required_runs(c) for c in node.children)
    if isinstance(node, Scope):
        return required_runs(node.child)
    if isinstance(node, Near):
        return [
            *_either_runs([required_runs(x) for x in node.left]),
            *_either_runs([required_runs(y) for y in node.right]),
        ]
    return []


def _phrase_runs(phrase: Phrase) -> tuple[str, ...]:
    """Each spelling of a phrase as a run, when every spelling holds an unspaced token."""
    expansions = _expansions(phrase.words)
    if expansions is None:
        return ()
    runs = []
    for tokens in expansions:
        if not any(is_unspaced(token) for token, _ in tokens):
            return ()
        last_is_prefix = tokens[-1][1]
        runs.append(" " + " ".join(t for t, _ in tokens) + ("" if last_is_prefix else " "))
    return tuple(runs)


def _either_runs(options: Iterable[list[tuple[str, ...]]]) -> list[tuple[str, ...]]:
    """One group for an OR: the runs of the first group of every branch, if each has one."""
    union: list[str] = []
    for groups in options:
        if not groups:
            return []
        union.extend(groups[0])
    return [tuple(dict.fromkeys(union))]


def _word_clause(word: Word) -> frozenset[str]:
    """Keys one of which occurs wherever ``word`` does: each alternative's first token.

    A prefix is written ``drone*`` (no token holds a ``*``).
    """
    return frozenset(
        tokens[0] + "*" if word.prefix and len(tokens) == 1 else tokens[0]
        for tokens in word.alternatives
    )


def _either(options: Iterable[list[frozenset[str]]]) -> list[frozenset[str]]:
    """One clause for an OR: the union of the narrowest clause of every branch."""
    union: set[str] = set()
    for clauses in options:
        if not clauses:
            return []
        union |= min(clauses, key=len)
    return [frozenset(union)]


# Rules filed under one anchor token with the same companion clause: its tokens and its
# prefixes (`` drone`` for ``drone*``), the token pair or run the anchor came from as it
# occurs in a joined value (`` fiber optic ``, `` 库 尔 斯 克 ``; empty for a single-token
# anchor), then the ``sure``
# rules, whose every necessary clause the anchor and companion imply, and the ``check``
# rules, which must also pass ``_may_match``. A plain tuple, unpacked in a hot loop.
Entry = tuple[frozenset[str], tuple[str, ...], str, tuple[int, ...], tuple[int, ...]]
Filed = dict[str | None, dict[str, dict[tuple[Clause, str], tuple[list[int], list[int]]]]]


# What the C look-up is built from per entry: anchor id, companion ids, companion prefixes,
# token ids of the pair or run, the run as it stands, and groups of runs each of which must
# have one in the text.
ScanSpec = tuple[
    int, tuple[int, ...], tuple[str, ...], tuple[int, ...], str, tuple[tuple[str, ...], ...]
]


@dataclass
class _Index:
    """Rule positions by anchor token per language (each with a companion clause to test),
    and by prefix."""

    tokens: dict[str | None, dict[str, tuple[Entry, ...]]] = field(default_factory=dict)
    keys: dict[str | None, frozenset[str]] = field(default_factory=dict)  # of ``tokens``
    # Per anchor token, every companion token of its entries: an item holding none of them
    # fails every entry. An anchor with a companion prefix lists itself, so that it always
    # goes on to the entry-by-entry test.
    companions: dict[str | None, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    prefixes: dict[str, list[int]] = field(default_factory=dict)  # prefix -> anchored rules
    always: list[int] = field(default_factory=list)
    fields: frozenset[str] = frozenset()  # every field some rule looks at
    vocabulary: dict[str | None, frozenset[str]] = field(default_factory=dict)  # rule tokens
    automaton: ahocorasick.Automaton | None = None
    # The C look-up of the unstemmed anchors (``tokens[None]``), and per entry it reports
    # as passing, its sure and its check rules.
    scanner: ScanIndex | None = None
    scanned: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()
    scanner_args: tuple[list[str], list[ScanSpec]] | None = None  # what ``scanner`` was made of


def _build_index(rules: Sequence[CompiledRule], scan: bool = True) -> _Index:
    """File each rule under its anchors; companions make most false candidates drop at once."""
    index = _Index()
    filed: Filed = {}
    for position, rule in enumerate(rules):
        keys = anchors(rule.condition, rule.language)
        if keys is None:
            index.always.append(position)
            continue
        for kind, language, text in keys:
            if kind == "p":
                index.prefixes.setdefault(text, []).append(position)
                continue
            token, companion = _anchor_token(rule, kind, text)
            table = filed.setdefault(language, {}).setdefault(token, {})
            pair = f" {text} " if kind == "b" else ""
            sure, check = table.setdefault((companion, pair), ([], []))
            implied = (
                not rule.scoped
                and all(_implied(c, token, companion) for c in rule.clauses)
                and all(pair in group for group in rule.runs)
            )
            (sure if implied else check).append(position)
    index.tokens = {
        language: {
            token: tuple(
                (c.tokens, _starts_of(c), pair, tuple(s), tuple(k))
                for (c, pair), (s, k) in by.items()
            )
            for token, by in table.items()
        }
        for language, table in filed.items()
    }
    index.keys = {language: frozenset(table) for language, table in index.tokens.items()}
    for language, by_token in index.tokens.items():
        index.companions[language] = {
            token: _companion_tokens(token, entries) for token, entries in by_token.items()
        }
    index.fields = frozenset().union(*map(fields_used, rules))
    vocabulary = _vocabulary(rules)
    index.vocabulary = {
        language: tokens
        for language, tokens in vocabulary.items()
        if len(tokens) <= VOCABULARY_LIMIT
    }
    index.automaton = _prefix_automaton(index.prefixes)
    if scan and ScanIndex is not None and None in index.tokens:
        _add_scanner(index, vocabulary.get(None, frozenset()), rules)
    return index


def _add_scanner(index: _Index, vocabulary: frozenset[str], rules: Sequence[CompiledRule]) -> None:
    """Hand the unstemmed anchors to the C module; it then answers the token-set questions
    about unstemmed rule words (``vocabulary``) too, so their Python filter is not needed.

    An entry's check rules that need runs of unspaced scripts beyond the entry's own (their
    ``runs`` groups) are split off into entries of their own that carry those groups: the
    scan tests them on the text, where a companion of single characters passes nearly
    every item of that script.
    """
    assert ScanIndex is not None
    table = index.tokens[None]
    words = set(vocabulary).union(table)
    for entries in table.values():
        words.update(*(entry[0] for entry in entries))
    ordered = sorted(words)
    ids = {word: number for number, word in enumerate(ordered)}
    specs: list[ScanSpec] = []
    scanned: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    for token, entries in table.items():
        for needs, starts, pair, sure, check in entries:
            companions = tuple(ids[t] for t in sorted(needs))
            chain = tuple(ids[t] for t in pair.split())
            # A run longer than a pair (only phrases of unspaced scripts give one) must have
            # each pair side by side, then occur as it is: the values holding it are spaced
            # with single spaces.
            run = pair if len(chain) > 2 else ""
            by_groups: dict[tuple[tuple[str, ...], ...], list[int]] = {}
            for position in check:
                groups = tuple(g for g in rules[position].runs if pair not in g)
                by_groups.setdefault(groups, []).append(position)
            plain = by_groups.pop((), [])
            if sure or plain:
                specs.append((ids[token], companions, starts, chain, run, ()))
                scanned.append((sure, tuple(plain)))
            for groups, positions in by_groups.items():
                specs.append((ids[token], companions, starts, chain, run, groups))
                scanned.append(((), tuple(positions)))
    index.scanner = ScanIndex(ordered, specs)
    index.scanner_args = (ordered, specs)
    index.scanned = tuple(scanned)
    for python_only in (index.vocabulary, index.keys, index.companions):
        python_only.pop(None, None)


def _companion_tokens(token: str, entries: Sequence[Entry]) -> tuple[str, ...]:
    """Every companion token of an anchor's entries; the anchor too if one has a prefix."""
    found = set().union(*(entry[0] for entry in entries))
    if any(entry[1] for entry in entries):
        found.add(token)
    return tuple(sorted(found))


def _starts_of(clause: Clause) -> tuple[str, ...]:
    """The clause's prefixes as substrings of a spaced value: `` drone`` for ``drone*``."""
    return tuple(" " + prefix for prefix in clause.prefixes)


def _vocabulary(rules: Sequence[CompiledRule]) -> dict[str | None, frozenset[str]]:
    """Every token the rules mention, per language, as their conditions hold it."""
    found: dict[str | None, set[str]] = {}
    for rule in rules:
        tokens = found.setdefault(rule.language, set())
        for leaf in _leaves(rule.condition):
            if isinstance(leaf, Term):
                tokens.add(leaf.token)
            elif isinstance(leaf, Phrase):
                for word in leaf.words:
                    tokens.update(itertools.chain.from_iterable(word.alternatives))
    return {language: frozenset(tokens) for language, tokens in found.items()}


def _anchor_token(rule: CompiledRule, kind: str, text: str) -> tuple[str, Clause]:
    """The token a rule is filed under for one anchor key, and a companion clause.

    A pair ``a b`` is filed under its longer token with the other as companion (a longer
    run, under a pair of it: ``_adjacent``); a token under itself with the rule's narrowest
    clause that does not hold it, preferring clauses without prefixes (a set test rather
    than a substring search). An item must hold the token and satisfy the companion for
    the rule to be a candidate.
    """
    options = sorted(rule.clauses, key=lambda c: bool(c.prefixes))
    if kind == "b":
        first, second = _adjacent(text.split(" "))
        text, other = (first, second) if len(first) >= len(second) else (second, first)
        options.insert(0, Clause(frozenset({other})))
    for companion in options:
        if text not in companion.tokens:
            return text, companion
    return text, Clause(frozenset({text}))


def _adjacent(tokens: Sequence[str]) -> tuple[str, str]:
    """The two side-by-side tokens of a run that an item must hold as a pair: the first two
    (in a script written without spaces, the word's first characters are as rare as any)."""
    return tokens[0], tokens[1]


def _implied(clause: Clause, token: str, companion: Clause) -> bool:
    """Whether an item holding ``token`` and satisfying ``companion`` satisfies ``clause``."""
    if token in clause.tokens or clause == companion:
        return True
    return not companion.prefixes and companion.tokens <= clause.tokens


def _prefix_automaton(prefixes: dict[str, list[int]]) -> ahocorasick.Automaton | None:
    """One automaton finding every anchoring prefix at the start of a token."""
    if not prefixes:
        return None
    automaton = ahocorasick.Automaton()
    for prefix in prefixes:
        automaton.add_word(" " + prefix, prefix)
    automaton.make_automaton()
    return automaton


@dataclass(frozen=True)
class CompiledRules:
    rules: tuple[CompiledRule, ...]
    index: _Index

    def __len__(self) -> int:
        return len(self.rules)

    def __reduce__(self) -> tuple[Callable[..., CompiledRules], tuple[Any, ...]]:
        """Pickle (the compiled-rules cache, a ``spawn`` worker) everything but the C look-up,
        which is rebuilt from the arguments it was made with."""
        state = {k: v for k, v in vars(self.index).items() if k != "scanner"}
        return _unpickle_rules, (self.rules, state)


def _unpickle_rules(rules: tuple[CompiledRule, ...], state: dict[str, Any]) -> CompiledRules:
    index = _Index(**state)
    if index.scanner_args is not None:
        if ScanIndex is None:  # pickled where the C module was built, read where it is not
            return compile_rules([rule.rule for rule in rules], scan=False)
        index.scanner = ScanIndex(*index.scanner_args)
    return CompiledRules(rules, index)


def compile_rules(rules: Sequence[Rule], scan: bool = True) -> CompiledRules:
    """Compile enabled rules and index them by anchor; raises QueryError on a bad rule.

    ``scan=False`` keeps the anchor look-up in Python even when the C module is built.
    """
    compiled = tuple(compile_rule(r) for r in rules if r.enabled)
    return CompiledRules(compiled, _build_index(compiled, scan))


# --- anchors -------------------------------------------------------------------------------


def anchors(node: Node, language: str | None) -> frozenset[Key] | None:
    """Keys one of which an item must hold for ``node`` to match; ``None``: cannot tell."""
    if isinstance(node, Term):
        return frozenset({("t", language, node.token)})
    if isinstance(node, Prefix):
        return frozenset({("p", None, node.prefix)})
    if isinstance(node, Phrase):
        return _phrase_anchors(node, language)
    if isinstance(node, Scope):
        return anchors(node.child, language)
    if isinstance(node, Near):
        sides = [_union(anchors(x, language) for x in side) for side in (node.left, node.right)]
        return _best(sides)
    if isinstance(node, And):
        return _best([anchors(c, language) for c in node.children])
    if isinstance(node, Or):
        return _union(anchors(c, language) for c in node.children)
    return None  # Not, Regex


def _union(sets: Iterable[frozenset[Key] | None]) -> frozenset[Key] | None:
    result: set[Key] = set()
    for keys in sets:
        if keys is None:
            return None
        result |= keys
    return frozenset(result)


def _cost(keys: frozenset[Key]) -> float:
    weights = {"b": 0.2, "t": 1.0, "p": 2.0}
    return sum(weights[kind] / len(text) for kind, _, text in keys)


def _best(options: list[frozenset[Key] | None]) -> frozenset[Key] | None:
    known = [keys for keys in options if keys is not None]
    return min(known, key=_cost) if known else None


def _phrase_anchors(phrase: Phrase, language: str | None) -> frozenset[Key]:
    expansions = _expansions(phrase.words)
    if expansions is None:
        first = phrase.words[0]
        return frozenset(
            _best_key(list(_flags(first, alt)), language) for alt in first.alternatives
        )
    return frozenset(_best_key(tokens, language) for tokens in expansions)


def _flags(word: Word, tokens: tuple[str, ...]) -> Iterator[tuple[str, bool]]:
    for position, token in enumerate(tokens):
        yield token, word.prefix and position == len(tokens) - 1


def _expansions(words: tuple[Word, ...]) -> list[list[tuple[str, bool]]] | None:
    count = 1
    for word in words:
        count *= len(word.alternatives)
    if count > MAX_EXPANSIONS:
        return None
    choices = [[list(_flags(w, alt)) for alt in w.alternatives] for w in words]
    return [list(itertools.chain.from_iterable(combo)) for combo in itertools.product(*choices)]


def _best_key(tokens: list[tuple[str, bool]], language: str | None) -> Key:
    """The key of one spelling of a phrase (tokens with their prefix flags): its longest
    pair of exact tokens, or token, or prefix. In scripts written without spaces every
    character is a token and any one pair of them is common: there the key is the whole
    run of exact tokens, found as it is (SPEC §4 spaces such text with single spaces)."""
    run = _unspaced_run(tokens)
    if run is not None:
        return ("b", language, run)
    pairs = [(a + " " + b) for (a, pa), (b, pb) in itertools.pairwise(tokens) if not pa and not pb]
    if pairs:
        return ("b", language, max(pairs, key=len))
    exact = [t for t, is_prefix in tokens if not is_prefix]
    if exact:
        return ("t", language, max(exact, key=len))
    return ("p", None, max((t for t, _ in tokens), key=len))


def _unspaced_run(tokens: list[tuple[str, bool]]) -> str | None:
    """The longest run of two or more exact tokens that holds a character of a script written
    without spaces, joined by spaces; ``None`` when there is none."""
    best: list[str] = []
    for is_prefix, group in itertools.groupby(tokens, key=operator.itemgetter(1)):
        run = [token for token, _ in group]
        if not is_prefix and len(run) > max(1, len(best)) and any(map(is_unspaced, run)):
            best = run
    return " ".join(best) if best else None


# --- one item ------------------------------------------------------------------------------


class _ItemText:
    """An item's field values, tokenised once on first use, with per-language views.

    ``fields`` names the fields whose tokens make up the item's token set (every field some
    rule looks at); ``None``: all of them. ``vocabulary`` holds, per language, every token
    the rules mention: the token set then keeps only those, which is all any test asks
    about and cheaper to find than the set of every token. With a ``scanner``, the
    unstemmed token set is what it finds in the text, and unstemmed positions come from
    the C module's ``starts`` on the spaced values (no split, no join).
    """

    def __init__(
        self,
        item: MatchItem,
        fields: Collection[str] | None = None,
        vocabulary: Mapping[str | None, frozenset[str]] | None = None,
        scanner: ScanIndex | None = None,
    ) -> None:
        values = item.fields
        if not values.get("feed") and item.feed_name:
            values = {**values, "feed": (item.feed_name,)}
        self.values = values
        self.scope = [n for n in values if fields is None or n in fields]
        self.tokens: dict[str, list[list[str]]] = {}
        self._spaced: dict[str, list[str]] = {}
        self._stemmed: dict[tuple[str, str], list[list[str]]] = {}
        self._positions: dict[tuple[str, int, str | None], dict[str, list[int]]] = {}
        self._spans: dict[tuple[int, str, str | None], list[Span]] = {}
        self._joined: dict[tuple[str, int, str | None], str] = {}
        self._all_spaced = ""
        self._joined_all: dict[str | None, str] = {}
        self._sets: dict[tuple[str, str | None], TokenSet] = {}
        self._vocabulary = vocabulary or {}
        self._scanner = scanner
        self._c_starts = c_starts if scanner is not None else None

    def spaced(self, name: str) -> list[str]:
        """Each value of field ``name`` as ``text.spaced`` gives it."""
        found = self._spaced.get(name)
        if found is None:
            found = self._spaced[name] = [spaced(v) for v in self.values.get(name, ())]
        return found

    def raw(self, name: str) -> list[list[str]]:
        """The tokens of each value of field ``name``."""
        found = self.tokens.get(name)
        if found is None:
            found = self.tokens[name] = [s.split() for s in self.spaced(name)]
        return found

    def view(self, name: str, language: str | None) -> list[list[str]]:
        raw = self.raw(name)
        if language is None:
            return raw
        key = (name, language)
        if key not in self._stemmed:
            self._stemmed[key] = [STEMS.stem(language, tokens) for tokens in raw]
        return self._stemmed[key]

    def token_set(self, language: str | None) -> TokenSet:
        """The tokens of the fields in scope, in the language's stemmed form.

        With a vocabulary for the language, only the tokens it holds; with a scanner, the
        unstemmed set is what the scan found: the rule words, and the passing entries.
        """
        key = ("", language)
        found = self._sets.get(key)
        if found is None and language is None and self._scanner is not None:
            found = self._sets[key] = self._scanner.scan(self.all_spaced())
        elif found is None:
            lists = [tokens for name in self.scope for tokens in self.view(name, language)]
            known = self._vocabulary.get(language)
            if known is None:
                found = set().union(*lists)
            else:
                found = known.intersection(itertools.chain.from_iterable(lists))
            self._sets[key] = found
        return found

    def spaced_values(self) -> Iterator[str]:
        """Every value in scope as ``text.spaced`` gives it."""
        for name in self.scope:
            yield from self.spaced(name)

    def has_prefix(self, prefix: str) -> bool:
        """Whether some raw token in scope starts with ``prefix``."""
        return self.has_start(" " + prefix)

    def all_spaced(self) -> str:
        """Every value in scope as ``text.spaced`` gives it, joined by newlines.

        A newline never occurs in a spaced value: it marks where one value ends, so that
        two tokens either side of it are not side by side.
        """
        if not self._all_spaced:
            self._all_spaced = "\n".join(self.spaced_values())
        return self._all_spaced

    def has_start(self, needle: str) -> bool:
        """Whether some value in scope holds ``needle``, a prefix with a space before it."""
        return needle in self.all_spaced()

    def has_token(self, name: str, language: str | None, token: str) -> bool:
        """Whether any value of field ``name`` holds ``token``, without locating it."""
        if language is None:
            needle = f" {token} "
            for value in self.spaced(name):  # noqa: SIM110 - see ``holds_term``
                if needle in value:
                    return True
            return False
        key = (name, language)
        found = self._sets.get(key)
        if found is None:
            found = self._sets[key] = frozenset().union(*self.view(name, language))
        return token in found

    def joined(self, name: str, index: int, language: str | None) -> str:
        """One value's tokens in the language's form, one space around each.

        The token at position ``i`` starts right after the ``i``-th space.
        """
        key = (name, index, language)
        found = self._joined.get(key)
        if found is None:
            found = self._joined[key] = f" {' '.join(self.view(name, language)[index])} "
        return found

    def joined_all(self, language: str | None) -> str:
        """Every value in scope as ``joined`` gives it, one after the other.

        Two tokens are side by side in some value exactly when `` a b `` occurs in it.
        """
        found = self._joined_all.get(language)
        if found is None:
            found = self._joined_all[language] = "".join(
                self.joined(name, index, language)
                for name in self.scope
                for index in range(len(self.spaced(name)))
            )
        return found

    def positions(self, name: str, index: int, language: str | None, token: str) -> list[int]:
        """Where ``token`` occurs in one field value, found once by C-level string searches."""
        key = (name, index, language)
        table = self._positions.get(key)
        if table is None:
            table = self._positions[key] = {}
        found = table.get(token)
        if found is None:
            if language is None and f" {token} " not in self.spaced(name)[index]:
                found = table[token] = []
            elif language is None and self._c_starts is not None:
                found = table[token] = self._c_starts(self.spaced(name)[index], (token,))
            else:
                found = table[token] = _starts(self.joined(name, index, language), (token,))
        return found

    def may_hold(self, name: str, needles: Needles) -> bool:
        """Whether some value of field ``name`` holds a needle of every group."""
        for value in self.spaced(name):
            for group in needles:
                for needle in group:
                    if needle in value:
                        break
                else:
                    break  # no needle of this group: try the next value
            else:
                return True
        return False

    def spans(self, leaf: Leaf, name: str, language: str | None) -> list[Span]:
        key = (id(leaf), name, language)
        found = self._spans.get(key)
        if found is None:
            found = self._spans[key] = list(self._find(leaf, name, language))
        return found

    def _find(self, leaf: Leaf, name: str, language: str | None) -> Iterator[Span]:
        for index in range(len(self.spaced(name))):
            if isinstance(leaf, Term):
                for p in self.positions(name, index, language, leaf.token):
                    yield index, p, p + 1
            elif isinstance(leaf, Prefix):
                for p in self._prefix_positions(name, index, leaf.prefix):
                    yield index, p, p + 1
            else:
                yield from self._phrase_spans(leaf, name, index, language)

    def _prefix_positions(self, name: str, index: int, prefix: str) -> list[int]:
        found: list[int] = []
        for token in _tokens_starting(self.spaced(name)[index], prefix):
            found.extend(self.positions(name, index, None, token))
        return sorted(found)

    def _phrase_spans(
        self, phrase: Phrase, name: str, index: int, language: str | None
    ) -> Iterator[Span]:
        tokens = _plain_tokens(phrase)
        if tokens is not None:
            if language is None and self._c_starts is not None:
                found = self._c_starts(self.spaced(name)[index], tokens)
            else:
                found = _starts(self.joined(name, index, language), tokens)
            for start in found:
                yield index, start, start + len(tokens)
            return
        raw = self.raw(name)[index]
        stemmed = self.view(name, language)[index]
        seen: set[tuple[int, int]] = set()
        for start in sorted(self._phrase_starts(phrase.words[0], name, index, language)):
            for end in _extend(phrase.words, 0, start, raw, stemmed):
                if (start, end) not in seen:
                    seen.add((start, end))
                    yield index, start, end

    def _phrase_starts(self, word: Word, name: str, index: int, language: str | None) -> set[int]:
        """Positions where the first token of some alternative of ``word`` occurs."""
        starts: set[int] = set()
        for tokens in word.alternatives:
            if word.prefix and len(tokens) == 1:
                starts.update(self._prefix_positions(name, index, tokens[0]))
            else:
                starts.update(self.positions(name, index, language, tokens[0]))
        return starts


def _tokens_starting(value: str, prefix: str) -> set[str]:
    """The distinct tokens of a spaced value that start with ``prefix``."""
    found: set[str] = set()
    needle = " " + prefix
    at = value.find(needle)
    while at >= 0:
        end = value.index(" ", at + 1)
        found.add(value[at + 1 : end])
        at = value.find(needle, end)
    return found


def _plain_tokens(phrase: Phrase) -> tuple[str, ...] | None:
    """The phrase's tokens when each word has one spelling and no wildcard."""
    tokens: list[str] = []
    for word in phrase.words:
        if word.prefix or len(word.alternatives) != 1:
            return None
        tokens.extend(word.alternatives[0])
    return tuple(tokens)


def _starts(joined: str, tokens: tuple[str, ...]) -> list[int]:
    """Token positions where ``tokens`` occur consecutively in a ``joined`` value."""
    needle = f" {' '.join(tokens)} "
    found: list[int] = []
    at = joined.find(needle)
    count = before = 0
    while at >= 0:
        count += joined.count(" ", before, at)  # tokens before this occurrence
        before = at
        found.append(count)
        at = joined.find(needle, at + 1)  # occurrences of a phrase may overlap
    return found


def _extend(
    words: tuple[Word, ...], k: int, pos: int, raw: list[str], stemmed: list[str]
) -> Iterator[int]:
    """End positions where ``words[k:]`` match consecutively from token ``pos``."""
    if k == len(words):
        yield pos
        return
    word = words[k]
    for tokens in word.alternatives:
        end = pos + len(tokens)
        if end > len(raw):
            continue
        last = len(tokens) - 1
        if all(
            raw[pos + i].startswith(t) if word.prefix and i == last else stemmed[pos + i] == t
            for i, t in enumerate(tokens)
        ):
            yield from _extend(words, k + 1, end, raw, stemmed)


# --- evaluation ----------------------------------------------------------------------------


@dataclass
class _Evaluation:
    """One rule on one item: decides truth, then gathers terms and hits of what matched."""

    text: _ItemText
    rule: CompiledRule
    terms: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    seen: set[Hit] = field(default_factory=set)
    per_value: dict[tuple[str, int], int] = field(default_factory=dict)

    def fields_for(self, scope: str | None) -> tuple[str, ...]:
        return self.rule.fields if scope in (None, "text") else (scope,)

    def leaf_spans(self, leaf: Leaf, fields: tuple[str, ...]) -> Iterator[tuple[str, Span]]:
        needles = self.rule.needles.get(id(leaf))
        for name in fields:
            if needles is not None and not self.text.may_hold(name, needles):
                continue
            for span in self.text.spans(leaf, name, self.rule.language):
                yield name, span

    def holds(self, node: Node, fields: tuple[str, ...]) -> bool:
        if isinstance(node, Term):
            return self.holds_term(node.token, fields)
        if isinstance(node, Prefix | Phrase):
            return any(True for _ in self.leaf_spans(node, fields))
        if isinstance(node, Regex):
            return any(True for _ in self.regex_hits(node, fields))
        if isinstance(node, And):
            return all(map(self.holds, node.children, itertools.repeat(fields)))
        if isinstance(node, Or):
            return any(map(self.holds, node.children, itertools.repeat(fields)))
        if isinstance(node, Not):
            return not self.holds(node.child, fields)
        if isinstance(node, Scope):
            return self.holds(node.child, self.fields_for(node.field))
        return any(True for _ in self.near_pairs(node, fields))

    def holds_term(self, token: str, fields: tuple[str, ...]) -> bool:
        """Whether one of ``fields`` holds ``token``; the item's token set rules most out."""
        language = self.rule.language
        if token not in self.text.token_set(language):
            return False
        for name in fields:  # noqa: SIM110 - a loop, not a generator, on this hot path
            if self.text.has_token(name, language, token):
                return True
        return False

    def regex_hits(
        self, node: Regex, fields: tuple[str, ...]
    ) -> Iterator[tuple[str, int, str, tuple[int, int]]]:
        for name in fields:
            for index, value in enumerate(self.text.values.get(name, ())):
                found = node.compiled.search(value)
                if found is not None:
                    yield name, index, value, found.span()

    def near_pairs(
        self, node: Near, fields: tuple[str, ...]
    ) -> Iterator[tuple[Leaf, Leaf, str, Span, Span]]:
        for name in fields:
            left = [(x, s) for x in node.left for s in self.text.spans(x, name, self.rule.language)]
            right = [
                (y, s) for y in node.right for s in self.text.spans(y, name, self.rule.language)
            ]
            if not left or not right:
                continue
            partners = _NearPartners([b for _, b in right], node.distance)
            for x, a in left:  # the order of every (left, right) pair, near ones only
                for position in partners.of(a):
                    y, b = right[position]
                    yield x, y, name, a, b

    def collect(self, node: Node, fields: tuple[str, ...]) -> None:
        """Record the labels and spans of the positive conditions that hold under ``node``."""
        if isinstance(node, Term | Prefix | Phrase):
            for name, span in self.leaf_spans(node, fields):
                self.add(node.label, name, span)
        elif isinstance(node, Regex):
            for name, index, value, chars in self.regex_hits(node, fields):
                self.add_regex(node.label, name, index, value, chars)
        elif isinstance(node, And):  # it holds, so every child does
            for child in node.children:
                if not isinstance(child, Not):
                    self.collect(child, fields)
        elif isinstance(node, Or):
            for child in node.children:
                if not isinstance(child, Not) and self.holds(child, fields):
                    self.collect(child, fields)
        elif isinstance(node, Scope):
            self.collect(node.child, self.fields_for(node.field))
        elif isinstance(node, Near):
            for x, y, name, a, b in self.near_pairs(node, fields):
                self.add(x.label, name, a)
                self.add(y.label, name, b)

    def add(self, label: str, name: str, span: Span) -> None:
        if label not in self.terms:
            self.terms.append(label)
        self._keep(Hit(name, *span))

    def _keep(self, hit: Hit) -> None:
        """Record a hit once, and at most ``MAX_HITS_PER_VALUE`` of one field value: the
        hits only place snippets, and a long text may hold a word a hundred thousand times."""
        if hit in self.seen:
            return
        value = (hit.field, hit.index)
        kept = self.per_value.get(value, 0)
        if kept < MAX_HITS_PER_VALUE:
            self.per_value[value] = kept + 1
            self.seen.add(hit)
            self.hits.append(hit)

    def add_regex(
        self, label: str, name: str, index: int, value: str, chars: tuple[int, int]
    ) -> None:
        if label not in self.terms:
            self.terms.append(label)
        spans = tokenize_spans(value)
        inside = [i for i, (_, s, e) in enumerate(spans) if s < chars[1] and e > chars[0]]
        if inside:
            self._keep(Hit(name, index, inside[0], inside[-1] + 1))


class _NearPartners:
    """The spans near a given span, found by binary search rather than by trying each.

    ``b`` is near ``a`` (``_near``) when it starts within ``distance`` tokens after ``a``
    ends, or ends within ``distance`` tokens before ``a`` starts, in the same value.
    """

    def __init__(self, spans: Sequence[Span], distance: int) -> None:
        self.distance = distance
        self.starts = sorted((b[0], b[1], position) for position, b in enumerate(spans))
        self.ends = sorted((b[0], b[2], position) for position, b in enumerate(spans))

    def of(self, a: Span) -> list[int]:
        """Positions (in the given order) of the spans near ``a``."""
        value, first, end = a
        after = self._between(self.starts, value, end, end - 1 + self.distance)
        before = self._between(self.ends, value, first + 1 - self.distance, first)
        return sorted(after + before)

    @staticmethod
    def _between(keys: list[tuple[int, int, int]], value: int, low: int, high: int) -> list[int]:
        start = bisect.bisect_left(keys, (value, low, -1))
        stop = bisect.bisect_right(keys, (value, high, len(keys)))
        return [position for _, _, position in keys[start:stop]]


def _near(a: Span, b: Span, distance: int) -> bool:
    if a[2] <= b[1]:
        return b[1] - (a[2] - 1) <= distance
    if b[2] <= a[1]:
        return a[1] - (b[2] - 1) <= distance
    return False


def in_scope(rule: CompiledRule, item: MatchItem) -> bool:
    """Whether the rule's ``feeds`` include the item's feed (an empty list: every feed) and
    its ``languages`` the item's language (an item with no language passes)."""
    if not in_languages(rule.rule.languages, item.language):
        return False
    if not rule.feed_names and not rule.feed_tags:
        return True
    if item.feed_name in rule.feed_names:
        return True
    return any(tag.casefold() in rule.feed_tags for tag in item.feed_tags)


def in_languages(ranges: Sequence[str], language: str | None) -> bool:
    """RFC 4647 basic filtering: a range matches a tag equal to it or starting with it and
    ``-`` (``zh`` matches ``zh-CN``), case-insensitively; ``*`` matches any. No ranges, or
    no language, pass."""
    if not ranges or not language:
        return True
    tag = language.lower()
    return any(r == "*" or tag == r or tag.startswith(r + "-") for r in ranges)


def evaluate_rule(
    rule: CompiledRule, item: MatchItem, text: _ItemText | None = None
) -> Match | None:
    """Evaluate one compiled rule on an item, without the index."""
    if not in_scope(rule, item):
        return None
    text = text or _ItemText(item)
    evaluation = _Evaluation(text, rule)
    if not evaluation.holds(rule.condition, rule.fields):
        return None
    evaluation.collect(rule.condition, rule.fields)
    return Match(rule.rule.id, tuple(evaluation.terms), tuple(evaluation.hits))


def candidates(compiled: CompiledRules, text: _ItemText) -> list[int]:
    """Positions of the rules that may match the item, in rule order.

    A rule is a candidate when the item holds one of its anchor tokens and satisfies the
    companion filed with it; a rule whose other clauses that does not settle must also
    pass ``_may_match``.
    """
    index = compiled.index
    sure: set[int] = set()
    check: set[int] = set(index.always)
    has_start = text.has_start
    for language, table in index.tokens.items():
        tokens = text.token_set(language)
        if Found is not None and isinstance(tokens, Found):
            for entry in tokens.entries:  # pairs too were checked in C
                sure_rules, check_rules = index.scanned[entry]
                sure.update(sure_rules)
                if check_rules:
                    check.update(check_rules)
            continue
        assert isinstance(tokens, AbstractSet)
        for token in _passing_anchors(index, language, tokens):
            for needs, starts, pair, sure_rules, check_rules in table[token]:
                if needs.isdisjoint(tokens) and not (starts and any(map(has_start, starts))):
                    continue
                if pair and pair not in text.joined_all(language):
                    continue  # the phrase's two tokens occur, but never side by side
                sure.update(sure_rules)
                if check_rules:
                    check.update(check_rules)
    if index.automaton is not None:
        hits = map(index.automaton.iter, text.spaced_values())
        found = set(map(_SECOND, itertools.chain.from_iterable(hits)))
        check.update(*map(index.prefixes.__getitem__, found))
    check -= sure
    if check:
        rules = compiled.rules
        sure.update(p for p in check if _may_match(rules[p], text))
    return sorted(sure)


def _passing_anchors(
    index: _Index, language: str | None, tokens: AbstractSet[str]
) -> AbstractSet[str]:
    """The anchor tokens the item holds whose entries may pass: some companion token is held,
    or some entry has a companion prefix (tested entry by entry).

    The anchors held are many (~30 an item with 10,000 rules) and almost all fail; the
    companion test runs in C, without a Python loop over them.
    """
    held = index.keys[language].intersection(tokens)
    if not held:
        return held
    needs = map(index.companions[language].__getitem__, held)
    return set(itertools.compress(held, map(operator.not_, map(tokens.isdisjoint, needs))))


def _may_match(rule: CompiledRule, text: _ItemText) -> bool:
    """False when the item fails one of the rule's necessary clauses."""
    if rule.runs:  # first: runs of unspaced scripts rule out the most
        spaced_text = text.all_spaced()
        for runs in rule.runs:
            if not any(run in spaced_text for run in runs):
                return False
    tokens = text.token_set(rule.language)
    for clause in rule.clauses:
        if tokens.isdisjoint(clause.tokens) and not any(map(text.has_prefix, clause.prefixes)):
            return False
    return all(text.may_hold(name, (group,)) for name, group in rule.scoped)


def match_item(compiled: CompiledRules, item: MatchItem) -> list[Match]:
    """Every enabled rule that matches ``item``, in rule order."""
    index = compiled.index
    text = _ItemText(item, index.fields, index.vocabulary, index.scanner)
    matches: list[Match] = []
    for position in candidates(compiled, text):
        found = evaluate_rule(compiled.rules[position], item, text)
        if found is not None:
            matches.append(found)
    return matches


def match_item_unindexed(compiled: CompiledRules, item: MatchItem) -> list[Match]:
    """Like ``match_item`` but evaluates every rule; for tests and benchmarks."""
    text = _ItemText(item)
    return [m for r in compiled.rules if (m := evaluate_rule(r, item, text)) is not None]


# --- what the matcher sees of an item ----------------------------------------------------


def match_input(
    item: ParsedItem | StoredItem, feed: FeedState, article: str | None = None
) -> MatchItem:
    """What the matcher sees of an item, parsed or stored: the same fields either way.

    ``article`` is the text of the item's article page (``full_text``); a stored item
    brings its own ``article_text``.
    """
    if article is None and isinstance(item, StoredItem):
        article = item.article_text
    fields: dict[str, tuple[str, ...]] = {
        "title": (item.title,),
        "summary": (item.summary_text,),
        "content": (item.content_text,),
        "article": (article,) if article else (),
        "author": (item.author,) if item.author else (),
        "link": (item.link,) if item.link else (),
        "tags": item.tags,
        "feed": tuple(v for v in (feed.name, feed.title) if v),
    }
    return MatchItem(
        fields=fields, feed_name=feed.name, feed_tags=feed.tags, language=item.language
    )
