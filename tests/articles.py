"""The article pages of tests/data/articles and hostile pages made on the fly.

Each ``NAME.html`` has a ``NAME.expected.json`` beside it:

    url, content_type   as the page would be fetched
    keyword             a rule's phrase about the page's topic
    keyword_in_body     whether the phrase stands in the article's body; when false it
                        stands only in the navigation, sidebar, related stories, comments…
    body                a fragment of each body paragraph (the text must hold every one)
    boilerplate         a fragment of each piece of boilerplate (the text must hold none)

Fragments are compared with runs of white space made one space. Used by the tests and by
benchmarks/bench_extract.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ARTICLES = Path(__file__).resolve().parent / "data" / "articles"


@dataclass(frozen=True)
class Page:
    name: str
    html: bytes
    url: str
    content_type: str | None
    keyword: str
    keyword_in_body: bool
    body: tuple[str, ...]
    boilerplate: tuple[str, ...]


def pages() -> list[Page]:
    found = []
    for path in sorted(ARTICLES.glob("*.html")):
        expected = json.loads(path.with_name(path.stem + ".expected.json").read_text("utf-8"))
        found.append(
            Page(
                name=path.stem,
                html=path.read_bytes(),
                url=expected["url"],
                content_type=expected["content_type"],
                keyword=expected["keyword"],
                keyword_in_body=expected["keyword_in_body"],
                body=tuple(expected["body"]),
                boilerplate=tuple(expected["boilerplate"]),
            )
        )
    return found


_SPACES = re.compile(r"\s+")


def flat(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def holds(text: str, fragment: str) -> bool:
    """Whether ``text`` holds ``fragment``, white space aside."""
    return flat(fragment) in flat(text)


def _page(body: str) -> bytes:
    head = "<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title></head><body>"
    return (head + body + "</body></html>").encode()


def _story(paragraphs: int) -> str:
    return "".join(
        f"<p>Paragraph {i} of a very long report on the fighting in the Kursk region.</p>"
        for i in range(paragraphs)
    )


# Pages that make some HTML readers take time or memory beyond all proportion.
HOSTILE: dict[str, Callable[[], bytes]] = {
    # 1 MB of <div> never closed
    "nested-div": lambda: _page("<div>" * 200_000 + "Kursk"),
    # 1 MB of "<a " never ending a tag
    "a-a-a": lambda: _page("<a " * 333_333),
    # 100,000 links in one paragraph
    "links": lambda: _page(
        "<p>" + "".join(f'<a href="/s/{i}">story {i}</a> ' for i in range(100_000)) + "</p>"
    ),
    # 100,000 paragraphs inside one formatting element left open
    "open-bold": lambda: _page("<b>" + "<p>Kursk</p>" * 100_000),
    # 200,000 character references in one paragraph
    "amp-run": lambda: _page("<p>" + "&amp;" * 200_000 + "</p>"),
    # 20,000 tables nested in each other's cells
    "nested-tables": lambda: _page("<table><tr><td>" * 20_000 + "Kursk"),
    # one tag with 100,000 attributes (parsers compare each with all before it)
    "attributes": lambda: _page("<p " + " ".join(f"a{i:x}" for i in range(100_000)) + ">Kursk</p>"),
    # 250 levels of nesting, 100 times over: within the pre-pass's bounds, not the extractor's
    "deep": lambda: _page(("<div>" * 250 + "<p>Kursk</p>" + "</div>" * 250) * 100),
    # 60 levels, 450 times over: as deep and large as watcher extracts from
    "deep-within-bounds": lambda: _page(
        (
            "<div>" * 60
            + "<p>A paragraph on the Kursk region, long enough to count.</p>"
            + "</div>" * 60
        )
        * 450
    ),
    # a very long story just under the element bound
    "long-story": lambda: _page("<article>" + _story(14_000) + "</article>"),
}
