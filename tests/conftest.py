"""Shared pytest fixtures: real local servers and sessions, no network."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.servers import FeedServer
from watcher.feeds.fetch import make_session


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A ``FeedServer`` on 127.0.0.1 with a free port, stopped after the test."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def http_session() -> Iterator[requests.Session]:
    """A fetch session with a test user agent, closed after the test."""
    session = make_session("watcher-tests/1.0")
    yield session
    session.close()
