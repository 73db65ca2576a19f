"""Decoding OANDA v20 JSON objects into the broker's typed results (pure).

Decimal strings become ``Decimal``, RFC3339 times become integer UTC nanoseconds. Every public
function either returns its typed result or raises ``BrokerTemporaryError`` whose message starts
``malformed broker answer: '<field>'`` (a protocol hiccup worth a retry, never a crash of the
role): a missing required field, a value of the wrong JSON type, a non-object where an object is
expected, a non-finite (``NaN``, ``Infinity``) or absurd number (more than 28 digits, beyond
10^16, finer than 10^-20) or time (outside 1970..2262). What an order-path caller makes of that
error (an answer to a request that was carried out is ambiguous, not temporary) is its business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

from actors.broker import CloseResult, OrderResult, Transaction, TransactionHeartbeat
from actors.core.domain import (
    OHLC,
    AccountState,
    Candle,
    Instrument,
    OrderState,
    Price,
    PriceHeartbeat,
    TradeState,
)
from actors.core.errors import BrokerTemporaryError
from actors.core.timefmt import parse_time

__all__ = [
    "MAX_DIGITS",
    "MAX_MAGNITUDE_EXPONENT",
    "MIN_EXPONENT",
    "account_state",
    "candle",
    "child",
    "children",
    "close_result",
    "decimal",
    "fill_result",
    "instrument",
    "malformed",
    "optional_text",
    "order_state",
    "price_event",
    "text",
    "trade_state",
    "transaction",
    "transaction_event",
]

Json = Mapping[str, Any]

# Bounds of a plausible OANDA decimal: beyond them a value is refused as malformed, never used.
MAX_DIGITS = 28  # the default context precision: more digits would be rounded silently
MAX_MAGNITUDE_EXPONENT = 15  # |x| < 10**16
MIN_EXPONENT = -20  # no OANDA amount has more than 20 decimals
_MAX_TEXT_CHARS = 64  # longer number or time texts are refused before they are parsed
_MAX_EPOCH_EXPONENT = 11  # epoch seconds below 10**12
_MAX_TS_NS = 2**63 - 1  # int64 nanoseconds end in 2262
_INT_TEXT = re.compile(r"-?[0-9]{1,18}")
# Small integers OANDA sends as JSON numbers (precisions, pip location) have plausible ranges.
PRECISION_RANGE = (0, 15)
PIP_LOCATION_RANGE = (-15, 15)


def malformed(key: str, what: str) -> NoReturn:
    """Raise the one error of this module: ``malformed broker answer: '<key>' <what>``."""
    raise BrokerTemporaryError(f"malformed broker answer: {key!r} {what}")


def _mapping(obj: Any, key: str) -> Json:
    if not isinstance(obj, Mapping):
        malformed(key, f"is not an object (got {type(obj).__name__})")
    return obj


def _container(obj: Any, key: str) -> Json:
    if not isinstance(obj, Mapping):
        malformed(key, f"cannot be read: it should be in an object, not in a {type(obj).__name__}")
    return obj


def _value(obj: Any, key: str) -> Any:
    obj = _container(obj, key)
    if obj.get(key) is None:
        malformed(key, "is missing")
    return obj[key]


def _to_decimal(value: Any, key: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        malformed(key, f"is not a decimal (got {value!r})")
    if isinstance(value, str):
        text = value
    elif isinstance(value, int):
        if abs(value) >= 10 ** (MAX_MAGNITUDE_EXPONENT + 1):
            malformed(key, "is out of range")
        text = str(value)
    elif isinstance(value, float):
        text = repr(value)
    else:
        malformed(key, f"is not a decimal (got {type(value).__name__})")
    if len(text) > _MAX_TEXT_CHARS:
        malformed(key, f"is not a decimal (a text of {len(text)} characters)")
    try:
        result = Decimal(text)
    except (InvalidOperation, ValueError):
        malformed(key, f"is not a decimal (got {text!r})")
    if not result.is_finite():
        malformed(key, f"is not a finite decimal (got {text!r})")
    _sign, digits, exponent = result.as_tuple()
    if not isinstance(exponent, int) or len(digits) > MAX_DIGITS:
        malformed(key, f"has more than {MAX_DIGITS} digits")
    if exponent < MIN_EXPONENT or (result != 0 and result.adjusted() > MAX_MAGNITUDE_EXPONENT):
        malformed(key, f"is out of range (got {text!r})")
    return result


def decimal(obj: Json, key: str) -> Decimal:
    """``obj[key]`` as a finite, plausible Decimal.

    Raises:
        BrokerTemporaryError: missing, not a number, not finite or absurd.
    """
    return _to_decimal(_value(obj, key), key)


def _opt_decimal(obj: Json, key: str) -> Decimal | None:
    return None if obj.get(key) is None else _to_decimal(obj[key], key)


def _time(obj: Json, key: str) -> int:
    value = _value(obj, key)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        malformed(key, f"is not a time (got {type(value).__name__})")
    raw = value if isinstance(value, str) else repr(value)
    if len(raw) > _MAX_TEXT_CHARS:
        malformed(key, "is not a time (too long)")
    try:
        epoch = Decimal(raw.strip())
    except (InvalidOperation, ValueError):
        epoch = None
    if epoch is not None and epoch.is_finite() and epoch != 0 and epoch.adjusted() > _MAX_EPOCH_EXPONENT:
        malformed(key, f"is out of range (got {raw!r})")  # before int() builds a huge number
    try:
        ts = parse_time(raw)
    except (ValueError, ArithmeticError):
        malformed(key, f"is not a time (got {raw!r})")
    if not 0 <= ts <= _MAX_TS_NS:
        malformed(key, f"is out of range (got {raw!r})")
    return ts


def _text_value(value: Any, key: str) -> str:
    if isinstance(value, str):
        if not value:
            malformed(key, "is empty")
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**18:
        return str(value)
    malformed(key, f"is not a string (got {type(value).__name__})")


def text(obj: Json, key: str) -> str:
    """``obj[key]``: a non-empty string (an integer is taken as its digits).

    Raises:
        BrokerTemporaryError: missing, empty or of another type.
    """
    return _text_value(_value(obj, key), key)


def optional_text(obj: Json, key: str, default: str | None = None) -> str | None:
    """``obj[key]`` as a string, or ``default`` when it is absent or null.

    Raises:
        BrokerTemporaryError: ``obj`` is no object, or the value is empty or not a string.
    """
    value = _container(obj, key).get(key)
    return default if value is None else _text_value(value, key)


def _str(obj: Json, key: str) -> str:
    return text(obj, key)


def _int(obj: Json, key: str, *, default: int | None = None, bounds: tuple[int, int] | None = None) -> int:
    value = obj.get(key)
    if value is None:
        if default is None:
            malformed(key, "is missing")
        return default
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        malformed(key, f"is not an integer (got {value!r:.40})")
    low, high = bounds or (-(10**18), 10**18)
    if not low <= value <= high:
        malformed(key, f"is out of range {low}..{high} (got {value})")
    return value


def _bool(obj: Json, key: str, default: bool) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        malformed(key, f"is not a boolean (got {value!r:.40})")
    return value


def _opt_mapping(obj: Json, key: str) -> Json:
    value = obj.get(key)
    if value is None:
        return {}
    return _mapping(value, key)


def child(obj: Any, key: str) -> Json:
    """``obj[key]``, which must be a JSON object (e.g. ``body["account"]``).

    Raises:
        BrokerTemporaryError: ``obj`` is no object, or ``key`` is missing or not an object.
    """
    return _mapping(_value(obj, key), key)


def children(obj: Any, key: str) -> list[Any]:
    """``obj[key]``, which must be a JSON array; absent or null is empty.

    Raises:
        BrokerTemporaryError: ``obj`` is no object, or the value is not an array.
    """
    value = _container(obj, key).get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        malformed(key, f"is not an array (got {type(value).__name__})")
    return value


def _client_id(obj: Json) -> str | None:
    return optional_text(_opt_mapping(obj, "clientExtensions"), "id")


def instrument(obj: Json) -> Instrument:
    """An ``Instrument`` object."""
    obj = _mapping(obj, "instrument")
    return Instrument(
        name=_str(obj, "name"),
        type=optional_text(obj, "type", "CURRENCY") or "CURRENCY",
        display_precision=_int(obj, "displayPrecision", bounds=PRECISION_RANGE),
        pip_location=_int(obj, "pipLocation", bounds=PIP_LOCATION_RANGE),
        trade_units_precision=_int(obj, "tradeUnitsPrecision", bounds=PRECISION_RANGE),
        minimum_trade_size=decimal(obj, "minimumTradeSize"),
        maximum_order_units=decimal(obj, "maximumOrderUnits"),
        margin_rate=decimal(obj, "marginRate"),
    )


def _best(obj: Json, key: str) -> Decimal:
    levels = children(obj, key)
    if not levels:
        malformed(key, "is empty")
    return decimal(_mapping(levels[0], key), "price")


def price_event(obj: Json) -> Price | PriceHeartbeat:
    """A pricing-stream line."""
    obj = _mapping(obj, "price")
    if obj.get("type") == "HEARTBEAT":
        return PriceHeartbeat(ts=_time(obj, "time"))
    bid, ask = _best(obj, "bids"), _best(obj, "asks")
    status = obj.get("status")
    return Price(
        instrument=_str(obj, "instrument"),
        ts=_time(obj, "time"),
        bid=bid,
        ask=ask,
        closeout_bid=_opt_decimal(obj, "closeoutBid") or bid,
        closeout_ask=_opt_decimal(obj, "closeoutAsk") or ask,
        tradeable=_bool(obj, "tradeable", status == "tradeable"),
    )


def _ohlc(obj: Json, key: str) -> OHLC | None:
    part = obj.get(key)
    if part is None:
        return None
    part = _mapping(part, key)
    return OHLC(o=decimal(part, "o"), h=decimal(part, "h"), l=decimal(part, "l"), c=decimal(part, "c"))


def candle(obj: Json) -> Candle:
    """A ``Candlestick``."""
    obj = _mapping(obj, "candle")
    return Candle(
        ts=_time(obj, "time"),
        volume=_int(obj, "volume", default=0, bounds=(0, 10**15)),
        complete=_bool(obj, "complete", False),
        mid=_ohlc(obj, "mid"),
        bid=_ohlc(obj, "bid"),
        ask=_ohlc(obj, "ask"),
    )


def account_state(obj: Json) -> AccountState:
    """An ``AccountSummary``."""
    obj = _mapping(obj, "account")
    counts = (0, 10**9)
    return AccountState(
        id=_str(obj, "id"),
        currency=_str(obj, "currency"),
        balance=decimal(obj, "balance"),
        nav=decimal(obj, "NAV"),
        unrealized_pl=decimal(obj, "unrealizedPL"),
        margin_used=decimal(obj, "marginUsed"),
        margin_available=decimal(obj, "marginAvailable"),
        open_trade_count=_int(obj, "openTradeCount", default=0, bounds=counts),
        open_position_count=_int(obj, "openPositionCount", default=0, bounds=counts),
        pending_order_count=_int(obj, "pendingOrderCount", default=0, bounds=counts),
        last_transaction_id=_str(obj, "lastTransactionID"),
    )


def trade_state(obj: Json) -> TradeState:
    """A ``Trade`` (full dependent orders or the ``...OrderID`` summary form)."""
    obj = _mapping(obj, "trade")
    tp, sl = _opt_mapping(obj, "takeProfitOrder"), _opt_mapping(obj, "stopLossOrder")
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
        client_id=_client_id(obj),
        client_tag=optional_text(_opt_mapping(obj, "clientExtensions"), "tag"),
        stop_loss_order_id=optional_text(sl, "id") or optional_text(obj, "stopLossOrderID"),
        stop_loss_price=_opt_decimal(sl, "price"),
        take_profit_order_id=optional_text(tp, "id") or optional_text(obj, "takeProfitOrderID"),
        take_profit_price=_opt_decimal(tp, "price"),
    )


def order_state(obj: Json) -> OrderState:
    """An ``Order`` of any type."""
    obj = _mapping(obj, "order")
    return OrderState(
        id=_str(obj, "id"),
        type=_str(obj, "type"),
        state=_str(obj, "state"),
        instrument=optional_text(obj, "instrument"),
        units=_opt_decimal(obj, "units"),
        price=_opt_decimal(obj, "price"),
        client_id=_client_id(obj),
        trade_id=optional_text(obj, "tradeID"),
        filling_transaction_id=optional_text(obj, "fillingTransactionID"),
        trade_opened_id=optional_text(obj, "tradeOpenedID"),
        cancelling_transaction_id=optional_text(obj, "cancellingTransactionID"),
    )


def transaction(obj: Json) -> Transaction:
    """A ``Transaction`` of any type (all fields kept in ``raw``)."""
    obj = _mapping(obj, "transaction")
    return Transaction(id=_str(obj, "id"), type=_str(obj, "type"), ts=_time(obj, "time"), raw=dict(obj))


def transaction_event(obj: Json) -> Transaction | TransactionHeartbeat:
    """A transaction-stream line."""
    obj = _mapping(obj, "transaction")
    if obj.get("type") == "HEARTBEAT":
        return TransactionHeartbeat(ts=_time(obj, "time"), last_transaction_id=_str(obj, "lastTransactionID"))
    return transaction(obj)


def fill_result(
    fill: Json, *, client_id: str, last_transaction_id: str, resolved_by_lookup: bool = False
) -> OrderResult:
    """An ``OrderResult`` from an ``ORDER_FILL`` transaction."""
    fill = _mapping(fill, "orderFillTransaction")
    opened = _opt_mapping(fill, "tradeOpened")
    return OrderResult(
        order_id=_str(fill, "orderID"),
        client_id=client_id,
        instrument=_str(fill, "instrument"),
        units=decimal(fill, "units"),
        fill_transaction_id=_str(fill, "id"),
        fill_price=decimal(fill, "price"),
        trade_id=optional_text(opened, "tradeID"),
        last_transaction_id=last_transaction_id,
        resolved_by_lookup=resolved_by_lookup,
    )


def close_result(fill: Json, *, trade_id: str, last_transaction_id: str) -> CloseResult:
    """A ``CloseResult`` from the ``ORDER_FILL`` of a trade close.

    Args:
        fill: the ``orderFillTransaction``.
        trade_id: the trade's id when the fill names none (``tradesClosed`` / ``tradeReduced``).
        last_transaction_id: the answer's ``lastTransactionID``.
    """
    fill = _mapping(fill, "orderFillTransaction")
    closed = children(fill, "tradesClosed")
    first = _mapping(closed[0], "tradesClosed") if closed else _opt_mapping(fill, "tradeReduced")
    return CloseResult(
        trade_id=optional_text(first, "tradeID", trade_id) or trade_id,
        units=decimal(fill, "units"),
        price=decimal(fill, "price"),
        realized_pl=decimal(fill, "pl"),
        fill_transaction_id=_str(fill, "id"),
        last_transaction_id=last_transaction_id,
    )
