"""The emulated account's operations: MARKET orders, trade close, SL/TP changes, triggers.

Each public method takes the account lock, first lets the market catch up (server-side stop
losses and take profits trigger on every tick since the last call, in time order), then applies
one request as one transaction batch. Rejects (400) consume a transaction id; FOK cancels
(``MARKET_HALTED``, ``INSUFFICIENT_MARGIN``, ``BOUNDS_VIOLATION``...) answer 201 with an
``orderCancelTransaction``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np

from actors.broker.emulator.instruments import SPECS
from actors.broker.emulator.ledger import ZERO, Batch, Json, Ledger, TradeRecord
from actors.broker.emulator.views import find_open_trade, find_order
from actors.broker.emulator.wire import ApiError, Ts, decimal_places, fmt_decimal, fmt_money, fmt_price, parse_decimal
from actors.core.timefmt import NS

__all__ = ["Account"]

_MISSING = "The request was missing required data"
_ECHO_KEYS = (
    "instrument", "units", "timeInForce", "priceBound", "positionFill", "clientExtensions",
    "tradeClientExtensions", "takeProfitOnFill", "stopLossOnFill", "trailingStopLossOnFill",
)  # fmt: skip


class Account(Ledger):
    """The emulated v20 account (non-hedging, USD home currency)."""

    processed_s: int = 0

    def catch_up(self) -> None:
        """Trigger every SL/TP crossed since the last call (lock held or not)."""
        with self.lock:
            now_s = self.market.now_s()
            start = max(self.processed_s + 1, self.market.history_start_s)
            if self.processed_s == 0:
                self.processed_s = now_s
                return
            if now_s < start:
                return
            events: list[tuple[int, int, str, str, float]] = []
            for trade in self.open_trade_list():
                if trade.take_profit_id is None and trade.stop_loss_id is None:
                    continue
                hit = self._first_trigger(trade, max(start, trade.open_ns // NS + 1), now_s)
                if hit is not None:
                    events.append((hit[0], int(trade.id), trade.id, hit[1], hit[2]))
            for second, _, trade_id, order_id, price in sorted(events):
                trade = self.trades[trade_id]
                if trade.state == "OPEN":
                    self._trigger(trade, self.orders[order_id], second, price)
            self.processed_s = now_s

    def _first_trigger(self, trade: TradeRecord, from_s: int, to_s: int) -> tuple[int, str, float] | None:
        if from_s > to_s:
            return None
        ticks = self.market.ticks(trade.instrument, from_s, to_s)
        long = trade.current_units > 0
        prices = ticks.bids if long else ticks.asks
        best: tuple[int, str, float] | None = None
        for order_id, is_tp in ((trade.take_profit_id, True), (trade.stop_loss_id, False)):
            if order_id is None:
                continue
            level = float(self.orders[order_id]["price"])
            crossed = (prices >= level) if (long == is_tp) else (prices <= level)
            idx = np.flatnonzero(crossed)
            if idx.size and (best is None or int(ticks.seconds[idx[0]]) < best[0]):
                best = (int(ticks.seconds[idx[0]]), order_id, float(prices[idx[0]]))
        return best

    def _trigger(self, trade: TradeRecord, order: Json, second: int, price: float) -> None:
        reason = "TAKE_PROFIT_ORDER" if order["type"] == "TAKE_PROFIT" else "STOP_LOSS_ORDER"
        with self.batch(ts_ns=second * NS + 1) as b:
            fill = b.add("ORDER_FILL", orderID=order["id"], instrument=trade.instrument)
            order.update(state="FILLED", fillingTransactionID=fill["id"], filledTime=Ts(b.ts_ns))
            order["tradeClosedIDs"] = [trade.id]
            fill_price = self.dec(price, trade.instrument)
            units = -trade.current_units
            entry, pl = self.close_units(b, trade, abs(units), fill_price, fill["id"])
            self._finish_fill(fill, trade.instrument, units, fill_price, reason, pl)
            fill["tradesClosed"] = [entry]

    def _finish_fill(  # noqa: PLR0917 - private helper with one call shape
        self, fill: Json, name: str, units: Decimal, price: Decimal, reason: str, pl: Decimal
    ) -> None:
        quote = self.quote(name)
        p = SPECS[name].display_precision
        factor = fmt_money(self.quote_to_home(SPECS[name].quote)).rstrip("0").rstrip(".")
        fill.update(
            units=fmt_decimal(units),
            gainQuoteHomeConversionFactor=factor,
            lossQuoteHomeConversionFactor=factor,
            price=fmt_price(price, p),
            fullVWAP=fmt_price(price, p),
            fullPrice=self.fill_price_json(name, quote),
            reason=reason,
            pl=fmt_money(pl),
            financing="0.0000",
            commission="0.0000",
            guaranteedExecutionFee="0.0000",
            accountBalance=fmt_money(self.balance),
            halfSpreadCost="0.0000",
        )
        self.last_fill_ns = self.market.clock.now_ns()

    # MARKET orders ----------------------------------------------------------------------------
    def _reject(self, request: Json, reason: str, message: str) -> ApiError:
        with self.batch() as b:
            echo = {k: request[k] for k in _ECHO_KEYS if k in request}
            b.add("MARKET_ORDER_REJECT", **echo, reason="CLIENT_ORDER", rejectReason=reason)
        body = {
            "orderRejectTransaction": b.items[0],
            "relatedTransactionIDs": b.ids,
            "lastTransactionID": self.last_transaction_id,
            "errorCode": reason,
            "errorMessage": message,
        }
        return ApiError(400, body)

    def _validate(self, req: Json, forced_reject: str | None) -> Decimal:
        name = req.get("instrument")
        if not isinstance(name, str) or name not in self.instruments:
            raise self._reject(req, "INSTRUMENT_UNKNOWN", "Invalid value specified for 'instrument'")
        spec = self.instruments[name]
        units = parse_decimal(req.get("units"))
        if "units" not in req:
            raise self._reject(req, "UNITS_MISSING", "The units are missing")
        if units is None or units == 0:
            raise self._reject(req, "UNITS_INVALID", "The units specified are invalid")
        if decimal_places(units) > spec.trade_units_precision:
            raise self._reject(
                req, "UNITS_PRECISION_EXCEEDED", "The units specified contain more precision than is allowed"
            )
        if abs(units) > Decimal("100000000"):
            raise self._reject(req, "UNITS_LIMIT_EXCEEDED", "The units exceed the maximum order size")
        if req.get("timeInForce", "FOK") not in ("FOK", "IOC"):
            raise self._reject(req, "TIME_IN_FORCE_INVALID", "The time in force is invalid for a MARKET order")
        if req.get("positionFill", "DEFAULT") not in ("DEFAULT", "OPEN_ONLY", "REDUCE_FIRST", "REDUCE_ONLY"):
            raise self._reject(req, "POSITION_FILL_INVALID", "The position fill is invalid")
        checks = (
            ("priceBound", None, "PRICE_BOUND"),
            ("takeProfitOnFill", "price", "TAKE_PROFIT_ON_FILL_PRICE"),
            ("stopLossOnFill", "price", "STOP_LOSS_ON_FILL_PRICE"),
            ("stopLossOnFill", "distance", "STOP_LOSS_ON_FILL_DISTANCE"),
        )
        for key, sub, code in checks:
            if key not in req:
                continue
            holder = req[key]
            if sub is not None and not isinstance(holder, dict):
                raise self._reject(req, f"{code}_MISSING", f"The {key} specification is invalid")
            raw = holder if sub is None else holder.get(sub)
            if raw is None:
                continue
            value = parse_decimal(raw)
            if value is None or value <= 0:
                raise self._reject(req, f"{code}_INVALID", f"The {key} {sub or 'price'} is invalid")
            if decimal_places(value) > spec.display_precision:
                raise self._reject(
                    req,
                    f"{code}_PRECISION_EXCEEDED",
                    f"The {key} specified contains a price with more precision than is allowed "
                    "by the Order's instrument",
                )
        if isinstance(req.get("stopLossOnFill"), dict) and not ({"price", "distance"} & set(req["stopLossOnFill"])):
            raise self._reject(req, "STOP_LOSS_ON_FILL_PRICE_MISSING", "The stop loss price is missing")
        if isinstance(req.get("takeProfitOnFill"), dict) and "price" not in req["takeProfitOnFill"]:
            raise self._reject(req, "TAKE_PROFIT_ON_FILL_PRICE_MISSING", "The take profit price is missing")
        if "trailingStopLossOnFill" in req:
            raise self._reject(req, "TRAILING_STOP_LOSS_ORDERS_NOT_SUPPORTED", "Trailing stops are not emulated")
        client = (req.get("clientExtensions") or {}).get("id")
        if client and client in self.order_by_client:
            raise self._reject(
                req, "CLIENT_ORDER_ID_ALREADY_EXISTS", "The client order ID specified is already assigned"
            )
        trade_client = (req.get("tradeClientExtensions") or {}).get("id")
        if trade_client and trade_client in self.trade_by_client:
            raise self._reject(
                req, "CLIENT_TRADE_ID_ALREADY_EXISTS", "The client trade ID specified is already assigned"
            )
        if forced_reject:
            raise self._reject(req, forced_reject, f"Rejected by the emulator fault: {forced_reject}")
        return units

    def create_order(self, body: Any, *, forced_cancel: str | None = None, forced_reject: str | None = None) -> Json:
        """Apply ``POST /v3/accounts/{id}/orders``; returns the 201 body or raises ApiError."""
        self.catch_up()
        with self.lock:
            req = body.get("order") if isinstance(body, dict) else None
            if not isinstance(req, dict) or "type" not in req:
                raise ApiError(400, {"errorMessage": _MISSING})
            if req["type"] != "MARKET":
                raise ApiError(
                    400, {"errorMessage": "Only MARKET orders are emulated", "errorCode": "INVALID_ORDER_TYPE"}
                )
            units = self._validate(req, forced_reject)
            return self._execute(req, units, forced_cancel, reason="CLIENT_ORDER")

    def _execute(self, req: Json, units: Decimal, forced_cancel: str | None, *, reason: str) -> Json:
        echo = {k: req[k] for k in _ECHO_KEYS if k in req}
        echo["units"] = fmt_decimal(units)
        echo.setdefault("timeInForce", "FOK")
        echo.setdefault("positionFill", "DEFAULT")
        with self.batch() as b:
            create = b.add("MARKET_ORDER", **echo, reason=reason)
            order: Json = {"id": create["id"], "createTime": Ts(b.ts_ns), "type": "MARKET", "state": "PENDING"}
            order.update({k: v for k, v in echo.items()})
            self.orders[order["id"]] = order
            client = (req.get("clientExtensions") or {}).get("id")
            if client:
                self.order_by_client[client] = order["id"]
            out: Json = {"orderCreateTransaction": create}
            cancel = forced_cancel or self._fok_problem(req, units)
            if cancel:
                out["orderCancelTransaction"] = self.cancel_order_record(b, order, cancel)
            else:
                out["orderFillTransaction"] = self._fill(b, req, order, units)
        out["relatedTransactionIDs"] = b.ids
        out["lastTransactionID"] = self.last_transaction_id
        return out

    def _fok_problem(self, req: Json, units: Decimal) -> str | None:
        name = req["instrument"]
        quote = self.quote(name)
        if not quote.tradeable:
            return "MARKET_HALTED"
        price = self.dec(quote.ask if units > 0 else quote.bid, name)
        bound = parse_decimal(req.get("priceBound"))
        if bound is not None and ((units > 0 and price > bound) or (units < 0 and price < bound)):
            return "BOUNDS_VIOLATION"
        sl, tp = self._levels(req, units, price)
        # SL/TP of a long trigger on the bid, of a short on the ask (as on the price path below):
        # a level that would trigger at once cancels the order.
        trigger = self.dec(quote.bid if units > 0 else quote.ask, name)
        if sl is not None and ((units > 0 and sl >= trigger) or (units < 0 and sl <= trigger)):
            return "STOP_LOSS_ON_FILL_LOSS"
        if tp is not None and ((units > 0 and tp <= trigger) or (units < 0 and tp >= trigger)):
            return "TAKE_PROFIT_ON_FILL_LOSS"
        opposite = sum((abs(t.current_units) for t in self._opposite(name, units)), ZERO)
        needed = self.margin_for(name, max(ZERO, abs(units) - opposite))
        upl, used, _ = self.totals()
        if needed > 0 and used + needed > self.balance + upl:
            return "INSUFFICIENT_MARGIN"
        return None

    def _levels(self, req: Json, units: Decimal, price: Decimal) -> tuple[Decimal | None, Decimal | None]:
        sl_spec, tp_spec = req.get("stopLossOnFill") or {}, req.get("takeProfitOnFill") or {}
        sl = parse_decimal(sl_spec.get("price")) if "price" in sl_spec else None
        if sl is None and "distance" in sl_spec:
            distance = parse_decimal(sl_spec["distance"]) or ZERO
            sl = price - distance if units > 0 else price + distance
        tp = parse_decimal(tp_spec.get("price")) if "price" in tp_spec else None
        return sl, tp

    def _opposite(self, name: str, units: Decimal) -> list[TradeRecord]:
        return [t for t in self.open_trade_list() if t.instrument == name and (t.current_units > 0) != (units > 0)]

    def _fill(self, b: Batch, req: Json, order: Json, units: Decimal) -> Json:
        name = req["instrument"]
        quote = self.quote(name)
        price = self.dec(quote.ask if units > 0 else quote.bid, name)
        fill = b.add("ORDER_FILL", orderID=order["id"], instrument=name)
        client = (req.get("clientExtensions") or {}).get("id")
        if client:
            fill["clientOrderID"] = client
        remaining, pl, closed = abs(units), ZERO, []
        for trade in self._opposite(name, units):
            if remaining == 0:
                break
            amount = min(remaining, abs(trade.current_units))
            entry, trade_pl = self.close_units(b, trade, amount, price, fill["id"])
            remaining -= amount
            pl += trade_pl
            closed.append((entry, trade.state == "CLOSED"))
        if [e for e, full in closed if full]:
            fill["tradesClosed"] = [e for e, full in closed if full]
            order["tradeClosedIDs"] = [e["tradeID"] for e in fill["tradesClosed"]]
        if [e for e, full in closed if not full]:
            fill["tradeReduced"] = next(e for e, full in closed if not full)
            order["tradeReducedID"] = fill["tradeReduced"]["tradeID"]
        sign = Decimal(1) if units > 0 else Decimal(-1)
        if remaining > 0 and req.get("positionFill") != "REDUCE_ONLY":
            trade = self._open_trade(b, req, fill, sign * remaining, price)
            order["tradeOpenedID"] = trade.id
        filled = sign * (abs(units) - (remaining if req.get("positionFill") == "REDUCE_ONLY" else 0))
        self._finish_fill(fill, name, filled, price, "MARKET_ORDER", pl)
        order.update(state="FILLED", fillingTransactionID=fill["id"], filledTime=Ts(b.ts_ns))
        return fill

    def _open_trade(self, b: Batch, req: Json, fill: Json, units: Decimal, price: Decimal) -> TradeRecord:
        name = req["instrument"]
        margin = self.margin_for(name, units)
        ext = req.get("tradeClientExtensions")
        trade = TradeRecord(
            id=fill["id"], instrument=name, price=price, open_ns=b.ts_ns, initial_units=units,
            current_units=units, initial_margin=margin, client_extensions=dict(ext) if ext else None,
        )  # fmt: skip
        self.trades[trade.id] = trade
        if trade.client_id:
            self.trade_by_client[trade.client_id] = trade.id
        opened: Json = {
            "tradeID": trade.id, "units": fmt_decimal(units), "price": fmt_price(price, SPECS[name].display_precision),
            "guaranteedExecutionFee": "0.0000", "halfSpreadCost": "0.0000", "initialMarginRequired": fmt_money(margin),
        }  # fmt: skip
        if ext:
            opened["clientExtensions"] = dict(ext)
        fill["tradeOpened"] = opened
        sl, tp = self._levels(req, units, price)
        if tp is not None:
            self.add_dependent(b, trade, "TAKE_PROFIT", tp, reason="ON_FILL", fill_id=fill["id"])
        if sl is not None:
            self.add_dependent(b, trade, "STOP_LOSS", sl, reason="ON_FILL", fill_id=fill["id"])
        return trade

    def add_dependent(
        self,
        b: Batch,
        trade: TradeRecord,
        kind: str,
        price: Decimal,
        *,
        reason: str,
        fill_id: str | None = None,
        **extra: Any,
    ) -> Json:
        """Create a TAKE_PROFIT or STOP_LOSS order on ``trade`` within ``b``."""
        p = SPECS[trade.instrument].display_precision
        fields: Json = {
            "tradeID": trade.id, "clientTradeID": trade.client_id, "price": fmt_price(price, p),
            "timeInForce": "GTC", "triggerCondition": "DEFAULT",
        }  # fmt: skip
        if kind == "STOP_LOSS":
            fields["guaranteed"] = False
        tx = b.add(f"{kind}_ORDER", **fields, reason=reason, orderFillTransactionID=fill_id, **extra)
        order = {
            "id": tx["id"],
            "createTime": Ts(b.ts_ns),
            "type": kind,
            **{k: v for k, v in fields.items() if v is not None},
            "state": "PENDING",
        }
        self.orders[order["id"]] = order
        if kind == "TAKE_PROFIT":
            trade.take_profit_id = order["id"]
        else:
            trade.stop_loss_id = order["id"]
        return tx

    # Other mutations ----------------------------------------------------------------------------
    def close_trade(self, spec: str, body: Any) -> Json:
        """Apply ``PUT .../trades/{spec}/close`` (empty body = ALL)."""
        self.catch_up()
        with self.lock:
            trade = find_open_trade(self, spec)
            raw = (body or {}).get("units", "ALL") if isinstance(body, dict) else "ALL"
            amount = abs(trade.current_units) if raw == "ALL" else parse_decimal(raw)
            if amount is None or amount <= 0 or amount > abs(trade.current_units):
                raise ApiError(
                    400,
                    {
                        "errorCode": "CLOSE_TRADE_UNITS_EXCEED_TRADE_SIZE",
                        "errorMessage": "The units specified are invalid for this trade",
                        "lastTransactionID": self.last_transaction_id,
                    },
                )
            return self.close_trade_record(trade, amount, "ALL" if raw == "ALL" else fmt_decimal(amount))

    def close_trade_record(self, trade: TradeRecord, amount: Decimal, units_text: str) -> Json:
        """Close ``amount`` of ``trade`` at the market (TRADE_CLOSE order)."""
        sign = Decimal(1) if trade.current_units > 0 else Decimal(-1)
        name = trade.instrument
        with self.batch() as b:
            close_spec: Json = {"tradeID": trade.id, "clientTradeID": trade.client_id, "units": units_text}
            create = b.add(
                "MARKET_ORDER", instrument=name, units=fmt_decimal(-sign * amount), timeInForce="FOK",
                positionFill="REDUCE_ONLY", reason="TRADE_CLOSE", tradeClose={k: v for k, v in close_spec.items() if v},
            )  # fmt: skip
            order: Json = {
                "id": create["id"],
                "createTime": Ts(b.ts_ns),
                "type": "MARKET",
                "instrument": name,
                "units": create["units"],
                "timeInForce": "FOK",
                "positionFill": "REDUCE_ONLY",
                "state": "PENDING",
            }
            self.orders[order["id"]] = order
            out: Json = {"orderCreateTransaction": create}
            quote = self.quote(name)
            if not quote.tradeable:
                out["orderCancelTransaction"] = self.cancel_order_record(b, order, "MARKET_HALTED")
            else:
                price = self.closing_price(trade)
                fill = b.add("ORDER_FILL", orderID=order["id"], instrument=name)
                entry, pl = self.close_units(b, trade, amount, price, fill["id"])
                self._finish_fill(fill, name, -sign * amount, price, "MARKET_ORDER_TRADE_CLOSE", pl)
                fill["tradesClosed" if trade.state == "CLOSED" else "tradeReduced"] = (
                    [entry] if trade.state == "CLOSED" else entry
                )
                order.update(state="FILLED", fillingTransactionID=fill["id"], filledTime=Ts(b.ts_ns))
                out["orderFillTransaction"] = fill
        out["relatedTransactionIDs"] = b.ids
        out["lastTransactionID"] = self.last_transaction_id
        return out

    def cancel_order(self, spec: str) -> Json:
        """Apply ``PUT .../orders/{spec}/cancel``."""
        self.catch_up()
        with self.lock:
            order = find_order(self, spec)
            if order["state"] != "PENDING":
                raise ApiError(
                    404,
                    {
                        "errorCode": "ORDER_DOESNT_EXIST",
                        "errorMessage": "The order is not pending",
                        "lastTransactionID": self.last_transaction_id,
                    },
                )
            with self.batch() as b:
                tx = self.cancel_order_record(b, order, "CLIENT_REQUEST")
            return {
                "orderCancelTransaction": tx,
                "relatedTransactionIDs": b.ids,
                "lastTransactionID": self.last_transaction_id,
            }
