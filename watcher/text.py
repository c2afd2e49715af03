"""Text normalisation and tokenisation shared by rules, items, story keys and search; no I/O.

Normalisation (SPEC §4): delete the soft hyphen and zero-width characters, apply NFKC,
case-fold, and strip accents from Latin letters only. A token is a maximal run of letters
(L*), combining marks (M*) and decimal digits (Nd) of the normalised text, except in the
scripts written without spaces between words (``UNSPACED``: Han, Hiragana, Katakana,
Hangul, Thai, Lao, Khmer, Myanmar), where each letter or digit is a token of its own with
the combining marks after it: ``"乌克兰的F-16"`` -> ``乌 克 兰 的 f 16``.

ASCII text takes a fast path (one ``bytes.translate`` and ``split``). Other text goes through
C-level ``unicodedata`` calls on the whole string plus regexes whose character classes are
built once, on first use, from the running Python's Unicode database.
"""

from __future__ import annotations

import itertools
import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import cache

try:
    from watcher._scan import fold as _c_fold
    from watcher._scan import set_classes as _c_set_classes
    from watcher._scan import set_fold as _c_set_fold
    from watcher._scan import spaced as _c_spaced
except ImportError:  # built without a C compiler: the regexes below do the same
    _c_set_classes = _c_spaced = _c_fold = _c_set_fold = None  # type: ignore[assignment]

IGNORABLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
_DELETE_IGNORABLE = dict.fromkeys(map(ord, IGNORABLE))
# Modifier letters that SPEC §4 counts as apostrophes, hence separators.
APOSTROPHE_LETTERS = frozenset("\u02bc\u02bb")
_ASCII_TOKEN = re.compile(r"[a-z0-9]+")
# bytes.translate table for ASCII text: upper-case letters lowered, other non-alphanumerics
# turned into spaces, so that ``split()`` yields exactly the ``_ASCII_TOKEN`` runs.
_ASCII_SPLIT = bytes(
    c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256)
)
# Vowel and trailing Hangul jamo compose with the preceding character under NFC.
_JAMO_VT = "\u1160-\u11ff"

# The scripts written without spaces between words, as code point ranges (inclusive). The
# one table of them: tokenisation here reads it, the C scan (``_scan.c``) only ever sees
# the spaced text made from it, and docs/rules.md lists it (a test compares).
UNSPACED: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    (
        "Han",
        (
            (0x2E80, 0x2FDF),
            (0x3005, 0x3005),
            (0x3007, 0x3007),
            (0x3021, 0x3029),
            (0x3038, 0x303B),
            (0x3400, 0x4DBF),
            (0x4E00, 0x9FFF),
            (0xF900, 0xFAFF),
            (0x20000, 0x323AF),
        ),
    ),
    ("Hiragana", ((0x3040, 0x309F),)),
    ("Katakana", ((0x30A0, 0x30FF), (0x31F0, 0x31FF))),
    (
        "Hangul",
        (
            (0x1100, 0x11FF),
            (0x3130, 0x318F),
            (0xA960, 0xA97F),
            (0xAC00, 0xD7AF),
            (0xD7B0, 0xD7FF),
        ),
    ),
    ("Thai", ((0x0E00, 0x0E7F),)),
    ("Lao", ((0x0E80, 0x0EFF),)),
    ("Khmer", ((0x1780, 0x17FF),)),
    ("Myanmar", ((0x1000, 0x109F),)),
)


# Character classes of ``_Classes.table`` (and of ``_scan.c``, which reads that table).
SEPARATOR, TOKEN, SINGLE, MARK = 0, 1, 2, 3
# Every code point above the Basic Multilingual Plane. The regexes of ``_Classes`` come in
# two builds: exact, and with classes cut to the BMP. ``re`` tests a BMP class with one
# table look-up but scans a list of ranges for each character outside it, so text without
# such characters (nearly all text) takes the fast build.
_ASTRAL = "\U00010000-\U0010ffff"
_HAS_ASTRAL = re.compile(f"[{_ASTRAL}]")
_HAS_IGNORABLE = re.compile(f"[{IGNORABLE}]")


