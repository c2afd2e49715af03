"""The ``apprise`` channel: sends each alert's title and text through Apprise URLs; nothing else.

Apprise is an optional extra (``pip install 'watcher[apprise]'``), imported only when
such a channel is built. Each URL is notified on its own so an error names the URLs that
failed; any failure is a transient DeliveryError, and a retry goes to every URL again.
"""

from __future__ import annotations

import logging
from typing import Any

from watcher.deliver.render import header_text, render_text
from watcher.exceptions import ConfigError, DeliveryError
from watcher.types import AlertMessage, ChannelConfig

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'watcher[apprise]'"


def _import_apprise(channel: str) -> Any:
    try:
        import apprise
    except ImportError as e:
        raise ConfigError(
            f"channels.{channel}.type: apprise needs the optional apprise package: {INSTALL_HINT}"
        ) from e
    return apprise


class AppriseChannel:
    """``type: apprise``: the alert's subject as title, its text rendering as body."""

    def __init__(self, config: ChannelConfig, instance: str = "") -> None:
        self.name = config.name
        self._apprise = _import_apprise(config.name)
        urls = config.options.get("urls", ())
        self.targets: list[tuple[str, Any]] = [
            self._target(i, str(url))
            for i, url in enumerate([urls] if isinstance(urls, str) else urls)
        ]

    def _target(self, index: int, url: str) -> tuple[str, Any]:
        """(the URL with its secrets masked, an Apprise object notifying that URL only)."""
        plugin = self._apprise.Apprise.instantiate(url)
        if plugin is None:
            scheme = url.split("://", 1)[0] if "://" in url else "(no scheme)"
            raise ConfigError(
                f"channels.{self.name}.urls[{index}]: Apprise does not understand"
                f" this URL (scheme {scheme}://)"
            )
        notifier = self._apprise.Apprise()
        notifier.add(plugin)
        return privacy_url(plugin), notifier

    def describe(self) -> str:
        return f"apprise {self.name} " + " ".join(masked for masked, _ in self.targets)

    def send(self, message: AlertMessage) -> None:
        title = header_text(message.subject)
        body = render_text(message)
        failed = [
            masked
            for masked, notifier in self.targets
            if not notifier.notify(body=body, title=title, body_format="text")
        ]
        if failed:
            sent = len(self.targets) - len(failed)
            text = (
                f"Apprise could not notify {', '.join(failed)} ({sent} of {len(self.targets)}"
                " URLs took the alert; see the apprise log lines for the cause)"
            )
            raise DeliveryError(self.name, message.alert_id, text)


def privacy_url(plugin: Any) -> str:
    """Apprise's own masked form of a URL, without its long tail of default options."""
    return str(plugin.url(privacy=True)).split("?", 1)[0]
