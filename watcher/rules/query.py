"""Parse rule queries and phrase lists into a small frozen AST; does not evaluate them.

Grammar (SPEC §4), tightest first: field scope, NEAR, NOT, AND, OR; parentheses group::

    query    := or_expr
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := not_expr (["AND"] not_expr)*
    not_expr := ("NOT" | "-") not_expr | near
    near     := primary [("NEAR" | "NEAR/n") primary]
    primary  := WORD | PHRASE | REGEX | "(" or_expr ")" | FIELD ":" primary

Columns in errors are 1-based and count characters of the query text. A query may nest
parentheses, ``NOT``/``-`` and field scopes at most ``MAX_DEPTH`` deep and hold at most
``MAX_TERMS`` words, phrases and regexes, so that no input can exhaust the parser's stack
(or the matcher's and the search index's, which walk the same tree).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import re2

from watcher.text import is_unspaced, normalize, tokenize, tokenize_spans
from watcher.types import FIELDS

SCOPE_FIELDS: tuple[str, ...] = (*FIELDS, "text")
DEFAULT_NEAR = 10
UNSPACED_PREFIX = "a term in Chinese/Japanese/Korean/Thai already matches inside words; drop the *"
# Phrase quotes: opening mark -> closing mark.
QUOTES = {'"': '"', "\u201c": "\u201d", "\u201e": "\u201c", "\u00ab": "\u00bb"}
# Hyphens that join the parts of a word (after NFKC), and the slash.
JOINERS = re.compile("[-\u2010/]+")
_NEAR = re.compile(r"NEAR(?:/(.*))?")
_CLOCK = re.compile(r"\d+(?::\d+)+")
_FIELD_PREFIX = re.compile(r"([^:]+):")
MAX_DEPTH = 64  # nested parentheses, NOT/- and field scopes
MAX_TERMS = 256  # words, phrases and regexes of one query, as written
# Term lists (SPEC §4): ``$NAME`` stands for ``(w1 OR w2 OR ...)``. A name starts with a
# lower-case ASCII letter; ``$`` before any other ASCII letter is a reference too (an
# unknown one), ``$$`` writes a literal ``$``, and ``$`` before anything else is literal.
LIST_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_LIST_REFERENCE = re.compile(r"\$([A-Za-z][^\s]*)")
TermLists = Mapping[str, Sequence[str]]  # name -> entries, each a term or phrase


class QueryError(ValueError):
    """A query or phrase that cannot be parsed; ``column`` is 1-based (``None``: the whole text)."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.message = message
        self.column = column
        super().__init__(f"{message} at column {column}" if column else message)


# --- the AST -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    """One written word of a phrase: token sequences it may match, as written or joined."""

    alternatives: tuple[tuple[str, ...], ...]
    prefix: bool = False  # the last token of each alternative is a prefix (``drone*``)


@dataclass(frozen=True)
class Term:
    token: str
    label: str
    column: int = 0
    written: str = field(default="", compare=False)  # as the query wrote it


@dataclass(frozen=True)
class Prefix:
    prefix: str
    label: str
    column: int = 0
    written: str = field(default="", compare=False)


@dataclass(frozen=True)
class Phrase:
    words: tuple[Word, ...]
    label: str
    column: int = 0
    written: str = field(default="", compare=False)


@dataclass(frozen=True)
class Regex:
    pattern: str
    label: str
    column: int = 0
    compiled: Any = field(compare=False, hash=False, repr=False, default=None)  # an RE2 pattern

    def __reduce__(self) -> tuple[Callable[[str, int], Regex], tuple[str, int]]:
        """Unpickle by compiling the pattern again (an RE2 pattern does not pickle)."""
        return compile_regex, (self.pattern, self.column)


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]
    column: int = 0


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]
    column: int = 0


@dataclass(frozen=True)
class Not:
    child: Node
    column: int = 0


@dataclass(frozen=True)
class Near:
    left: tuple[Leaf, ...]  # alternatives (an OR-group) on each side
    right: tuple[Leaf, ...]
    distance: int = DEFAULT_NEAR
    column: int = 0


