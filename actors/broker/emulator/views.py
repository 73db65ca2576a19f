"""Read-only OANDA JSON views of the emulated account: summary, trades, positions, orders.

Pure functions over a ``Ledger`` (called with its lock held); field names and types follow the
v20 schema and ``/work/shared/oanda-examples``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from actors.broker.emulator.instruments import SPECS
from actors.broker.emulator.ledger import ZERO, Ledger, TradeRecord
from actors.broker.emulator.wire import ApiError, Ts, fmt_decimal, fmt_money, fmt_price
from actors.core.timefmt import NS

__all__ = [
    "check_open",
    "find_open_trade",
    "find_order",
    "find_trade",
    "positions_json",
    "price_json",
    "summary_json",
    "trade_json",
]

Json = dict[str, Any]


def summary_json(ledger: Ledger) -> Json:
    """The ``AccountSummary`` object."""
    upl, used, value = ledger.totals()
    nav = ledger.balance + upl
    open_trades = ledger.open_trade_list()
    pending = [o for o in ledger.orders.values() if o["state"] == "PENDING"]
    call_pct = (used / nav).quantize(Decimal("0.00001")) if nav > 0 else Decimal(0)
    available = max(ZERO, nav - used)
    summary: Json = {
        "id": ledger.account_id,
        "alias": "emulator-primary",
        "currency": ledger.currency,
        "balance": fmt_money(ledger.balance),
        "createdByUserID": 1234567,
        "createdTime": Ts(ledger.created_ns),
        "guaranteedStopLossOrderMode": "DISABLED",
        "pl": fmt_money(ledger.pl),
        "resettablePL": fmt_money(ledger.pl),
        "financing": "0.0000",
        "commission": "0.0000",
        "guaranteedExecutionFees": "0.0000",
        "marginRate": "0.0333",
        "openTradeCount": len(open_trades),
        "openPositionCount": len({t.instrument for t in open_trades}),
        "pendingOrderCount": len(pending),
        "hedgingEnabled": False,
        "unrealizedPL": fmt_money(upl),
        "NAV": fmt_money(nav),
        "marginUsed": fmt_money(used),
        "marginAvailable": fmt_money(available),
        "positionValue": fmt_money(value),
        "marginCloseoutUnrealizedPL": fmt_money(upl),
        "marginCloseoutNAV": fmt_money(nav),
        "marginCloseoutMarginUsed": fmt_money(used),
        "marginCloseoutPercent": format(call_pct / 2, "f"),
        "marginCloseoutPositionValue": fmt_money(value),
        "withdrawalLimit": fmt_money(available),
        "marginCallMarginUsed": fmt_money(used),
        "marginCallPercent": format(call_pct, "f"),
        "lastTransactionID": ledger.last_transaction_id,
    }
    if ledger.last_fill_ns is not None:
        summary["lastOrderFillTimestamp"] = Ts(ledger.last_fill_ns)
    return summary


def trade_json(ledger: Ledger, trade: TradeRecord) -> Json:
    """The ``Trade`` object, with its dependent orders in full."""
    p = SPECS[trade.instrument].display_precision
    is_open = trade.state == "OPEN"
    out: Json = {
        "id": trade.id,
        "instrument": trade.instrument,
        "price": fmt_price(trade.price, p),
        "openTime": Ts(trade.open_ns),
        "initialUnits": fmt_decimal(trade.initial_units),
        "initialMarginRequired": fmt_money(trade.initial_margin),
        "state": trade.state,
        "currentUnits": fmt_decimal(trade.current_units),
        "realizedPL": fmt_money(trade.realized_pl),
        "financing": "0.0000",
        "unrealizedPL": fmt_money(ledger.unrealized(trade) if is_open else ZERO),
        "marginUsed": fmt_money(ledger.margin_for(trade.instrument, trade.current_units) if is_open else ZERO),
    }
    if trade.client_extensions:
        out["clientExtensions"] = dict(trade.client_extensions)
    if trade.closing_ids:
        out["closingTransactionIDs"] = list(trade.closing_ids)
        if trade.average_close_price is not None:
            out["averageClosePrice"] = fmt_price(trade.average_close_price, p)
    if trade.close_ns is not None:
        out["closeTime"] = Ts(trade.close_ns)
    for key, order_id in (("takeProfitOrder", trade.take_profit_id), ("stopLossOrder", trade.stop_loss_id)):
        order = ledger.orders.get(order_id or "")
        if order is not None:
            out[key] = dict(order)
    return out


def positions_json(ledger: Ledger) -> list[Json]:
    """``Position`` objects for instruments with open trades."""
    by_instrument: dict[str, list[TradeRecord]] = {}
    for trade in ledger.open_trade_list():
        by_instrument.setdefault(trade.instrument, []).append(trade)
    positions = []
    for name, trades in by_instrument.items():
        p = SPECS[name].display_precision
        sides: Json = {}
        total_upl = total_margin = ZERO
        for side, sign in (("long", 1), ("short", -1)):
            mine = [t for t in trades if (t.current_units > 0) == (sign > 0)]
            units = sum((t.current_units for t in mine), ZERO)
            upl = sum((ledger.unrealized(t) for t in mine), ZERO)
            total_upl += upl
            total_margin += sum((ledger.margin_for(name, t.current_units) for t in mine), ZERO)
            entry: Json = {
                "units": fmt_decimal(units),
                "pl": "0.0000",
                "resettablePL": "0.0000",
                "financing": "0.0000",
                "guaranteedExecutionFees": "0.0000",
                "unrealizedPL": fmt_money(upl),
            }
            if mine:
                avg = sum((t.price * abs(t.current_units) for t in mine), ZERO) / abs(units)
                entry["averagePrice"] = fmt_price(avg, p)
                entry["tradeIDs"] = [t.id for t in mine]
            sides[side] = entry
        positions.append(
            {
                "instrument": name,
                "long": sides["long"],
                "short": sides["short"],
                "pl": "0.0000",
                "resettablePL": "0.0000",
                "financing": "0.0000",
                "commission": "0.0000",
                "guaranteedExecutionFees": "0.0000",
                "unrealizedPL": fmt_money(total_upl),
                "marginUsed": fmt_money(total_margin),
            }
        )
    return positions


def not_found(ledger: Ledger, code: str, message: str) -> ApiError:
    """OANDA's 404 for an unknown or no longer usable id."""
    return ApiError(404, {"lastTransactionID": ledger.last_transaction_id, "errorMessage": message, "errorCode": code})


