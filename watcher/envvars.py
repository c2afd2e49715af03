"""``${NAME}`` templates: find, check, expand and escape them; reads only the environment given.

A template is text as written in watcher.yaml: ``${NAME}`` stands for the environment
variable NAME and ``$${`` for a literal ``${``. Feed URLs are kept as templates (in the
config and in ``feeds.url``) and expanded only when a feed is fetched, so what is stored
and shown never holds the secret. A missing variable is a ConfigError that names it,
never anything it would have held.

    expand("https://h/?k=${KEY}", {"KEY": "s3"})  ->  "https://h/?k=s3"
    escape("https://h/${x}")                     ->  "https://h/$${x}"   (a literal, kept as such)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from watcher.exceptions import ConfigError

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def references(text: str) -> list[str]:
    """The variable names ``text`` refers to, in order, each once (``$${`` is none)."""
    names = [m[1] for m in _REFERENCE.finditer(text) if m[1] is not None and _NAME.fullmatch(m[1])]
    return list(dict.fromkeys(names))


def has_references(text: str) -> bool:
    """Whether ``text`` refers to at least one variable."""
    return "${" in text and bool(references(text))


def syntax_problem(text: str) -> str | None:
    """What is wrong with the ``${...}`` in ``text``, or None."""
    for match in _REFERENCE.finditer(text):
        name = match[1]
        if match[0] == "${":
            return "unclosed '${': write '$${' for a literal '${'"
        if name is not None and not _NAME.fullmatch(name):
            return f"invalid environment variable name {name!r} in '${{{name}}}'"
    return None


def missing(text: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The variables ``text`` refers to that are not set in ``env`` (default: the process's)."""
    values = os.environ if env is None else env
    return [name for name in references(text) if name not in values]


def expand(text: str, env: Mapping[str, str] | None = None, *, what: str = "") -> str:
    """``text`` with each ``${NAME}`` replaced from ``env`` and ``$${`` made ``${``.

    Raises ConfigError naming the first missing (or invalid) variable and ``what`` holds it.
    """
    if "${" not in text:
        return text
    values = os.environ if env is None else env
    problem = syntax_problem(text)
    if problem is None:
        absent = [name for name in references(text) if name not in values]
        if not absent:
            return _REFERENCE.sub(lambda m: "${" if m[1] is None else values[m[1]], text)
        problem = f"environment variable {absent[0]} is not set"
    raise ConfigError(f"{what}: {problem}" if what else problem)


def values_of(text: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The value of each set variable ``text`` refers to."""
    if "${" not in text:
        return {}
    values = os.environ if env is None else env
    return {name: values[name] for name in references(text) if name in values}


def escape(text: str) -> str:
    """The template that expands to ``text`` as written: every ``${`` becomes ``$${``.

    Text that came from outside (an OPML file, a redirect) is escaped before it is stored
    as a feed URL, so it can never make watcher read an environment variable.
    """
    return text.replace("${", "$${")
