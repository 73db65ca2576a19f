"""The orders vocabulary: what the execution role reports of intents and trades, and what it is
asked to do with them (protect, flatten) and answers at shutdown (the SL/TP check)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from actors.core.domain import InstrumentId, TradeId
from actors.runtime.messages.body import Body


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionReport(Body):
    """What became of an intent or a trade (``exec.report``; corr = the bar id when known).

    ``status``: SENDING (taken: the order is about to leave), FILLED, CANCELLED, REJECTED, AMBIGUOUS,
    RESOLVED, UNRESOLVED, EXIT_CHANGED, CLOSED.
    """

    TYPE: ClassVar[str] = "ExecutionReport"
    status: str
    instrument: InstrumentId
    intent_id: str = ""
    trade_id: str = ""
    units: str = ""
    price: str = ""
    slippage_pips: float | None = None
    latency_ms: float | None = None
    reason: str = ""
    realized_pl: str = ""
    model_version: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitsChecked(Body):
    """The execution role has checked every open trade at the close of ``bar_ts`` (``exec.report``):
    the CLOSED reports of trades that ended by then went out before it. The risk role decides a
    close's signals only after it, so it decides on the same closed trades a backtest sees."""

    TYPE: ClassVar[str] = "ExitsChecked"
    bar_ts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FlattenRequested(Body):
    """Command to the execution role: close every open trade (``ctl flatten --yes``)."""

    TYPE: ClassVar[str] = "FlattenRequested"
    why: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectionRequested(Body):
    """The reconciler found an open trade without SL or TP: the execution role sets them
    (``action`` "repair") or closes it ("close"), as ``reconciler.unprotected`` says."""

    TYPE: ClassVar[str] = "ProtectionRequested"
    trade_id: TradeId
    instrument: InstrumentId
    action: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeProtection(Body):
    """One open trade at the shutdown check: its SL/TP at the broker as last read, and what the
    check did (``protected``, ``repaired``, ``closed``, or ``failed: <why>``); ``verified`` only
    when the broker's own answer showed both SL and TP (or the trade closed)."""

    TYPE: ClassVar[str] = "TradeProtection"
    trade_id: TradeId
    instrument: InstrumentId
    units: str
    stop_loss: str | None = None
    take_profit: str | None = None
    outcome: str
    verified: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectionReport(Body):
    """The execution role's shutdown check (to the supervisor, before ``RoleStopping``):
    ``complete`` only when the open trades were read and every one was verified protected."""

    TYPE: ClassVar[str] = "ProtectionReport"
    complete: bool
    trades: tuple[TradeProtection, ...] = ()
    cancelled_orders: tuple[str, ...] = ()
    pending_orders: int | None = None  # entry orders still pending after the check (None: unread)
    attempts: int = 0
    summary: str = ""

    @property
    def unverified(self) -> tuple[TradeProtection, ...]:
        """The trades the check could not verify protected."""
        return tuple(t for t in self.trades if not t.verified)
