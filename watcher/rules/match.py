"""Decide which rules match an item; pure: no I/O, no clock, no alert decisions.

``compile_rules`` turns rules into condition trees and an anchor index: every rule that can
only match when some token, token pair or token prefix is present is filed under one such
anchor, so ``match_item`` tokenises an item once and fully evaluates only the rules whose
anchor occurs in it (plus the few rules with no anchor, such as regex-only ones).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import ahocorasick
import snowballstemmer

from watcher.rules.normalize import tokenize, tokenize_spans
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
    parse_phrase,
    parse_query,
)
from watcher.types import Hit, Match, MatchItem, Rule

Span = tuple[int, int, int]  # value index, first token, end token (exclusive)
Key = tuple[str, str | None, str]  # kind ("t" token, "b" token pair, "p" prefix), language, text
MAX_EXPANSIONS = 32
_STEM_CACHE_LIMIT = 200_000


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
class CompiledRule:
    rule: Rule
    condition: Node
    fields: tuple[str, ...]
    language: str | None
    feed_names: frozenset[str]
    feed_tags: frozenset[str]


def rule_condition(rule: Rule) -> Node:
    """The rule's ``any``/``all``/``none``/``query`` as one tree; raises QueryError."""
    parts: list[Node] = []
    any_of = [leaf for leaf in map(parse_phrase, rule.any) if leaf is not None]
    if any_of:
        parts.append(any_of[0] if len(any_of) == 1 else Or(tuple(any_of)))
    parts.extend(leaf for leaf in map(parse_phrase, rule.all) if leaf is not None)
    if rule.query is not None:
        parts.append(parse_query(rule.query))
    parts.extend(Not(leaf) for leaf in map(parse_phrase, rule.none) if leaf is not None)
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def compile_rule(rule: Rule) -> CompiledRule:
    condition = rule_condition(rule)
    if rule.stem:
        condition = _stem_node(condition, rule.stem)
    names = frozenset(f for f in rule.feeds if not f.startswith("tag:"))
    tags = frozenset(f[4:].casefold() for f in rule.feeds if f.startswith("tag:"))
    return CompiledRule(rule, condition, rule.fields, rule.stem or None, names, tags)


@dataclass
class _Index:
    """Rule positions by anchor: exact tokens and token pairs per language, and prefixes."""

    tokens: dict[str | None, dict[str, list[int]]] = field(default_factory=dict)
    pairs: dict[str | None, dict[str, list[int]]] = field(default_factory=dict)
    prefixes: dict[str, list[int]] = field(default_factory=dict)
    always: list[int] = field(default_factory=list)
    automaton: ahocorasick.Automaton | None = None

    def add(self, position: int, anchors: frozenset[Key] | None) -> None:
        if anchors is None:
            self.always.append(position)
            return
        for kind, language, text in anchors:
            if kind == "p":
                self.prefixes.setdefault(text, []).append(position)
            else:
                table = self.tokens if kind == "t" else self.pairs
                table.setdefault(language, {}).setdefault(text, []).append(position)

    def finish(self) -> None:
        if not self.prefixes:
            return
        automaton = ahocorasick.Automaton()
        for prefix, positions in self.prefixes.items():
            automaton.add_word(" " + prefix, tuple(positions))
        automaton.make_automaton()
        self.automaton = automaton

    def languages(self) -> set[str | None]:
        return set(self.tokens) | set(self.pairs)


@dataclass(frozen=True)
class CompiledRules:
    rules: tuple[CompiledRule, ...]
    index: _Index

    def __len__(self) -> int:
        return len(self.rules)


