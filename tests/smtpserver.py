"""A real SMTP server on loopback for the alert-mail tests (aiosmtpd), its inbox, and a free port for it."""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a server to be started later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def smtp_server(port: int, handler: Any, **kwargs: Any) -> Iterator[Controller]:
    """Run an aiosmtpd server with ``handler`` on 127.0.0.1:``port`` until the block ends."""
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="localhost", **kwargs)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@dataclass
class Inbox:
    """What the SMTP server accepted, in order."""

    raw: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.raw.append(bytes(envelope.original_content or envelope.content))
        return "250 2.0.0 OK"

    def mails(self) -> list[EmailMessage]:
        with self.lock:
            raw = list(self.raw)
        out = []
        for data in raw:
            msg = email.message_from_bytes(data, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out

    def about(self, text: str) -> list[EmailMessage]:
        """Mails whose subject contains ``text``."""
        return [m for m in self.mails() if text in str(m["Subject"])]