@dataclass(frozen=True)
class Scope:
    field: str  # a name of SCOPE_FIELDS; "text" is the rule's own fields
    child: Node
    column: int = 0


Leaf = Term | Prefix | Phrase
Node = Term | Prefix | Phrase | Regex | And | Or | Not | Near | Scope


# --- words and phrases ---------------------------------------------------------------------


def is_list_reference(word: str) -> bool:
    """Whether a word is written as a term list reference (``$kursk``, or ``$Kursk``)."""
    return _LIST_REFERENCE.fullmatch(word) is not None


def parse_entry(text: str, lists: TermLists | None = None, column: int = 1) -> Node | None:
    """Parse an ``any``/``all``/``none`` entry: a literal phrase, or a whole ``$NAME``.

    Returns ``None`` when the text holds no token at all.
    """
    stripped = text.strip()
    if _LIST_REFERENCE.fullmatch(stripped):
        expanded = expand_list(stripped, lists, column + text.index(stripped))
        return expanded.children[0] if len(expanded.children) == 1 else Or(expanded.children)
    return parse_phrase(text, column)


def expand_list(reference: str, lists: TermLists | None, column: int) -> Or:
    """``$NAME`` as an OR-group of its entries; an unknown or malformed name is an error."""
    name = reference[1:]
    entries = (lists or {}).get(name) if LIST_NAME.fullmatch(name) else None
    if entries is None:
        raise QueryError(_unknown_list(name, lists or {}), column)
    return _Group(Or(_list_leaves(tuple(entries)), column))


@lru_cache(maxsize=1024)
def _list_leaves(entries: tuple[str, ...]) -> tuple[Leaf, ...]:
    """A list's entries as leaves, parsed once however many rules use the list."""
    return tuple(leaf for leaf in map(parse_phrase, entries) if leaf is not None)


def _unknown_list(name: str, lists: TermLists) -> str:
    if not LIST_NAME.fullmatch(name) and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        return (
            f"invalid term list name ${name}: a name is lower-case letters, digits, _ and -"
            " (write $$ for a literal $)"
        )
    same = [known for known in lists if known.lower() == name.lower()]
    close = same or difflib.get_close_matches(name.lower(), list(lists), n=1, cutoff=0.6)
    if close:
        return f"unknown term list ${name}; did you mean ${close[0]}?"
    if not lists:
        return f"unknown term list ${name}: no terms: lists are defined (write $$ for a literal $)"
    return f"unknown term list ${name}; lists are {', '.join('$' + n for n in sorted(lists))}"


def parse_phrase(text: str, column: int = 1) -> Leaf | None:
    """Parse literal phrase text (``any``/``all``/``none`` entries, quoted phrases, entries
    of term lists). A ``$NAME`` inside one is an error: a list stands only where a term may.

    Returns ``None`` when the text holds no token at all.
    """
    words: list[Word] = []
    for offset, raw in _split_words(text):
        if _LIST_REFERENCE.match(raw):
            raise QueryError(
                f"a term list ({raw}) stands alone as an entry or a query word, not inside a"
                " phrase; write $$ for a literal $",
                column + offset,
            )
        word = parse_word(raw, column + offset)
        if word is not None:
            words.append(word)
    if not words:
        return None
    return _leaf(tuple(words), _label(text), column, text)


def parse_word(raw: str, column: int = 1) -> Word | None:
    """One written word -> its token alternatives; ``None`` when it has no token."""
    prefix = raw.endswith("*")
    stem = raw[:-1] if prefix else raw
    if "*" in stem:
        raise QueryError("a * may only end a word", column + stem.index("*"))
    tokens = tokenize(stem)
    if prefix:
        _check_prefix(stem, tokens, column + len(stem))
    if not tokens:
        return None
    alternatives = [tuple(tokens)]
    joined = tuple(tokenize(JOINERS.sub("", normalize(stem))))
    if joined != alternatives[0]:
        alternatives.append(joined)
    return Word(tuple(alternatives), prefix)


