"""The typed bodies of the journal rows the order path writes: one frozen record per kind and shape.

A row's body is a record here instead of a dict built at the call site, so every writer of a kind
(the risk and execution roles live, ``tradehost backtest`` offline) writes the same fields, in the
same order, with the same types, and a reader (reports, the risk role's recovery, the desk's
restart) finds what the README's journal table promises. ``JournalRecord.body()`` is the dict the
journal stores: the fields in declaration order, less the ``optional()`` ones left ``None`` (a
field that may legitimately be ``null``, such as an unknown slippage, is a plain ``| None`` field
and is always written). The journal's bytes are what the dicts of the earlier code gave; a unit
test builds each row both ways and compares them. Where one kind has two shapes for two different
events (``exec.exit_changed``: a stop the exit rules moved, SL/TP a repair set), it has two
records.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol


def optional() -> Any:
    """A field left out of the body while it is ``None`` (a key only some rows of a kind carry)."""
    return field(default=None, metadata={"omit_none": True})


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalRecord:
    """Base of a typed journal body; subclasses set ``KIND``."""

    KIND: ClassVar[str] = ""

    def body(self) -> dict[str, Any]:
        """The body as the journal stores it (see the module docstring)."""
        layout = _LAYOUTS.get(type(self))
        if layout is None:  # each record class's fields are read once (a backtest writes 100k rows)
            layout = _LAYOUTS[type(self)] = tuple((f.name, bool(f.metadata.get("omit_none"))) for f in fields(self))
        out: dict[str, Any] = {}
        for name, omit_none in layout:
            value = getattr(self, name)
            if value is None and omit_none:
                continue
            out[name] = value
        return out


# Record class -> its fields' (name, omit_none), in declaration order.
_LAYOUTS: dict[type[JournalRecord], tuple[tuple[str, bool], ...]] = {}


class WriteRecord(Protocol):
    """Append a typed row to the journal (``RoleActor.record``)."""

    def __call__(self, row: JournalRecord, *, corr: str | None = None) -> None: ...


# --- risk ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskIntentRow(JournalRecord):
    """``risk.intent``: an entry decision, with the risk and margin it takes in the home currency."""

    KIND: ClassVar[str] = "risk.intent"
    intent_id: str
    instrument: str
    direction: str
    units: str
    stop_loss: str
    take_profit: str
    decision_price: float
    risk_home: float
    margin_home: float
    multiplier: float
    p_up: float
    bar_ts: int
    model_version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskSkipRow(JournalRecord):
    """``risk.skip``: a signal that did not become an entry, with the rule's reason."""

    KIND: ClassVar[str] = "risk.skip"
    instrument: str
    bar_ts: int
    reason: str
    detail: str
    direction: str | None
    p_up: float | None
    model_version: str


# --- execution: entries ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecSendingRow(JournalRecord):
    """``exec.sending``: an order about to leave (written before the request)."""

    KIND: ClassVar[str] = "exec.sending"
    intent_id: str
    instrument: str
    model_version: str
    units: str
    stop_loss: str
    take_profit: str
    client_id: str
    tag: str | None
    position_check: str | None = optional()  # "stream" (the transaction stream's view) or "broker" (a REST read)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecRejectedRow(JournalRecord):
    """``exec.rejected``: an intent refused at send time (``sent`` False) or by the broker."""

    KIND: ClassVar[str] = "exec.rejected"
    intent_id: str
    instrument: str
    model_version: str
    reason: str
    detail: str | None = optional()
    sent: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecCancelledRow(ExecRejectedRow):
    """``exec.cancelled``: the broker created the order, then cancelled it (FOK, margin ...)."""

    KIND: ClassVar[str] = "exec.cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecAmbiguousRow(JournalRecord):
    """``exec.ambiguous``: an order's outcome is unknown (or was found by client id: ``resolved``;
    or stays unknown past the timeout: ``final``)."""

    KIND: ClassVar[str] = "exec.ambiguous"
    intent_id: str
    instrument: str | None = optional()
    model_version: str | None = optional()
    final: bool | None = optional()
    detail: str
    resolved: bool | None = optional()


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecFilledRow(JournalRecord):
    """``exec.filled``: an entry filled (``latency_ms`` None when nothing timed it)."""

    KIND: ClassVar[str] = "exec.filled"
    intent_id: str
    instrument: str
    trade_id: str
    units: str
    fill_price: str
    slippage_pips: float | None
    latency_ms: float | None
    model_version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecResolvedFillRow(ExecFilledRow):
    """``exec.resolved`` of an ambiguous order found filled, booked like a fill."""

    KIND: ClassVar[str] = "exec.resolved"
    outcome: str = "filled"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecResolvedRow(JournalRecord):
    """``exec.resolved`` of an ambiguous order found cancelled, or filled without a trade to book."""

    KIND: ClassVar[str] = "exec.resolved"
    intent_id: str
    instrument: str | None = optional()
    outcome: str
    trade_id: str | None = optional()
    detail: str | None = optional()


