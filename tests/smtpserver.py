"""A real SMTP server on loopback for the alert-mail tests (aiosmtpd), and a free port for it."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
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
