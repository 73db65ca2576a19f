"""Execution role: intents in, broker orders with server-side SL/TP out.

Today the role is the process shell only (heartbeat, permit, shutdown hook) and journals the
intents that reach it; it sends nothing to any broker. Order submission, ambiguity resolution
and exit management arrive with the execution issue.
"""

from __future__ import annotations

from typing import ClassVar

from actors.base import RoleActor
from actors.messages import TOPIC_RISK_INTENT


class ExecutionActor(RoleActor[None]):
    """The execution's actor."""

    ROLE: ClassVar[str] = "execution"
    TOPICS: ClassVar[tuple[str, ...]] = (TOPIC_RISK_INTENT,)


ACTOR = ExecutionActor
