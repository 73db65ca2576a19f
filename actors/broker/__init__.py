"""The broker seam: the ``Broker`` Protocol the roles use and its small typed results.

Feed, Execution and Reconciler talk to OANDA only through ``Broker``. ``OandaBroker``
(``actors.broker.oanda``) implements it over oandapyV20 against OANDA or the emulator;
``InMemoryBroker`` (``tests.fakebroker``) implements it for unit tests. Prices, units and money
are ``decimal.Decimal`` (OANDA's decimal strings converted at the edge, never binary floats);
times are integer UTC nanoseconds; ids are OANDA's digit strings. Every method raises only the
``BrokerError`` subclasses of ``actors.core.errors``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from actors.core.domain import (
    AccountState,
    Candle,
    Instrument,
    OrderState,
    Price,
    PriceHeartbeat,
    TradeState,
)

__all__ = [
    "Broker",
    "CloseResult",
    "MarketOrderRequest",
    "OrderResult",
    "TradeOrdersResult",
    "Transaction",
    "TransactionHeartbeat",
    "TransactionPage",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketOrderRequest:
    """What Execution asks for: a FOK MARKET order with server-side SL/TP and a client id.

    ``units`` is signed (positive buys, negative sells). Prices are rounded to the instrument's
    ``displayPrecision`` and units to ``tradeUnitsPrecision`` by the broker before sending.
    """

    instrument: str
    units: Decimal
    client_id: str
    trade_client_id: str | None = None
    tag: str | None = None
    comment: str | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    price_bound: Decimal | None = None
    time_in_force: str = "FOK"


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderResult:
    """The outcome of a filled MARKET order (a cancel or reject raises instead)."""

    order_id: str
    client_id: str
    instrument: str
    units: Decimal
    fill_transaction_id: str
    fill_price: Decimal
    trade_id: str | None
    last_transaction_id: str
    resolved_by_lookup: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseResult:
    """The outcome of closing (part of) a trade."""

    trade_id: str
    units: Decimal
    price: Decimal
    realized_pl: Decimal
    fill_transaction_id: str
    last_transaction_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeOrdersResult:
    """Ids of the stop loss / take profit orders after a set/replace/cancel."""

    trade_id: str
    stop_loss_order_id: str | None
    take_profit_order_id: str | None
    last_transaction_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Transaction:
    """One account transaction; ``raw`` keeps every field OANDA sent."""

    id: str
    type: str
    ts: int
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionHeartbeat:
    """A transaction-stream HEARTBEAT with the account's last transaction id."""

    ts: int
    last_transaction_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionPage:
    """Transactions after an id, oldest first."""

    transactions: tuple[Transaction, ...]
    last_transaction_id: str


@runtime_checkable
class Broker(Protocol):
    """What the roles need from a broker. Order specs are an id or ``@clientID``.

    Streams never end quietly: a server-side end, reset or stall raises
    ``BrokerTemporaryError`` from the iterator, and the caller reconnects with backoff.
    """

    def instruments(self, names: Sequence[str] | None = None) -> list[Instrument]:
        """Instrument metadata (cached by real implementations)."""
        ...

    def candles(
        self,
        instrument: str,
        granularity: str,
        *,
        count: int | None = None,
        from_ts: int | None = None,
        to_ts: int | None = None,
        price: str = "M",
        include_first: bool = True,
    ) -> list[Candle]:
        """Candles, oldest first."""
        ...

    def latest_candles(
        self, instruments: Sequence[str], granularity: str, *, price: str = "M"
    ) -> dict[str, list[Candle]] | None:
        """The latest candles of several instruments in one request (OANDA's
        ``GET /v3/accounts/{id}/candles/latest``), instrument -> candles oldest first; None when
        the broker does not serve that endpoint (the caller asks per instrument instead)."""
        ...

    def pricing_stream(self, instruments: Sequence[str], *, snapshot: bool = True) -> Iterator[Price | PriceHeartbeat]:
        """Prices and heartbeats until the caller stops iterating or the stream breaks."""
        ...

    def on_price(self, price: Price) -> None:
        """A price the host saw on the stream (the shadow book fills and triggers on it; a real
        broker ignores it)."""
        ...

    def on_bar(self, instrument: str, candle: Candle, end_ns: int) -> None:
        """A closed bar the host validated, ending at ``end_ns`` (the shadow book checks SL/TP
        against its range; a real broker ignores it)."""
        ...

    def account_summary(self) -> AccountState:
        """Balance, NAV, margin and counts."""
        ...

    def open_trades(self) -> list[TradeState]:
        """Open trades, newest first."""
        ...

    def pending_orders(self) -> list[OrderState]:
        """Pending orders, including the SL/TP orders attached to trades."""
        ...

    def order(self, spec: str) -> OrderState:
        """One order by id or ``@clientID``; unknown raises ``BrokerRejectedError``."""
        ...

    def trade(self, spec: str) -> TradeState:
        """One trade by id or ``@clientTradeID``; unknown raises ``BrokerRejectedError``."""
        ...

    def submit_market_order(self, request: MarketOrderRequest) -> OrderResult:
        """Send a MARKET order once; resolve ambiguity by client-id lookup, never resend."""
        ...

    def cancel_order(self, spec: str) -> str:
        """Cancel a pending order; returns the cancel transaction id."""
        ...

    def close_trade(self, spec: str, units: Decimal | None = None) -> CloseResult:
        """Close a trade fully (``units=None``) or partially."""
        ...

    def set_trade_orders(
        self,
        spec: str,
        *,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        cancel_stop_loss: bool = False,
        cancel_take_profit: bool = False,
    ) -> TradeOrdersResult:
        """Set or replace (given price) or cancel (flag) a trade's SL/TP; others unchanged."""
        ...

    def transactions_since(self, transaction_id: str) -> TransactionPage:
        """Transactions after ``transaction_id``."""
        ...

    def transaction_stream(self) -> Iterator[Transaction | TransactionHeartbeat]:
        """New transactions and heartbeats until the caller stops or the stream breaks."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