def _check_prefix(stem: str, tokens: list[str], column: int) -> None:
    spans = tokenize_spans(stem)
    if not spans or spans[-1][2] != len(stem):
        raise QueryError("a * must follow a letter or digit", column)
    if is_unspaced(tokens[-1]):
        raise QueryError(UNSPACED_PREFIX, column)
    if len(tokens[-1]) < 2:
        raise QueryError("a wildcard prefix needs at least 2 characters", column)


def _leaf(words: tuple[Word, ...], label: str, column: int, written: str) -> Leaf:
    if len(words) == 1 and len(words[0].alternatives) == 1:
        tokens = words[0].alternatives[0]
        if len(tokens) == 1:
            if words[0].prefix:
                return Prefix(tokens[0], label, column, written)
            return Term(tokens[0], label, column, written)
    return Phrase(words, label, column, written)


def _label(text: str) -> str:
    """A condition as ``Match.terms`` shows it: ``"Drone*,"`` -> ``drone*``.

    Words of a script written without spaces are shown together: ``库尔 斯克`` ->
    ``库尔斯克`` (the space changes nothing).
    """
    label = ""
    for word in filter(None, (_word_label(word) for word in text.split())):
        if label and not (_ends_unspaced(label) and _starts_unspaced(word)):
            label += " "
        label += word
    return label


def _starts_unspaced(label: str) -> bool:
    tokens = tokenize(label)
    return bool(tokens) and is_unspaced(tokens[0])


def _ends_unspaced(label: str) -> bool:
    tokens = tokenize(label.rstrip("*"))
    return bool(tokens) and is_unspaced(tokens[-1])


def _word_label(word: str) -> str:
    normalized = normalize(word)
    spans = tokenize_spans(normalized)
    if not spans:
        return ""
    core = normalized[spans[0][1] : spans[-1][2]]
    return core + "*" if word.endswith("*") else core


def _split_words(text: str) -> Iterator[tuple[int, str]]:
    for found in re.finditer(r"\S+", text):
        yield found.start(), found.group()


# --- lexer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lexeme:
    kind: str  # word, phrase, regex, op, near, not, scope, lparen, rparen
    text: str
    column: int
    distance: int = DEFAULT_NEAR


def lex(query: str) -> list[Lexeme]:
    """Split a query into lexemes; quote, regex, field and operator errors are raised here."""
    out: list[Lexeme] = []
    pos = 0
    while pos < len(query):
        pos = _lex_one(query, pos, out)
    return out


def _lex_one(query: str, pos: int, out: list[Lexeme]) -> int:
    char = query[pos]
    column = pos + 1
    if char.isspace():
        return pos + 1
    if char in "()":
        out.append(Lexeme("lparen" if char == "(" else "rparen", char, column))
        return pos + 1
    if char in QUOTES:
        return _lex_phrase(query, pos, out)
    if char == "/":
        return _lex_regex(query, pos, out)
    if char == "-":
        if pos + 1 == len(query) or query[pos + 1].isspace():
            return pos + 1  # a lone "-" is ignored
        out.append(Lexeme("not", "-", column))
        return pos + 1
    return _lex_word(query, pos, out)


def _lex_phrase(query: str, pos: int, out: list[Lexeme]) -> int:
    closing = QUOTES[query[pos]]
    end = query.find(closing, pos + 1)
    if end < 0:
        raise QueryError("unbalanced quote", pos + 1)
    out.append(Lexeme("phrase", query[pos + 1 : end], pos + 2))
    return end + 1


def _lex_regex(query: str, pos: int, out: list[Lexeme]) -> int:
    pattern: list[str] = []
    index = pos + 1
    while index < len(query):
        char = query[index]
        if char == "\\" and index + 1 < len(query):
            pair = query[index : index + 2]
            pattern.append("/" if pair == "\\/" else pair)
            index += 2
            continue
        if char == "/":
            if not pattern:
                raise QueryError("empty regex", pos + 1)
            out.append(Lexeme("regex", "".join(pattern), pos + 1))
            return index + 1
        pattern.append(char)
        index += 1
    raise QueryError("unterminated regex (no closing /)", pos + 1)


