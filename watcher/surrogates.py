"""Replace lone surrogates with U+FFFD in text that came from outside; knows nothing else.

A lone surrogate (U+D800-U+DFFF not part of a pair) is what a JSON ``"\\ud800"`` escape,
an XML ``&#xD800;`` reference or a surrogate-escaped command-line byte decodes to. Python
keeps it in a ``str``, but no UTF-8 encoder accepts it: SQLite, the HTML sanitiser and
every output would fail on it. Text is therefore cleaned where it enters.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_LONE = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    return _LONE.search(text) is not None


def scrub(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (the same object if none)."""
    if _LONE.search(text) is None:
        return text
    return _LONE.sub(REPLACEMENT, text)


def scrub_json(document: Any) -> Any:
    """A freshly decoded JSON value with every string in it (keys too) scrubbed, in place.

    Iterative, so a document as deep as the JSON decoder accepts cannot exhaust the stack.
    """
    if isinstance(document, str):
        return scrub(document)
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    node[index] = scrub(value)
                elif isinstance(value, list | dict):
                    stack.append(value)
        elif isinstance(node, dict):
            for key in [k for k in node if has_surrogates(k)]:
                node[scrub(key)] = node.pop(key)
            for key, value in node.items():
                if isinstance(value, str):
                    node[key] = scrub(value)
                elif isinstance(value, list | dict):
                    stack.append(value)
    return document