@dataclass(frozen=True)
class _Patterns:
    """The regexes of one build (exact, or for text within the BMP).

    Each but ``token`` is a single character class, which ``re`` runs several times
    faster than an alternation.
    """

    token: re.Pattern[str]  # one token of normalised text
    run: re.Pattern[str]  # a run of token characters: one token or several side by side
    single: re.Pattern[str]  # a character that is a token on its own (SINGLE)
    other: re.Pattern[str]  # a token character that is not SINGLE (TOKEN or MARK)
    singles: re.Pattern[str]  # a run of them (without marks): a token each
    latin_marks: re.Pattern[str]  # marks that follow a Latin letter (after NFD)
    # Text without a match needs no accent stripping: no Latin letter that decomposes
    # with a mark, and no mark. The BMP build matches every astral character too.
    may_strip: re.Pattern[str]


@dataclass(frozen=True)
class _Classes:
    """A class table and the code points of each class, from the Unicode categories of
    this Python's ``unicodedata`` and the ``UNSPACED`` ranges; the regexes built from them
    (``_patterns``, ``_cluster``) are compiled when first needed."""

    table: bytes  # per code point: SEPARATOR, TOKEN, SINGLE or MARK
    by_class: dict[int, list[int]]  # TOKEN, SINGLE, MARK -> their code points, ascending
    latin: list[int]  # Latin letters
    decomposing: list[int]  # Latin letters whose NFD holds a mark
    # Text without a match normalises to NFKC(NFKC(text).casefold()): it holds no ignorable
    # character, no mark, no astral character and none that NFKC and case folding turn
    # into a Latin letter with an accent, so no step but those two changes anything.
    hazard: re.Pattern[str]

    def patterns(self, text: str) -> _Patterns:
        return _patterns(astral=_HAS_ASTRAL.search(text) is not None)


def _ranges(codes: list[int]) -> str:
    """A regex character-class body for sorted code points, as ranges."""
    parts: list[str] = []
    start = prev = codes[0]
    for code in codes[1:]:
        if code != prev + 1:
            parts.append(_range(start, prev))
            start = code
        prev = code
    parts.append(_range(start, prev))
    return "".join(parts)


def _range(start: int, end: int) -> str:
    if start == end:
        return re.escape(chr(start))
    return f"{re.escape(chr(start))}-{re.escape(chr(end))}"


# The planes that hold letters, marks and numbers: 0-3 and 14 (variation selectors and
# tags); 4-13 are unassigned and 15-16 private use (a test checks this Python's database).
ASSIGNED_PLANES = (range(0, 0x40000), range(0xE0000, 0xF0000))


def unspaced_code_points() -> frozenset[int]:
    """Every code point of the ``UNSPACED`` ranges."""
    return frozenset(
        code for _, ranges in UNSPACED for first, last in ranges for code in range(first, last + 1)
    )


def _character_class(code: int, category: str, unspaced: frozenset[int]) -> int:
    """SEPARATOR, TOKEN, SINGLE (a token on its own) or MARK, per SPEC §4."""
    if category[0] == "M":
        return MARK
    if code in unspaced:
        # A letter, a decimal digit or a number letter (〇) stands alone; the rest separates.
        return SINGLE if category[0] == "L" or category in ("Nd", "Nl") else SEPARATOR
    if (category[0] == "L" or category == "Nd") and chr(code) not in APOSTROPHE_LETTERS:
        return TOKEN
    return SEPARATOR


