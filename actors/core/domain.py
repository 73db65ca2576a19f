"""The domain's small types, shared by every layer: instruments, prices, candles, the account and
its trades and orders as the broker reports them (``Decimal`` prices and money, UTC nanosecond
times, OANDA's digit-string ids), and the decision's vocabulary (``Direction``, ``Signal``,
``Quote``, ``Position``, ``SkipReason``). Pure: no I/O, nothing of the project imported.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import NewType


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """Instrument metadata from ``GET /v3/accounts/{id}/instruments``."""

    name: str
    type: str
    display_precision: int
    pip_location: int
    trade_units_precision: int
    minimum_trade_size: Decimal
    maximum_order_units: Decimal
    margin_rate: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """One PRICE line of the pricing stream (best bid/ask)."""

    instrument: str
    ts: int
    bid: Decimal
    ask: Decimal
    closeout_bid: Decimal
    closeout_ask: Decimal
    tradeable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceHeartbeat:
    """A pricing-stream HEARTBEAT (sent every 5 s)."""

    ts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OHLC:
    """Open, high, low, close of one candle component."""

    o: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 - OANDA's field name
    c: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Candle:
    """One candlestick; ``mid``/``bid``/``ask`` are present when requested."""

    ts: int
    volume: int
    complete: bool
    mid: OHLC | None = None
    bid: OHLC | None = None
    ask: OHLC | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountState:
    """The account summary the reconciler and risk gate need."""

    id: str
    currency: str
    balance: Decimal
    nav: Decimal
    unrealized_pl: Decimal
    margin_used: Decimal
    margin_available: Decimal
    open_trade_count: int
    open_position_count: int
    pending_order_count: int
    last_transaction_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeState:
    """An open (or closed) trade with its broker-side stop loss / take profit."""

    id: str
    instrument: str
    price: Decimal
    open_ts: int
    state: str
    initial_units: Decimal
    current_units: Decimal
    realized_pl: Decimal
    unrealized_pl: Decimal
    client_id: str | None = None
    client_tag: str | None = None
    stop_loss_order_id: str | None = None
    stop_loss_price: Decimal | None = None
    take_profit_order_id: str | None = None
    take_profit_price: Decimal | None = None

    @property
    def direction(self) -> Direction:
        """Long or short, for an open trade: the sign of its units (OANDA's are positive for a long)."""
        return Direction.LONG if self.current_units > 0 else Direction.SHORT


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderState:
    """An order as ``GET .../orders/{spec}`` or ``pendingOrders`` reports it."""

    id: str
    type: str
    state: str
    instrument: str | None = None
    units: Decimal | None = None
    price: Decimal | None = None
    client_id: str | None = None
    trade_id: str | None = None
    filling_transaction_id: str | None = None
    trade_opened_id: str | None = None
    cancelling_transaction_id: str | None = None


class Direction(enum.StrEnum):
    """The side of a trade (wire vocabulary: intents, journal rows)."""

    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        """+1 for long, -1 for short (the sign of OANDA's ``units``)."""
        return 1 if self is Direction.LONG else -1


class SkipReason(enum.StrEnum):
    """Why a signal did not become an order (wire vocabulary: ``risk.skip`` and its journal rows)."""

    INVALID_SIGNAL = "invalid_signal"  # P(up) not a finite number in [0, 1]
    BELOW_THRESHOLD = "below_threshold"
    MARKET_CLOSED = "market_closed"
    NOT_TRADEABLE = "not_tradeable"  # the broker says so, or no usable quote
    WEEKLY_CLOSE = "weekly_close"
    ROLLOVER = "rollover"
    POSITION_OPEN = "position_open"
    MAX_OPEN_POSITIONS = "max_open_positions"
    COOLDOWN = "cooldown"
    SPREAD_TOO_WIDE = "spread_too_wide"
    MAX_EXPOSURE = "max_exposure"
    # actors.core.zones, via actors.core.entry.decide_entry
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    DRAWDOWN_STOP = "drawdown_stop"
    # actors.core.sizing
    NO_ATR = "no_atr"
    NO_CONVERSION_RATE = "no_conversion_rate"
    STOP_INSIDE_SPREAD = "stop_inside_spread"
    SIZE_ZERO = "size_zero"
    SIZE_BELOW_MINIMUM = "size_below_minimum"
    MARGIN = "margin"  # not even the minimum size fits the margin available


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A model's prediction for one instrument at one bar close.

    Attributes:
        instrument: e.g. ``EUR_USD``.
        bar_ts_ns: the start time of the bar the prediction was made on (UTC ns).
        p_up: the model's probability that the price goes up.
        model_version: the model's version (journaled with every decision).
    """

    instrument: str
    bar_ts_ns: int
    p_up: float
    model_version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote:
    """The instrument's current best bid/ask as floats (for comparisons, never for an order)."""

    bid: float
    ask: float
    tradeable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """One instrument's open position as the entry rules count it (the gate, exposure, margin):
    its trades netted, or an entry in flight.

    Attributes:
        instrument: the instrument.
        direction: long or short (the side of the net).
        units: size, positive (0 when both sides of a hedging account cancel out: the instrument
            still has open trades).
        entry_price: average entry price (size-weighted).
    """

    instrument: str
    direction: Direction
    units: float
    entry_price: float


_SECONDS = {
    "S5": 5, "S10": 10, "S15": 15, "S30": 30, "M1": 60, "M2": 120, "M4": 240, "M5": 300,
    "M10": 600, "M15": 900, "M30": 1800, "H1": 3600, "H2": 7200, "H3": 10800, "H4": 14400,
    "H6": 21600, "H8": 28800, "H12": 43200, "D": 86400,
}  # fmt: skip


# The granularities the feed supports, as OANDA names them (W and M are not bar granularities here).
GRANULARITIES: tuple[str, ...] = tuple(_SECONDS)


# Aligned to the 17:00 New York rollover (OANDA's "day alignment"); the rest align in UTC.
DAY_ALIGNED: frozenset[str] = frozenset({"H2", "H3", "H4", "H6", "H8", "H12", "D"})


def granularity_seconds(granularity: str) -> int:
    """The nominal length of a bar of ``granularity`` in seconds (``D`` is 86400).

    Raises:
        ValueError: ``granularity`` is not one of ``GRANULARITIES``.
    """
    try:
        return _SECONDS[granularity]
    except KeyError:
        raise ValueError(f"unknown granularity {granularity!r}; expected one of {', '.join(GRANULARITIES)}") from None


# ``risk.strategy`` is checked against this at load time (``actors.core.config.RiskConfig``).
STRATEGY_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")


Role = NewType("Role", str)


# Identifiers, typed so they are not mixed up with other strings (Nautilus identifiers in spirit).
InstrumentId = NewType("InstrumentId", str)  # OANDA's instrument name, e.g. "EUR_USD"


BarId = NewType("BarId", str)  # the corr of every message about one bar: "bar-EUR_USD-M15-<start ns>"


IntentId = NewType("IntentId", str)  # deterministic per (strategy, instrument, bar, direction); URL-safe


ClientOrderId = NewType("ClientOrderId", str)  # the order's clientExtensions.id (= the intent id)


TradeId = NewType("TradeId", str)  # OANDA's trade id (digits)


def bar_id(instrument: str, granularity: str, start_ns: int) -> BarId:
    """The id of one bar: deterministic, so a restarted feed gives the same bar the same id."""
    return BarId(f"bar-{instrument}-{granularity}-{start_ns}")
