"""``ShutdownSequence``: the graceful shutdown of the tree, one child at a time.

DESIGN §6: the permit is revoked first (the supervisor publishes ``SHUTTING_DOWN``), then the
children stop in reverse start order, each with its deadline (a straggler is killed and that is
journaled), then state is saved and a summary journaled. This object keeps the order and the
outcomes; the supervisor does the sending, killing and journaling. Pure: time passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actors.messages import SystemState
from supervisor.child import Child, ChildStatus

__all__ = ["ShutdownSequence"]


@dataclass
class ShutdownSequence:
    """One graceful shutdown in progress.

    Attributes:
        trigger: what asked for it (``SIGTERM``, ``ctl shutdown``, ...).
        started_s: monotonic start.
        state_before: the system state when it began.
        queue: roles still to stop, in stop order (reverse start order).
    """

    trigger: str
    started_s: float
    state_before: SystemState
    queue: list[str] = field(default_factory=list)

    @classmethod
    def begin(
        cls, trigger: str, started_s: float, state_before: SystemState, children: Mapping[str, Child]
    ) -> ShutdownSequence:
        """Start a sequence over ``children`` (given in start order); children that are not
        running (restarting, failed) are marked stopped with what they were."""
        for child in children.values():
            if child.status in (ChildStatus.RESTARTING, ChildStatus.FAILED):
                child.shutdown_outcome = f"was {child.status.value}"
                child.status = ChildStatus.STOPPED
        stop_order = list(reversed(list(children)))
        return cls(trigger=trigger, started_s=started_s, state_before=state_before, queue=stop_order)

    def next_to_stop(self, children: Mapping[str, Child]) -> Child | None:
        """The child to stop (or being stopped) now, or None when every child is down."""
        while self.queue:
            child = children[self.queue[0]]
            if child.pid is None:
                self.queue.pop(0)
                continue
            return child
        return None

    def summary(self, children: Mapping[str, Child], latched: list[str], now_s: float) -> dict[str, Any]:
        """The ``shutdown.completed`` journal entry."""
        return {
            "trigger": self.trigger,
            "elapsed_ms": round((now_s - self.started_s) * 1000, 1),
            "state_before": self.state_before.value,
            "latched": latched,
            "roles": {role: child.shutdown_outcome or "not running" for role, child in children.items()},
            "restarts": {role: child.restarts for role, child in children.items()},
        }
