"""The runtime of a pass or of the daemon: settings, store, compiled rules, channels, session.

Built once from a validated config; holds no business logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from watcher.config import require_variables
from watcher.deliver.channels import Channel, make_channel
from watcher.poll.fetch import FeedSession, make_session
from watcher.rules.load import load_rules
from watcher.rules.match import CompiledRules, compile_rules
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
    rules = load_rules(list(settings.rules), channels=list(settings.channels))
    store = Store(db_path or settings.database)
    instance = instance_id(store)
    channels = {name: make_channel(cfg, instance) for name, cfg in settings.channels.items()}
    return Runtime(
        settings=settings,
        store=store,
        rules=rules,
        compiled=compile_rules(rules),
        channels=channels,
        session=make_session(settings.poll.user_agent, block_private=settings.poll.block_private),
    )
