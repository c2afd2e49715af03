"""The runtime of a pass or of the daemon: settings, store, compiled rules, channels, session.

Built once from a validated config; holds no business logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from watcher.config import require_variables
from watcher.deliver.channels import Channel, make_channel
from watcher.poll.articles import ArticleFetcher, make_fetcher
from watcher.poll.fetch import FeedSession, make_session
from watcher.rules.cache import cache_folder, load_compiled
from watcher.rules.match import CompiledRules
from watcher.store import Store
from watcher.store.state import instance_id
from watcher.types import Rule, Settings


@dataclass
class Runtime:
    settings: Settings
    store: Store
    rules: list[Rule]
    compiled: CompiledRules
    channels: dict[str, Channel]
    session: FeedSession
    articles: ArticleFetcher | None = None  # full_text's fetcher; None: no article fetched

    @cached_property
    def rules_by_id(self) -> dict[str, Rule]:
        """Rules by id, built once (a reload builds a new Runtime)."""
        return {rule.id: rule for rule in self.rules}


def open_runtime(
    settings: Settings, db_path: Path | None = None, *, fetching: bool = True
) -> Runtime:
    """Load rules, open the database and build the channels; raises ConfigError.

    Every ``${VAR}`` the channels need must be set, and with ``fetching`` those of the
    feeds' URLs and headers too.
    """
    require_variables(settings, "" if fetching else "channels")
    database = db_path or settings.database
    rules, compiled = load_compiled(settings.rules, list(settings.channels), cache_folder(database))
    store = Store(database)
    instance = instance_id(store)
    channels = {name: make_channel(cfg, instance) for name, cfg in settings.channels.items()}
    session = make_session(settings.poll.user_agent, block_private=settings.poll.block_private)
    return Runtime(
        settings=settings,
        store=store,
        rules=rules,
        compiled=compiled,
        channels=channels,
        session=session,
        articles=make_fetcher(session, settings.poll) if fetching else None,
    )
