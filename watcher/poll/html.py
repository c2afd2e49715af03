"""Feed HTML made safe (nh3) and turned into plain text; knows nothing about feeds.

Both functions run in time linear in their input. nh3 (the Rust ammonia sanitiser on
html5ever) does the parsing, but only of HTML that ``tame.is_tame`` lets through: its
tree builder is quadratic on some shapes (deep nesting, long runs of ``&amp;``, …).
Other HTML is read as plain text by ``tame.plain_text`` and kept as escaped text. The
plain-text pass only splits nh3's own well-formed output with a simple regular
expression. Input longer than ``MAX_INPUT`` characters is cut first.
"""

from __future__ import annotations

import functools
import html as htmllib
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import nh3

from watcher.poll.tame import is_tame, plain_text

# Characters of one field read at most: twice what a stored field keeps (finish.MAX_TEXT).
MAX_INPUT = 2_000_000

# Tags kept in sanitised HTML: nh3's defaults (formatting, lists, tables, links, images).
_ALLOWED_TAGS: frozenset[str] = frozenset(nh3.ALLOWED_TAGS)
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()
}
_URL_SCHEMES: frozenset[str] = frozenset({"http", "https", "mailto"})
_URL_ATTRIBUTES: frozenset[str] = frozenset({"href", "src", "cite"})

# Elements whose boundaries separate words in plain text.
_BLOCK_TAGS: frozenset[str] = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "details",
        "div", "dl", "dt", "figcaption", "figure", "footer", "h1", "h2", "h3", "h4",
        "h5", "h6", "header", "hgroup", "hr", "li", "main", "nav", "ol", "p", "pre",
        "section", "summary", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
# Elements dropped with everything inside them.
_DROPPED_TAGS: frozenset[str] = frozenset(
    {"script", "style", "noscript", "template", "iframe", "object", "svg", "math", "head"}
)

# nh3 output keeps only the block tags above, without attributes, and escapes "<"
# in text, so every "<" starts one of those tags.
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class CleanHtml:
    """A field's sanitised HTML and its plain text; ``flattened`` when the HTML was too
    costly to sanitise (see ``tame``) and is kept as escaped plain text instead."""

    html: str
    text: str
    flattened: bool = False


def clean_html(html: str, base_url: str | None) -> CleanHtml:
    """``html`` sanitised and as plain text, in time linear in its length."""
    html = html[:MAX_INPUT]
    if not is_tame(html):
        text = collapse_whitespace(plain_text(html))
        return CleanHtml(text_to_html(text), text, flattened=True)
    sanitised = _sanitise(html, base_url)
    return CleanHtml(sanitised, _skeleton_text(sanitised))  # nh3 output of tame input is tame


FLATTENED = "HTML too deeply nested or too large to sanitise: kept as plain text"
_CLOSING_ROOM = 8192  # room left for the end tags a cut fragment needs


