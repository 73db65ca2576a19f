"""``ctl resume``: clear the operator pause and every latched no-trade reason.

Request ``{"command": "resume", "args": {}}``; reply ``{"message", "cleared": [codes],
"state"}``. Refused (exit 1) while a role is down for good after exceeding its restart
intensity: fix the cause, ``ctl restart ROLE``, then resume. Idempotent.
"""

from __future__ import annotations

from typing import Any, ClassVar

from supervisor.ctl.commands.base import Command, Controllable


class Resume(Command):
    """Resume trading: clear the pause and latched reasons (refused while a role is down)."""

    name: ClassVar[str] = "resume"

    def execute(self, supervisor: Controllable, args: dict[str, Any]) -> dict[str, Any]:
        """Clear the latches."""
        return supervisor.resume()
