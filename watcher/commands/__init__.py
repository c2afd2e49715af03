"""The subcommands of ``watcher``; each module registers its commands on ``cli``."""

from watcher.commands import (
    alerts,
    backup,
    channels,
    feeds,
    init,
    mute,
    poll,
    rules,
    run,
    schema,
    search,
    serve,
    status,
)
from watcher.commands import feeds_opml as feeds_opml  # feeds import|export

__all__ = [
    "alerts",
    "backup",
    "channels",
    "feeds",
    "init",
    "mute",
    "poll",
    "rules",
    "run",
    "schema",
    "search",
    "serve",
    "status",
]
