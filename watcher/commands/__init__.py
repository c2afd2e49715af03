"""The subcommands of ``watcher``; each module registers its commands on ``cli``."""

from watcher.commands import alerts, feeds, init, poll, rules, run, status
from watcher.commands import feeds_opml as feeds_opml  # feeds import|export

__all__ = ["alerts", "feeds", "init", "poll", "rules", "run", "status"]
