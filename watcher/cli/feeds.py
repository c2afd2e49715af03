"""``watcher feeds``: list the feeds, add and remove command-line feeds, re-enable one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import click

from watcher import envvars
from watcher.cli.base import Context, cli, emit_json, handle_errors, now_utc
from watcher.cli.table import print_table
from watcher.config import parse_interval
from watcher.decide.schedule import next_poll_after_interval_change
from watcher.exceptions import ConfigError
from watcher.store import Store
from watcher.store.feeds import (
    CONFIG_REASONS,
    DISABLED_BY_HAND,
    add_feed,
    disable_feed,
    enable_feed,
    feed_by_name,
    remove_feed,
    slug_for_url,
    sync_config_feeds,
    unsynced_config_feeds,
)
from watcher.store.feeds import (
    list_feeds as stored_feeds,
)
from watcher.store.state import set_retry_hold
from watcher.suggest import not_found
from watcher.types import FeedState, FeedStatus, Settings


@cli.group(invoke_without_command=True)
@click.pass_context
def feeds(ctx: click.Context) -> None:
    """List, add and remove feeds (`watcher feeds` alone lists them).

    \b
    Examples:
      watcher feeds
      watcher feeds add https://example.org/world.rss --tag world
      watcher feeds import subs.opml
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_feeds)


@feeds.command("list")
@click.pass_obj
@handle_errors
def list_feeds(obj: Context) -> None:
    """List every feed with its source (config or cli) and status.

    \b
    Examples:
      watcher feeds list
      watcher feeds list --json
    """
    settings = obj.settings()
    with Store(settings.database, readonly=True) as store:
        rows = listed_feeds(store, settings)
    if obj.json:
        emit_json([feed_dict(f) for f in rows])
        return
    print_table(
        ["name", "source", "status", "tags", "url"],
        [
            [f.name, f.source, f.last_status or "never polled", ",".join(f.tags), f.url]
            for f in rows
        ],
        max_width=80,
    )


def feed_dict(feed: FeedState) -> dict[str, object]:
    """A feed as ``feeds list --json`` and ``feeds add --json`` show it."""
    return {
        "name": feed.name,
        "url": feed.url,
        "title": feed.title,
        "tags": list(feed.tags),
        "source": feed.source,
        "interval_s": feed.interval_s,
        "interval_source": feed.interval_source,
        "last_status": feed.last_status,
    }


def listed_feeds(store: Store, settings: Settings) -> list[FeedState]:
    """Every stored feed, and the config's feeds not stored yet, without writing anything.

    A command-line feed that follows the default shows the config's ``defaults.interval``,
    which the next command that writes (or the daemon's reload) stores.
    """
    default = settings.defaults.interval_s
    stored = [
        replace(f, interval_s=default)
        if f.source == "cli" and f.interval_source == "default"
        else f
        for f in stored_feeds(store)
    ]
    pending = [
        FeedState(
            id=0,
            url=cfg.url,
            name=cfg.name or slug_for_url(cfg.url),
            title=cfg.title,
            tags=cfg.tags,
            source="config",
            interval_s=cfg.interval_s,
            interval_source=cfg.interval_source,
        )
        for cfg in unsynced_config_feeds(store, settings.feeds)
    ]
    return sorted(stored + pending, key=lambda f: f.name)


@feeds.command("add")
@click.argument("url")
@click.option("--name", help="Feed name (default: derived from the host and path).")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option(
    "--interval",
    help="Poll interval, at least 1m, e.g. 15m (default: follow the config's defaults.interval).",
)
@click.pass_obj
@handle_errors
def add(
    obj: Context, url: str, name: str | None, tags: tuple[str, ...], interval: str | None
) -> None:
    """Add a feed kept in the database (not in watcher.yaml).

    \b
    Example:
      watcher feeds add https://example.org/world.rss --tag world
      watcher feeds add data/feeds/local.xml --name local
    """
    url = feed_location(url)
    settings = obj.settings()
    try:
        interval_s = parse_interval(interval) if interval else settings.defaults.interval_s
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--interval") from e
    source = "feed" if interval else "default"
    with synced_store(settings) as store:
        if any(f.url == url for f in stored_feeds(store)):
            raise ConfigError(f"feed {url} is already watched")
        with store.transaction():
            feed = add_feed(
                store,
                url,
                name=name,
                tags=tags,
                interval_s=interval_s,
                interval_source=source,
                source="cli",
                now=now_utc(),
            )
    if obj.json:
        emit_json({"added": feed_dict(feed)})
    else:
        click.echo(f"added feed {feed.name}: {feed.url}")


