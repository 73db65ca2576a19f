"""Risk role: the decision gate between signals and orders.

Today the role is the process shell only (heartbeat, permit, shutdown hook) and journals the
signals and reconciliation reports that reach it. The gate, sizing, daily loss limit and
drawdown zones arrive with the risk issue; they will open trades only while ``self.permit``
allows entry.
"""

from __future__ import annotations

from typing import ClassVar

from actors.base import RoleActor
from actors.messages import TOPIC_MODEL_SIGNAL, TOPIC_RECON_STATE


class RiskActor(RoleActor[None]):
    """The risk gate's actor."""

    ROLE: ClassVar[str] = "risk"
    TOPICS: ClassVar[tuple[str, ...]] = (TOPIC_MODEL_SIGNAL, TOPIC_RECON_STATE)


ACTOR = RiskActor
