"""The ``eml`` channel: writes one RFC 5322 file per alert into a folder; nothing else.

The file is named after the alert id and written atomically, so delivering the same
alert twice leaves one file with the same Message-ID.
"""

from __future__ import annotations

import os
from pathlib import Path

from watcher.deliver.render import email_bytes, mail_domain
from watcher.exceptions import DeliveryError
from watcher.types import AlertMessage, ChannelConfig


class EmlChannel:
    # Sending an alert again rewrites its file with the same bytes: no one sees a second
    # copy, so a crash may re-send more of them (send.py) and recording keeps up with a
    # first poll's thousands of files.
    in_flight = 50

    def __init__(self, config: ChannelConfig, instance: str = "") -> None:
        self.name = config.name
        self.dir = Path(str(config.options.get("dir", "outbox")))
        self.sender = str(config.options.get("from", "watcher@localhost"))
        to = config.options.get("to", ["reader@localhost"])
        self.to = [to] if isinstance(to, str) else [str(t) for t in to]
        self.domain = mail_domain(instance)

    def describe(self) -> str:
        return f"eml {self.name} dir={self.dir}"

    def send(self, message: AlertMessage) -> None:
        try:
            data = email_bytes(message, sender=self.sender, to=self.to, domain=self.domain)
        except ValueError as e:
            raise DeliveryError(
                self.name, message.alert_id, f"unsafe message: {e}", permanent=True
            ) from e
        target = self.dir / f"alert-{message.alert_id:06d}.eml"
        tmp = target.with_suffix(".tmp")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as e:
            raise DeliveryError(self.name, message.alert_id, f"cannot write {target}: {e}") from e
