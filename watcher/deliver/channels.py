"""The channel registry: CHANNELS maps a channel type to its class (one module per type).

A channel renders an AlertMessage and delivers it, raising DeliveryError on failure
(``permanent=True`` when retrying cannot help). It never touches the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from watcher.deliver.console import ConsoleChannel
from watcher.deliver.email import EmailChannel
from watcher.deliver.eml import EmlChannel
from watcher.exceptions import ConfigError
from watcher.redact import header_secrets
from watcher.types import AlertMessage, ChannelConfig


class Channel(Protocol):
    name: str

    def send(self, message: AlertMessage) -> None: ...

    def describe(self) -> str: ...


ChannelFactory = Callable[[ChannelConfig, str], Channel]


def _webhook_channel(config: ChannelConfig, instance: str) -> Channel:
    """Imported on use: only webhooks need requests, which takes a while to import."""
    from watcher.deliver.webhook import WebhookChannel

    return WebhookChannel(config, instance)


def _apprise_channel(config: ChannelConfig, instance: str) -> Channel:
    """Imported on use: the apprise extra may be missing (a ConfigError then says so)."""
    from watcher.deliver.apprise import AppriseChannel

    return AppriseChannel(config, instance)


CHANNELS: dict[str, ChannelFactory] = {
    "console": ConsoleChannel,
    "eml": EmlChannel,
    "email": EmailChannel,
    "webhook": _webhook_channel,
    "apprise": _apprise_channel,
}


def channel_secrets(config: ChannelConfig) -> list[str]:
    """Every value of a channel that must never be shown or kept: its ``${VAR}`` values, its
    signing secret, header values, SMTP password and Apprise URLs."""
    options = config.options
    smtp = options.get("smtp") or {}
    urls = options.get("urls") or ()
    return [
        *config.secrets,
        str(options.get("secret") or ""),
        *header_secrets(options.get("headers")),
        str(smtp.get("password") or ""),
        *([urls] if isinstance(urls, str) else [str(u) for u in urls]),
    ]


def make_channel(config: ChannelConfig, instance: str) -> Channel:
    """Build the channel for one ``channels:`` entry; ``instance`` names this installation.

    Raises ConfigError naming each ``${VAR}`` of the channel that is not set.
    """
    if config.unresolved:
        raise ConfigError(list(config.unresolved))
    return CHANNELS[config.type](config, instance)
