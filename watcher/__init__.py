"""watcher: a self-hosted news-feed monitoring and keyword-alert daemon."""

__version__ = "0.1.0"
