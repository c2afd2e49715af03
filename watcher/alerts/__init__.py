"""Alert channels: one module per channel type; CHANNELS maps a type name to its class.

A channel renders an AlertMessage and delivers it, raising DeliveryError on failure
(``permanent=True`` when retrying cannot help). It never touches the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from watcher.alerts.console import ConsoleChannel
from watcher.alerts.email import EmailChannel
from watcher.alerts.eml import EmlChannel
from watcher.types import AlertMessage, ChannelConfig


class Channel(Protocol):
    name: str

    def send(self, message: AlertMessage) -> None: ...

    def describe(self) -> str: ...


ChannelFactory = Callable[[ChannelConfig, str], Channel]


def _webhook_channel(config: ChannelConfig, instance: str) -> Channel:
    """Imported on use: only webhooks need requests, which takes a while to import."""
    from watcher.alerts.webhook import WebhookChannel

    return WebhookChannel(config, instance)


def _apprise_channel(config: ChannelConfig, instance: str) -> Channel:
    """Imported on use: the apprise extra may be missing (a ConfigError then says so)."""
    from watcher.alerts.apprise import AppriseChannel

    return AppriseChannel(config, instance)


CHANNELS: dict[str, ChannelFactory] = {
    "console": ConsoleChannel,
    "eml": EmlChannel,
    "email": EmailChannel,
    "webhook": _webhook_channel,
    "apprise": _apprise_channel,
}


def make_channel(config: ChannelConfig, instance: str) -> Channel:
    """Build the channel for one ``channels:`` entry; ``instance`` names this installation."""
    return CHANNELS[config.type](config, instance)
