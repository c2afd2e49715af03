"""The subcommands of ``watcher``; each module registers its commands on ``cli``."""

from watcher.commands import alerts, feeds, init, poll, rules, run, status

__all__ = ["alerts", "feeds", "init", "poll", "rules", "run", "status"]
