"""``PUT /v3/accounts/{id}/trades/{spec}/orders``: set, replace or cancel a trade's TP/SL.

A key set to an object creates the order (or replaces the existing one: cancel with
``CLIENT_REQUEST_REPLACED``, then a new order with reason ``REPLACEMENT``); a key set to
``null`` cancels it; an omitted key leaves it alone. Prices are checked against the instrument's
``displayPrecision`` before anything changes (400 with a reject transaction).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from actors.broker.emulator.account import Account
from actors.broker.emulator.ledger import Json
from actors.broker.emulator.views import check_open, find_trade
from actors.broker.emulator.wire import ApiError, decimal_places, parse_decimal

__all__ = ["set_trade_orders"]

_KINDS = (("takeProfit", "TAKE_PROFIT"), ("stopLoss", "STOP_LOSS"))


def _reject(  # noqa: PLR0917 - private helper
    account: Account, key: str, kind: str, trade_id: str, reason: str, echo: Any
) -> ApiError:
    with account.batch() as b:
        fields = echo if isinstance(echo, dict) else {}
        tx = b.add(f"{kind}_ORDER_REJECT", tradeID=trade_id, **fields, rejectReason=reason)
    return ApiError(
        400,
        {
            f"{key}OrderRejectTransaction": tx,
            "relatedTransactionIDs": b.ids,
            "lastTransactionID": account.last_transaction_id,
            "errorCode": reason,
            "errorMessage": f"The {key} order specification is invalid ({reason})",
        },
    )


def set_trade_orders(account: Account, spec: str, body: Any) -> Json:
    """Apply a TradeCRCDO request to ``account``; returns the 200 body or raises ApiError."""
    account.catch_up()
    with account.lock:
        trade = find_trade(account, spec)
        if not isinstance(body, dict) or not body:
            raise ApiError(400, {"errorMessage": "The request was missing required data"})
        check_open(account, trade)
        if "trailingStopLoss" in body and body["trailingStopLoss"] is not None:
            raise _reject(
                account, "trailingStopLoss", "TRAILING_STOP_LOSS", trade.id,
                "TRAILING_STOP_LOSS_ORDERS_NOT_SUPPORTED", body["trailingStopLoss"],
            )  # fmt: skip
        precision = account.spec(trade.instrument).display_precision
        prices: dict[str, Decimal | None] = {}
        for key, kind in _KINDS:
            if key not in body:
                continue
            details = body[key]
            if details is None:
                prices[key] = None
                continue
            if not isinstance(details, dict):
                raise _reject(account, key, kind, trade.id, f"{kind}_ORDER_PRICE_MISSING", {})
            value = parse_decimal(details.get("price"))
            if value is None and kind == "STOP_LOSS" and "distance" in details:
                distance = parse_decimal(details["distance"])
                if distance is None or distance <= 0:
                    raise _reject(account, key, kind, trade.id, "STOP_LOSS_ORDER_DISTANCE_INVALID", details)
                value = trade.price - distance if trade.current_units > 0 else trade.price + distance
                value = value.quantize(Decimal(1).scaleb(-precision))
            if value is None or value <= 0:
                raise _reject(account, key, kind, trade.id, f"{kind}_ORDER_PRICE_MISSING", details)
            if decimal_places(value) > precision:
                raise _reject(account, key, kind, trade.id, "PRICE_PRECISION_EXCEEDED", details)
            prices[key] = value
        out: Json = {}
        with account.batch() as b:
            for key, kind in _KINDS:
                if key not in prices:
                    continue
                existing_id = trade.take_profit_id if kind == "TAKE_PROFIT" else trade.stop_loss_id
                existing = account.orders.get(existing_id or "")
                value = prices[key]
                if value is None:
                    if existing is not None:
                        out[f"{key}OrderCancelTransaction"] = account.cancel_order_record(b, existing, "CLIENT_REQUEST")
                    continue
                if existing is not None:
                    new_id = str(account.next_id + 1)
                    cancel = account.cancel_order_record(
                        b, existing, "CLIENT_REQUEST_REPLACED", replacedByOrderID=new_id
                    )
                    out[f"{key}OrderCancelTransaction"] = cancel
                    out[f"{key}OrderTransaction"] = account.add_dependent(
                        b, trade, kind, value, reason="REPLACEMENT",
                        replacesOrderID=existing["id"], cancellingTransactionID=cancel["id"],
                    )  # fmt: skip
                else:
                    out[f"{key}OrderTransaction"] = account.add_dependent(b, trade, kind, value, reason="CLIENT_ORDER")
        out["relatedTransactionIDs"] = b.ids
        out["lastTransactionID"] = account.last_transaction_id
        return out
