"""``InMemoryBroker``: the ``Broker`` Protocol in memory, for unit tests of pure logic.

Prices are set by the test (``set_price``); MARKET orders fill at once at the ask/bid, SL/TP are
checked on every ``set_price``; ``reject_next`` and ``fail_next`` script failures. Every call is
recorded in ``calls``. No threads, no sockets, no clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import replace
from decimal import Decimal

from actors.broker import (
    CloseResult,
    MarketOrderRequest,
    OrderResult,
    TradeOrdersResult,
    Transaction,
    TransactionHeartbeat,
    TransactionPage,
)
from actors.broker.oanda.precision import format_price, format_units
from actors.core.domain import (
    AccountState,
    Candle,
    Instrument,
    OrderState,
    Price,
    PriceHeartbeat,
    TradeState,
)
from actors.core.errors import BrokerError, BrokerRejectedError

__all__ = ["InMemoryBroker"]

_DEFAULT = Instrument(
    name="EUR_USD",
    type="CURRENCY",
    display_precision=5,
    pip_location=-4,
    trade_units_precision=0,
    minimum_trade_size=Decimal(1),
    maximum_order_units=Decimal(100_000_000),
    margin_rate=Decimal("0.0333"),
)


class InMemoryBroker:
    """A scriptable in-memory broker.

    Args:
        instruments: instrument metadata (default: EUR_USD only).
        balance: opening balance.
    """

    def __init__(self, instruments: Sequence[Instrument] = (_DEFAULT,), balance: Decimal = Decimal(100_000)) -> None:
        self._instruments = {i.name: i for i in instruments}
        self.balance = balance
        self.prices: dict[str, Price] = {}
        self.candle_data: dict[tuple[str, str], list[Candle]] = {}
        self.trades: dict[str, TradeState] = {}
        self.orders: dict[str, OrderState] = {}
        self.transactions: list[Transaction] = []
        self.calls: list[str] = []
        self._ids = itertools.count(1)
        self._reject_next: str | None = None
        self._fail_next: BrokerError | None = None
        self.closed = False

    # Scripting -----------------------------------------------------------------------------
    def set_price(self, instrument: str, bid: Decimal, ask: Decimal, *, ts: int = 0, tradeable: bool = True) -> None:
        """Set the current price and trigger crossed SL/TP."""
        self.prices[instrument] = Price(
            instrument=instrument, ts=ts, bid=bid, ask=ask, closeout_bid=bid, closeout_ask=ask, tradeable=tradeable
        )
        for trade in list(self.trades.values()):
            if trade.instrument != instrument or trade.state != "OPEN":
                continue
            long = trade.current_units > 0
            level = bid if long else ask
            sl, tp = trade.stop_loss_price, trade.take_profit_price
            if sl is not None and ((long and level <= sl) or (not long and level >= sl)):
                self._close(trade, level, "STOP_LOSS_ORDER")
            elif tp is not None and ((long and level >= tp) or (not long and level <= tp)):
                self._close(trade, level, "TAKE_PROFIT_ORDER")

    def on_price(self, price: Price) -> None:
        """A stream price: the same as ``set_price``."""
        self.set_price(price.instrument, price.bid, price.ask, ts=price.ts, tradeable=price.tradeable)

    def on_bar(self, instrument: str, candle: Candle, end_ns: int) -> None:
        """A closed bar: this fake triggers on prices only."""

    def reject_next(self, reason: str) -> None:
        """Make the next order fail with ``BrokerRejectedError(reason)``."""
        self._reject_next = reason

    def fail_next(self, error: BrokerError) -> None:
        """Make the next call of any method raise ``error``."""
        self._fail_next = error

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if self._fail_next is not None:
            error, self._fail_next = self._fail_next, None
            raise error

    def _tx(self, tx_type: str, **raw: object) -> Transaction:
        tx = Transaction(id=str(next(self._ids)), type=tx_type, ts=0, raw={"type": tx_type, **raw})
        self.transactions.append(tx)
        return tx

    def _last(self) -> str:
        return self.transactions[-1].id if self.transactions else "0"

    def _find_trade(self, spec: str) -> TradeState:
        for trade in self.trades.values():
            if trade.id == spec or (spec.startswith("@") and trade.client_id == spec[1:]):
                return trade
        raise BrokerRejectedError(f"no trade {spec}", reason="NO_SUCH_TRADE")

    def _close(self, trade: TradeState, price: Decimal, reason: str) -> Transaction:
        pl = (price - trade.price) * trade.current_units
        self.balance += pl
        tx = self._tx("ORDER_FILL", reason=reason, tradeID=trade.id, price=str(price), pl=str(pl))
        self.trades[trade.id] = replace(trade, state="CLOSED", current_units=Decimal(0), realized_pl=pl)
        return tx

    # Broker Protocol ------------------------------------------------------------------------
    def instruments(self, names: Sequence[str] | None = None) -> list[Instrument]:
        """Known instruments."""
        self._enter("instruments")
        return [self._instruments[n] for n in (names or list(self._instruments))]

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
        """Candles the test stored in ``candle_data``."""
        self._enter("candles")
        rows = [
            c
            for c in self.candle_data.get((instrument, granularity), [])
            if (from_ts is None or c.ts >= from_ts) and (to_ts is None or c.ts <= to_ts)
        ]
        return rows[-count:] if count else rows

    def latest_candles(
        self, instruments: Sequence[str], granularity: str, *, price: str = "M"
    ) -> dict[str, list[Candle]] | None:
        """None: the fake has no ``candles/latest`` (callers ask per instrument)."""
        return None

    def pricing_stream(self, instruments: Sequence[str], *, snapshot: bool = True) -> Iterator[Price | PriceHeartbeat]:
        """The current prices once, then one heartbeat."""
        self._enter("pricing_stream")
        for name in instruments:
            if name in self.prices:
                yield self.prices[name]
        yield PriceHeartbeat(ts=0)

    def account_summary(self) -> AccountState:
        """Balance and counts (NAV = balance; no unrealized P&L is modelled)."""
        self._enter("account_summary")
        open_trades = [t for t in self.trades.values() if t.state == "OPEN"]
        return AccountState(
            id="fake",
            currency="USD",
            balance=self.balance,
            nav=self.balance,
            unrealized_pl=Decimal(0),
            margin_used=Decimal(0),
            margin_available=self.balance,
            open_trade_count=len(open_trades),
            open_position_count=len({t.instrument for t in open_trades}),
            pending_order_count=len(self.pending_orders()),
            last_transaction_id=self._last(),
        )

    def open_trades(self) -> list[TradeState]:
        """Open trades, newest first."""
        self._enter("open_trades")
        return [t for t in reversed(self.trades.values()) if t.state == "OPEN"]

    def pending_orders(self) -> list[OrderState]:
        """SL/TP orders of open trades."""
        pending = []
        for t in self.trades.values():
            if t.state != "OPEN":
                continue
            for kind, order_id, price in (
                ("TAKE_PROFIT", t.take_profit_order_id, t.take_profit_price),
                ("STOP_LOSS", t.stop_loss_order_id, t.stop_loss_price),
            ):
                if order_id is not None:
                    pending.append(OrderState(id=order_id, type=kind, state="PENDING", price=price, trade_id=t.id))
        return pending

    def order(self, spec: str) -> OrderState:
        """An order by id or ``@clientID``."""
        self._enter("order")
        for order in self.orders.values():
            if order.id == spec or (spec.startswith("@") and order.client_id == spec[1:]):
                return order
        raise BrokerRejectedError(f"no order {spec}", reason="NO_SUCH_ORDER")

    def trade(self, spec: str) -> TradeState:
        """A trade by id or ``@clientTradeID``."""
        self._enter("trade")
        return self._find_trade(spec)

    def submit_market_order(self, request: MarketOrderRequest) -> OrderResult:
        """Fill at once at the current ask (buy) or bid (sell)."""
        self._enter("submit_market_order")
        inst = self._instruments[request.instrument]
        units = Decimal(format_units(request.units, inst))
        for price in (request.stop_loss, request.take_profit, request.price_bound):
            if price is not None:
                format_price(price, inst)
        if any(o.client_id == request.client_id for o in self.orders.values()):
            raise BrokerRejectedError("duplicate client id", reason="CLIENT_ORDER_ID_ALREADY_EXISTS")
        create = self._tx("MARKET_ORDER", clientOrderID=request.client_id)
        if self._reject_next is not None:
            reason, self._reject_next = self._reject_next, None
            cancel = self._tx("ORDER_CANCEL", reason=reason)
            self.orders[create.id] = OrderState(
                id=create.id,
                type="MARKET",
                state="CANCELLED",
                client_id=request.client_id,
                cancelling_transaction_id=cancel.id,
            )
            raise BrokerRejectedError(f"order cancelled: {reason}", reason=reason)
        quote = self.prices[request.instrument]
        fill_price = quote.ask if units > 0 else quote.bid
        fill = self._tx("ORDER_FILL", price=str(fill_price), units=str(units))
        sl_id = self._tx("STOP_LOSS_ORDER").id if request.stop_loss is not None else None
        tp_id = self._tx("TAKE_PROFIT_ORDER").id if request.take_profit is not None else None
        self.trades[fill.id] = TradeState(
            id=fill.id, instrument=request.instrument, price=fill_price, open_ts=quote.ts, state="OPEN",
            initial_units=units, current_units=units, realized_pl=Decimal(0), unrealized_pl=Decimal(0),
            client_id=request.trade_client_id, stop_loss_order_id=sl_id, stop_loss_price=request.stop_loss,
            take_profit_order_id=tp_id, take_profit_price=request.take_profit,
        )  # fmt: skip
        self.orders[create.id] = OrderState(
            id=create.id, type="MARKET", state="FILLED", instrument=request.instrument, units=units,
            client_id=request.client_id, filling_transaction_id=fill.id, trade_opened_id=fill.id,
        )  # fmt: skip
        return OrderResult(
            order_id=create.id, client_id=request.client_id, instrument=request.instrument, units=units,
            fill_transaction_id=fill.id, fill_price=fill_price, trade_id=fill.id, last_transaction_id=self._last(),
        )  # fmt: skip

    def cancel_order(self, spec: str) -> str:
        """Cancel a trade's SL or TP by order id."""
        self._enter("cancel_order")
        for trade in self.trades.values():
            if trade.stop_loss_order_id == spec:
                self.trades[trade.id] = replace(trade, stop_loss_order_id=None, stop_loss_price=None)
                return self._tx("ORDER_CANCEL", orderID=spec).id
            if trade.take_profit_order_id == spec:
                self.trades[trade.id] = replace(trade, take_profit_order_id=None, take_profit_price=None)
                return self._tx("ORDER_CANCEL", orderID=spec).id
        raise BrokerRejectedError(f"no pending order {spec}", reason="NO_SUCH_ORDER")

    def close_trade(self, spec: str, units: Decimal | None = None) -> CloseResult:
        """Close a trade fully at the current price (partial closes reduce it)."""
        self._enter("close_trade")
        trade = self._find_trade(spec)
        if trade.state != "OPEN":
            raise BrokerRejectedError(f"trade {spec} is not open", reason="NO_SUCH_TRADE")
        quote = self.prices[trade.instrument]
        price = quote.bid if trade.current_units > 0 else quote.ask
        amount = abs(trade.current_units) if units is None else min(abs(units), abs(trade.current_units))
        sign = Decimal(1) if trade.current_units > 0 else Decimal(-1)
        if amount == abs(trade.current_units):
            tx = self._close(trade, price, "MARKET_ORDER_TRADE_CLOSE")
            pl = Decimal(str(tx.raw["pl"]))
        else:
            pl = (price - trade.price) * sign * amount
            self.balance += pl
            tx = self._tx("ORDER_FILL", reason="MARKET_ORDER_TRADE_CLOSE", tradeID=trade.id, pl=str(pl))
            self.trades[trade.id] = replace(trade, current_units=trade.current_units - sign * amount)
        return CloseResult(
            trade_id=trade.id, units=-sign * amount, price=price, realized_pl=pl,
            fill_transaction_id=tx.id, last_transaction_id=self._last(),
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
        """Replace or cancel SL/TP."""
        self._enter("set_trade_orders")
        trade = self._find_trade(spec)
        if cancel_stop_loss:
            trade = replace(trade, stop_loss_order_id=None, stop_loss_price=None)
        elif stop_loss is not None:
            trade = replace(trade, stop_loss_order_id=self._tx("STOP_LOSS_ORDER").id, stop_loss_price=stop_loss)
        if cancel_take_profit:
            trade = replace(trade, take_profit_order_id=None, take_profit_price=None)
        elif take_profit is not None:
            trade = replace(trade, take_profit_order_id=self._tx("TAKE_PROFIT_ORDER").id, take_profit_price=take_profit)
        self.trades[trade.id] = trade
        return TradeOrdersResult(
            trade_id=trade.id,
            stop_loss_order_id=trade.stop_loss_order_id,
            take_profit_order_id=trade.take_profit_order_id,
            last_transaction_id=self._last(),
        )

    def transactions_since(self, transaction_id: str) -> TransactionPage:
        """Transactions after ``transaction_id``."""
        self._enter("transactions_since")
        after = [t for t in self.transactions if int(t.id) > int(transaction_id)]
        return TransactionPage(transactions=tuple(after), last_transaction_id=self._last())

    def transaction_stream(self) -> Iterator[Transaction | TransactionHeartbeat]:
        """One heartbeat (tests read ``transactions`` directly)."""
        self._enter("transaction_stream")
        yield TransactionHeartbeat(ts=0, last_transaction_id=self._last())

    def close(self) -> None:
        """Mark closed."""
        self.closed = True
