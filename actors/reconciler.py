"""Reconciler role: brings local state in line with the broker, which is the truth.

The supervisor enters RECONCILING once every role is up and moves on only when this role says
reconciliation is complete. Until the broker layer is wired in, there is no broker state to
compare with, so the role reports completion with that reason, once per RECONCILING phase, and
journals it. Account, trades, orders and transactions arrive with the reconciler issue.
"""

from __future__ import annotations

from typing import ClassVar

from actors.base import RoleActor
from actors.messages import TOPIC_EXEC_REPORT, ReconciliationCompleted, SystemState


class ReconcilerActor(RoleActor):
    """The reconciler's actor."""

    ROLE: ClassVar[str] = "reconciler"
    TOPICS: ClassVar[tuple[str, ...]] = (TOPIC_EXEC_REPORT,)

    def on_state_changed(self, previous: SystemState | None, current: SystemState) -> None:
        """Reconcile whenever the supervisor enters RECONCILING."""
        if current is SystemState.RECONCILING:
            detail = "no broker wired into the reconciler yet: nothing to compare"
            self.runtime.journal("recon.completed", {"ok": True, "detail": detail})
            self.runtime.to_supervisor(ReconciliationCompleted(ok=True, detail=detail))


ACTOR = ReconcilerActor