def feed_location(url: str) -> str:
    """An http(s) or file:// URL as given; an existing local file made absolute.

    A URL holding ``${VAR}`` is kept so (stored and shown as written); its variables must be
    set now and it must give an http(s) URL.
    """
    if envvars.has_references(url):
        expanded = envvars.expand(url, what=f"URL {url}")
        if urlsplit(expanded).scheme.lower() not in ("http", "https"):
            raise click.BadParameter(f"{url!r} must give an http(s) URL", param_hint="URL")
        return url
    if "${" in url:  # a literal '${' (written '$${'), or a broken reference
        problem = envvars.syntax_problem(url)
        if problem:
            raise click.BadParameter(problem, param_hint="URL")
        return envvars.escape(_location(envvars.expand(url, {})))
    return _location(url)


def _location(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https", "file"):
        return url
    path = Path(url).expanduser()
    if not scheme and path.is_file():
        return str(path.resolve())
    raise click.BadParameter(
        f"{url!r} is neither an http(s) URL nor an existing file", param_hint="URL"
    )


@feeds.command("remove")
@click.argument("name")
@click.pass_obj
@handle_errors
def remove(obj: Context, name: str) -> None:
    """Remove a feed added with `feeds add` or `feeds import`; its stored items stay.

    \b
    Example:
      watcher feeds remove example-org-world-rss
    """
    settings = obj.settings()
    with synced_store(settings) as store:
        feed = _feed_named(store, name)
        if feed.source == "config":
            raise ConfigError(f"feed {name} comes from {settings.path}; remove it there")
        with store.transaction():
            remove_feed(store, name)
    if obj.json:
        emit_json({"removed": name})
    else:
        click.echo(f"removed feed {name}")


@feeds.command("enable")
@click.argument("name")
@click.pass_obj
@handle_errors
def enable(obj: Context, name: str) -> None:
    """Poll a disabled feed again (after a 410 Gone, or one disabled by hand), at once.

    \b
    Example:
      watcher feeds enable example-world
    """
    settings = obj.settings()
    with synced_store(settings) as store:
        feed = _feed_named(store, name)
        if feed.disabled_reason in CONFIG_REASONS:
            raise ConfigError(f"feed {name} is {feed.disabled_reason}: edit {settings.path}")
        changed = feed.last_status == FeedStatus.DISABLED
        if changed:
            with store.transaction():
                enable_feed(store, feed.id)
                set_retry_hold(store, feed.id, None)
    if obj.json:
        emit_json({"feed": name, "enabled": True, "changed": changed})
    elif changed:
        click.echo(f"enabled feed {name}: it is polled on the next pass")
    else:
        click.echo(f"feed {name} is not disabled")


@feeds.command("disable")
@click.argument("name")
@click.option("--reason", metavar="TEXT", help="Why, shown by `watcher status`.")
@click.pass_obj
@handle_errors
def disable(obj: Context, name: str, reason: str | None) -> None:
    """Stop polling a feed, config-owned ones included, until `watcher feeds enable`.

    The feed, its items and its alerts stay; a reload or a restart keeps it disabled.

    \b
    Example:
      watcher feeds disable example-world --reason "paywalled since May"
    """
    settings = obj.settings()
    text = " ".join((reason or "").split())
    why = f"{DISABLED_BY_HAND}: {text}" if text else DISABLED_BY_HAND
    with synced_store(settings) as store:
        feed = _feed_named(store, name)
        with store.transaction():
            disable_feed(store, feed.id, why)
    if obj.json:
        emit_json({"feed": name, "disabled_reason": why, "was": feed.disabled_reason})
        return
    was = f" (was: {feed.disabled_reason})" if feed.disabled_reason else ""
    click.echo(f"disabled feed {name}{was}; `watcher feeds enable {name}` polls it again")


@contextmanager
def synced_store(settings: Settings) -> Iterator[Store]:
    """The database with the config's feeds synced into it (what every command that
    changes feeds starts from), closed afterwards."""
    with Store(settings.database) as store:
        sync_config_feeds(
            store,
            settings.feeds,
            now_utc(),
            settings.defaults.interval_s,
            reschedule=next_poll_after_interval_change,
            default_auto=settings.defaults.auto_bounds,
        )
        yield store


def _feed_named(store: Store, name: str) -> FeedState:
    """The stored feed named ``name``; NotFoundError naming the closest ones if none."""
    feed = feed_by_name(store, name)
    if feed is None:
        raise not_found("feed", name, [f.name for f in stored_feeds(store)])
    return feed
