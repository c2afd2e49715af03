"""The text of a fetched HTML page: its bytes decoded as the page declares; pure, no I/O.

Which encoding, first found wins (the order browsers use):

    a byte order mark (UTF-8, UTF-16)
    the ``charset`` of the Content-Type header
    a ``<meta charset>`` or ``<meta http-equiv="Content-Type" content="…; charset=…">``
        in the first ``META_SCAN`` bytes
    UTF-8 when the bytes are valid UTF-8, else windows-1252

A label names an encoding as browsers read it: ``latin1``/``iso-8859-1``/``ascii`` mean
windows-1252, ``gb2312`` means GBK, ``euc-kr`` means windows-949, ``shift_jis`` means
windows-31J; a label Python does not know is ignored, and a ``<meta>`` naming UTF-16 means
UTF-8 (a page that could say so in ASCII is not UTF-16). Bytes that are not valid in the
chosen encoding become U+FFFD, as do lone surrogates: the text is always safe to store.
"""

from __future__ import annotations

import codecs
import re

from watcher.surrogates import scrub

META_SCAN = 4096  # bytes searched for a <meta> charset (browsers look at 1024; pages overrun it)

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Labels whose meaning in browsers differs from Python's codec of that name.
_BROWSER_LABELS = {
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "l1": "cp1252",
    "gb2312": "gbk",
    "gb_2312-80": "gbk",
    "x-gbk": "gbk",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
}
_CHARSET_PARAM = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9._:+-]{1,40})""", re.IGNORECASE)
_META = re.compile(rb"<meta\b[^>]*>", re.IGNORECASE)


def decode_html(data: bytes, content_type: str | None) -> tuple[str, str]:
    """``data`` as text and the name of the encoding used (a Python codec name)."""
    encoding, skip = _bom(data)
    if encoding is None:
        encoding = _label(_header_charset(content_type)) or _meta_charset(data[:META_SCAN])
    if encoding is None:
        try:
            return scrub(data.decode("utf-8")), "utf-8"
        except UnicodeDecodeError:
            encoding = "cp1252"
    return scrub(data[skip:].decode(encoding, errors="replace")), encoding


def _bom(data: bytes) -> tuple[str | None, int]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None, 0


def _header_charset(content_type: str | None) -> bytes | None:
    if not content_type:
        return None
    found = _CHARSET_PARAM.search(content_type.encode("latin-1", errors="replace"))
    return found.group(1) if found else None


def _meta_charset(head: bytes) -> str | None:
    for meta in _META.finditer(head):
        found = _CHARSET_PARAM.search(meta.group(0))
        if found is None:
            continue
        encoding = _label(found.group(1))
        if encoding is not None:
            return "utf-8" if encoding.startswith("utf-16") else encoding
    return None


def _label(label: bytes | None) -> str | None:
    """The Python codec for a charset label as browsers read it; None when unknown."""
    if not label:
        return None
    name = label.decode("ascii", errors="replace").strip().lower()
    name = _BROWSER_LABELS.get(name, name)
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return None
    if codec.name in ("utf-16", "utf-32", "utf-32-le", "utf-32-be"):
        return "utf-16-le" if codec.name == "utf-16" else None
    if codec.name in _REFUSED or getattr(codec, "_is_text_encoding", True) is False:
        return None  # not a charset a page may be written in (base64, zlib, utf-7, …)
    return codec.name


_REFUSED = frozenset(
    {"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode", "utf-7", "mbcs"}
)