def _word_end(query: str, pos: int) -> int:
    end = pos
    while end < len(query) and not query[end].isspace() and query[end] not in "()":
        if query[end] in QUOTES:
            break
        end += 1
    return end


def _lex_word(query: str, pos: int, out: list[Lexeme]) -> int:
    end = _word_end(query, pos)
    word = query[pos:end]
    column = pos + 1
    if word in ("AND", "OR", "NOT"):
        out.append(Lexeme("not" if word == "NOT" else "op", word, column))
        return end
    near = _NEAR.fullmatch(word)
    if near:
        out.append(Lexeme("near", word, column, _near_distance(near.group(1), column)))
        return end
    scope = _FIELD_PREFIX.match(word)
    if scope and not _CLOCK.fullmatch(word) and tokenize(scope.group(1)):
        return _lex_scope(query, pos, scope.group(1), out)
    out.append(Lexeme("word", word, column))
    return end


def _near_distance(text: str | None, column: int) -> int:
    if text is None:
        return DEFAULT_NEAR
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise QueryError("NEAR/ needs a whole number of at least 1", column)
    return int(text)


def _lex_scope(query: str, pos: int, name: str, out: list[Lexeme]) -> int:
    if name not in SCOPE_FIELDS:
        raise QueryError(_unknown_field(name), pos + 1)
    after = pos + len(name) + 1
    if after == len(query) or query[after].isspace() or query[after] == ")":
        raise QueryError(f"{name}: needs an operand", pos + 1)
    out.append(Lexeme("scope", name, pos + 1))
    return after


def _unknown_field(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), SCOPE_FIELDS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; fields are {', '.join(SCOPE_FIELDS)}"
    return f"unknown field {name!r}{hint}"


