"""Plain-text tables for terminal output; no colours, no dependencies.

A cell is one line: runs of spaces, tabs and line breaks become one space, and every
other control character is shown as ``\\xNN`` (cells often hold feed text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import click

from watcher.printable import printable

# Whitespace that only lays text out (spaces, tab, CR, LF, Unicode spaces); the other
# whitespace characters are controls (VT, FF, \x1c-\x1f, NEL) and are shown escaped.
_LAYOUT_SPACE = re.compile(r"[^\S\x0b\x0c\x1c-\x1f\x85]+")


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], max_width: int = 60
) -> None:
    cells = [[_cell(v, max_width) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: object, max_width: int) -> str:
    text = "" if value is None else str(value)
    text = printable(" ".join(_LAYOUT_SPACE.split(text)).strip())
    return text if len(text) <= max_width else text[: max_width - 1] + "…"
