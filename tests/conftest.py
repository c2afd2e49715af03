"""Shared pytest fixtures: real local servers and sessions, no network."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import FeedServer
from watcher.feeds.fetch import FeedSession, make_session


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A ``FeedServer`` on 127.0.0.1 with a free port, stopped after the test."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def http_session() -> Iterator[FeedSession]:
    """A fetch session with a test user agent, closed after the test."""
    session = make_session("watcher-tests/1.0")
    yield session
    session.close()


# Alert receivers (tests/receivers.py): an SMTP server and a webhook HTTP server.
from tests.receivers import SmtpReceiver, WebhookReceiver  # noqa: E402


@pytest.fixture
def smtp_server() -> Iterator[SmtpReceiver]:
    """An aiosmtpd ``SmtpReceiver`` on 127.0.0.1 (free port picked first), stopped after."""
    with SmtpReceiver() as server:
        yield server


@pytest.fixture
def webhook_server() -> Iterator[WebhookReceiver]:
    """A ``WebhookReceiver`` on 127.0.0.1 recording POSTs; set ``statuses`` or ``hang``."""
    with WebhookReceiver() as server:
        yield server
