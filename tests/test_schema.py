"""`watcher schema config|rules`: the schemas accept real files and reject broken ones.

jsonschema is not a dependency, so a small validator for the keywords the schemas use
checks documents here (a keyword it does not know fails the test, so it cannot go stale).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from watcher.cli import cli
from watcher.cli.schema import config_schema, rules_schema
from watcher.config import REQUIRED, documented_settings
from watcher.rules.load import KEYS

ROOT = Path(__file__).resolve().parent.parent
KNOWN = {
    "$schema", "$id", "title", "description", "default", "definitions", "type", "properties",
    "required", "additionalProperties", "items", "anyOf", "oneOf", "enum", "const", "pattern",
    "minimum", "maximum", "exclusiveMinimum", "minLength", "minItems", "$ref",
    "propertyNames", "minProperties",
}  # fmt: skip
TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool,
    "integer": int, "number": (int, float), "null": type(None),
}  # fmt: skip


def errors(schema: dict[str, Any], value: Any, root: dict[str, Any], at: str = "") -> list[str]:
    """Every way ``value`` breaks ``schema`` (an empty list: valid)."""
    assert set(schema) <= KNOWN, set(schema) - KNOWN
    if "$ref" in schema:
        return errors(root["definitions"][schema["$ref"].rsplit("/", 1)[1]], value, root, at)
    found: list[str] = []
    if "type" in schema and not _typed(value, schema["type"]):
        return [f"{at}: not {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: {value!r} not in enum")
    if "const" in schema and value != schema["const"]:
        found.append(f"{at}: {value!r} is not {schema['const']!r}")
    found += _string_errors(schema, value, at) + _number_errors(schema, value, at)
    found += _object_errors(schema, value, root, at) + _array_errors(schema, value, root, at)
    for key, need in (("anyOf", lambda n: n >= 1), ("oneOf", lambda n: n == 1)):
        if key in schema:
            passing = sum(not errors(s, value, root, at) for s in schema[key])
            if not need(passing):
                found.append(f"{at}: {key} matched {passing} schemas")
    return found


def _typed(value: Any, names: str | list[str]) -> bool:
    for name in [names] if isinstance(names, str) else names:
        if isinstance(value, TYPES[name]) and not (isinstance(value, bool) and name != "boolean"):
            return True
    return False


def _string_errors(schema: dict[str, Any], value: Any, at: str) -> list[str]:
    if not isinstance(value, str):
        return []
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return [f"{at}: {value!r} does not match {schema['pattern']}"]
    if len(value) < schema.get("minLength", 0):
        return [f"{at}: too short"]
    return []


def _number_errors(schema: dict[str, Any], value: Any, at: str) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    low, high = schema.get("minimum", value), schema.get("maximum", value)
    above = value > schema.get("exclusiveMinimum", value - 1)
    return [] if low <= value <= high and above else [f"{at}: {value} out of range"]


def _object_errors(schema: dict[str, Any], value: Any, root: dict[str, Any], at: str) -> list[str]:
    if not isinstance(value, dict):
        return []
    found = [f"{at}: missing {k}" for k in schema.get("required", []) if k not in value]
    if len(value) < schema.get("minProperties", 0):
        found.append(f"{at}: too few keys")
    for key in value:
        found += errors(schema.get("propertyNames", {}), key, root, f"{at} key {key!r}")
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            found += errors(properties[key], item, root, f"{at}.{key}")
        elif extra is False:
            found.append(f"{at}: unknown key {key!r}")
        elif isinstance(extra, dict):
            found += errors(extra, item, root, f"{at}.{key}")
    return found


def _array_errors(schema: dict[str, Any], value: Any, root: dict[str, Any], at: str) -> list[str]:
    if not isinstance(value, list):
        return []
    found = [] if len(value) >= schema.get("minItems", 0) else [f"{at}: too few items"]
    for index, item in enumerate(value):
        found += errors(schema.get("items", {}), item, root, f"{at}[{index}]")
    return found


def check(schema: dict[str, Any], value: Any) -> list[str]:
    return errors(schema, value, schema)


# --- the config schema ---------------------------------------------------------------------


def test_the_demo_config_and_the_init_scaffold_are_valid(tmp_path: Path) -> None:
    schema = config_schema()
    assert check(schema, yaml.safe_load((ROOT / "watcher.yaml").read_text())) == []
    assert CliRunner().invoke(cli, ["init", str(tmp_path / "p")]).exit_code == 0
    assert check(schema, yaml.safe_load((tmp_path / "p" / "watcher.yaml").read_text())) == []


FULL = """
database: data/watcher.db
rules: [rules/a.yaml, rules/more]
defaults: {interval: 15m, timeout: 2.5s, first_poll_alerts: recent, max_age: 2d,
           headers: {Authorization: "Basic ${FEED_AUTH}"}}
