"""``watcher rules check|test``: validate rule files, dry-run rules on text or an item."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from watcher.cli import Context, cli, emit_json, handle_errors, json_option, plural
from watcher.exceptions import ConfigError, Problem
from watcher.rules.load import load_rules
from watcher.rules.match import compile_rules, match_item
from watcher.types import FIELDS, Match, MatchItem, Rule


@cli.group()
def rules() -> None:
    """Validate and try out rule files."""


@rules.command("check")
@json_option
@click.pass_obj
@handle_errors
def check(obj: Context) -> None:
    """Validate the config and every rule file; exit 1 on any error.

    \b
    Example:
      watcher rules check
    """
    settings = obj.settings()
    loaded = load_rules(list(settings.rules), channels=list(settings.channels))
    if obj.json:
        emit_json(
            {"ok": True, "rules": [r.id for r in loaded], "files": [str(p) for p in settings.rules]}
        )
        return
    counts = [
        plural(len(loaded), "rule"),
        "in " + plural(len(settings.rules), "file") + ",",
        plural(len(settings.feeds), "feed") + ",",
        plural(len(settings.channels), "channel"),
    ]
    click.echo("ok: " + " ".join(counts))


@rules.command("test")
@click.argument("target", metavar="ID|FILE")
@click.option("--text", metavar="T", help="Match against an item whose title is T.")
@click.option(
    "--item",
    "item_file",
    metavar="F.json",
    type=click.Path(dir_okay=False),
    help="Match against one item: a JSON object with any of title, summary, "
    "content, author, link, tags, feed.",
)
@json_option
@click.pass_obj
@handle_errors
def test(obj: Context, target: str, text: str | None, item_file: str | None) -> None:
    """Dry-run rules on a text or one item and show what matches.

    \b
    Examples:
      watcher rules test rules/kursk.yaml --text "North Korean troops near Kursk"
      watcher rules test nk-troops-kursk --item item.json --json
    """
    if (text is None) == (item_file is None):
        raise click.UsageError("give exactly one of --text or --item")
    selected = _rules_for(obj, target)
    item = _item_from_text(text) if text is not None else _item_from_file(Path(str(item_file)))
    matches = match_item(compile_rules(selected), item)
    if obj.json:
        emit_json(summarize(matches))
        return
    if not matches:
        click.echo("no rule matched")
    for m in matches:
        click.echo(f"{m.rule_id}: " + ", ".join(m.terms))


def _rules_for(obj: Context, target: str) -> list[Rule]:
    """A rule file's rules, or the configured rule with this id."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(Problem(file=target, message="no such rule file"))
        return load_rules([path])
    loaded = load_rules(list(obj.settings().rules))
    found = [r for r in loaded if r.id == target]
    if not found:
        raise ConfigError(f"no rule with id {target!r} (and no file of that name)")
    return found


def _item_from_text(text: str) -> MatchItem:
    return MatchItem(fields={"title": (text,)})


def _item_from_file(path: Path) -> MatchItem:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(Problem(file=str(path), message=f"cannot read: {e.strerror}")) from e
    except ValueError as e:
        raise ConfigError(Problem(file=str(path), message=f"not valid JSON: {e}")) from e
    if not isinstance(data, dict):
        raise ConfigError(Problem(file=str(path), message="an item must be a JSON object"))
    fields: dict[str, tuple[str, ...]] = {}
    for name in FIELDS:
        value: Any = data.get(name)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise ConfigError(
                Problem(file=str(path), key=name, message="must be a string or a list of strings")
            )
        fields[name] = tuple(values)
    feed = fields.get("feed", ())
    return MatchItem(fields=fields, feed_name=feed[0] if feed else "", feed_tags=())


def summarize(matches: list[Match]) -> dict[str, Any]:
    """Matches as the JSON shape of ``rules test``."""
    return {"matches": [{"rule_id": m.rule_id, "terms": list(m.terms)} for m in matches]}
