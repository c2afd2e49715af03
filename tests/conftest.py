"""Shared pytest fixtures: real local servers and sessions, no network."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.servers import FeedServer
from watcher.poll.fetch import FeedSession, make_session

# Property tests check what holds, not how fast: on a busy machine (the suite runs on two
# processes) a per-example time limit would fail tests whose property holds.
settings.register_profile("watcher", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("watcher")


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


# The matcher's two candidate look-ups: the C module and the pure-Python path.
from watcher.rules import match as _match  # noqa: E402


@pytest.fixture(scope="module", params=["c", "python"])
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a module's tests once with the C candidate scan and once with the Python path.

    Module-scoped, so hypothesis tests take it too. The C run fails, not skips, when
    ``watcher._scan`` was not built: ``make`` builds it.
    """
    if request.param == "c":
        if _match.ScanIndex is None:
            pytest.fail("watcher._scan is not built; reinstall with a C compiler")
        yield "c"
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_match, "ScanIndex", None)
        yield "python"
