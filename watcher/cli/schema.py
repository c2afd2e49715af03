"""``watcher schema config|rules``: JSON Schema for editors; validates nothing itself.

The config schema is generated from the settings tables of :mod:`watcher.config` (names,
defaults, help text and kinds), so it cannot drift from what ``load_settings`` accepts
in shape; value checks an editor cannot do (time zones, ``${VARS}``) stay in watcher.
The rule schema follows the keys of :mod:`watcher.rules.load`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import click

from watcher.cli.base import cli, handle_errors
from watcher.config import (
    CHANNEL_SETTINGS,
    CHANNEL_TYPES,
    FEED_SETTINGS,
    OPML_SETTINGS,
    REQUIRED,
    SETTINGS,
    Kind,
    Setting,
)
from watcher.rules.load import KEYS, STEM_LANGUAGES
from watcher.types import FIELDS, SEVERITIES

DRAFT = "http://json-schema.org/draft-07/schema#"
DURATION = r"^\s*\d+\s*$|^(\s*\d+\s*[smhdw])+\s*$"
FRACTION_DURATION = r"^\s*\d+(\.\d+)?\s*s?\s*$|^(\s*\d+\s*[smhdw])+\s*$"
SIZE = r"^\s*\d+(\.\d+)?\s*([kKmMgGtT]?)([iI]?[bB])?\s*$"
LISTEN = r"^\s*(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+)?:?\d{1,5}\s*$"
ONE_OR_MANY = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}


@cli.command()
@click.argument("which", type=click.Choice(["config", "rules"]))
@handle_errors
def schema(which: str) -> None:
    """Print the JSON Schema of watcher.yaml (config) or of a rule file (rules).

    Point your editor's YAML support at it for completion and checks as you type.

    \b
    Example:
      watcher schema config > watcher.schema.json
      watcher schema rules > rules.schema.json
    """
    document = config_schema() if which == "config" else rules_schema()
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


# --- watcher.yaml --------------------------------------------------------------------------


def config_schema() -> dict[str, Any]:
    """The JSON Schema of watcher.yaml, from ``SETTINGS`` and the feed and channel tables."""
    root = _object(SETTINGS)
    root["properties"]["feeds"] = {
        "description": "Feeds owned by this file: a URL, a feed entry or an `opml:` entry.",
        "type": "array",
        "items": {
            "anyOf": [
                {"type": "string", "description": "A feed URL or local file path."},
                _object(FEED_SETTINGS),
                _object(OPML_SETTINGS),
            ]
        },
    }
    root["properties"]["channels"] = {
        "description": "Named alert channels; rules and `health.notify` refer to the names.",
        "type": "object",
        "additionalProperties": {"oneOf": [_channel(name) for name in CHANNEL_TYPES]},
    }
    return {
        "$schema": DRAFT,
        "$id": "https://watcher.invalid/schema/config.json",
        "title": "watcher.yaml",
        **root,
    }


def _channel(type_name: str) -> dict[str, Any]:
    settings = [s for s in CHANNEL_SETTINGS if s.name != "type"]
    schema = _object([*settings, *CHANNEL_TYPES[type_name].settings])
    schema["properties"] = {"type": {"const": type_name}, **schema["properties"]}
    schema["required"] = ["type", *schema.get("required", [])]
    schema["title"] = f"{type_name} channel"
    return schema


def _object(settings: Iterable[Setting]) -> dict[str, Any]:
    """Nested objects from dotted names (``smtp.host``); required keys where REQUIRED."""
    tree: dict[str, Any] = {}
    for setting in settings:
        *parents, leaf = setting.name.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = setting
    return _object_from_tree(tree)


def _object_from_tree(tree: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for key, value in tree.items():
        if isinstance(value, Setting):
            properties[key] = _setting(value)
            if value.default is REQUIRED:
                required.append(key)
        else:
            properties[key] = _object_from_tree(value)
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = required
    return out


def _setting(setting: Setting) -> dict[str, Any]:
    schema = {"description": _plain(setting.help), **kind_schema(setting.kind)}
    if setting.default is not REQUIRED and setting.default is not None:
        schema["default"] = setting.default
    return schema


def _plain(text: str) -> str:
    return text.replace("`", "")


def kind_schema(kind: Kind) -> dict[str, Any]:
    """A JSON Schema fragment for a config value kind, read from the kind's name."""
    name = kind.name
    if name == "string" or name.startswith(("path", "IANA")) or name == "email address":
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        return ONE_OR_MANY if name == "path or list of paths" else schema
    if name == "true or false":
        return {"type": "boolean"}
    if found := re.fullmatch(r"integer (\d+)-(\d+)", name):
        return {"type": "integer", "minimum": int(found[1]), "maximum": int(found[2])}
    if name.startswith("duration (fractions"):
        return {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, _pattern(FRACTION_DURATION)]}
    if name.startswith("duration") and name.endswith(", or auto"):
        return {"anyOf": [{"type": "integer", "minimum": 0}, _pattern(DURATION), {"const": "auto"}]}
    if name.startswith("duration"):
        return {"anyOf": [{"type": "integer", "minimum": 0}, _pattern(DURATION)]}
    if name.startswith("size"):
        return {"anyOf": [{"type": "integer", "minimum": 0}, _pattern(SIZE)]}
    if name.startswith("one of "):
        return {"enum": name.removeprefix("one of ").split(", ")}
    return _compound_kind(name)


