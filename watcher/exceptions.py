"""The whole watcher exception tree, nothing else.

::

    WatcherError
      ConfigError(WatcherError, ValueError)   file, key, line, message; may hold many problems
      LockedError                             another process holds the database lock
      NotFoundError(WatcherError, LookupError) a rule, feed or alert named that does not exist
      FeedError(url)                          subclasses: FetchError, ParseError
      StoreError
      DeliveryError(channel, alert_id)        transient unless ``permanent`` is set

``str(e)`` reads "message: subject: CauseType: cause" where each part is known.
"""

from __future__ import annotations

from dataclasses import dataclass


class WatcherError(Exception):
    """Base class of every expected failure."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a config or rule file."""

    file: str
    message: str
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(WatcherError, ValueError):
    """A bad config or rule file; holds every problem found, one line each."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(file="", message=problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(p.message if not p.file else str(p) for p in self.problems))


class LockedError(WatcherError):
    """Another watcher process holds the database lock; ``pid`` and ``holder`` (the
    command it runs: ``run``, ``poll``, ...) as its lock file says, when readable."""

    def __init__(self, message: str, pid: int | None = None, holder: str = "") -> None:
        self.pid = pid
        self.holder = holder
        super().__init__(message)


class NotFoundError(WatcherError, LookupError):
    """A rule, feed, channel or alert the user named does not exist (watcher.suggest words it)."""

    def __init__(self, message: str, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(message)


class FeedError(WatcherError):
    """A feed could not be fetched or parsed."""

    def __init__(self, url: str, message: str, http_status: int | None = None) -> None:
        self.url = url
        self.message = message
        self.http_status = http_status
        super().__init__(f"{message}: {url}")


class FetchError(FeedError):
    """The HTTP request (or local file read) failed."""


class ParseError(FeedError):
    """The response could not be read as a feed."""


class StoreError(WatcherError):
    """The database could not be read or written."""


class DeliveryError(WatcherError):
    """A channel could not deliver an alert."""

    def __init__(
        self, channel: str, alert_id: int | None, message: str, *, permanent: bool = False
    ) -> None:
        self.channel = channel
        self.alert_id = alert_id
        self.message = message
        self.permanent = permanent
        super().__init__(f"{message}: channel {channel}")