# --- execution: exits, closes and protection -------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecErrorRow(JournalRecord):
    """``exec.error``: a desk job failed at the broker (it is tried again next time)."""

    KIND: ClassVar[str] = "exec.error"
    job: str
    trade_id: str | None = optional()
    error: str
    tries: int | None = optional()


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowMigratedRow(JournalRecord):
    """``shadow.migrated``: the JSON shadow book of an older version was moved into the SQLite book
    (once; the JSON file is kept beside it as ``kept_as``)."""

    KIND: ClassVar[str] = "shadow.migrated"
    source: str
    book: str
    kept_as: str
    trades: int
    orders: int
    transactions: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecClosedRow(JournalRecord):
    """``exec.closed``: a trade closed (``price`` when the desk closed it; ``realized_pl``
    "unknown" when its close could not be read)."""

    KIND: ClassVar[str] = "exec.closed"
    trade_id: str
    instrument: str
    reason: str
    price: str | None = optional()
    realized_pl: str
    model_version: str | None = optional()


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecStopMovedRow(JournalRecord):
    """``exec.exit_changed``: the exit rules moved a trade's stop loss (breakeven, trailing)."""

    KIND: ClassVar[str] = "exec.exit_changed"
    trade_id: str
    instrument: str
    reason: str
    stop_loss: str
    was: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecManagedRow(JournalRecord):
    """``exec.managed``: an open trade without the execution role's memo of its entry (``why``:
    ``adopted``, ``another_host``, or ``own`` when its memo was lost) is managed from its broker
    entry: R from ``initial_stop_loss`` (None: unknown, the time exit only), the bars held from
    ``open_bar_ts`` (``actors.core.exits.entry_from_broker``)."""

    KIND: ClassVar[str] = "exec.managed"
    trade_id: str
    instrument: str
    why: str
    entry_price: str
    initial_stop_loss: str | None
    open_ts: int
    open_bar_ts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecRepairedRow(JournalRecord):
    """``exec.exit_changed``: a repair gave an unprotected trade the SL and/or TP it lacked (only
    what was sent), measured from ``atr`` and the price of ``price_basis``."""

    KIND: ClassVar[str] = "exec.exit_changed"
    trade_id: str
    instrument: str
    reason: str
    stop_loss: str | None = optional()
    take_profit: str | None = optional()
    atr: float | None
    price_basis: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecProtectFailedRow(JournalRecord):
    """``exec.protect_failed``: the reconciler's repair or close of an unprotected trade failed."""

    KIND: ClassVar[str] = "exec.protect_failed"
    trade_id: str
    instrument: str
    action: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecProtectedRow(JournalRecord):
    """``exec.protected``: what the reconciler's request for an unprotected trade came to."""

    KIND: ClassVar[str] = "exec.protected"
    trade_id: str
    instrument: str
    action: str
    outcome: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownProtectionRow(JournalRecord):
    """``shutdown.protection``: the shutdown's SL/TP check of every open trade at the broker."""

    KIND: ClassVar[str] = "shutdown.protection"
    complete: bool
    trades: dict[str, str]
    unverified: list[str]
    cancelled_orders: list[str]
    pending_orders: int | None
    attempts: int
    error: str
    summary: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownUncheckedRow(JournalRecord):
    """``shutdown.protection`` when the check did not finish before the shutdown deadline."""

    KIND: ClassVar[str] = "shutdown.protection"
    complete: bool
    unverified: list[str]
    summary: str
