"""The shadow book's fills: prices in, virtual fills and SL/TP triggers out.

A new bid/ask (``on_price``) prices later fills and triggers the SL/TP of open trades (a long's on
the bid, a short's on the ask; at the level when the previous price of the session had not reached
it, at the price when it gapped: ``fills.tick_exit``); a closed bar (``on_bar``) fires what its range reached that no
streamed price did, by the backtest's bar rule. A MARKET order fills through ``actors.core.fills``
(buys at the ask, sells at the bid, ``slippage_pips`` worse), netted like OANDA's non-hedging
account: against open trades it closes them first, oldest first; what is left opens a trade with
its SL/TP orders. Each step is recorded as OANDA's transactions would record it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from actors.broker import MarketOrderRequest, OrderResult
from actors.broker.shadow.base import _MONEY, _ZERO, BookBase
from actors.broker.shadow.state import BookOrder, BookTrade
from actors.core import markethours
from actors.core.domain import Candle, Instrument, Price
from actors.core.fills import ExitReason, bar_exit, market_fill, slippage_price, tick_exit

_OANDA_EXIT = {ExitReason.STOP_LOSS: "STOP_LOSS_ORDER", ExitReason.TAKE_PROFIT: "TAKE_PROFIT_ORDER"}


class BookFills(BookBase):
    """The shadow book's fills (see the module docstring)."""

    def on_price(self, price: Price) -> None:
        """Take a new bid/ask: it prices later fills, and open trades' SL/TP trigger on it."""
        with self._lock:
            before = self._quotes.get(price.instrument)
            self._quotes[price.instrument] = price
            self._now_ns = max(self._now_ns, price.ts)
            if self.read_only or not price.tradeable:
                return
            meta = self._meta.get(price.instrument)
            if meta is not None:
                if self._trigger(price, meta, before):
                    self._save()
                    self._changed.notify_all()
                return
            if not self._open(price.instrument):
                return
        # Open trades restored from the saved book, metadata not read yet: read it (not under
        # the lock), then trigger.
        meta = self._instrument(price.instrument)
        with self._lock:
            if self._trigger(self._quotes[price.instrument], meta, before):
                self._save()
                self._changed.notify_all()

    def on_bar(self, instrument: str, candle: Candle, end_ns: int) -> None:
        """A closed bar: SL/TP its range reached that no streamed price did fire now.

        The stream (OANDA's as much as the emulator's) is a thinned view of the prices a broker's
        SL/TP see; the bar's bid/ask range is not. A trade open since the bar's first tenth is
        checked with the backtest's bar rule (``fills.bar_exit``: a gap at the open fills there;
        when both could have hit, the one ``fills.bar_path`` reaches first), so shadow fills and
        backtest fills agree.
        """
        if candle.bid is None or candle.ask is None:
            return
        with self._lock:
            meta = self._meta.get(instrument)
            if self.read_only or meta is None:
                return
            self._now_ns = max(self._now_ns, end_ns)
            since_open_ns = candle.ts + (end_ns - candle.ts) // 10
            slippage = slippage_price(self._slippage_pips, meta)
            fired = False
            for trade in sorted(self._open(instrument), key=lambda t: int(t.id)):
                if trade.open_ts > since_open_ns:
                    continue  # entered late in the bar: its range before the entry is not the trade's
                sign = 1 if trade.current_units > 0 else -1
                side = candle.bid if sign > 0 else candle.ask
                sl, tp = self._levels(trade)
                hit = bar_exit(
                    sign, sl, tp, float(side.o), float(side.h), float(side.l),
                    slippage=slippage, precision=meta.display_precision,
                )  # fmt: skip
                if hit is not None:
                    self._fill_exit(trade, *hit, meta)
                    fired = True
            if fired:
                self._save()
                self._changed.notify_all()

    def _trigger(self, price: Price, meta: Instrument, before: Price | None) -> bool:
        fired = False
        trades = sorted(self._open(price.instrument), key=lambda t: int(t.id))
        if not trades:
            return False
        bid, ask = float(price.bid), float(price.ask)
        slippage = slippage_price(self._slippage_pips, meta)
        # The previous price, when it is of this session: a level between the two filled at the
        # level (``fills.tick_exit``); across a closure (or without one) the price gapped.
        previous = None
        if before is not None and before.tradeable and before.ts >= markethours.period_start(price.ts):
            previous = float(before.bid), float(before.ask)
        for trade in trades:
            sl, tp = self._levels(trade)
            sign = 1 if trade.current_units > 0 else -1
            hit = tick_exit(
                sign, sl, tp, bid, ask, slippage=slippage, precision=meta.display_precision, previous=previous
            )
            if hit is not None:
                self._fill_exit(trade, *hit, meta)
                fired = True
        return fired

    @staticmethod
    def _levels(trade: BookTrade) -> tuple[float | None, float | None]:
        sl = None if trade.stop_loss_price is None else float(trade.stop_loss_price)
        tp = None if trade.take_profit_price is None else float(trade.take_profit_price)
        return sl, tp

    def _fill_exit(self, trade: BookTrade, reason: ExitReason, fill: float, meta: Instrument) -> None:
        order_id = trade.stop_loss_order_id if reason is ExitReason.STOP_LOSS else trade.take_profit_order_id
        order = self._book.orders[order_id or ""]
        price_dec = self._price_decimal(fill, meta)
        fill_tx = self._tx(
            "ORDER_FILL", orderID=order.id, instrument=trade.instrument, units=format(-trade.current_units, "f"),
            price=format(price_dec, "f"), reason=_OANDA_EXIT[reason],
        )  # fmt: skip
        order.state, order.filling_transaction_id = "FILLED", fill_tx["id"]
        fill_tx["tradesClosed"] = [self._close_units(trade, abs(trade.current_units), price_dec, fill_tx)]

    def _opposite(self, instrument: str, units: Decimal) -> list[BookTrade]:
        return sorted(
            (t for t in self._open(instrument) if (t.current_units > 0) != (units > 0)), key=lambda t: int(t.id)
        )

    def _cancel(self, order: BookOrder, reason: str, **extra: Any) -> dict[str, Any]:
        tx = self._tx("ORDER_CANCEL", orderID=order.id, clientOrderID=order.client_id, reason=reason, **extra)
        order.state, order.cancelling_transaction_id = "CANCELLED", tx["id"]
        return tx

    def _fill(
        self,
        order: BookOrder,
        meta: Instrument,
        *,
        units: Decimal,
        sl: Decimal | None,
        tp: Decimal | None,
        request: MarketOrderRequest,
    ) -> OrderResult:
        quote = self._quotes[meta.name]
        sign = 1 if units > 0 else -1
        slippage = slippage_price(self._slippage_pips, meta)
        raw_price = market_fill(
            sign, float(quote.bid), float(quote.ask), slippage=slippage, precision=meta.display_precision
        )
        price = self._price_decimal(raw_price, meta)
        fill = self._tx(
            "ORDER_FILL", orderID=order.id, clientOrderID=order.client_id, instrument=meta.name,
            units=format(units, "f"), price=format(price, "f"), reason="MARKET_ORDER",
        )  # fmt: skip
        remaining, closed, reduced = abs(units), [], None
        for trade in self._opposite(meta.name, units):
            if remaining == 0:
                break
            amount = min(remaining, abs(trade.current_units))
            entry = self._close_units(trade, amount, price, fill)
            remaining -= amount
            if trade.state == "CLOSED":
                closed.append(entry)
            else:
                reduced = entry
        if closed:
            fill["tradesClosed"] = closed
        if reduced is not None:
            fill["tradeReduced"] = reduced
        trade_id = None
        if remaining > 0:
            trade = self._open_trade(fill, meta, units=sign * remaining, price=price, sl=sl, tp=tp, request=request)
            trade_id = trade.id
        entries = [*closed, reduced] if reduced is not None else closed
        fill["pl"] = format(sum((Decimal(e["realizedPL"]) for e in entries), _ZERO), "f")
        fill["accountBalance"] = format(self._book.balance, "f")
        order.state, order.filling_transaction_id, order.trade_opened_id = "FILLED", fill["id"], trade_id
        return OrderResult(
            order_id=order.id, client_id=request.client_id, instrument=meta.name, units=units,
            fill_transaction_id=fill["id"], fill_price=price, trade_id=trade_id, last_transaction_id=self._last_id(),
        )  # fmt: skip

    def _open_trade(
        self,
        fill: dict[str, Any],
        meta: Instrument,
        *,
        units: Decimal,
        price: Decimal,
        sl: Decimal | None,
        tp: Decimal | None,
        request: MarketOrderRequest,
    ) -> BookTrade:
        trade = BookTrade(
            id=fill["id"], instrument=meta.name, price=price, open_ts=self._ts(), initial_units=units,
            current_units=units, realized_pl=_ZERO, open_factor=self._factor(meta.name) or Decimal(1),
            client_id=request.trade_client_id, client_tag=request.tag,
        )  # fmt: skip
        self._book.trades[trade.id] = trade
        if trade.client_id:
            self._book.trade_by_client[trade.client_id] = trade.id
        opened: dict[str, Any] = {"tradeID": trade.id, "units": format(units, "f"), "price": format(price, "f")}
        if request.trade_client_id or request.tag:
            ext = {"id": request.trade_client_id, "tag": request.tag}
            opened["clientExtensions"] = {k: v for k, v in ext.items() if v}
        fill["tradeOpened"] = opened
        if tp is not None:
            self._add_dependent(trade, "TAKE_PROFIT", tp, reason="ON_FILL", fill_id=fill["id"])
        if sl is not None:
            self._add_dependent(trade, "STOP_LOSS", sl, reason="ON_FILL", fill_id=fill["id"])
        return trade

    def _add_dependent(self, trade: BookTrade, kind: str, price: Decimal, *, reason: str, **extra: Any) -> str:
        tx = self._tx(f"{kind}_ORDER", tradeID=trade.id, clientTradeID=trade.client_id, price=format(price, "f"),
                      timeInForce="GTC", reason=reason, **extra)  # fmt: skip
        self._book.orders[tx["id"]] = BookOrder(
            id=tx["id"], type=kind, state="PENDING", instrument=trade.instrument, price=price, trade_id=trade.id
        )
        if kind == "STOP_LOSS":
            trade.stop_loss_order_id, trade.stop_loss_price = tx["id"], price
        else:
            trade.take_profit_order_id, trade.take_profit_price = tx["id"], price
        return str(tx["id"])

    def _close_units(self, trade: BookTrade, amount: Decimal, price: Decimal, fill: dict[str, Any]) -> dict[str, Any]:
        # Close ``amount`` (positive) of ``trade`` at ``price``; the trade's SL/TP go when it closes.
        sign = 1 if trade.current_units > 0 else -1
        factor = self._factor(trade.instrument) or trade.open_factor
        pl = ((price - trade.price) * sign * amount * factor).quantize(_MONEY)
        trade.current_units -= sign * amount
        trade.realized_pl += pl
        self._book.balance += pl
        if trade.current_units == 0:
            trade.state, trade.close_ts = "CLOSED", self._ts()
            for order_id in (trade.take_profit_order_id, trade.stop_loss_order_id):
                dependent = self._book.orders.get(order_id or "")
                if dependent is not None and dependent.state == "PENDING":
                    self._cancel(dependent, "LINKED_TRADE_CLOSED", closedTradeID=trade.id)
        fill["accountBalance"] = format(self._book.balance, "f")
        fill["pl"] = format(Decimal(fill.get("pl", "0")) + pl, "f")  # the fill's total over the trades it closes
        return {"tradeID": trade.id, "units": format(-sign * amount, "f"), "price": format(price, "f"),
                "realizedPL": format(pl, "f")}  # fmt: skip
