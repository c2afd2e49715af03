"""Text from outside (feeds, servers, receivers) made safe to show; no I/O, no policy.

A feed title or an HTTP reason phrase may carry terminal control sequences
(``ESC ] 52`` writes the clipboard, ``ESC [ 2J`` clears the screen, ``\\x9b`` is a
one-byte CSI). Every place that shows such text calls one of these at the edge:

- ``printable(text)``: C0 controls except tab (U+0000-U+001F), DEL and C1 controls
  (U+007F-U+009F) become the four visible characters ``\\xNN``. Newlines too, unless
  ``newlines=True`` (for multi-line text watcher itself laid out, such as an alert body).
- ``dumps_json(data)``: JSON whose strings carry every C0 and C1 control escaped as
  ``\\u00NN`` (``json.dumps(ensure_ascii=False)`` leaves U+007F-U+009F raw).

Watcher's own styling (``click.style`` bold, the progress bar) is added after this and
is not outside data.
"""

from __future__ import annotations

import json
import re
from typing import Any

_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_CONTROLS_KEEP_NEWLINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_RAW_IN_JSON = re.compile("[\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` with every control character except tab (and ``\\n`` when asked) as ``\\xNN``."""
    pattern = _CONTROLS_KEEP_NEWLINE if newlines else _CONTROLS
    return pattern.sub(_escape, text)


def printable_value(value: object) -> str:
    """``str(value)`` made printable; ``None`` is the empty string (for table cells, CSV)."""
    return "" if value is None else printable(str(value))


def dumps_json(data: Any, *, indent: int | None = 2) -> str:
    """``json.dumps`` for output: readable non-ASCII text, every control escaped as ``\\u00NN``."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, default=str)
    # Outside strings JSON is ASCII, so a raw U+007F-U+009F can only sit inside a string.
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
