"""``ctl pause``: stop opening new trades until ``ctl resume``.

Request ``{"command": "pause", "args": {}}``; reply ``{"message": ..., "changed": bool,
"state": ...}``. Idempotent: pausing a paused host says so. Exits of open positions go on.
"""

from __future__ import annotations

from typing import Any, ClassVar

from supervisor.ctl.commands.base import Command, Controllable


class Pause(Command):
    """Pause trading (an operator latch: no new entries until resume)."""

    name: ClassVar[str] = "pause"

    def execute(self, supervisor: Controllable, args: dict[str, Any]) -> dict[str, Any]:
        """Set the pause latch."""
        return supervisor.pause()
