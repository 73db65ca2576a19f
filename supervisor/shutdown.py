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

from actors.runtime.messages import AccountSnapshot, ProtectionReport, SystemState
from supervisor.child import Child, ChildStatus

__all__ = ["EXIT_UNPROTECTED", "ShutdownSequence", "state_summary", "unprotected_detail"]

# `tradehost run` exits 4 when its shutdown could not verify every open trade's SL and TP at the
# broker (the broker unreachable, a repair refused, the execution role down or too slow).
EXIT_UNPROTECTED = 4


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


def unprotected_detail(report: ProtectionReport) -> str:
    """The shutdown alert's text; its first words say which trades have no stop verified."""
    naked = [
        f"trade {t.trade_id} {t.instrument} {t.units} "
        f"(SL {t.stop_loss or 'NONE'}, TP {t.take_profit or 'NONE'}; {t.outcome})"
        for t in report.unverified
    ]
    head = "NO STOP VERIFIED AT THE BROKER: " + ("; ".join(naked) if naked else "the open trades could not be checked")
    return (
        f"{head}. {report.summary}. Look at the account in the broker's platform now: set the missing "
        "SL/TP or close the trades by hand (or start the host again: its reconciler repairs them)"
    )


def state_summary(account: AccountSnapshot | None, protection: ProtectionReport | None) -> dict[str, Any]:
    """What ``shutdown.completed`` records of the account: positions with their SL/TP (the shutdown
    check's own reading where it had one, else the last reconciliation's), NAV, today's P&L and
    pending orders."""
    if protection is not None and protection.trades:
        positions = [
            {"trade_id": t.trade_id, "instrument": t.instrument, "units": t.units, "stop_loss": t.stop_loss,
             "take_profit": t.take_profit, "verified": t.verified}
            for t in protection.trades
        ]  # fmt: skip
    elif account is not None:
        positions = [
            {"trade_id": t.trade_id, "instrument": t.instrument, "units": t.units, "stop_loss": t.stop_loss,
             "take_profit": t.take_profit, "verified": False}
            for t in account.trades
        ]  # fmt: skip
    else:
        positions = []
    pending = protection.pending_orders if protection is not None and protection.pending_orders is not None else None
    if pending is None and account is not None:
        pending = account.pending_orders
    return {
        "positions": positions,
        "nav": account.nav if account is not None else None,
        "currency": account.currency if account is not None else None,
        "daily_pnl": account.daily_pnl or None if account is not None else None,
        "pending_orders": pending,
    }
