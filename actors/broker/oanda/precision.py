"""Formatting prices and units to an instrument's precision, and building order bodies.

OANDA rejects a price with more decimals than ``displayPrecision`` and units with more than
``tradeUnitsPrecision`` (``..._PRECISION_EXCEEDED``), and binary floats such as
``1.12247999999999`` are the classic way to get there. Everything here works on ``Decimal`` and
returns OANDA decimal strings. Instrument metadata comes from the broker: an absurd precision
(negative, or beyond ``MAX_PRECISION``) is refused with ``BrokerTemporaryError`` (a malformed
answer), and a value that cannot be rounded to it (too large for the decimal context) with
``BrokerRejectedError``; no ``decimal.InvalidOperation`` ever leaves this module.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from actors.broker import MarketOrderRequest
from actors.core.domain import Instrument
from actors.core.errors import BrokerRejectedError, BrokerTemporaryError

__all__ = ["MAX_PRECISION", "build_market_order", "build_trade_orders", "format_price", "format_units"]

MAX_EXTENSION_CHARS = 128
MAX_PRECISION = 15  # decimals of a price or of units; OANDA's largest is far below


def _quantum(precision: object, field: str, instrument: Instrument) -> Decimal:
    if isinstance(precision, bool) or not isinstance(precision, int) or not 0 <= precision <= MAX_PRECISION:
        raise BrokerTemporaryError(
            f"malformed broker answer: {field!r} of {instrument.name} is {precision!r} (expected 0..{MAX_PRECISION})"
        )
    return Decimal(1).scaleb(-precision)


def _round(value: Decimal, quantum: Decimal, rounding: str, *, what: str, reason: str) -> Decimal:
    try:
        return value.quantize(quantum, rounding=rounding)
    except InvalidOperation as e:  # more digits than the decimal context holds: no real price or size
        raise BrokerRejectedError(f"{what} {value!r} cannot be rounded to {quantum}", reason=reason) from e


def format_price(value: Decimal, instrument: Instrument) -> str:
    """Round ``value`` half-up to ``displayPrecision`` decimals and format it.

    Raises:
        BrokerRejectedError: the price is not a positive finite number, or rounds to zero.
        BrokerTemporaryError: the instrument's ``displayPrecision`` is absurd (malformed metadata).
    """
    quantum = _quantum(instrument.display_precision, "displayPrecision", instrument)
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise BrokerRejectedError(f"invalid price {value!r} for {instrument.name}", reason="PRICE_INVALID")
    rounded = _round(value, quantum, ROUND_HALF_UP, what="price", reason="PRICE_INVALID")
    if rounded <= 0:
        raise BrokerRejectedError(f"price {value} rounds to zero for {instrument.name}", reason="PRICE_INVALID")
    return format(rounded, "f")


def format_units(value: Decimal, instrument: Instrument) -> str:
    """Round ``value`` toward zero to ``tradeUnitsPrecision`` decimals and format it (signed).

    Raises:
        BrokerRejectedError: the units round to zero or exceed ``maximumOrderUnits``.
        BrokerTemporaryError: the instrument's ``tradeUnitsPrecision`` is absurd (malformed metadata).
    """
    quantum = _quantum(instrument.trade_units_precision, "tradeUnitsPrecision", instrument)
    if not isinstance(value, Decimal) or not value.is_finite():
        raise BrokerRejectedError(f"invalid units {value!r}", reason="UNITS_INVALID")
    too_many = abs(value) > instrument.maximum_order_units
    rounded = _round(
        value, quantum, ROUND_DOWN, what="units", reason="UNITS_LIMIT_EXCEEDED" if too_many else "UNITS_INVALID"
    )
    if rounded == 0:
        raise BrokerRejectedError(f"units {value} round to zero for {instrument.name}", reason="UNITS_INVALID")
    if abs(rounded) > instrument.maximum_order_units:
        raise BrokerRejectedError(f"units {value} exceed the maximum order size", reason="UNITS_LIMIT_EXCEEDED")
    if abs(rounded) < instrument.minimum_trade_size:
        raise BrokerRejectedError(f"units {value} are below the minimum trade size", reason="UNITS_MIMIMUM_NOT_MET")
    return format(rounded, "f")


def _extensions(client_id: str | None, tag: str | None, comment: str | None) -> dict[str, str] | None:
    ext = {k: v for k, v in (("id", client_id), ("tag", tag), ("comment", comment)) if v}
    for key, text in ext.items():
        if len(text) > MAX_EXTENSION_CHARS:
            raise BrokerRejectedError(
                f"clientExtensions.{key} is longer than 128 characters", reason="CLIENT_EXTENSIONS_DATA_INVALID"
            )
    return ext or None


CLIENT_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")


def build_market_order(request: MarketOrderRequest, instrument: Instrument) -> dict[str, Any]:
    """The ``POST .../orders`` body for ``request``, every number pre-formatted.

    Raises:
        BrokerRejectedError: the request is invalid before it is sent (never sent then).
    """
    if not request.client_id:
        raise BrokerRejectedError("a MARKET order needs a client id", reason="CLIENT_ORDER_ID_MISSING")
    for name, value in (("client_id", request.client_id), ("trade_client_id", request.trade_client_id)):
        # oandapyV20 puts "@<id>" into URL paths unescaped: an id that is not URL-safe could not
        # be looked up after an ambiguous submit.
        if value is not None and not CLIENT_ID_RE.fullmatch(value):
            raise BrokerRejectedError(
                f"{name} {value!r} must match {CLIENT_ID_RE.pattern}", reason="CLIENT_EXTENSIONS_DATA_INVALID"
            )
    if request.time_in_force not in ("FOK", "IOC"):
        raise BrokerRejectedError("MARKET orders are FOK or IOC", reason="TIME_IN_FORCE_INVALID")
    order: dict[str, Any] = {
        "type": "MARKET",
        "instrument": instrument.name,
        "units": format_units(request.units, instrument),
        "timeInForce": request.time_in_force,
        "positionFill": "DEFAULT",
        "clientExtensions": _extensions(request.client_id, request.tag, request.comment),
    }
    if request.price_bound is not None:
        order["priceBound"] = format_price(request.price_bound, instrument)
    if request.take_profit is not None:
        order["takeProfitOnFill"] = {"price": format_price(request.take_profit, instrument), "timeInForce": "GTC"}
    if request.stop_loss is not None:
        order["stopLossOnFill"] = {"price": format_price(request.stop_loss, instrument), "timeInForce": "GTC"}
    trade_ext = _extensions(request.trade_client_id, request.tag, request.comment)
    if request.trade_client_id and trade_ext:
        order["tradeClientExtensions"] = trade_ext
    return {"order": order}


def build_trade_orders(
    instrument: Instrument,
    *,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    cancel_stop_loss: bool,
    cancel_take_profit: bool,
) -> dict[str, Any]:
    """The ``PUT .../trades/{spec}/orders`` body: given price = set/replace, cancel = null."""
    body: dict[str, Any] = {}
    for key, price, cancel in (
        ("stopLoss", stop_loss, cancel_stop_loss),
        ("takeProfit", take_profit, cancel_take_profit),
    ):
        if cancel and price is not None:
            raise BrokerRejectedError(f"{key}: either a price or cancel, not both", reason="INVALID_REQUEST")
        if cancel:
            body[key] = None
        elif price is not None:
            body[key] = {"price": format_price(price, instrument), "timeInForce": "GTC"}
    if not body:
        raise BrokerRejectedError("nothing to change on the trade", reason="INVALID_REQUEST")
    return body
