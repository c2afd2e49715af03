"""Language tags as feeds declare them, made lowercase BCP 47 (``ko-KR`` -> ``ko-kr``); pure.

Feeds write ``xml:lang``, RSS ``<language>`` and JSON Feed ``language`` loosely (``en_US``,
`` EN ``); anything that is not a tag of 1-8 letter first subtag and 1-8 letter-or-digit
subtags after it is no language at all (None), never an error.
"""

from __future__ import annotations

import re

_TAG = re.compile(r"[a-z]{1,8}(?:-[a-z0-9]{1,8})*")


def language_tag(value: object) -> str | None:
    """``value`` as a lowercase BCP 47 tag, or None when it is not one."""
    if not isinstance(value, str):
        return None
    tag = value.strip().replace("_", "-").lower()
    return tag if _TAG.fullmatch(tag) else None