def compile_rules(rules: Sequence[Rule]) -> CompiledRules:
    """Compile enabled rules and index them by anchor; raises QueryError on a bad rule."""
    compiled = tuple(compile_rule(r) for r in rules if r.enabled)
    index = _Index()
    for position, rule in enumerate(compiled):
        index.add(position, anchors(rule.condition, rule.language))
    index.finish()
    return CompiledRules(compiled, index)


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
    pairs = [(a + " " + b) for (a, pa), (b, pb) in itertools.pairwise(tokens) if not pa and not pb]
    if pairs:
        return ("b", language, max(pairs, key=len))
    exact = [t for t, is_prefix in tokens if not is_prefix]
    if exact:
        return ("t", language, max(exact, key=len))
    return ("p", None, max((t for t, _ in tokens), key=len))


# --- one item ------------------------------------------------------------------------------


class _ItemText:
    """An item's field values tokenised once, with lazily built per-language views."""

    def __init__(self, item: MatchItem) -> None:
        self.values = dict(item.fields)
        if not self.values.get("feed") and item.feed_name:
            self.values["feed"] = (item.feed_name,)
        self.tokens = {name: [tokenize(v) for v in vals] for name, vals in self.values.items()}
        self._stemmed: dict[tuple[str, str], list[list[str]]] = {}
        self._positions: dict[tuple[str, int, str | None], dict[str, list[int]]] = {}
        self._spans: dict[tuple[object, str, str | None], list[Span]] = {}
        self._sets: dict[tuple[str, str | None], set[str]] = {}

    def all_tokens(self, language: str | None) -> Iterator[list[str]]:
        for name in self.tokens:
            yield from self.view(name, language)

    def view(self, name: str, language: str | None) -> list[list[str]]:
        raw = self.tokens.get(name, [])
        if language is None:
            return raw
        key = (name, language)
        if key not in self._stemmed:
            self._stemmed[key] = [STEMS.stem(language, tokens) for tokens in raw]
        return self._stemmed[key]

    def has_token(self, name: str, language: str | None, token: str) -> bool:
        """Whether any value of field ``name`` holds ``token``, without locating it."""
        key = (name, language)
        found = self._sets.get(key)
        if found is None:
            found = self._sets[key] = set().union(*self.view(name, language))
        return token in found

    def positions(self, name: str, index: int, language: str | None) -> dict[str, list[int]]:
        key = (name, index, language)
        table = self._positions.get(key)
        if table is None:
            table = {}
            for position, token in enumerate(self.view(name, language)[index]):
                table.setdefault(token, []).append(position)
            self._positions[key] = table
        return table

    def spans(self, leaf: Leaf, name: str, language: str | None) -> list[Span]:
        key = (leaf, name, language)
        found = self._spans.get(key)
        if found is None:
            found = self._spans[key] = list(self._find(leaf, name, language))
        return found

    def _find(self, leaf: Leaf, name: str, language: str | None) -> Iterator[Span]:
        for index in range(len(self.tokens.get(name, ()))):
            if isinstance(leaf, Term):
                for p in self.positions(name, index, language).get(leaf.token, ()):
                    yield index, p, p + 1
            elif isinstance(leaf, Prefix):
                for p in self._prefix_positions(name, index, leaf.prefix):
                    yield index, p, p + 1
            else:
                yield from self._phrase_spans(leaf, name, index, language)

    def _prefix_positions(self, name: str, index: int, prefix: str) -> list[int]:
        table = self.positions(name, index, None)
        found = [ps for token, ps in table.items() if token.startswith(prefix)]
        return sorted(itertools.chain.from_iterable(found))

    def _phrase_spans(
        self, phrase: Phrase, name: str, index: int, language: str | None
    ) -> Iterator[Span]:
        raw = self.tokens[name][index]
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
                starts.update(self.positions(name, index, language).get(tokens[0], ()))
        return starts


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

    def fields_for(self, scope: str | None) -> tuple[str, ...]:
        return self.rule.fields if scope in (None, "text") else (scope,)

    def leaf_spans(self, leaf: Leaf, fields: tuple[str, ...]) -> Iterator[tuple[str, Span]]:
        for name in fields:
            for span in self.text.spans(leaf, name, self.rule.language):
                yield name, span

    def holds(self, node: Node, fields: tuple[str, ...]) -> bool:
        if isinstance(node, Term):
            language = self.rule.language
            return any(self.text.has_token(name, language, node.token) for name in fields)
        if isinstance(node, Prefix | Phrase):
            return any(True for _ in self.leaf_spans(node, fields))
        if isinstance(node, Regex):
            return any(True for _ in self.regex_hits(node, fields))
        if isinstance(node, And):
            return all(self.holds(c, fields) for c in node.children)
        if isinstance(node, Or):
            return any(self.holds(c, fields) for c in node.children)
        if isinstance(node, Not):
            return not self.holds(node.child, fields)
        if isinstance(node, Scope):
            return self.holds(node.child, self.fields_for(node.field))
        return any(True for _ in self.near_pairs(node, fields))

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
            for (x, a), (y, b) in itertools.product(left, right):
                if a[0] == b[0] and _near(a, b, node.distance):
                    yield x, y, name, a, b

    def collect(self, node: Node, fields: tuple[str, ...]) -> None:
        """Record the labels and spans of the positive conditions that hold under ``node``."""
        if isinstance(node, Term | Prefix | Phrase):
            for name, span in self.leaf_spans(node, fields):
                self.add(node.label, name, span)
        elif isinstance(node, Regex):
            for name, index, value, chars in self.regex_hits(node, fields):
                self.add_regex(node.label, name, index, value, chars)
        elif isinstance(node, And | Or):
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
        hit = Hit(name, *span)
        if hit not in self.hits:
            self.hits.append(hit)

    def add_regex(
        self, label: str, name: str, index: int, value: str, chars: tuple[int, int]
    ) -> None:
        if label not in self.terms:
            self.terms.append(label)
        spans = tokenize_spans(value)
        inside = [i for i, (_, s, e) in enumerate(spans) if s < chars[1] and e > chars[0]]
        if inside:
            hit = Hit(name, index, inside[0], inside[-1] + 1)
            if hit not in self.hits:
                self.hits.append(hit)


