"""``watcher rules check|test``: validate rule files; dry-run rules on text, an item, a page
or the archive."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from watcher.archive.backtest import backtest_json, backtest_lines, count_archive, run_backtest
from watcher.cli.base import Context, cli, emit_json, handle_errors, now_utc, plural
from watcher.config import rule_files_in
from watcher.exceptions import ConfigError, Problem, WatcherError
from watcher.poll.articles import WAIT_TIMEOUTS, ArticleFetcher
from watcher.poll.fetch import make_session
from watcher.poll.hosts import HostSlots
from watcher.printable import dumps_json, printable
from watcher.rules.load import (
    QueryProblem,
    TermList,
    load_rule_set,
    load_rules,
    load_term_lists,
    scope_problems,
    unused_list_problems,
)
from watcher.rules.match import compile_rules, match_item
from watcher.rules.snippets import make_snippets
from watcher.store import Store
from watcher.store.feeds import REMOVED_BY_HAND, REMOVED_FROM_CONFIG, list_feeds, slug_for_url
from watcher.suggest import not_found
from watcher.types import FIELDS, Article, Match, MatchItem, Rule, Settings
from watcher.units import parse_duration


@cli.group()
def rules() -> None:
    """Validate and try out rule files.

    \b
    Examples:
      watcher rules check
      watcher rules test rules/kursk.yaml --text "DPRK troops advance in Kursk"
    """


@rules.command("check")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@click.pass_obj
@handle_errors
def check(obj: Context, strict: bool) -> None:
    """Validate the config and every rule file; exit 1 on any error.

    Warnings (exit 0; errors with --strict): an environment variable the config names
    that is not set, a rule scoped to a feed name or tag no feed has, a term list no
    rule uses.

    \b
    Examples:
      watcher rules check
      watcher rules check --strict
    """
    settings = obj.settings()
    try:
        rule_set = load_rule_set(list(settings.rules), channels=list(settings.channels))
    except ConfigError as e:
        _report_warnings(list(settings.unresolved), strict=False)
        _report_problems(e, carets=sys.stderr.isatty())
        sys.exit(1)
    loaded = rule_set.rules
    warnings = [
        *settings.unresolved,
        *scope_problems(loaded, *_known_feeds(settings)),
        *unused_list_problems(rule_set),
    ]
    failed = strict and bool(warnings)
    if obj.json:
        emit_json(
            {
                "ok": not failed,
                "rules": [r.id for r in loaded],
                "files": [str(p) for p in settings.rules],
                "warnings": [str(w) for w in warnings],
            }
        )
        sys.exit(1 if failed else 0)
    _report_warnings(warnings, strict=strict)
    if failed:
        sys.exit(1)
    counts = [
        plural(len(loaded), "rule"),
        "in " + plural(len(settings.rules), "file") + ",",
        plural(len(settings.feeds), "feed") + ",",
        plural(len(settings.channels), "channel"),
    ]
    warned = f" ({plural(len(warnings), 'warning')})" if warnings else ""
    click.echo("ok: " + " ".join(counts) + warned)


def _known_feeds(settings: Settings) -> tuple[set[str], set[str]]:
    """The names and tags of every feed: the config's, and the database's when it exists."""
    names = {f.name or slug_for_url(f.url) for f in settings.feeds}
    tags = {tag for f in settings.feeds for tag in f.tags}
    if not settings.database.is_file():
        return names, tags
    try:
        with Store(settings.database) as store:
            stored = list_feeds(store)
    except WatcherError:  # an unreadable database: the config's feeds are all we know
        return names, tags
    for feed in stored:
        if feed.disabled_reason not in (REMOVED_FROM_CONFIG, REMOVED_BY_HAND):
            names.add(feed.name)
            tags.update(feed.tags)
    return names, tags


def _report_warnings(warnings: list[Problem], *, strict: bool) -> None:
    label = "error" if strict else "warning"
    for problem in warnings:
        click.echo(f"{label}: {problem if problem.file else problem.message}", err=True)


def _report_problems(error: ConfigError, *, carets: bool) -> None:
    """One line per problem; on a terminal, a query problem also shows its text and a caret."""
    for problem in error.problems:
        click.echo(f"error: {problem if problem.file else problem.message}", err=True)
        if carets and isinstance(problem, QueryProblem) and problem.text and problem.column:
            for line in caret_lines(problem.text, problem.column):
                click.echo(line, err=True)


def caret_lines(text: str, column: int) -> list[str]:
    """The line of ``text`` holding the 1-based ``column``, and a ``^`` under that spot."""
    offset = column - 1
    lines = text.split("\n")
    for line in lines:
        if offset <= len(line):
            pad = "".join("\t" if ch == "\t" else " " for ch in line[:offset])
            return [f"    {line}", f"    {pad}^"]
        offset -= len(line) + 1
    return [f"    {lines[-1]}", f"    {' ' * len(lines[-1])}^"]


@rules.command("test")
@click.argument("target", metavar="ID|FILE|FOLDER")
@click.option("--text", metavar="T", help="Match against an item whose title is T.")
@click.option(
    "--item",
    "item_file",
    metavar="F.json",
    type=click.Path(dir_okay=False),
    help="Match against one item: a JSON object with any of title, summary, "
    "content, article, author, link, tags, feed, language.",
)
@click.option(
    "--since",
    metavar="DURATION",
    help="Backtest: run over the stored items first seen or published in the last "
    "DURATION (30d, 12h) and count what each rule would have matched.",
)
@click.option(
    "--url",
    metavar="URL",
    help="Fetch this article page as a poll would (robots.txt, address policy, limits), "
    "extract its main text and match it as the item's article.",
)
@click.pass_obj
@handle_errors
def test(
    obj: Context,
    target: str,
    text: str | None,
    item_file: str | None,
    since: str | None,
    url: str | None,
) -> None:
    """Dry-run rules on a text, one item, an article page or the stored archive and show
    what matches.

    \b
    Examples:
      watcher rules test rules/kursk.yaml --text "North Korean troops near Kursk"
      watcher rules test nk-troops-kursk --item item.json --json
      watcher rules test rules/drones.yaml --url https://example.org/news/drones
      watcher rules test rules/kursk.yaml --since 30d
      watcher rules test rules/ --since 30d        # every rule file in the folder
    """
    if sum(x is not None for x in (text, item_file, since, url)) != 1:
        raise click.UsageError("give exactly one of --text, --item, --url or --since")
    selected = _rules_for(obj, target)
    if since is not None:
        _backtest(obj, selected, since)
        return
    if url is not None:
        _test_page(obj, selected, url)
        return
    item = _item_from_text(text) if text is not None else _item_from_file(Path(str(item_file)))
    matches = match_item(compile_rules(selected), item)
    if obj.json:
        # One line, exactly the shape SPEC §4 prints, for scripts that compare text.
        click.echo(dumps_json(summarize(matches), indent=None))
        return
    if not matches:
        click.echo("no rule matched")
    for m in matches:
        click.echo(printable(f"{m.rule_id}: " + ", ".join(m.terms)))


def _test_page(obj: Context, selected: list[Rule], url: str) -> None:
    """Fetch one article page, match its text as the item's ``article``, show where."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--url")
    compiled = compile_rules(selected)  # a bad rule fails before anything is fetched
    settings = obj.settings()
    page = _read_page(settings, url)
    if page.text is None:
        raise ConfigError(f"cannot read the article at {url}: {page.error}")
    matches = match_item(compiled, MatchItem(fields={"article": (page.text,), "link": (url,)}))
    found = [page_match(m, page.text) for m in matches]
    if obj.json:
        emit_json({"url": url, "article_chars": len(page.text), "matches": found})
        return
    click.echo(printable(f"read {url}: {len(page.text):,} characters of article text"))
    if not found:
        click.echo("no rule matched")
    for m in found:
        click.echo(printable(f"{m['rule_id']}: " + ", ".join(m["terms"])))
        for snippet in m["snippets"]:
            click.echo(printable(f"  {snippet['field']}: {snippet['text']}"))