@cache
def _classes() -> _Classes:
    table = bytearray(sys.maxunicode + 1)
    latin: list[int] = []
    decomposing: list[int] = []  # Latin letters whose NFD holds a mark
    hazards: list[int] = [ord(c) for c in IGNORABLE]
    unspaced = unspaced_code_points()
    by_class: dict[int, list[int]] = {TOKEN: [], SINGLE: [], MARK: []}
    # Only letters, marks and numbers are ever part of a token (or turn into a Latin letter
    # with an accent): the loop skips the other nine tenths of the code points, found by
    # one regex over the two-letter category names side by side.
    codes = [code for plane in ASSIGNED_PLANES for code in plane]
    categories = "".join(map(unicodedata.category, map(chr, codes)))
    for found in re.finditer("[LMN][a-z]", categories):
        code = codes[found.start() // 2]
        category = found.group()
        kind = _character_class(code, category, unspaced)
        if kind != SEPARATOR:
            table[code] = kind
            by_class[kind].append(code)
        if kind == MARK:
            if code <= 0xFFFF:
                hazards.append(code)
            continue
        if code <= 0xFFFF and _gives_leading_mark(chr(code)):
            hazards.append(code)  # ``ﾟ``: a mark that may land after a Latin letter
        if code not in unspaced:  # no Latin letter there, nor one that turns into one
            char = chr(code)
            if category[0] == "L" and unicodedata.name(char, "").startswith("LATIN "):
                latin.append(code)
                if unicodedata.decomposition(char) and _has_mark(char):
                    decomposing.append(code)
            if code <= 0xFFFF and _becomes_accented(char):
                hazards.append(code)
    hazard = re.compile(f"[{_ranges(sorted(set(hazards)))}{_ASTRAL}]")
    frozen = bytes(table)
    if _c_set_classes is not None:
        _c_set_classes(frozen)
    if _c_set_fold is not None:
        _c_set_fold(_fold_char)
    return _Classes(frozen, by_class, latin, decomposing, hazard)


@cache
def _cluster() -> re.Pattern[str]:
    """A character with the marks and ignorables attached to it."""
    marks = _ranges(_classes().by_class[MARK])
    return re.compile(f"[{IGNORABLE}]|.[{marks}{IGNORABLE}{_JAMO_VT}]*", re.DOTALL)


def _has_mark(text: str) -> bool:
    """Whether the NFD of ``text`` holds a combining mark."""
    return any(unicodedata.category(c)[0] == "M" for c in unicodedata.normalize("NFD", text))


def _gives_leading_mark(char: str) -> bool:
    """Whether NFKC and case folding turn ``char``, not a mark, into text that starts with
    a mark after NFD (``ﾟ`` gives U+309A), which then belongs to the character before."""
    if not unicodedata.decomposition(char):
        return False
    parts = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", char).casefold())
    return bool(parts) and unicodedata.category(parts[0])[0] == "M"


def _becomes_accented(char: str) -> bool:
    """Whether NFKC and case folding turn ``char`` into text with a Latin letter and a mark
    after NFD (``é``, ``ǅ``, ``İ``)."""
    if not unicodedata.decomposition(char) and char.casefold() == char:
        return False
    folded = unicodedata.normalize("NFKC", char).casefold()
    if folded == char and unicodedata.is_normalized("NFD", char):
        return False
    parts = unicodedata.normalize("NFD", folded)
    return any(unicodedata.category(c)[0] == "M" for c in parts) and any(
        unicodedata.name(c, "").startswith("LATIN ") for c in parts
    )


@cache
def _patterns(*, astral: bool) -> _Patterns:
    """The regexes for text with astral characters (exact), or for text within the BMP."""
    classes = _classes()

    def within(codes: list[int]) -> list[int]:
        return codes if astral else list(itertools.takewhile(lambda c: c <= 0xFFFF, codes))

    token, single, marks = (within(classes.by_class[k]) for k in (TOKEN, SINGLE, MARK))
    mark_class, single_class = _ranges(marks), _ranges(single)
    latin_class = _ranges(within(classes.latin))
    strip = _ranges(sorted(within(classes.decomposing) + marks))
    return _Patterns(
        # A run of other token characters (marks included) first: the common case.
        token=re.compile(f"[{_ranges(sorted(token + marks))}]+|[{single_class}][{mark_class}]*"),
        run=re.compile(f"[{_ranges(sorted(token + marks + single))}]+"),
        single=re.compile(f"[{single_class}]"),
        other=re.compile(f"[{_ranges(sorted(token + marks))}]"),
        singles=re.compile(f"[{single_class}]+"),
        latin_marks=re.compile(f"(?<=[{latin_class}])[{mark_class}]+"),
        may_strip=re.compile(f"[{strip}]" if astral else f"[{strip}{_ASTRAL}]"),
    )


def normalize(text: str) -> str:
    """Return ``text`` normalised as SPEC §4 says.

    ``"Kur\\u00adsk Straße"`` -> ``"kursk strasse"``.
    """
    if text.isascii():
        return text.lower()
    if _c_fold is not None:
        _classes()  # hands the callback to the C module on first use
        folded = _c_fold(text)
        if folded is not None:
            return folded
    return _normalize_whole(text)


@cache
def _backward_combiners() -> frozenset[int]:
    """BMP code points that NFC composes with the character before them: the second of
    every canonical decomposition pair, and the vowel and trailing Hangul jamo."""
    found = set(range(0x1160, 0x1200))
    for code in range(0x10000):
        decomposition = unicodedata.decomposition(chr(code))
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:
                found.add(int(parts[1], 16))
    return frozenset(found)


def _fold_char(code: int) -> str | None:
    """The normal form of one BMP character when it does not depend on its neighbours, for
    the C module's ``fold``; None when it may.

    It does not when neither the character nor any of its form is a mark, has a combining
    class, composes with the character before it, or lies beyond the BMP: then no step of
    ``_normalize_whole`` (NFKC composes, reorders marks or strips them only around such
    characters; deleting and case folding go character by character) joins the forms of
    two characters side by side, and a text of such characters normalises to their forms
    one after the other.
    """
    char = chr(code)
    form = _normalize_whole(char)
    backward = _backward_combiners()
    for c in (char, *form):
        point = ord(c)
        if (
            point > 0xFFFF
            or point in backward
            or unicodedata.combining(c)
            or unicodedata.category(c)[0] == "M"
        ):
            return None
    return form


def _normalize_whole(text: str) -> str:
    """``normalize`` for any text, with ``unicodedata`` on the whole string."""
    if _classes().hazard.search(text) is None:  # nearly all text, in one C-level search
        return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    if _HAS_IGNORABLE.search(text):
        text = text.translate(_DELETE_IGNORABLE)
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        return text
    patterns = _classes().patterns(text)
    if patterns.may_strip.search(text) is None:
        # No Latin accent to strip: NFD and back would change nothing NFKC does not.
        return unicodedata.normalize("NFKC", text)
    decomposed = unicodedata.normalize("NFD", text)
    stripped = patterns.latin_marks.sub("", decomposed)
    return unicodedata.normalize("NFKC", stripped)


def is_unspaced(token: str) -> bool:
    """Whether ``token`` is a character of a script written without spaces (``UNSPACED``)."""
    return bool(token) and not token.isascii() and _classes().table[ord(token[0])] == SINGLE


def join_tokens(tokens: list[str]) -> str:
    """Tokens as one string: a space between two, but none between two characters of a
    script written without spaces. ``["north", "korea", "库", "尔"]`` -> ``north korea 库尔``.

    Different token lists give different strings.
    """
    if not tokens:
        return ""
    out = [tokens[0]]
    before = is_unspaced(tokens[0])
    for token in tokens[1:]:
        now = is_unspaced(token)
        out.append(token if before and now else " " + token)
        before = now
    return "".join(out)


def tokens_of_normalized(text: str) -> list[str]:
    """Split already-normalised text into tokens."""
    if text.isascii():
        return _ASCII_TOKEN.findall(text)
    if _c_spaced is not None:
        _classes()  # hands the class table to the C module on first use
        return _c_spaced(text).split()
    return _python_tokens(text)


def _python_tokens(text: str) -> list[str]:
    """``tokens_of_normalized`` without the C module, for non-ASCII text.

    Runs of token characters are found first; a run holding no character of a script
    written without spaces is one token, one of only such characters a token per
    character, and anything else is split by the full token pattern.
    """
    patterns = _classes().patterns(text)
    runs = patterns.run.findall(text)
    if patterns.single.search(text) is None:
        return runs
    if patterns.other.search(text) is None:  # only such characters (and separators)
        return list("".join(runs))
    tokens: list[str] = []
    for run in runs:
        if patterns.single.search(run) is None:
            tokens.append(run)
        elif patterns.singles.fullmatch(run):
            tokens.extend(run)
        else:
            tokens.extend(patterns.token.findall(run))
    return tokens


def tokenize(text: str) -> list[str]:
    """Return the normalised tokens of ``text``: ``"Korea’s"`` -> ``["korea", "s"]``."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_SPLIT).decode("ascii").split()
    return tokens_of_normalized(normalize(text))


def index_form(text: str) -> str:
    """The tokens of ``text`` joined by single spaces: what ``items_fts`` holds of a field.

    ``"Straße in 库尔斯克"`` -> ``"strasse in 库 尔 斯 克"``; SQLite's ascii tokenizer splits it
    back into exactly these tokens.
    """
    if text.isascii():
        return " ".join(text.encode("ascii").translate(_ASCII_SPLIT).decode("ascii").split())
    return " ".join(tokens_of_normalized(normalize(text)))


def spaced(text: str) -> str:
    """Return the tokens of ``text`` with spaces around each and no other characters.

    ``spaced(text).split() == tokenize(text)``; ``text`` holds the token ``t`` exactly when
    ``" " + t + " "`` occurs in the result, and a token starting with ``p`` when ``" " + p``
    does, so that such tests are one substring search.
    """
    if text.isascii():
        return (" " + text + " ").encode("ascii").translate(_ASCII_SPLIT).decode("ascii")
    normalized = normalize(text)
    if _c_spaced is not None:
        _classes()  # hands the class table to the C module on first use
        return _c_spaced(normalized)
    return _join_spaced(_python_tokens(normalized))


def spaced_in_python(text: str) -> str:
    """``spaced`` without the C module, for tests that compare both."""
    if text.isascii():
        return spaced(text)
    return _join_spaced(_python_tokens(normalize(text)))


def _join_spaced(tokens: list[str]) -> str:
    return " " + " ".join(tokens) + " " if tokens else " "


def tokenize_spans(text: str) -> list[tuple[str, int, int]]:
    """Return ``tokenize(text)`` with each token's ``(start, end)`` offsets into ``text``.

    When one original character normalises into several tokens (``½`` -> ``1 2``), each of
    them gets that character's span.
    """
    if text.isascii():
        lowered = text.lower()
        return [(m.group(), m.start(), m.end()) for m in _ASCII_TOKEN.finditer(lowered)]
    normalized, origin = _normalize_with_origin(text)
    spans: list[tuple[str, int, int]] = []
    for found in _classes().patterns(normalized).token.finditer(normalized):
        first = origin[found.start()]
        last = origin[found.end() - 1]
        spans.append((found.group(), first[0], last[1]))
    return spans


def _normalize_with_origin(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Normalise ``text`` cluster by cluster, recording each output character's source span."""
    pieces: list[str] = []
    origin: list[tuple[int, int]] = []
    for found in _cluster().finditer(text):
        piece = normalize(found.group())
        pieces.append(piece)
        origin.extend([found.span()] * len(piece))
    return "".join(pieces), origin