# --- parser --------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the lexemes of one query."""

    def __init__(self, query: str, lists: TermLists | None = None) -> None:
        self.query = query
        self.lists = lists
        self.lexemes = lex(query)
        _check_size(self.lexemes)
        self.pos = 0
        self.depth = 0

    @contextmanager
    def nested(self, lexeme: Lexeme) -> Iterator[None]:
        """One level deeper (a group, a NOT, a scope); too deep is an error at ``lexeme``."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(
                f"the query nests parentheses, NOT and field scopes more than {MAX_DEPTH} deep",
                lexeme.column,
            )
        try:
            yield
        finally:
            self.depth -= 1

    def peek(self) -> Lexeme | None:
        return self.lexemes[self.pos] if self.pos < len(self.lexemes) else None

    def take(self) -> Lexeme:
        lexeme = self.lexemes[self.pos]
        self.pos += 1
        return lexeme

    def parse(self) -> Node:
        if self.peek() is None:
            raise QueryError("empty query")
        node = self.or_expr()
        extra = self.peek()
        if extra is not None:
            raise QueryError(_unexpected(extra), extra.column)
        if node is None:
            raise QueryError("the query has no word to look for")
        return node

    def or_expr(self) -> Node | None:
        branches = [self.and_expr()]
        column = 0
        while (lexeme := self.peek()) is not None and lexeme.kind == "op" and lexeme.text == "OR":
            column = self.take().column
            if branches[-1] is None:
                raise QueryError("OR needs a condition on its left", column)
            branches.append(self.and_expr())
            if branches[-1] is None:
                raise QueryError("OR needs a condition on its right", column)
        if len(branches) == 1:
            return branches[0]
        return Or(tuple(b for b in branches if b is not None), column)

    def and_expr(self) -> Node | None:
        parts: list[Node] = []
        while (lexeme := self.peek()) is not None:
            if lexeme.kind == "op" and lexeme.text == "AND":
                self.take()
                if not parts or not self._starts_operand():
                    raise QueryError("AND needs a condition on both sides", lexeme.column)
                continue
            if not self._starts_operand():
                break
            node = self.not_expr()
            if node is not None:
                parts.append(node)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else And(tuple(parts), parts[0].column)

    def _starts_operand(self) -> bool:
        lexeme = self.peek()
        return lexeme is not None and lexeme.kind not in ("op", "rparen", "near")

    def not_expr(self) -> Node | None:
        lexeme = self.peek()
        if lexeme is not None and lexeme.kind == "not":
            self.take()
            if not self._starts_operand():
                raise QueryError(f"{lexeme.text} needs a condition after it", lexeme.column)
            following = self.peek()
            if following is not None and following.kind == "not":
                raise QueryError("NOT NOT is not allowed", lexeme.column)
            with self.nested(lexeme):
                child = self.not_expr()
            if child is None:
                raise QueryError(f"{lexeme.text} needs a word after it", lexeme.column)
            if isinstance(child, Not):
                raise QueryError("NOT NOT is not allowed", lexeme.column)
            return Not(child, lexeme.column)
        return self.near()

    def near(self) -> Node | None:
        left = self.primary()
        lexeme = self.peek()
        if lexeme is None or lexeme.kind != "near":
            return left
        self.take()
        following = self.peek()
        if following is None or following.kind not in (
            "word",
            "phrase",
            "lparen",
            "regex",
            "scope",
        ):
            raise QueryError("NEAR needs a word or phrase on both sides", lexeme.column)
        right = self.primary()
        following = self.peek()
        if following is not None and following.kind == "near":
            raise QueryError("NEAR cannot be chained", following.column)
        return Near(
            _near_operand(left, lexeme.column),
            _near_operand(right, lexeme.column),
            lexeme.distance,
            lexeme.column,
        )

    def primary(self) -> Node | None:
        lexeme = self.take()
        if lexeme.kind == "word":
            if _LIST_REFERENCE.match(lexeme.text):
                return expand_list(lexeme.text, self.lists, lexeme.column)
            return _bare_word(lexeme)
        if lexeme.kind == "phrase":
            return parse_phrase(lexeme.text, lexeme.column)
        if lexeme.kind == "regex":
            return compile_regex(lexeme.text, lexeme.column)
        if lexeme.kind == "lparen":
            with self.nested(lexeme):
                return self.group(lexeme)
        if lexeme.kind == "scope":
            with self.nested(lexeme):
                return self.scope(lexeme)
        raise QueryError(_unexpected(lexeme), lexeme.column)

    def group(self, opening: Lexeme) -> Node | None:
        closing = self.peek()
        if closing is not None and closing.kind == "rparen":
            raise QueryError("empty parentheses", opening.column)
        node = self.or_expr()
        closing = self.peek()
        if closing is None or closing.kind != "rparen":
            if closing is None:
                raise QueryError("unbalanced parenthesis", opening.column)
            raise QueryError(_unexpected(closing), closing.column)
        self.take()
        if node is None:
            raise QueryError("the parentheses hold no word to look for", opening.column)
        return _Group(node) if isinstance(node, Or | Term | Prefix | Phrase) else node

    def scope(self, lexeme: Lexeme) -> Node:
        following = self.peek()
        if following is None or following.kind not in ("word", "phrase", "regex", "lparen"):
            raise QueryError(f"{lexeme.text}: needs an operand", lexeme.column)
        child = self.primary()
        if child is None:
            raise QueryError(f"{lexeme.text}: needs an operand", lexeme.column)
        return Scope(lexeme.text, _ungroup(child), lexeme.column)


def _check_size(lexemes: list[Lexeme]) -> None:
    """At most MAX_TERMS words, phrases and regexes; raised at the first one past the limit.

    A ``$NAME`` term list counts as the one word it is written as: the limit applies to
    the query as written, before any list is expanded (lists are bounded where declared).
    """
    terms = [lexeme for lexeme in lexemes if lexeme.kind in ("word", "phrase", "regex")]
    if len(terms) > MAX_TERMS:
        raise QueryError(
            f"the query holds more than {MAX_TERMS} words and phrases", terms[MAX_TERMS].column
        )


class _Group(Or):
    """Marks a parenthesised OR-group (or single leaf) so NEAR may take it as an operand."""

    def __init__(self, node: Node) -> None:
        children = node.children if isinstance(node, Or) else (node,)
        super().__init__(children, node.column)


def _ungroup(node: Node) -> Node:
    if isinstance(node, _Group):
        return node.children[0] if len(node.children) == 1 else Or(node.children, node.column)
    return node


def _bare_word(lexeme: Lexeme) -> Leaf | None:
    word = parse_word(lexeme.text, lexeme.column)
    if word is None:
        return None
    return _leaf((word,), _label(lexeme.text), lexeme.column, lexeme.text)


def _near_operand(node: Node | None, column: int) -> tuple[Leaf, ...]:
    if isinstance(node, Term | Prefix | Phrase):
        return (node,)
    found = _group_leaves(node) if isinstance(node, _Group) else None
    if found is None:
        raise QueryError("NEAR operands must be words, phrases or (a OR b) groups of them", column)
    return found


def _group_leaves(node: Node) -> tuple[Leaf, ...] | None:
    """The leaves of an OR-group whose branches are leaves or OR-groups of them (``$NAME``
    lists included), in order; ``None`` for anything else."""
    if isinstance(node, Term | Prefix | Phrase):
        return (node,)
    if not isinstance(node, Or):
        return None
    found: list[Leaf] = []
    for child in node.children:
        leaves = _group_leaves(child)
        if leaves is None:
            return None
        found.extend(leaves)
    return tuple(found)


def _unexpected(lexeme: Lexeme) -> str:
    if lexeme.kind == "rparen":
        return "unbalanced parenthesis"
    return f"unexpected {lexeme.text!r}"


def compile_regex(pattern: str, column: int) -> Regex:
    """Compile an RE2 pattern, case-insensitive; a bad pattern is a QueryError."""
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = False
    try:
        compiled = re2.compile(pattern, options=options)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise QueryError(f"invalid regex: {text}", column) from None
    return Regex(pattern, f"/{pattern}/", column, compiled)


# --- checks and entry point ----------------------------------------------------------------


def _check_positive(node: Node) -> None:
    """Raise unless ``node`` needs something present; every OR branch must."""
    if not _is_positive(node):
        raise QueryError("a query needs a word to look for, not only NOT", node.column or None)


def _is_positive(node: Node) -> bool:
    if isinstance(node, Not):
        _is_positive(node.child)  # check the OR branches inside
        return False
    if isinstance(node, And):
        results = [_is_positive(c) for c in node.children]
        return any(results)
    if isinstance(node, Or):
        for child in node.children:
            if not _is_positive(child):
                raise QueryError("every OR branch needs a word to look for", child.column or None)
        return True
    if isinstance(node, Scope):
        return _is_positive(node.child)
    return True


def _strip_groups(node: Node) -> Node:
    if isinstance(node, _Group):
        return _strip_groups(_ungroup(node))
    if isinstance(node, And):
        return And(tuple(_strip_groups(c) for c in node.children), node.column)
    if isinstance(node, Or):
        return Or(tuple(_strip_groups(c) for c in node.children), node.column)
    if isinstance(node, Not):
        return Not(_strip_groups(node.child), node.column)
    if isinstance(node, Scope):
        return Scope(node.field, _strip_groups(node.child), node.column)
    return node


def parse_query(query: str, lists: TermLists | None = None) -> Node:
    """Parse a ``query:`` expression, ``$NAME`` from ``lists``; every error is a QueryError
    with its column."""
    node = _strip_groups(_Parser(query, lists).parse())
    _check_positive(node)
    return node


def leaves(node: Node) -> Iterator[Term | Prefix | Phrase | Regex]:
    """Every leaf under ``node``, left to right."""
    if isinstance(node, And | Or):
        for child in node.children:
            yield from leaves(child)
    elif isinstance(node, Not | Scope):
        yield from leaves(node.child)
    elif isinstance(node, Near):
        yield from node.left
        yield from node.right
    else:
        yield node