display_timezone: Europe/Kyiv
poll: {workers: 16, per_host: 2, max_bytes: 10MB, user_agent: "watcher/1"}
feeds:
  - https://example.org/bare.rss
  - {url: https://example.org/world.rss, name: world, tags: [ukraine], interval: 5m}
  - {opml: feeds.opml, tags: [imported], enabled: false}
channels:
  console: {type: console}
  analysts:
    type: email
    to: [desk@example.org]
    from: watcher@example.org
    smtp: {host: localhost, port: 25, starttls: false, username: "${SMTP_USER}"}
    min_severity: medium
    max_alerts: {count: 30, per: 1h}
  hook: {type: webhook, url: "https://hooks.example.org/w", secret: "${S}", timeout: 10s}
  chat: {type: apprise, urls: ["ntfy://ntfy.example.org/kursk"]}
  files: {type: eml, dir: data/outbox}
health: {failing_after: 5, quiet_after: 7d, notify: [hook]}
delivery: {retry_initial: 30s, retry_max: 1h, give_up_after: 24h}
retention: 180d
poll_log_retention: 30d
"""


def test_every_key_of_the_spec_example_is_accepted() -> None:
    assert check(config_schema(), yaml.safe_load(FULL)) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"retentoin": "1d"}, "unknown key 'retentoin'"),
        ({"poll": {"workers": "many"}}, ".poll.workers: not integer"),
        ({"poll": {"workers": 0}}, ".poll.workers: 0 out of range"),
        ({"defaults": {"first_poll_alerts": "some"}}, "not in enum"),
        ({"defaults": {"interval": "soon"}}, ".defaults.interval: anyOf"),
        ({"feeds": [{"name": "no-url"}]}, ".feeds[0]: anyOf"),
        ({"channels": {"mail": {"type": "email", "from": "a@b.c"}}}, "oneOf"),
        ({"channels": {"x": {"type": "pigeon"}}}, "oneOf"),
        ({"channels": {"h": {"type": "webhook", "url": "ftp://x"}}}, "oneOf"),
    ],
)
def test_broken_configs_are_rejected(change: dict[str, Any], problem: str) -> None:
    document = {**yaml.safe_load(FULL), **change}
    found = check(config_schema(), document)
    assert any(problem in line for line in found), found


def test_every_documented_setting_is_in_the_schema_with_its_help_and_default() -> None:
    schema = config_schema()
    for path, setting in documented_settings():
        node = _find(schema, path)
        assert node["description"], path
        if setting.default is not REQUIRED and setting.default is not None:
            assert node["default"] == setting.default, path


def _find(schema: dict[str, Any], path: str) -> dict[str, Any]:
    parts = path.split(" ")[0].split(".")
    node = schema
    if parts[0] == "feeds[]":
        options = schema["properties"]["feeds"]["items"]["anyOf"][1:]
        node = next(o for o in options if parts[1] in o["properties"])
        parts = parts[1:]
    elif parts[0] == "channels":
        kind = path.split("(")[1].rstrip(")") if "(" in path else "console"
        options = schema["properties"]["channels"]["additionalProperties"]["oneOf"]
        node = next(o for o in options if o["properties"]["type"].get("const") == kind)
        parts = parts[2:]
        if parts == ["type"]:
            return {"description": "type", **node["properties"]["type"]}
    for part in parts:
        node = node["properties"][part]
    return node


# --- the rule schema -----------------------------------------------------------------------


def test_the_example_rule_files_are_valid() -> None:
    files = sorted((ROOT / "rules").glob("*.yaml"))
    assert files
    for path in files:
        assert check(rules_schema(), yaml.safe_load(path.read_text())) == [], path


def test_every_rule_key_is_in_the_schema() -> None:
    rule = rules_schema()["definitions"]["rule"]
    assert list(rule["properties"]) == list(KEYS)
    single = {"id": "r", "query": '"fiber-optic drone*" NEAR/3 Kursk', "stem": "english",
              "threshold": {"count": 5, "within": "2h", "distinct": "feed"},
              "max_alerts": {"count": 10, "per": "1h"}, "digest": "1h"}  # fmt: skip
    assert check(rules_schema(), single) == []


def test_term_lists_and_languages_are_in_the_schema() -> None:
    schema = rules_schema()
    terms = {"terms": {"kursk": ["Kursk", "Курск", "库尔斯克"], "dprk": ["DPRK", 2025]}}
    rule = {"id": "r", "all": ["$kursk"], "query": "$dprk NEAR/5 troops", "languages": ["ko"]}
    assert check(schema, [terms, rule]) == [] and check(schema, terms) == []
    for broken in (
        {"terms": {"Kursk": ["x"]}},  # a name starts with a lower-case letter
        {"terms": {"kursk": []}},
        {"terms": {}},
        {"terms": {"kursk": ["x"]}, "id": "r"},
    ):
        assert check(schema, [broken]) and check(schema, broken), broken


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"id": "r", "any": ["x"], "severty": "high"}, "unknown key 'severty'"),
        ({"id": "r", "description": "nothing to look for"}, "anyOf"),
        ({"id": "r", "any": ["x"], "severity": "urgent"}, "not in enum"),
        ({"id": "r", "any": ["x"], "fields": ["body"]}, "not in enum"),
        ({"id": "r", "any": ["x"], "stem": "klingon"}, "anyOf"),
        ({"any": ["x"]}, "missing id"),
    ],
)
def test_broken_rules_are_rejected(rule: dict[str, Any], problem: str) -> None:
    schema = rules_schema()
    assert check(schema, [rule]) and check(schema, rule)  # a list of rules, or one rule
    found = errors(schema["definitions"]["rule"], rule, schema)
    assert any(problem in line for line in found), found


def test_the_command_prints_both_schemas() -> None:
    for which, title in (("config", "watcher.yaml"), ("rules", "watcher rule file")):
        result = CliRunner().invoke(cli, ["schema", which])
        assert result.exit_code == 0
        document = json.loads(result.stdout)
        assert document["title"] == title and document["$schema"].startswith("http://json-schema")
    assert CliRunner().invoke(cli, ["schema", "other"]).exit_code == 2
