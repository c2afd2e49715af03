"""``watcher mute`` and ``watcher unmute``: silence a rule or a feed for a while.

A muted rule's or feed's matches are still recorded; their alerts are ``suppressed``
with reason ``muted``. Mutes live in the database, so the daemon sees them at once.
"""

from __future__ import annotations

from datetime import timedelta

import click

from watcher.cli.base import Context, cli, emit_json, handle_errors, now_utc, show_time
from watcher.cli.lookup import configured_feed_names
from watcher.cli.table import print_table
from watcher.decide.policy import live_mutes
from watcher.exceptions import ConfigError
from watcher.rules.load import load_rules
from watcher.store import Store
from watcher.store.names import stored_feed_names
from watcher.store.rows import to_text
from watcher.store.state import delete_mutes, read_mutes, save_mute
from watcher.suggest import not_found
from watcher.types import Mute, Settings
from watcher.units import parse_duration


@cli.command()
@click.argument("target", required=False)
@click.option("--for", "duration", metavar="DURATION", help="How long, e.g. 30m, 2h, 1d.")
@click.pass_obj
@handle_errors
def mute(obj: Context, target: str | None, duration: str | None) -> None:
    """Silence a rule or a feed for a while; without arguments, list the mutes.

    TARGET is a rule id or a feed name (``rule:ID`` or ``feed:NAME`` when both exist).

    \b
    Examples:
      watcher mute nk-troops-kursk --for 2h
      watcher mute feed:example-world --for 1d
      watcher mute
    """
    settings = obj.settings()
    now = now_utc()
    with Store(settings.database) as store:
        if target is None:
            _show(obj, live_mutes(read_mutes(store), now), settings.display_timezone)
            return
        if duration is None:
            raise click.UsageError("--for is required, e.g. --for 2h")
        try:
            seconds = parse_duration(duration)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--for") from e
        kind, name = _resolve(settings, store, target)
        muted = Mute(kind, name, now + timedelta(seconds=seconds))
        save_mute(store, muted, now)
    if obj.json:
        emit_json({"muted": muted.key, "until": to_text(muted.until)})
    else:
        until = show_time(muted.until, settings.display_timezone)
        click.echo(f"muted {kind} {name} until {until}")


@cli.command()
@click.argument("target")
@click.pass_obj
@handle_errors
def unmute(obj: Context, target: str) -> None:
    """End a mute early.

    \b
    Example:
      watcher unmute nk-troops-kursk
    """
    settings = obj.settings()
    now = now_utc()
    with Store(settings.database) as store:
        mutes = live_mutes(read_mutes(store), now)
        keys = [target] if ":" in target else [f"rule:{target}", f"feed:{target}"]
        found = [m for key in keys for m in mutes if m.key == key]
        if not found:
            raise ConfigError(f"{target} is not muted")
        delete_mutes(store, found)
    if obj.json:
        emit_json({"unmuted": [m.key for m in found]})
    else:
        click.echo("unmuted " + ", ".join(f"{m.kind} {m.name}" for m in found))


def _resolve(settings: Settings, store: Store, target: str) -> tuple[str, str]:
    """('rule', ID) or ('feed', NAME) for a target; NotFoundError when it names neither."""
    kind, _, name = target.partition(":")
    if kind in ("rule", "feed") and name:
        candidates = [(kind, name)]
    else:
        candidates, name = [("rule", target), ("feed", target)], target
    rules = {r.id for r in load_rules(list(settings.rules), channels=list(settings.channels))}
    feed_names = [*configured_feed_names(settings), *sorted(stored_feed_names(store))]
    found = [
        k
        for k, n in candidates
        if (k == "rule" and n in rules) or (k == "feed" and n in feed_names)
    ]
    if not found:
        kinds = " or ".join(k for k, _ in candidates)
        known = [
            *(sorted(rules) if "rule" in kinds else []),
            *(feed_names if "feed" in kinds else []),
        ]
        raise not_found(kinds, name, known)
    if len(found) > 1:
        raise ConfigError(f"{name!r} is both a rule and a feed: write rule:{name} or feed:{name}")
    return found[0], name


def _show(obj: Context, mutes: list[Mute], zone: str) -> None:
    ordered = sorted(mutes, key=lambda m: m.key)
    if obj.json:
        emit_json([{"target": m.key, "until": to_text(m.until)} for m in ordered])
    elif not mutes:
        click.echo("nothing is muted")
    else:
        print_table(["muted", "until"], [[m.key, show_time(m.until, zone)] for m in ordered])
