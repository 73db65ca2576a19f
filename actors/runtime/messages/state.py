"""The state vocabulary: the system's state and the reports behind ``ctl status``.

The supervisor's ``SystemState`` and why it is not trading (``Reason``), published as
``SystemStateChanged`` (the roles' trading permit); and what the roles report of their part of the
world: the watchdog's checks, the feed's market, the model's state, a broker connection's health,
and the account with its open trades as the reconciler last read it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from actors.core.domain import InstrumentId, TradeId, TradeState
from actors.runtime.messages.body import Body


class SystemState(enum.StrEnum):
    """The states of the whole system (DESIGN §3); the supervisor alone changes them."""

    STARTING = "STARTING"
    RECONCILING = "RECONCILING"
    TRADING = "TRADING"
    PAUSED = "PAUSED"
    NO_TRADE = "NO_TRADE"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    STOPPED = "STOPPED"


# --- Bus events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason(Body):
    """Why the system is not trading. ``latched`` reasons need ``ctl resume`` to clear."""

    TYPE: ClassVar[str] = "Reason"
    code: str
    detail: str
    latched: bool
    since_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemStateChanged(Body):
    """The supervisor's state, published on every change and at least every second.

    A role may open trades only while it holds a ``TRADING`` state that has not expired: neither
    ``expires_ns`` (wall clock) nor ``ttl_s`` after the role received it (its own monotonic
    clock, so a wall-clock step cannot extend a permit): silence means no trading.
    """

    TYPE: ClassVar[str] = "SystemStateChanged"
    state: SystemState
    reasons: tuple[Reason, ...] = ()
    paused: bool = False
    expires_ns: int
    ttl_s: float = 0.0
    mode: str = "shadow"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult(Body):
    """One watchdog check: its last value, its limit and its verdict (``ok``, ``breach`` or
    ``unknown``)."""

    TYPE: ClassVar[str] = "CheckResult"
    name: str
    value: str
    limit: str
    verdict: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchdogReport(Body):
    """The watchdog's checks and its mail sender (``watchdog`` in ``ctl status``)."""

    TYPE: ClassVar[str] = "WatchdogReport"
    checks: tuple[CheckResult, ...] = ()
    mail: str = "off"  # "off" (no [alerts] smtp_host) or "on"
    mail_queued: int = 0
    mail_sent: int = 0
    mail_failed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class InstrumentMarket(Body):
    """Whether one instrument's market is open, since when, and why not."""

    TYPE: ClassVar[str] = "InstrumentMarket"
    instrument: InstrumentId
    open: bool
    since_ns: int | None = None
    why: str = ""
    next_open_ns: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketReport(Body):
    """The feed's view of the market per instrument (to the supervisor: ``market`` in ``ctl status``)."""

    TYPE: ClassVar[str] = "MarketReport"
    instruments: tuple[InstrumentMarket, ...] = ()
    last_bar_ns: int | None = None
    bars_published: int = 0
    bars_rejected: int = 0
    ticks_rejected: int = 0  # stream prices refused by the tick checks (actors.core.ticks), never published


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelReport(Body):
    """The model role's state (to the supervisor: ``model`` in ``ctl status``, and no-trade reasons).

    ``state``: ``loading``, ``loaded``, ``missing`` (no model directory) or ``mismatch`` (a model that
    does not fit the configuration).
    """

    TYPE: ClassVar[str] = "ModelReport"
    state: str
    version: str = ""
    detail: str = ""
    loaded_at_ns: int | None = None
    last_prediction_ns: int | None = None
    predictions: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerHealth(Body):
    """Health of one broker connection (``source``: ``stream`` or ``rest``), sent on change and
    with every heartbeat of the role that owns the connection."""

    TYPE: ClassVar[str] = "BrokerHealth"
    source: str
    connected: bool
    last_ok_ns: int | None = None
    detail: str = ""
    reconnects: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeView(Body):
    """One open trade as the broker shows it (prices and money as decimal strings): the broker's
    ``TradeState`` as ``AccountSnapshot`` carries it (``of``)."""

    TYPE: ClassVar[str] = "TradeView"
    trade_id: TradeId
    instrument: InstrumentId
    units: str  # signed: positive long, negative short
    price: str
    open_ts: int
    unrealized_pl: str
    stop_loss: str | None = None
    take_profit: str | None = None
    client_id: str | None = None

    @classmethod
    def of(cls, trade: TradeState) -> TradeView:
        """The broker's open trade, its decimals written out in full (``format(value, "f")``)."""
        sl, tp = trade.stop_loss_price, trade.take_profit_price
        return cls(
            trade_id=TradeId(trade.id),
            instrument=InstrumentId(trade.instrument),
            units=format(trade.current_units, "f"),
            price=format(trade.price, "f"),
            open_ts=trade.open_ts,
            unrealized_pl=format(trade.unrealized_pl, "f"),
            stop_loss=None if sl is None else format(sl, "f"),
            take_profit=None if tp is None else format(tp, "f"),
            client_id=trade.client_id,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountSnapshot(Body):
    """The broker's account as the reconciler last read it (``recon.state``; money as decimal
    strings): balance, NAV, the open trades, today's P&L against the day-start NAV, the peak NAV,
    the drawdown and its zone (``actors.core.zones``), whether the daily loss limit or the last
    drawdown zone stops new entries, and the margin available for new trades."""

    TYPE: ClassVar[str] = "AccountSnapshot"
    currency: str
    balance: str
    nav: str
    unrealized_pl: str
    margin_used: str
    open_trades: int
    pending_orders: int
    last_transaction_id: str
    ts: int
    trades: tuple[TradeView, ...] = ()
    day_start_nav: str = ""
    daily_pnl: str = ""
    peak_nav: str = ""
    drawdown: float = 0.0
    zone: int = 0
    multiplier: float = 1.0
    daily_loss_hit: bool = False
    drawdown_stop: bool = False
    margin_available: str = ""  # the broker's marginAvailable; empty: unknown (no new entry)
    drawdown_resumed: bool = False  # an operator resumed after drawdown_stop: the last zone's size until a new peak
