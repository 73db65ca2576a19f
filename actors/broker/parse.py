"""Decoding OANDA v20 JSON objects into the broker's typed results (pure).

Decimal strings become ``Decimal``, RFC3339 times become integer UTC nanoseconds, and a missing
or malformed required field raises ``BrokerTemporaryError`` (a protocol hiccup worth a retry,
never a crash of the role).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from actors.broker import (
    OHLC,
    AccountState,
    Candle,
    Heartbeat,
    Instrument,
    OrderResult,
    OrderState,
    PositionState,
    Price,
    TradeState,
    Transaction,
    TransactionHeartbeat,
)
from actors.broker.timefmt import parse_time
from actors.errors import BrokerTemporaryError

__all__ = [
    "account_state",
    "candle",
    "decimal",
    "fill_result",
    "instrument",
    "order_state",
    "position_state",
    "price_event",
    "trade_state",
    "transaction",
    "transaction_event",
]

Json = Mapping[str, Any]


def decimal(obj: Json, key: str) -> Decimal:
    """``obj[key]`` as a Decimal (BrokerTemporaryError when missing or not a number)."""
    try:
        return Decimal(str(obj[key]))
    except (KeyError, InvalidOperation) as e:
        raise BrokerTemporaryError(f"malformed broker answer: {key!r} is missing or not a decimal") from e


def _opt_decimal(obj: Json, key: str) -> Decimal | None:
    return decimal(obj, key) if obj.get(key) is not None else None


def _time(obj: Json, key: str) -> int:
    try:
        return parse_time(str(obj[key]))
    except (KeyError, ValueError) as e:
        raise BrokerTemporaryError(f"malformed broker answer: {key!r} is missing or not a time") from e


def _str(obj: Json, key: str) -> str:
    try:
        return str(obj[key])
    except KeyError as e:
        raise BrokerTemporaryError(f"malformed broker answer: {key!r} is missing") from e


def instrument(obj: Json) -> Instrument:
    """An ``Instrument`` object."""
    return Instrument(
        name=_str(obj, "name"),
        type=str(obj.get("type", "CURRENCY")),
        display_precision=int(obj["displayPrecision"]),
        pip_location=int(obj["pipLocation"]),
        trade_units_precision=int(obj["tradeUnitsPrecision"]),
        minimum_trade_size=decimal(obj, "minimumTradeSize"),
        maximum_order_units=decimal(obj, "maximumOrderUnits"),
        margin_rate=decimal(obj, "marginRate"),
    )


def price_event(obj: Json) -> Price | Heartbeat:
    """A pricing-stream line."""
    if obj.get("type") == "HEARTBEAT":
        return Heartbeat(ts=_time(obj, "time"))
    bids, asks = obj.get("bids") or [], obj.get("asks") or []
    if not bids or not asks:
        raise BrokerTemporaryError("malformed price: empty bids or asks")
    return Price(
        instrument=_str(obj, "instrument"),
        ts=_time(obj, "time"),
        bid=decimal(bids[0], "price"),
        ask=decimal(asks[0], "price"),
        closeout_bid=_opt_decimal(obj, "closeoutBid") or decimal(bids[0], "price"),
        closeout_ask=_opt_decimal(obj, "closeoutAsk") or decimal(asks[0], "price"),
        tradeable=bool(obj.get("tradeable", obj.get("status") == "tradeable")),
    )


def candle(obj: Json) -> Candle:
    """A ``Candlestick``."""

    def ohlc(key: str) -> OHLC | None:
        part = obj.get(key)
        if part is None:
            return None
        return OHLC(o=decimal(part, "o"), h=decimal(part, "h"), l=decimal(part, "l"), c=decimal(part, "c"))

    return Candle(
        ts=_time(obj, "time"),
        volume=int(obj.get("volume", 0)),
        complete=bool(obj.get("complete", False)),
        mid=ohlc("mid"),
        bid=ohlc("bid"),
        ask=ohlc("ask"),
    )


def account_state(obj: Json) -> AccountState:
    """An ``AccountSummary``."""
    return AccountState(
        id=_str(obj, "id"),
        currency=_str(obj, "currency"),
        balance=decimal(obj, "balance"),
        nav=decimal(obj, "NAV"),
        unrealized_pl=decimal(obj, "unrealizedPL"),
        margin_used=decimal(obj, "marginUsed"),
        margin_available=decimal(obj, "marginAvailable"),
        open_trade_count=int(obj.get("openTradeCount", 0)),
        open_position_count=int(obj.get("openPositionCount", 0)),
        pending_order_count=int(obj.get("pendingOrderCount", 0)),
        last_transaction_id=_str(obj, "lastTransactionID"),
    )


def trade_state(obj: Json) -> TradeState:
    """A ``Trade`` (full dependent orders or the ``...OrderID`` summary form)."""
    tp, sl = obj.get("takeProfitOrder") or {}, obj.get("stopLossOrder") or {}
    return TradeState(
        id=_str(obj, "id"),
        instrument=_str(obj, "instrument"),
        price=decimal(obj, "price"),
        open_ts=_time(obj, "openTime"),
        state=_str(obj, "state"),
        initial_units=decimal(obj, "initialUnits"),
        current_units=decimal(obj, "currentUnits"),
        realized_pl=_opt_decimal(obj, "realizedPL") or Decimal(0),
        unrealized_pl=_opt_decimal(obj, "unrealizedPL") or Decimal(0),
        client_id=(obj.get("clientExtensions") or {}).get("id"),
        stop_loss_order_id=sl.get("id") or obj.get("stopLossOrderID"),
        stop_loss_price=_opt_decimal(sl, "price"),
        take_profit_order_id=tp.get("id") or obj.get("takeProfitOrderID"),
        take_profit_price=_opt_decimal(tp, "price"),
    )


def order_state(obj: Json) -> OrderState:
    """An ``Order`` of any type."""
    return OrderState(
        id=_str(obj, "id"),
        type=_str(obj, "type"),
        state=_str(obj, "state"),
        instrument=obj.get("instrument"),
        units=_opt_decimal(obj, "units"),
        price=_opt_decimal(obj, "price"),
        client_id=(obj.get("clientExtensions") or {}).get("id"),
        trade_id=obj.get("tradeID"),
        filling_transaction_id=obj.get("fillingTransactionID"),
        trade_opened_id=obj.get("tradeOpenedID"),
        cancelling_transaction_id=obj.get("cancellingTransactionID"),
    )


def position_state(obj: Json) -> PositionState:
    """A ``Position`` (both sides)."""
    long, short = obj.get("long") or {}, obj.get("short") or {}
    return PositionState(
        instrument=_str(obj, "instrument"),
        long_units=_opt_decimal(long, "units") or Decimal(0),
        short_units=_opt_decimal(short, "units") or Decimal(0),
        unrealized_pl=_opt_decimal(obj, "unrealizedPL") or Decimal(0),
        margin_used=_opt_decimal(obj, "marginUsed") or Decimal(0),
        trade_ids=tuple(long.get("tradeIDs") or ()) + tuple(short.get("tradeIDs") or ()),
    )


def transaction(obj: Json) -> Transaction:
    """A ``Transaction`` of any type (all fields kept in ``raw``)."""
    return Transaction(id=_str(obj, "id"), type=_str(obj, "type"), ts=_time(obj, "time"), raw=dict(obj))


def transaction_event(obj: Json) -> Transaction | TransactionHeartbeat:
    """A transaction-stream line."""
    if obj.get("type") == "HEARTBEAT":
        return TransactionHeartbeat(ts=_time(obj, "time"), last_transaction_id=_str(obj, "lastTransactionID"))
    return transaction(obj)


def fill_result(
    fill: Json, *, client_id: str, last_transaction_id: str, resolved_by_lookup: bool = False
) -> OrderResult:
    """An ``OrderResult`` from an ``ORDER_FILL`` transaction."""
    opened = fill.get("tradeOpened") or {}
    return OrderResult(
        order_id=_str(fill, "orderID"),
        client_id=client_id,
        instrument=_str(fill, "instrument"),
        units=decimal(fill, "units"),
        fill_transaction_id=_str(fill, "id"),
        fill_price=decimal(fill, "price"),
        trade_id=opened.get("tradeID"),
        last_transaction_id=last_transaction_id,
        resolved_by_lookup=resolved_by_lookup,
    )
