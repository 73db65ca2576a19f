"""``ctl reconcile``: reconcile with the broker now.

Request ``{"command": "reconcile", "args": {}}``; reply ``{"message", "state"}``. The system goes
to RECONCILING (no new entries) until the reconciler has read the account, its trades, orders and
transactions and reported; differences are journaled as ``recon.difference``. Refused while
shutting down or when the reconciler is not running.
"""

from __future__ import annotations

from typing import Any, ClassVar

from supervisor.ctl.commands.base import Command, Controllable


class Reconcile(Command):
    """Reconcile with the broker now (no new entries until it is through)."""

    name: ClassVar[str] = "reconcile"

    def execute(self, supervisor: Controllable, args: dict[str, Any]) -> dict[str, Any]:
        """Ask for a reconciliation."""
        return supervisor.reconcile()
