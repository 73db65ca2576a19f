"""The shadow book's order path: every call that would change the account, answered virtually.

MARKET orders with SL/TP and client ids (checked like the emulator's FOK: ``MARKET_HALTED``,
``BOUNDS_VIOLATION``, ``STOP_LOSS_ON_FILL_LOSS``, ``TAKE_PROFIT_ON_FILL_LOSS``,
``INSUFFICIENT_MARGIN``, ``SHADOW_NO_CONVERSION_RATE``; a reused client id answers with the
earlier outcome), trade closes, SL/TP changes and order cancels. A read-only book refuses them
all (``InvariantViolation``); nothing here reaches the inner broker's order path.
"""

from __future__ import annotations

from decimal import Decimal

from actors.broker import CloseResult, MarketOrderRequest, OrderResult, TradeOrdersResult
from actors.broker.oanda.precision import build_market_order, build_trade_orders
from actors.broker.shadow.base import _ZERO, _rejected
from actors.broker.shadow.fills import BookFills
from actors.broker.shadow.reads import BookReads
from actors.broker.shadow.state import BookOrder
from actors.core.domain import Instrument, Price
from actors.core.errors import InvariantViolation
from actors.core.fills import market_fill, slippage_price


class BookOrders(BookFills, BookReads):
    """The shadow book's order path (see the module docstring)."""

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise InvariantViolation(f"shadow book {self.path} is read-only here: {what} belongs to its writer")

    def _quote(self, instrument: str) -> Price | None:
        quote = self._quotes.get(instrument)
        return quote if quote is not None and quote.tradeable else None

    def submit_market_order(self, request: MarketOrderRequest) -> OrderResult:
        """Fill a MARKET order virtually at the current bid/ask (FOK), with its SL/TP.

        Raises:
            BrokerRejectedError: invalid request (nothing recorded), or cancelled (recorded):
                ``MARKET_HALTED``, ``BOUNDS_VIOLATION``, ``STOP_LOSS_ON_FILL_LOSS``,
                ``TAKE_PROFIT_ON_FILL_LOSS``, ``INSUFFICIENT_MARGIN``, ``SHADOW_NO_CONVERSION_RATE``;
                or an earlier order with the same client id was cancelled; or the trade client id
                is taken (``CLIENT_TRADE_ID_ALREADY_EXISTS``, nothing recorded).
            InvariantViolation: the book is read-only.
        """
        self._writable(f"order @{request.client_id}")
        meta = self._instrument(request.instrument)
        body = build_market_order(request, meta)["order"]  # refuses what the real broker would not send
        units = Decimal(body["units"])
        sl = None if "stopLossOnFill" not in body else Decimal(body["stopLossOnFill"]["price"])
        tp = None if "takeProfitOnFill" not in body else Decimal(body["takeProfitOnFill"]["price"])
        with self._lock:
            earlier = self._book.order_by_client.get(request.client_id)
            if earlier is not None:
                return self._earlier_outcome(self._book.orders[earlier])
            if request.trade_client_id and request.trade_client_id in self._book.trade_by_client:
                raise _rejected(f"trade client id {request.trade_client_id} is taken", "CLIENT_TRADE_ID_ALREADY_EXISTS")
            create = self._tx("MARKET_ORDER", **{k: v for k, v in body.items() if k != "type"}, reason="CLIENT_ORDER")
            order = BookOrder(
                id=create["id"], type="MARKET", state="PENDING", instrument=meta.name, units=units,
                client_id=request.client_id,
            )  # fmt: skip
            self._book.orders[order.id] = order
            self._book.order_by_client[request.client_id] = order.id
            problem = self._fok_problem(meta, units, sl, tp, body.get("priceBound"))
            if problem is not None:
                cancel = self._cancel(order, problem)
                self._save()
                self._changed.notify_all()
                raise _rejected(f"order @{request.client_id} cancelled: {problem}", problem, cancel)
            result = self._fill(order, meta, units=units, sl=sl, tp=tp, request=request)
            self._save()
            self._changed.notify_all()
            return result

    def _earlier_outcome(self, order: BookOrder) -> OrderResult:
        # As OandaBroker resolves a reused client id: the earlier fill, or the earlier cancel.
        if order.state == "FILLED" and order.filling_transaction_id is not None:
            fill = next(t for t in self._book.transactions if t["id"] == order.filling_transaction_id)
            return OrderResult(
                order_id=order.id, client_id=order.client_id or "", instrument=fill["instrument"],
                units=Decimal(fill["units"]), fill_transaction_id=fill["id"], fill_price=Decimal(fill["price"]),
                trade_id=(fill.get("tradeOpened") or {}).get("tradeID"), last_transaction_id=self._last_id(),
                resolved_by_lookup=True,
            )  # fmt: skip
        cancel = next((t for t in self._book.transactions if t["id"] == order.cancelling_transaction_id), {})
        reason = str(cancel.get("reason", "CANCELLED"))
        raise _rejected(f"order @{order.client_id} was cancelled: {reason}", reason, dict(cancel))

    def _fok_problem(
        self, meta: Instrument, units: Decimal, sl: Decimal | None, tp: Decimal | None, bound: str | None
    ) -> str | None:
        quote = self._quote(meta.name)
        if quote is None:
            return "MARKET_HALTED"
        price = quote.ask if units > 0 else quote.bid
        if bound is not None and ((units > 0 and price > Decimal(bound)) or (units < 0 and price < Decimal(bound))):
            return "BOUNDS_VIOLATION"
        trigger = quote.bid if units > 0 else quote.ask
        if sl is not None and ((units > 0 and sl >= trigger) or (units < 0 and sl <= trigger)):
            return "STOP_LOSS_ON_FILL_LOSS"
        if tp is not None and ((units > 0 and tp <= trigger) or (units < 0 and tp >= trigger)):
            return "TAKE_PROFIT_ON_FILL_LOSS"
        if self._factor(meta.name) is None:
            return "SHADOW_NO_CONVERSION_RATE"
        opposite = sum((abs(t.current_units) for t in self._opposite(meta.name, units)), _ZERO)
        needed = self._margin(meta.name, max(_ZERO, abs(units) - opposite))
        open_trades = self._open()
        used = sum((self._margin(t.instrument, t.current_units) for t in open_trades), _ZERO)
        nav = self._book.balance + sum((self._unrealized(t) for t in open_trades), _ZERO)
        if needed > 0 and used + needed > nav:
            return "INSUFFICIENT_MARGIN"
        return None

    def _open_trade_instrument(self, spec: str) -> str:
        with self._lock:
            trade = self._find_trade(spec)
            if trade.state != "OPEN":
                raise _rejected(f"trade {spec} is not open", "NO_SUCH_TRADE")
            return trade.instrument

    def close_trade(self, spec: str, units: Decimal | None = None) -> CloseResult:
        """Close a virtual trade (all of it, or ``units`` of it) at the current bid/ask.

        Raises:
            BrokerRejectedError: no such open trade, units beyond its size, or ``MARKET_HALTED``.
            InvariantViolation: the book is read-only.
        """
        self._writable(f"close of trade {spec}")
        meta = self._instrument(self._open_trade_instrument(spec))
        with self._lock:
            trade = self._find_trade(spec)
            if trade.state != "OPEN":
                raise _rejected(f"trade {spec} is not open", "NO_SUCH_TRADE")
            size = abs(trade.current_units)
            amount = size if units is None else abs(units)
            if amount <= 0 or amount > size:
                raise _rejected(f"close of {amount} units of trade {trade.id} ({size})",
                                "CLOSE_TRADE_UNITS_EXCEED_TRADE_SIZE")  # fmt: skip
            sign = 1 if trade.current_units > 0 else -1
            create = self._tx(
                "MARKET_ORDER", instrument=trade.instrument, units=format(-sign * amount, "f"), timeInForce="FOK",
                positionFill="REDUCE_ONLY", reason="TRADE_CLOSE", tradeClose={"tradeID": trade.id},
            )  # fmt: skip
            order = BookOrder(id=create["id"], type="MARKET", state="PENDING", instrument=trade.instrument,
                           units=-sign * amount)  # fmt: skip
            self._book.orders[order.id] = order
            quote = self._quote(trade.instrument)
            if quote is None:
                cancel = self._cancel(order, "MARKET_HALTED")
                self._save()
                self._changed.notify_all()
                raise _rejected(f"close of trade {trade.id} cancelled: MARKET_HALTED", "MARKET_HALTED", cancel)
            slippage = slippage_price(self._slippage_pips, meta)
            raw_price = market_fill(
                -sign, float(quote.bid), float(quote.ask), slippage=slippage, precision=meta.display_precision
            )
            price = self._price_decimal(raw_price, meta)
            fill = self._tx(
                "ORDER_FILL", orderID=order.id, instrument=trade.instrument, units=format(-sign * amount, "f"),
                price=format(price, "f"), reason="MARKET_ORDER_TRADE_CLOSE",
            )  # fmt: skip
            entry = self._close_units(trade, amount, price, fill)
            fill["tradesClosed" if trade.state == "CLOSED" else "tradeReduced"] = (
                [entry] if trade.state == "CLOSED" else entry
            )
            order.state, order.filling_transaction_id = "FILLED", fill["id"]
            self._save()
            self._changed.notify_all()
            return CloseResult(
                trade_id=trade.id, units=-sign * amount, price=price, realized_pl=Decimal(entry["realizedPL"]),
                fill_transaction_id=fill["id"], last_transaction_id=self._last_id(),
            )  # fmt: skip

    def set_trade_orders(
        self,
        spec: str,
        *,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        cancel_stop_loss: bool = False,
        cancel_take_profit: bool = False,
    ) -> TradeOrdersResult:
        """Set, replace or cancel a virtual trade's SL/TP (a crossed level triggers on the next price).

        Raises:
            BrokerRejectedError: no such open trade, or an invalid request.
            InvariantViolation: the book is read-only.
        """
        self._writable(f"SL/TP change of trade {spec}")
        meta = self._instrument(self._open_trade_instrument(spec))
        with self._lock:
            trade = self._find_trade(spec)
            if trade.state != "OPEN":
                raise _rejected(f"trade {spec} is not open", "NO_SUCH_TRADE")
            body = build_trade_orders(
                meta, stop_loss=stop_loss, take_profit=take_profit,
                cancel_stop_loss=cancel_stop_loss, cancel_take_profit=cancel_take_profit,
            )  # fmt: skip
            for key, kind in (("takeProfit", "TAKE_PROFIT"), ("stopLoss", "STOP_LOSS")):
                if key not in body:
                    continue
                existing_id = trade.take_profit_order_id if kind == "TAKE_PROFIT" else trade.stop_loss_order_id
                existing = self._book.orders.get(existing_id or "")
                if body[key] is None:
                    if existing is not None and existing.state == "PENDING":
                        self._cancel(existing, "CLIENT_REQUEST")
                    if kind == "TAKE_PROFIT":
                        trade.take_profit_order_id, trade.take_profit_price = None, None
                    else:
                        trade.stop_loss_order_id, trade.stop_loss_price = None, None
                    continue
                price = Decimal(body[key]["price"])
                if existing is not None and existing.state == "PENDING":
                    cancel = self._cancel(existing, "CLIENT_REQUEST_REPLACED")
                    self._add_dependent(trade, kind, price, reason="REPLACEMENT", replacesOrderID=existing.id,
                                        cancellingTransactionID=cancel["id"])  # fmt: skip
                else:
                    self._add_dependent(trade, kind, price, reason="CLIENT_ORDER")
            quote = self._quote(trade.instrument)
            if quote is not None:  # a level the price is already past fills at the price
                self._trigger(quote, meta, None)
            self._save()
            self._changed.notify_all()
            return TradeOrdersResult(
                trade_id=trade.id,
                stop_loss_order_id=trade.stop_loss_order_id,
                take_profit_order_id=trade.take_profit_order_id,
                last_transaction_id=self._last_id(),
            )

    def cancel_order(self, spec: str) -> str:
        """Cancel a pending virtual SL/TP order; returns the cancel transaction id.

        Raises:
            BrokerRejectedError: no such order, or it is not pending (``ORDER_DOESNT_EXIST``).
            InvariantViolation: the book is read-only.
        """
        self._writable(f"cancel of order {spec}")
        with self._lock:
            order = self._find_order(spec)
            if order.state != "PENDING":
                raise _rejected(f"order {spec} is not pending", "ORDER_DOESNT_EXIST")
            tx = self._cancel(order, "CLIENT_REQUEST")
            trade = self._book.trades.get(order.trade_id or "")
            if trade is not None and trade.stop_loss_order_id == order.id:
                trade.stop_loss_order_id, trade.stop_loss_price = None, None
            if trade is not None and trade.take_profit_order_id == order.id:
                trade.take_profit_order_id, trade.take_profit_price = None, None
            self._save()
            self._changed.notify_all()
            return str(tx["id"])
