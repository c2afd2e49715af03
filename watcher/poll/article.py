"""The main text of an article page, without its boilerplate; pure: no I/O, no clock.

    bytes + Content-Type
      -> not HTML (by type, or by its first bytes when the type says nothing)
                                                         -> error "not html"
      -> decoded as the page declares (``charset``), lone surrogates made U+FFFD
      -> bounds, each checked in linear time              -> error "too large"
           MAX_PAGE_BYTES; ``tame.is_tame`` (nesting, element count, costly text,
           attributes per tag); then, on the parsed tree, MAX_ELEMENTS
           and MAX_DEPTHS (the extractor's work grows with elements times depth)
      -> parsed once (lxml); containers that are never the story pruned
      -> readability-lxml picks the story's container; nh3 turns it into plain text
      -> no words left                                    -> error "empty"
      -> capped at MAX_TEXT characters (``truncated``)

Navigation, footers, share bars, cookie banners, related stories, comments and
subscription boxes must not reach the text: a rule on a word that stands only there must
not alert. Readability scores the page's blocks and keeps the best one with its worthy
siblings, which leaves most of them out; ``_prune_boilerplate`` removes, before it runs,
the containers named as such (``comments``, ``related``, ``paywall``, ``share``, …,
``<nav>``, ``<aside>``, ``<footer>``, ``<form>``) and "read also" lines made of a link,
unless a container holds the page's heading, its ``<main>``, its ``articleBody`` or most
of its text. docs/design.md ("Article extraction") has the measurements behind the choice.

The other values of ``items.article_error`` (``http NNN``, ``robots``, ``timeout``,
``address refused``) come from fetching the page, not from here.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from enum import StrEnum

from lxml import etree
from lxml.html import HtmlElement, HTMLParser, document_fromstring
from readability import Document
from readability.readability import Unparseable

from watcher.poll.attributes import MAX_ATTRIBUTES
from watcher.poll.charset import decode_html
from watcher.poll.html import html_to_text
from watcher.poll.tame import is_tame
from watcher.surrogates import scrub

MAX_PAGE_BYTES = 10_000_000  # a page larger than this is not read
MAX_ELEMENTS = 30_000  # elements of the parsed page: extraction time grows with them
MAX_DEPTHS = 1_500_000  # the elements' depths added up: the extractor's work grows with it
MAX_TEXT = 1_000_000  # characters of text kept


class ArticleError(StrEnum):
    """Why a page gave no text; the value is what ``items.article_error`` holds."""

    NOT_HTML = "not html"
    EMPTY = "empty"
    TOO_LARGE = "too large"


@dataclass(frozen=True)
class ArticleText:
    """A page's main text, or why there is none (``error``, with ``detail`` for the log)."""

    text: str
    error: ArticleError | None = None
    detail: str = ""
    truncated: bool = False  # the text was cut at MAX_TEXT characters
    encoding: str = ""  # the codec the page was decoded with


def extract_article(html: bytes, url: str, content_type: str | None) -> ArticleText:
    """The main text of the page ``html`` fetched from ``url``, or the error kind."""
    kind = _media_type(content_type)
    if kind not in _HTML_TYPES and not (kind in _SNIFFED_TYPES and _looks_like_html(html)):
        return _failed(ArticleError.NOT_HTML, f"content type {kind or 'missing'}")
    if _is_binary(html):
        return _failed(ArticleError.NOT_HTML, "binary content")
    if len(html) > MAX_PAGE_BYTES:
        return _failed(ArticleError.TOO_LARGE, f"page of {len(html)} bytes")
    text, encoding = decode_html(html, content_type)
    if not is_tame(text):
        return _failed(
            ArticleError.TOO_LARGE,
            f"markup too deeply nested, too many elements or a tag with over {MAX_ATTRIBUTES}"
            " attributes",
        )
    tree = _parse(text)
    if tree is None:
        return _failed(ArticleError.EMPTY, "no HTML document")
    elements, depths = _shape(tree)
    if elements > MAX_ELEMENTS:
        return _failed(ArticleError.TOO_LARGE, f"{elements} elements")
    if depths > MAX_DEPTHS:
        return _failed(
            ArticleError.TOO_LARGE, f"elements nested {depths // elements} deep on average"
        )
    _prune_boilerplate(tree)
    body = _main_text(tree)
    if not body:
        return _failed(ArticleError.EMPTY, "no main text found", encoding)
    truncated = len(body) > MAX_TEXT
    return ArticleText(body[:MAX_TEXT], truncated=truncated, encoding=encoding)


def _failed(error: ArticleError, detail: str, encoding: str = "") -> ArticleText:
    return ArticleText("", error, detail, encoding=encoding)