def _compound_kind(name: str) -> dict[str, Any]:
    if name.startswith(("list of", "email address or list")):
        return ONE_OR_MANY
    if name.startswith("mapping of HTTP header"):
        return {"type": "object", "additionalProperties": {"type": ["string", "number"]}}
    if name.startswith("HOST:PORT"):
        return {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 65535}, _pattern(LISTEN)]}
    if name == "http(s) URL":
        return {"type": "string", "pattern": "^\\s*[hH][tT][tT][pP][sS]?://"}
    return {}  # an unknown kind: accept anything rather than reject a valid file


def _pattern(pattern: str) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern}


# --- rule files ----------------------------------------------------------------------------

_PHRASES = {"type": "array", "items": {"type": ["string", "number"]}}
_RATE = {
    "type": "object",
    "properties": {
        "count": {"type": "integer", "minimum": 1},
        "per": {"anyOf": [{"type": "integer", "minimum": 1}, _pattern(DURATION)]},
    },
    "required": ["count", "per"],
    "additionalProperties": False,
}
RULE_PROPERTIES: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "minLength": 1, "description": "Unique id across all rule files."},
    "description": {"type": "string", "description": "What the rule is about (in alerts)."},
    "any": {**_PHRASES, "description": "Literal phrases or $NAME lists; at least one must match."},
    "all": {**_PHRASES, "description": "Literal phrases or $NAME lists; every one must match."},
    "none": {**_PHRASES, "description": "Literal phrases or $NAME lists; none may match."},
    "query": {
        "type": "string",
        "description": 'An expression: words, "phrases", prefix*, $NAME term lists, AND, OR, '
        "NOT, -word, NEAR/n, title:/summary:/content:/author:/link:/tags:/feed:/text: scopes, "
        "/regex/.",
    },
    "fields": {
        "type": "array",
        "items": {"enum": list(FIELDS)},
        "minItems": 1,
        "description": "Fields the rule looks at (default: title, summary, content).",
    },
    "feeds": {**ONE_OR_MANY, "description": "Only these feeds: names or tag:NAME."},
    "severity": {"enum": list(SEVERITIES), "default": "medium"},
    "notify": {**ONE_OR_MANY, "description": "Channel names (default: every channel)."},
    "stem": {
        "anyOf": [{"enum": list(STEM_LANGUAGES)}, {"const": False}],
        "description": "Stem words and text in this Snowball language (off by default).",
    },
    "enabled": {"type": "boolean", "default": True},
    "digest": {
        "anyOf": [{"type": "integer", "minimum": 1}, _pattern(DURATION)],
        "description": "Batch this rule's alerts per channel over this long (1h).",
    },
    "max_alerts": {**_RATE, "description": "Throttle: at most count alerts per duration."},
    "threshold": {
        "type": "object",
        "description": "A volume rule: fire once when count items (or feeds) match within.",
        "properties": {
            "count": {"type": "integer", "minimum": 1},
            "within": {"anyOf": [{"type": "integer", "minimum": 1}, _pattern(DURATION)]},
            "distinct": {"enum": ["feed", "item"]},
        },
        "required": ["count", "within"],
        "additionalProperties": False,
    },
    "languages": {
        **ONE_OR_MANY,
        "description": "Only items in these languages (RFC 4647 ranges: zh matches zh-cn); "
        "an item with no language passes.",
    },
}
TERMS_ENTRY: dict[str, Any] = {
    "type": "object",
    "description": "Term lists shared by every rule file: $NAME in any/all/none and queries "
    "stands for (w1 OR w2 OR ...).",
    "properties": {
        "terms": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[a-z][a-z0-9_-]*$"},
            "additionalProperties": {
                "type": "array",
                "minItems": 1,
                "items": {"type": ["string", "number"]},
            },
        }
    },
    "required": ["terms"],
    "additionalProperties": False,
}


def rules_schema() -> dict[str, Any]:
    """The JSON Schema of a rule file: a list of rules and term lists, or one of them."""
    rule = {
        "type": "object",
        "properties": {key: RULE_PROPERTIES[key] for key in KEYS},
        "required": ["id"],
        "additionalProperties": False,
        "anyOf": [{"required": ["any"]}, {"required": ["all"]}, {"required": ["query"]}],
    }
    return {
        "$schema": DRAFT,
        "$id": "https://watcher.invalid/schema/rules.json",
        "title": "watcher rule file",
        "definitions": {"rule": rule, "terms": TERMS_ENTRY},
        "oneOf": [
            {
                "type": "array",
                "items": {
                    "oneOf": [{"$ref": "#/definitions/rule"}, {"$ref": "#/definitions/terms"}]
                },
            },
            {"$ref": "#/definitions/rule"},
            {"$ref": "#/definitions/terms"},
        ],
    }
