"""Whether any tag of an HTML text has too many attributes; knows nothing about pages.

HTML parsers compare each attribute of a tag with the ones before it, to drop repeated
names: time grows with the square of a tag's attributes. libxml2 (lxml) takes 2.3 s for
one tag of 40,000 attributes and about 25 minutes for the 1,000,000 that fit in 10 MB;
html5ever (nh3) is quadratic too, with a smaller constant. ``tame.is_tame`` bounds the
number and nesting of elements, not their attributes: this bounds those, in one pass
that runs in C except for one step per tag.

A tag is read as parsers read it: quoted values may hold ``>``, attributes need no space
after a quoted value (``a="1"b="2"``) and ``/`` separates them too; the content of
``<script>``, ``<style>`` and the other raw-text elements is skipped, and so are comments.
The count is an upper bound (each ``=`` and each separated word counts), so it never
misses attributes; real tags stay far below any sane limit.
"""

from __future__ import annotations

import re

MAX_ATTRIBUTES = 1_000  # per tag; real pages stay under a few dozen

_START = re.compile(r"<(?:!--|([A-Za-z][^\s/>]*))")
_TAG_BODY = re.compile(r"""(?:[^>"']+|"[^"]*"|'[^']*')*""")
_QUOTED = re.compile(r""""[^"]*"|'[^']*'""")
_WORDS = re.compile(r"[^\s/]+")
_RAW_TEXT = frozenset(
    {"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript"}
)


def attributes_within(html: str, limit: int = MAX_ATTRIBUTES) -> bool:
    """Whether every start tag of ``html`` has at most ``limit`` attributes."""
    lowered: str | None = None
    position = 0
    while (tag := _START.search(html, position)) is not None:
        name = tag.group(1)
        if name is None:  # a comment
            end = html.find("-->", tag.end())
            if end < 0:
                return True
            position = end + 3
            continue
        body = _TAG_BODY.match(html, tag.end())
        assert body is not None, "the pattern matches the empty string"
        text = body.group()
        if len(text) > limit and _attribute_bound(text) > limit:  # an attribute takes a character
            return False
        position = body.end() + 1
        name = name.lower()
        if name in _RAW_TEXT:
            lowered = html.lower() if lowered is None else lowered
            end = lowered.find(f"</{name}", position)
            if end < 0:
                return True
            position = end
    return True


def _attribute_bound(body: str) -> int:
    """At least as many as the attributes in a tag's text after its name."""
    unquoted = _QUOTED.sub('""', body)
    return _WORDS.subn("", unquoted)[1] + unquoted.count("=")