def _read_page(settings: Settings, url: str) -> Article:
    """The article at ``url`` as a poll reads it: the feed fetcher's session (address
    policy, proxies, User-Agent), ``defaults.timeout``, ``poll.max_bytes``, robots.txt."""
    poll = settings.poll
    timeout = settings.defaults.timeout_s
    with (
        make_session(poll.user_agent, block_private=poll.block_private) as session,
        ArticleFetcher(
            session,
            user_agent=poll.user_agent,
            max_bytes=poll.max_bytes,
            threads=1,
            hosts=HostSlots(poll.per_host),
        ) as fetcher,
    ):
        return fetcher.fetch_page(url, timeout, time.monotonic() + WAIT_TIMEOUTS * timeout)


def page_match(match: Match, text: str) -> dict[str, Any]:
    """A match on a page: its rule, terms, the fields it matched in and a snippet per hit
    region, each with its field (``link`` gives no snippet)."""
    fields = {"article": (text,)}
    snippets = [
        {"field": field, "text": snippet}
        for field in fields
        for snippet in make_snippets(fields, tuple(h for h in match.hits if h.field == field))
    ]
    matched_in = [f for f in FIELDS if any(h.field == f for h in match.hits)]
    return {
        "rule_id": match.rule_id,
        "terms": list(match.terms),
        "matched_in": matched_in,
        "snippets": snippets,
    }