def find_order(ledger: Ledger, spec: str) -> Json:
    """The order named by id or ``@clientID``; 404 ``NO_SUCH_ORDER`` otherwise."""
    order_id = ledger.order_by_client.get(spec[1:], "") if spec.startswith("@") else spec
    order = ledger.orders.get(order_id)
    if order is None:
        raise not_found(ledger, "NO_SUCH_ORDER", "The order ID specified does not exist")
    return order


def find_trade(ledger: Ledger, spec: str) -> TradeRecord:
    """The trade named by id or ``@clientTradeID``; 404 ``NO_SUCH_TRADE`` otherwise."""
    trade_id = ledger.trade_by_client.get(spec[1:], "") if spec.startswith("@") else spec
    trade = ledger.trades.get(trade_id)
    if trade is None:
        raise not_found(ledger, "NO_SUCH_TRADE", "The Trade ID specified does not exist")
    return trade


def price_json(ledger: Ledger, name: str, *, bad: str | None = None, second: int | None = None) -> Json:
    """A ``ClientPrice`` for the stream or the pricing endpoint (``bad`` injects a bad tick; ``second``:
    the price in force then, default now)."""
    quote = ledger.market.quote(name, second)
    p = SPECS[name].display_precision
    bid, ask = quote.bid, quote.ask
    if bad == "spike":
        bid, ask = bid * 1.05, ask * 1.05
    elif bad == "crossed":
        bid, ask = ask + (ask - bid), bid
    elif bad == "zero":
        bid = ask = 0.0
    bids = [{"price": fmt_price(bid - i * 2 * 10**-p, p), "liquidity": 1000000 * (i + 1)} for i in range(3)]
    asks = [{"price": fmt_price(ask + i * 2 * 10**-p, p), "liquidity": 1000000 * (i + 1)} for i in range(3)]
    return {
        "type": "PRICE",
        "time": Ts(min(quote.tick_s * NS + (quote.tick_s * 2654435761) % NS, ledger.market.clock.now_ns())),
        "bids": bids,
        "asks": asks,
        "closeoutBid": bids[-1]["price"],
        "closeoutAsk": asks[-1]["price"],
        "status": "tradeable" if quote.tradeable else "non-tradeable",
        "tradeable": quote.tradeable,
        "instrument": name,
    }


def check_open(ledger: Ledger, trade: TradeRecord) -> TradeRecord:
    """``trade`` if it is open; 404 ``NO_SUCH_TRADE`` otherwise."""
    if trade.state != "OPEN":
        raise not_found(ledger, "NO_SUCH_TRADE", "The Trade specified is not open")
    return trade


def find_open_trade(ledger: Ledger, spec: str) -> TradeRecord:
    """Like ``find_trade``, but a trade that is no longer open is a 404 ``NO_SUCH_TRADE`` too."""
    return check_open(ledger, find_trade(ledger, spec))
