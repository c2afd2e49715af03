"""``watcher init``: scaffold a watcher.yaml and a rules/ folder with examples."""

from __future__ import annotations

from pathlib import Path

import click

from watcher.cli.base import Context, cli, emit_json, handle_errors
from watcher.exceptions import ConfigError
from watcher.store import Store

DATABASE = "data/watcher.db"  # as CONFIG names it
CONFIG = """\
# watcher configuration. Relative paths are relative to this file.
# Secrets go in environment variables: password: "${SMTP_PASSWORD}".
database: data/watcher.db
rules: rules/

defaults:
  interval: 15m            # how often each feed is polled
  first_poll_alerts: recent  # recent | all | none: what a new feed's backlog may alert
  max_age: 2d              # older items are recorded but not alerted
  full_text: short         # never | short | always: fetch the article page of a new item
                           # whose own text is short, and match the page's main text too

feeds:
  - url: https://www.example.org/world.rss
    name: example-world
    tags: [world]

channels:
  console: {type: console}
  files: {type: eml, dir: data/outbox}
"""

RULES = """\
# A rule file is a list of rules. `any`: at least one of these phrases,
# `all`: every one, `none`: none of them. Phrases match whole words,
# case and accents ignored; a trailing * matches any ending (drone*).
- id: example-kursk
  description: North Korean troops in the Kursk region
  any: ["North Korean troops", "North Korean soldiers", "DPRK troops"]
  all: [Kursk]
  none: ["video game"]
  severity: high

- id: example-drones
  description: Fiber-optic drones
  any: ["fiber-optic drone*"]
  severity: medium
"""


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.pass_obj
@handle_errors
def init(obj: Context, directory: str) -> None:
    """Create watcher.yaml and rules/example.yaml in DIRECTORY (default: here).

    \b
    Example:
      watcher init myproject
    """
    root = Path(directory)
    config, rules = root / "watcher.yaml", root / "rules" / "example.yaml"
    for path in (config, rules):
        if path.exists():
            raise ConfigError(f"{path} already exists; not overwriting it")
    rules.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG, encoding="utf-8")
    rules.write_text(RULES, encoding="utf-8")
    database = root / DATABASE
    if not database.exists():
        Store(database).close()
    if obj.json:
        emit_json({"created": [str(config), str(rules), str(database)]})
        return
    click.echo(f"created {config}, {rules} and the database {database}")
    move = "" if root.resolve() == Path.cwd().resolve() else f"`cd {directory}`, "
    click.echo(
        f"next: {move}edit the feeds in watcher.yaml, "
        "then run `watcher rules check` and `watcher poll`"
    )
