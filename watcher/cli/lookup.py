"""Check the rule and feed names a command was given; one error wording (watcher.suggest).

A rule exists when the config's rule files define it or the database holds matches or
alerts of it (a rule since removed can still be searched); a feed exists when the config
lists it or the database holds it. Anything else is ``no rule named 'x'; did you mean …``.
"""

from __future__ import annotations

from collections.abc import Iterable

from watcher.exceptions import ConfigError
from watcher.rules.load import load_rules
from watcher.store import Store
from watcher.store.names import stored_feed_names, stored_rule_ids
from watcher.suggest import not_found
from watcher.types import Settings


def configured_rule_ids(settings: Settings) -> list[str]:
    """The ids of the config's rules; none when the rule files do not load."""
    try:
        return [rule.id for rule in load_rules(list(settings.rules))]
    except ConfigError:
        return []


def configured_feed_names(settings: Settings) -> list[str]:
    return [feed.name for feed in settings.feeds if feed.name]


def check_rule(settings: Settings, store: Store, rule_id: str | None) -> None:
    """Raise NotFoundError unless ``rule_id`` (when given) is a rule watcher knows."""
    if rule_id is None:
        return
    stored = stored_rule_ids(store)
    if rule_id in stored:
        return
    configured = configured_rule_ids(settings)  # read the rule files only when needed
    if rule_id not in configured:
        raise not_found("rule", rule_id, [*configured, *sorted(stored)])


def check_feeds(settings: Settings, store: Store, names: Iterable[str]) -> None:
    """Raise NotFoundError for the first of ``names`` that is no feed watcher knows."""
    known = [*configured_feed_names(settings), *sorted(stored_feed_names(store))]
    for name in names:
        if name not in known:
            raise not_found("feed", name, known)
