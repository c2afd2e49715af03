"""Durations and sizes as a user writes them (``15m``, ``10MB``) -> seconds and bytes; pure.

Shared by the config, the rule files and the command line, so that ``2h`` means the same
everywhere and every bad value gets the same wording.
"""

from __future__ import annotations

import re

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"(?:\s*\d+\s*[smhdw])+\s*")
_UNITS_B = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


def parse_duration(text: str | int) -> int:
    """Seconds in ``30s``, ``15m``, ``2h``, ``1d``, ``1w``, ``1h30m`` or a plain integer."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise ValueError(f"a duration must be like 30s, 15m, 2h or 1d, not {describe(text)}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"a duration cannot be negative ({text})")
        return text
    if text.strip().isdigit():
        return int(text)
    if not _DURATION_RE.fullmatch(text):
        hint = "use a number with s, m, h or d (30s, 15m, 2h, 1d)"
        raise ValueError(f"invalid duration {text!r}: {hint}")
    return sum(int(n) * _UNITS_S[u] for n, u in re.findall(r"(\d+)\s*([smhdw])", text))


def parse_size(text: str | int) -> int:
    """Bytes in ``512KB``, ``10MB``, ``1GB`` (KB = 1024 bytes) or a plain integer."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise ValueError(f"a size must be like 512KB, 10MB or 1GB, not {describe(text)}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"a size cannot be negative ({text})")
        return text
    match = _SIZE_RE.fullmatch(text.strip())
    if not match:
        hint = "use a number with KB, MB or GB (512KB, 10MB, 1GB)"
        raise ValueError(f"invalid size {text!r}: {hint}")
    return int(float(match[1]) * _UNITS_B[match[2].lower()])


def describe(value: object) -> str:
    """How an error names a bad value: ``an integer (3)``, ``a list``, ``null``."""
    names = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number"}
    names |= {str: "a string", list: "a list", dict: "a mapping"}
    name = names.get(type(value), type(value).__name__)
    return f"{name} ({value!r})" if isinstance(value, int | float | str) else name


def short_duration(seconds: float) -> str:
    """``90`` -> ``1m30s``, ``5400`` -> ``1h30m``, ``723`` -> ``12m3s``: its two largest units."""
    left = max(0, round(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
        elif parts:
            break
        if parts and (len(parts) == 2 or not left):
            break
    return "".join(parts)
