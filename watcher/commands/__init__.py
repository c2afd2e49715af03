"""The subcommands of ``watcher``; each module registers its commands on ``cli``."""

from watcher.commands import alerts, channels, feeds, init, mute, poll, rules, run, status
from watcher.commands import feeds_opml as feeds_opml  # feeds import|export
from watcher.commands import backup, schema, search, serve  # noqa: F401  (the archive)

__all__ = [
    "alerts",
    "channels",
    "feeds",
    "init",
    "mute",
    "poll",
    "rules",
    "run",
    "status",
]