def _backtest(obj: Context, selected: list[Rule], since: str) -> None:
    """Run the rules over the archive; a progress bar on a terminal's stderr only."""
    try:
        window = parse_duration(since)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from e
    start = now_utc() - timedelta(seconds=window)
    compiled = compile_rules(selected)
    with Store(obj.settings().database, readonly=True) as store:
        if sys.stderr.isatty() and not obj.json:
            total = count_archive(store, start)
            bar: Any
            with click.progressbar(length=total, label="matching", file=sys.stderr) as bar:
                result = run_backtest(store, compiled, start, progress=bar.update)
        else:
            result = run_backtest(store, compiled, start)
    if obj.json:
        emit_json(backtest_json(result))
        return
    for line in backtest_lines(result):
        click.echo(printable(line))


def _rules_for(obj: Context, target: str) -> list[Rule]:
    """A rule file's rules, a folder's rule files' rules, or the configured rule with this id.

    The rules of a file or folder may use the term lists of the files beside them and of
    the configured rule files, as they do when the daemon loads them all.
    """
    path = Path(target)
    if path.is_dir():
        files = rule_files_in(path)
        if not files:
            raise ConfigError(Problem(file=target, message="no *.yaml rule files in this folder"))
        return load_rule_set(files, shared=_shared_lists(obj, files)).rules
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(Problem(file=target, message="no such rule file"))
        return load_rule_set([path], shared=_shared_lists(obj, [path])).rules
    loaded = load_rules(list(obj.settings().rules))
    found = [r for r in loaded if r.id == target]
    if not found:
        raise not_found("rule (or rule file)", target, [r.id for r in loaded])
    return found


def _shared_lists(obj: Context, files: list[Path]) -> dict[str, TermList]:
    """Term lists of the rule files beside ``files`` and of the config's, when it loads."""
    others = rule_files_in(files[0].parent)
    with contextlib.suppress(WatcherError):  # no config, or a broken one: the folder will do
        others += list(obj.settings().rules)
    chosen = {p.resolve() for p in files}
    return load_term_lists([p for p in dict.fromkeys(others) if p.resolve() not in chosen])


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
    language = data.get("language")
    if language is not None and not isinstance(language, str):
        raise ConfigError(
            Problem(file=str(path), key="language", message="must be a language tag (ko, zh-cn)")
        )
    return MatchItem(
        fields=fields,
        feed_name=feed[0] if feed else "",
        feed_tags=(),
        language=language.strip().lower() or None if language else None,
    )


def summarize(matches: list[Match]) -> dict[str, Any]:
    """Matches as the JSON shape of ``rules test``."""
    return {"matches": [{"rule_id": m.rule_id, "terms": list(m.terms)} for m in matches]}