def _near(a: Span, b: Span, distance: int) -> bool:
    if a[2] <= b[1]:
        return b[1] - (a[2] - 1) <= distance
    if b[2] <= a[1]:
        return a[1] - (b[2] - 1) <= distance
    return False


def in_scope(rule: CompiledRule, item: MatchItem) -> bool:
    """Whether the rule's ``feeds`` include the item's feed (an empty list: every feed)."""
    if not rule.feed_names and not rule.feed_tags:
        return True
    if item.feed_name in rule.feed_names:
        return True
    return any(tag.casefold() in rule.feed_tags for tag in item.feed_tags)


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
    """Positions of the rules whose anchor occurs in the item, in rule order."""
    index = compiled.index
    found: set[int] = set(index.always)
    for language in index.languages():
        values = list(text.all_tokens(language))
        tokens = set().union(*values) if values else set()
        table = index.tokens.get(language, {})
        for token in _common(table, tokens):
            found.update(table[token])
        pairs_table = index.pairs.get(language)
        if pairs_table:
            pairs: set[str] = set()
            for tokens_of_value in values:
                pairs.update(map(" ".join, itertools.pairwise(tokens_of_value)))
            for pair in _common(pairs_table, pairs):
                found.update(pairs_table[pair])
    if index.automaton is not None:
        raw = set().union(*text.all_tokens(None))
        for _, positions in index.automaton.iter(" " + " ".join(raw)):
            found.update(positions)
    return sorted(found)


def _common(table: dict[str, list[int]], keys: set[str]) -> list[str]:
    return [k for k in keys if k in table]


def match_item(compiled: CompiledRules, item: MatchItem) -> list[Match]:
    """Every enabled rule that matches ``item``, in rule order."""
    text = _ItemText(item)
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
