"""The shadow book's reads of the virtual account: what the execution role, the reconciler, the
risk limits and ``ctl status`` see, in the ``Broker``'s types.

The account summary (balance, NAV at the current prices, margin), open trades,
pending orders (the SL/TP of open trades), order and trade look-ups by id or ``@clientID``, and the
transactions since an id or as a stream. A read-only book re-reads its writer's file first.
"""

from __future__ import annotations

from collections.abc import Iterator

from actors.broker import Transaction, TransactionHeartbeat, TransactionPage
from actors.broker.shadow.base import _ZERO, BookBase, _rejected
from actors.broker.shadow.state import BookOrder, BookTrade
from actors.core.domain import AccountState, OrderState, TradeState


class BookReads(BookBase):
    """The shadow book's reads (see the module docstring)."""

    def _trade_state(self, trade: BookTrade) -> TradeState:
        return TradeState(
            id=trade.id,
            instrument=trade.instrument,
            price=trade.price,
            open_ts=trade.open_ts,
            state=trade.state,
            initial_units=trade.initial_units,
            current_units=trade.current_units,
            realized_pl=trade.realized_pl,
            unrealized_pl=self._unrealized(trade) if trade.state == "OPEN" else _ZERO,
            client_id=trade.client_id,
            client_tag=trade.client_tag,
            stop_loss_order_id=trade.stop_loss_order_id,
            stop_loss_price=trade.stop_loss_price,
            take_profit_order_id=trade.take_profit_order_id,
            take_profit_price=trade.take_profit_price,
        )

    @staticmethod
    def _order_state(order: BookOrder) -> OrderState:
        return OrderState(
            id=order.id,
            type=order.type,
            state=order.state,
            instrument=order.instrument,
            units=order.units,
            price=order.price,
            client_id=order.client_id,
            trade_id=order.trade_id,
            filling_transaction_id=order.filling_transaction_id,
            trade_opened_id=order.trade_opened_id,
            cancelling_transaction_id=order.cancelling_transaction_id,
        )

    def account_summary(self) -> AccountState:
        """The virtual account: balance, NAV at the current prices, margin and counts."""
        with self._lock:
            self._refresh()
            open_trades = self._open()
            upl = sum((self._unrealized(t) for t in open_trades), _ZERO)
            margin = sum((self._margin(t.instrument, t.current_units) for t in open_trades), _ZERO)
            nav = self._book.balance + upl
            return AccountState(
                id=self._book.account_id,
                currency=self._book.currency,
                balance=self._book.balance,
                nav=nav,
                unrealized_pl=upl,
                margin_used=margin,
                margin_available=max(nav - margin, _ZERO),
                open_trade_count=len(open_trades),
                open_position_count=len({t.instrument for t in open_trades}),
                pending_order_count=len(self._pending_orders()),
                last_transaction_id=self._last_id(),
            )

    def open_trades(self) -> list[TradeState]:
        """Virtual open trades, newest first."""
        with self._lock:
            self._refresh()
            return [self._trade_state(t) for t in sorted(self._open(), key=lambda t: -int(t.id))]

    def pending_orders(self) -> list[OrderState]:
        """Virtual pending orders: the SL/TP orders of open trades."""
        with self._lock:
            self._refresh()
            return [self._order_state(o) for o in self._pending_orders()]

    def _find_order(self, spec: str) -> BookOrder:
        order_id = self._book.order_by_client.get(spec[1:], "") if spec.startswith("@") else spec
        order = self._book.orders.get(order_id)
        if order is None:
            raise _rejected(f"no order {spec}", "NO_SUCH_ORDER")
        return order

    def _find_trade(self, spec: str) -> BookTrade:
        trade_id = self._book.trade_by_client.get(spec[1:], "") if spec.startswith("@") else spec
        trade = self._book.trades.get(trade_id)
        if trade is None:
            raise _rejected(f"no trade {spec}", "NO_SUCH_TRADE")
        return trade

    def order(self, spec: str) -> OrderState:
        """A virtual order by id or ``@clientID``; unknown raises ``BrokerRejectedError``."""
        with self._lock:
            self._refresh()
            return self._order_state(self._find_order(spec))

    def trade(self, spec: str) -> TradeState:
        """A virtual trade (open or closed) by id or ``@clientTradeID``."""
        with self._lock:
            self._refresh()
            return self._trade_state(self._find_trade(spec))

    def transactions_since(self, transaction_id: str) -> TransactionPage:
        """Virtual transactions after ``transaction_id``, oldest first."""
        try:
            after = int(transaction_id)
        except ValueError as e:
            raise _rejected(f"transaction id {transaction_id!r} is not a number", "INVALID_RANGE") from e
        with self._lock:
            self._refresh()
            found = tuple(self._transaction(t) for t in self._transactions_after(after))
            return TransactionPage(transactions=found, last_transaction_id=self._last_id())

    def transaction_stream(self) -> Iterator[Transaction | TransactionHeartbeat]:
        """New virtual transactions as they happen, and a heartbeat every ``heartbeat_s`` without one.

        Ends when the book is closed. A read-only book sees the writer's transactions when it
        reloads (at the latest with each heartbeat).
        """
        with self._lock:
            self._refresh()
            seen = self._book.next_id - 1
        while True:
            with self._changed:
                if self._closed:
                    return
                if self._book.next_id - 1 == seen:
                    self._changed.wait(self._heartbeat_s)
                self._refresh()
                new = [self._transaction(t) for t in self._transactions_after(seen)]
                seen = self._book.next_id - 1
                beat = TransactionHeartbeat(ts=self._ts(), last_transaction_id=self._last_id())
            yield from new or (beat,)