# --- is it HTML? ---------------------------------------------------------------------------

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Types a server sends when it does not know: the bytes decide.
_SNIFFED_TYPES = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "unknown/unknown"}
)
# What an HTML document starts with, after white space (the tags browsers sniff for).
_HTML_START = re.compile(
    rb"\s*(?:<\?xml[^>]*>\s*)?(?:<!--|<!doctype\s+html|<(?:html|head|script|iframe|h1|div|font"
    rb"|table|a|style|title|b|body|br|p|meta|link)[\s>/])",
    re.IGNORECASE,
)
_BINARY_MAGIC = (b"%PDF-", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _looks_like_html(data: bytes) -> bool:
    head = data[:1024].removeprefix(b"\xef\xbb\xbf")
    return _HTML_START.match(head) is not None


def _is_binary(data: bytes) -> bool:
    return data.startswith(_BINARY_MAGIC)


# --- parsing -------------------------------------------------------------------------------

_local = threading.local()
# C0 controls other than tab, line feed and carriage return: libxml2 refuses them.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _parse(text: str) -> HtmlElement | None:
    """One parse of the page; a parser per thread, as lxml asks."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = HTMLParser(
            encoding="utf-8", remove_comments=True, remove_pis=True, collect_ids=False
        )
    data = _CONTROLS.sub("", text).encode("utf-8")
    try:
        return document_fromstring(data, parser=parser)
    except (etree.ParserError, ValueError):
        return None


def _shape(tree: HtmlElement) -> tuple[int, int]:
    """How many elements ``tree`` has, and their depths added up (each one's ancestors)."""
    elements = depths = 0
    stack: list[tuple[HtmlElement, int]] = [(tree, 0)]
    while stack:
        element, depth = stack.pop()
        elements += 1
        depths += depth
        stack.extend((child, depth + 1) for child in element)
    return elements, depths


# --- extraction ----------------------------------------------------------------------------


# Class, id or custom-element names of containers that hold no part of the story.
_BOILERPLATE = re.compile(
    r"comment(?!ary)|discussion|disqus|related|read-?(?:also|more|next)|more-(?:from|on)"
    r"|recommend|you-may|also-like|popular|most-(?:read|viewed|shared)|trending|paywall"
    r"|subscri|regwall|share|social|cookie|consent|gdpr|newsletter|sidebar|breadcrumb|footer",
    re.IGNORECASE,
)
_BOILERPLATE_TAGS = frozenset({"nav", "aside", "footer", "form", "menu"})
_BOILERPLATE_ROLES = frozenset({"navigation", "complementary", "contentinfo", "search"})
# What the story's own container holds: never pruned with it.
_STORY_MARKS = "(//h1)[1] | //main | //*[@itemprop='articleBody']"
MOSTLY = 0.8  # a container with this share of the page's text is not pruned
LINK_LINE = 300  # a paragraph shorter than this that is mostly a link is a "read also" line


def _prune_boilerplate(tree: HtmlElement) -> None:
    """Remove the containers of the page that are not the story (see module doc).

    A container that holds the page's first heading, its ``<main>``, its ``articleBody``
    or most of its text stays whatever its name: the story may be wrapped in anything.
    """
    body = tree.find("body")
    if body is None:
        return
    for script in list(body.iter("script", "style", "noscript", "template")):
        script.drop_tree()
    # The elements themselves, not their id(): lxml makes a new proxy, with a new id, for
    # an element no Python object holds any more.
    protected = {e for mark in tree.xpath(_STORY_MARKS) for e in (mark, *mark.iterancestors())}
    total = len(body.text_content())
    stack = [body]
    while stack:
        for child in list(stack.pop()):
            if not isinstance(child.tag, str):
                continue
            if _is_boilerplate(child) and child not in protected and _minor(child, total):
                child.drop_tree()
                continue
            stack.append(child)
    for line in list(body.iter("p", "li")):
        if _is_link_line(line):
            line.drop_tree()


def _minor(element: HtmlElement, total: int) -> bool:
    return len(element.text_content()) < MOSTLY * total


def _is_boilerplate(element: HtmlElement) -> bool:
    tag = str(element.tag).lower()
    if tag in _BOILERPLATE_TAGS or element.get("role", "").lower() in _BOILERPLATE_ROLES:
        return True
    names = f"{element.get('class', '')} {element.get('id', '')} {tag if '-' in tag else ''}"
    return _BOILERPLATE.search(names) is not None


def _is_link_line(element: HtmlElement) -> bool:
    """A short paragraph made mostly of links: "Read also: <a>another story</a>"."""
    text = element.text_content().strip()
    if not text or len(text) > LINK_LINE:
        return False
    linked = sum(len(a.text_content().strip()) for a in element.iter("a"))
    return linked >= 0.6 * len(text)


def _main_text(tree: HtmlElement) -> str:
    """The story's text: readability picks its container, nh3 turns that into text."""
    try:
        summary = Document(tree).summary(html_partial=True)
    except Unparseable:
        return ""
    return scrub(_tidy(html_to_text(str(summary))))


_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")


def _tidy(text: str) -> str:
    """One space between words, one line break between blocks, no blank ends."""
    return _NEWLINES.sub("\n", _SPACES.sub(" ", text)).strip()
