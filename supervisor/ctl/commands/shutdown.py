"""``ctl shutdown``: graceful shutdown, the same path as SIGTERM.

Request ``{"command": "shutdown", "args": {}}``; reply ``{"message", "state"}`` as soon as the
shutdown has begun (the host then stops its roles in reverse order and exits 0). Idempotent.
"""

from __future__ import annotations

from typing import Any, ClassVar

from supervisor.ctl.commands.base import Command, Controllable


class Shutdown(Command):
    """Shut the host down gracefully (permit revoked, roles stopped in reverse, exit 0)."""

    name: ClassVar[str] = "shutdown"

    def execute(self, supervisor: Controllable, args: dict[str, Any]) -> dict[str, Any]:
        """Begin the shutdown."""
        return supervisor.shutdown("ctl shutdown")