def cap_html(html: str, limit: int) -> str:
    """Sanitised ``html`` cut to at most ``limit`` characters, still well-formed.

    The cut drops a tag or a character reference split in two; the sanitiser then closes
    the elements left open (nh3's output of tame input nests at most a few hundred deep).
    """
    if len(html) <= limit:
        return html
    cut = html[: max(0, limit - _CLOSING_ROOM)]
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    if cut.rfind("&") > cut.rfind(";"):
        cut = cut[: cut.rfind("&")]
    closed = _sanitizer(None).clean(cut) + "\n<p>…</p>"
    if len(closed) <= limit:
        return closed
    return text_to_html(_skeleton_text(cut)[: limit // 2])  # cannot happen with tame input


def flattened_notes(*fields: CleanHtml) -> tuple[str, ...]:
    """A ParsedItem's notes about its HTML fields (at most one note)."""
    return (FLATTENED,) if any(f.flattened for f in fields) else ()


def _sanitise(html: str, base_url: str | None) -> str:
    if not html:
        return ""
    return _sanitizer(base_url).clean(html)


@functools.lru_cache(maxsize=64)
def _sanitizer(base_url: str | None) -> nh3.Cleaner:
    """A prepared nh3 cleaner for one base URL (a feed's items share it); links are made
    absolute against an http(s) base."""
    parts = urlsplit(base_url) if base_url else None
    base = base_url if parts is not None and parts.scheme in ("http", "https") else None
    origin = f"{parts.scheme}://{parts.netloc}" if base and parts and parts.netloc else None

    def keep_attribute(tag: str, attr: str, value: str) -> str | None:
        if attr not in _URL_ATTRIBUTES or base is None:
            return value
        return resolve_link(base, origin, value.strip())

    return nh3.Cleaner(
        tags=set(_ALLOWED_TAGS),
        clean_content_tags=set(_DROPPED_TAGS),
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=keep_attribute,
        url_schemes=set(_URL_SCHEMES),
        strip_comments=True,
        link_rel="noopener noreferrer",
    )


def resolve_link(base: str, origin: str | None, link: str) -> str | None:
    """``urljoin(base, link)``, or None when it cannot read the link (``//[x``: the
    attribute is dropped, instead of a traceback from inside nh3 on stderr).

    It saves urljoin's cost (~4 µs a link) for the usual shapes of link: an absolute
    http(s) URL, which it returns as it is, and a plain path from the site's root, which
    it puts after ``origin`` (the base's ``scheme://host``)."""
    if _AS_IS.fullmatch(link):
        return link
    if origin is not None and _FROM_ROOT.fullmatch(link):
        return origin + link
    try:
        return urljoin(base, link)
    except ValueError:
        return None


# What urljoin leaves as it is: path segments that are not "." or ".." and hold no ";"
# (path parameters), no empty segment ("//"), a query or fragment only when not empty, and
# nothing it would strip (controls, spaces).
_SEGMENT = r"(?!\.\.?(?:[/?#]|$))[A-Za-z0-9\-._~%!$&'()*+,=:@]+"
_TAIL = r"(?:\?[^\x00-\x20\x7f#]+)?(?:#[^\x00-\x20\x7f]+)?"
_AS_IS = re.compile(rf"https?://[A-Za-z0-9\-.]+(?::[0-9]+)?(?:/{_SEGMENT})*/?{_TAIL}")
_FROM_ROOT = re.compile(rf"(?:/{_SEGMENT})+/?{_TAIL}|/{_TAIL}")


def html_to_text(html: str) -> str:
    """Return the words of ``html`` as plain text.

    Tags are removed, entities decoded, block elements end a line, and runs of
    whitespace collapse to one space (one newline between blocks).
    """
    if not html:
        return ""
    html = html[:MAX_INPUT]
    if not is_tame(html):
        return collapse_whitespace(plain_text(html))
    return _skeleton_text(html)


def _skeleton_text(html: str) -> str:
    if not html:
        return ""
    skeleton = _SKELETON.clean(html)
    return collapse_whitespace(htmllib.unescape(_TAG.sub("\n", skeleton)))


# Keeps only the block tags, without attributes (prepared once: ~5x faster than nh3.clean).
_SKELETON = nh3.Cleaner(
    tags=set(_BLOCK_TAGS),
    clean_content_tags=set(_DROPPED_TAGS),
    attributes={},
    strip_comments=True,
    link_rel=None,
)


def collapse_whitespace(text: str) -> str:
    """Collapse spaces inside lines and blank lines between them; strip the ends.

    Any run of whitespace within a line (tabs, no-break spaces, …) becomes one space, and
    the lines keep no space at either end; CR ends a line too. ``str.split`` does it about
    five times faster than the regular expressions it replaces (same results: tested).
    """
    lines = text.replace("\r", "\n").split("\n")
    return "\n".join(filter(None, (" ".join(line.split()) for line in lines)))


def text_to_html(text: str) -> str:
    """Return plain ``text`` as an HTML fragment (escaped, line breaks kept)."""
    return htmllib.escape(text.strip()).replace("\n", "<br>\n")


def looks_like_html(text: str) -> bool:
    """Say whether ``text`` holds a tag or an entity reference."""
    return _LOOKS_HTML.search(text) is not None


_LOOKS_HTML = re.compile(
    r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>|&(?:#\d+|#x[0-9A-Fa-f]+|[A-Za-z]+\d*);"
)
