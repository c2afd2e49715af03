"""The attribute bound read before parsing: no tag with more attributes than the limit."""

from __future__ import annotations

import time

import pytest

from watcher.poll.attributes import MAX_ATTRIBUTES, attributes_within

MANY = MAX_ATTRIBUTES + 1


@pytest.mark.parametrize(
    ("html", "within"),
    [
        ("<p class=\"story\" id=a data-x='1'>text</p>" * 1000, True),
        ("<p " + " ".join(f"a{i}" for i in range(MAX_ATTRIBUTES)) + ">", True),
        ("<p " + " ".join(f"a{i}" for i in range(MANY)) + ">", False),
        # a quoted ">" does not end the tag; no space is needed after a quoted value
        ("<p " + "".join(f'a{i}=">"' for i in range(MANY)) + ">", False),
        ("<p " + "".join(f"a{i}='1'" for i in range(MANY)) + ">", False),
        ("<p " + "/".join(f"a{i}" for i in range(MANY)) + ">", False),
        # what is not a tag is not counted: scripts, styles, comments, end tags, text
        ("<script>if (a<b " + "x " * 5000 + "</script><p>ok</p>", True),
        ("<style>a<b " + "x " * 5000 + "</style>", True),
        ("<!-- <p " + "a " * 5000 + "-->", True),
        ("</p " + "a " * 5000 + ">", True),
        ("1 < 2 " + "and more words " * 2000, True),
    ],
)
def test_tags_are_read_as_parsers_read_them(html: str, within: bool) -> None:
    assert attributes_within(html) is within


def test_the_scan_is_linear() -> None:
    html = "<p " + " ".join(f"a{i:x}" for i in range(1_000_000)) + ">"  # 7 MB in one tag
    started = time.process_time()
    assert not attributes_within(html)
    assert time.process_time() - started < 5  # a parser takes about 25 minutes on it
