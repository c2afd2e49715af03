"""Text normalisation and tokenisation shared by rules and items; knows nothing of rules.

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

import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import cache

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


@dataclass(frozen=True)
class _Classes:
    """Compiled regexes built from Unicode categories of this Python's ``unicodedata``."""

    token: re.Pattern[str]  # one token of normalised text
    unspaced: re.Pattern[str]  # a character that is a token of its own (with its marks)
    latin_marks: re.Pattern[str]  # marks that follow a Latin letter (after NFD)
    cluster: re.Pattern[str]  # a character with the marks and ignorables attached to it


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


def unspaced_code_points() -> frozenset[int]:
    """Every code point of the ``UNSPACED`` ranges."""
    return frozenset(
        code for _, ranges in UNSPACED for first, last in ranges for code in range(first, last + 1)
    )


@cache
def _classes() -> _Classes:
    marks: list[int] = []
    token: list[int] = []
    single: list[int] = []
    latin: list[int] = []
    unspaced = unspaced_code_points()
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        category = unicodedata.category(char)
        if category[0] == "M":
            marks.append(code)
        if code in unspaced and category[0] != "M":
            # A letter, a decimal digit or a number letter (〇) stands alone.
            if category[0] == "L" or category in ("Nd", "Nl"):
                single.append(code)
        elif (category[0] in "LM" or category == "Nd") and char not in APOSTROPHE_LETTERS:
            token.append(code)
        if category[0] == "L" and unicodedata.name(char, "").startswith("LATIN "):
            latin.append(code)
    mark_class = _ranges(marks)
    single_class = _ranges(single)
    return _Classes(
        # A run of other token characters first: the common case, tried at each position.
        token=re.compile(f"[{_ranges(token)}]+|[{single_class}][{mark_class}]*"),
        unspaced=re.compile(f"[{single_class}]"),
        latin_marks=re.compile(f"(?<=[{_ranges(latin)}])[{mark_class}]+"),
        cluster=re.compile(f"[{IGNORABLE}]|.[{mark_class}{IGNORABLE}{_JAMO_VT}]*", re.DOTALL),
    )


def normalize(text: str) -> str:
    """Return ``text`` normalised as SPEC §4 says.

    ``"Kur\\u00adsk Straße"`` -> ``"kursk strasse"``.
    """
    if text.isascii():
        return text.lower()
    text = text.translate(_DELETE_IGNORABLE)
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    stripped = _classes().latin_marks.sub("", decomposed)
    return unicodedata.normalize("NFKC", stripped)


def is_unspaced(token: str) -> bool:
    """Whether ``token`` is a character of a script written without spaces (``UNSPACED``)."""
    return not token.isascii() and _classes().unspaced.match(token) is not None


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
    return _classes().token.findall(text)


def tokenize(text: str) -> list[str]:
    """Return the normalised tokens of ``text``: ``"Korea’s"`` -> ``["korea", "s"]``."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_SPLIT).decode("ascii").split()
    return tokens_of_normalized(normalize(text))


def spaced(text: str) -> str:
    """Return the tokens of ``text`` with spaces around each and no other characters.

    ``spaced(text).split() == tokenize(text)``; ``text`` holds the token ``t`` exactly when
    ``" " + t + " "`` occurs in the result, and a token starting with ``p`` when ``" " + p``
    does, so that such tests are one substring search.
    """
    if text.isascii():
        return (" " + text + " ").encode("ascii").translate(_ASCII_SPLIT).decode("ascii")
    return " " + " ".join(tokens_of_normalized(normalize(text))) + " "


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
    for found in _classes().token.finditer(normalized):
        first = origin[found.start()]
        last = origin[found.end() - 1]
        spans.append((found.group(), first[0], last[1]))
    return spans


def _normalize_with_origin(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Normalise ``text`` cluster by cluster, recording each output character's source span."""
    pieces: list[str] = []
    origin: list[tuple[int, int]] = []
    for found in _classes().cluster.finditer(text):
        piece = normalize(found.group())
        pieces.append(piece)
        origin.extend([found.span()] * len(piece))
    return "".join(pieces), origin
