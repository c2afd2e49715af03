"""``watcher feeds``: list the feeds, add and remove command-line feeds, re-enable one."""

from __future__ import annotations

import sys
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
from watcher.exceptions import ConfigError, FeedError
from watcher.poll.discover import USUAL_PATHS
from watcher.poll.discovery import Discovery, FoundFeed, discover_feeds
from watcher.poll.fetch import make_session
from watcher.printable import printable
from watcher.redact import header_secrets, scrub, without_credentials
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
@click.option(
    "--pick",
    type=click.IntRange(min=1),
    metavar="N",
    help="When URL is a web page naming several feeds, add the N-th one listed.",
)
@click.option(
    "--no-check",
    is_flag=True,
    help="Add the URL as given without reading it (no feed discovery).",
)
@click.pass_obj
@handle_errors
def add(
    obj: Context,
    url: str,
    name: str | None,
    tags: tuple[str, ...],
    interval: str | None,
    pick: int | None,
    no_check: bool,
) -> None:
    """Add a feed kept in the database (not in watcher.yaml).

    An http(s) URL is read first: a feed is added as it is; a web page is searched for
    its feeds (the feeds its head links to, else /feed, /rss, /atom.xml, /feed.xml and
    /index.xml), and the one found is added; when it names several, they are listed and
    --pick N chooses one.

    \b
    Examples:
      watcher feeds add https://example.org/world.rss --tag world
      watcher feeds add https://example.org/            # finds the site's feed
      watcher feeds add https://example.org/ --pick 2   # the second feed it lists
      watcher feeds add data/feeds/local.xml --name local
    """
    url = feed_location(url)
    settings = obj.settings()
    try:
        interval_s = parse_interval(interval) if interval else settings.defaults.interval_s
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--interval") from e
    source = "feed" if interval else "default"
    discovery = None
    if _is_web(url) and not no_check:
        discovery = _discover(settings, url)
        url = _chosen(obj, discovery, pick)
    elif pick is not None:
        raise click.BadParameter("only a web page read by `feeds add` has feeds to pick")
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
    _report_added(obj, feed, discovery)


def _is_web(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("http", "https")


def _discover(settings: Settings, url: str) -> Discovery:
    """What the URL leads to, read with the feed fetcher's settings; a URL that cannot be
    read, or is neither a feed nor a page, is one line naming it (its secrets scrubbed)."""
    secrets = [*envvars.values_of(url).values(), *header_secrets(settings.defaults.headers)]
    session = make_session(settings.poll.user_agent, block_private=settings.poll.block_private)
    try:
        with session:
            found = discover_feeds(
                session,
                envvars.expand(url, what=f"URL {url}"),
                timeout=settings.defaults.timeout_s,
                max_bytes=settings.poll.max_bytes,
                headers=dict(settings.defaults.headers),
            )
        return replace(found, url=url)  # shown and stored as written, ${VARS} kept
    except FeedError as e:
        problem = scrub(e.message, secrets)
        raise ConfigError(
            f"cannot add {url}: {problem} (--no-check adds the URL without reading it)"
        ) from e


def _chosen(obj: Context, discovery: Discovery, pick: int | None) -> str:
    """The URL to add: the feed itself, the one feed found, or the one ``--pick`` names;
    several without ``--pick`` are listed and the command exits 1."""
    found = discovery.feeds
    if discovery.is_feed:
        if pick not in (None, 1):
            raise ConfigError(f"{discovery.url} is a feed, not a page of feeds to --pick from")
        return discovery.url
    if not found:
        raise ConfigError(
            f"{discovery.url} is a web page that names no feed, and none of"
            f" {', '.join(USUAL_PATHS)} beside it or at the site's root is one"
        )
    if pick is None and len(found) == 1:
        return _stored_form(discovery.url, found[0].url)
    if pick is not None and pick <= len(found):
        return _stored_form(discovery.url, found[pick - 1].url)
    if obj.json:
        emit_json({"added": None, "found": [_found_dict(f) for f in found]})
    else:
        click.echo(printable(f"{discovery.url} is a web page naming {len(found)} feeds:"))
        for n, feed in enumerate(found, 1):
            click.echo(printable(f"  {n}. {feed.url}" + (f"  {feed.title}" if feed.title else "")))
    if pick is None:
        click.echo("error: several feeds: add one with --pick N (N as listed)", err=True)
    else:
        click.echo(f"error: --pick {pick}: the page names {len(found)} feeds", err=True)
    sys.exit(1)


def _stored_form(page: str, found: str) -> str:
    """A found feed's URL as stored: never able to name a variable, and without the
    credentials of a page whose URL held ``${VARS}``."""
    if envvars.has_references(page):
        found = without_credentials(found)
    return envvars.escape(found)


def _found_dict(feed: FoundFeed) -> dict[str, str]:
    return {"url": feed.url, "title": feed.title, "found": feed.how}


def _report_added(obj: Context, feed: FeedState, discovery: Discovery | None) -> None:
    found = discovery.feeds if discovery and not discovery.is_feed else ()
    if obj.json:
        extra = {"found": [_found_dict(f) for f in found]} if found else {}
        emit_json({"added": feed_dict(feed), **extra})
        return
    if discovery and found:
        chosen = next((f for f in found if _stored_form(discovery.url, f.url) == feed.url), None)
        how = f" ({chosen.how})" if chosen else ""
        click.echo(printable(f"{discovery.url} is a web page; its feed {feed.url}{how}"))
    click.echo(printable(f"added feed {feed.name}: {feed.url}"))


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
