"""The emulated account's books: transactions, orders, trades, balance and margin.

``Ledger`` owns the state and the accounting rules (one increasing transaction id per account,
batches, P&L in the home currency, margin from the instrument's ``marginRate``, closing trades
with their linked SL/TP); ``actors.broker.emulator.account.Account`` adds the operations the
REST routes call. All methods must be called with ``self.lock`` held.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from actors.broker.emulator.instruments import SPECS, InstrumentSpec
from actors.broker.emulator.market import Market, Quote
from actors.broker.emulator.wire import Ts, fmt_decimal, fmt_money, fmt_price
from actors.core.timefmt import NS

__all__ = ["Batch", "Ledger", "TradeRecord"]

ZERO = Decimal(0)
USER_ID = 1234567
Json = dict[str, Any]


@dataclass(slots=True)
class TradeRecord:
    """A trade as the emulator keeps it (mutable, under the account lock)."""

    id: str
    instrument: str
    price: Decimal
    open_ns: int
    initial_units: Decimal
    current_units: Decimal
    initial_margin: Decimal
    client_extensions: Json | None = None
    realized_pl: Decimal = ZERO
    state: str = "OPEN"
    take_profit_id: str | None = None
    stop_loss_id: str | None = None
    closing_ids: list[str] = field(default_factory=list)
    close_ns: int | None = None
    average_close_price: Decimal | None = None

    @property
    def client_id(self) -> str | None:
        """The trade's client id (from ``tradeClientExtensions``)."""
        return None if self.client_extensions is None else self.client_extensions.get("id")


class Batch:
    """Transactions created by one request; ids are taken from the ledger as they are added."""

    def __init__(self, ledger: Ledger, request_id: str, ts_ns: int) -> None:
        self.ledger = ledger
        self.request_id = request_id
        self.ts_ns = ts_ns
        self.items: list[Json] = []

    def add(self, tx_type: str, **fields: Any) -> Json:
        """Append a transaction of ``tx_type`` and return it (with its new id)."""
        tx_id = str(self.ledger.next_id)
        self.ledger.next_id += 1
        batch_id = self.items[0]["id"] if self.items else tx_id
        tx: Json = {
            "id": tx_id,
            "time": Ts(self.ts_ns),
            "userID": USER_ID,
            "accountID": self.ledger.account_id,
            "batchID": batch_id,
            "requestID": self.request_id,
            "type": tx_type,
        }
        tx.update({k: v for k, v in fields.items() if v is not None})
        self.items.append(tx)
        return tx

    @property
    def ids(self) -> list[str]:
        """Ids of the transactions in this batch."""
        return [tx["id"] for tx in self.items]


class Ledger:
    """Account state shared by the account operations.

    Args:
        account_id: the account id.
        market: the market that prices fills and P&L.
        instruments: tradeable instrument names.
        balance: opening balance.
        currency: home currency.
    """

    def __init__(
        self,
        *,
        account_id: str,
        market: Market,
        instruments: list[str],
        balance: Decimal,
        currency: str = "USD",
    ) -> None:
        self.account_id = account_id
        self.market = market
        self.instruments = {name: SPECS[name] for name in instruments}
        self.currency = currency
        self.lock = threading.RLock()
        self.next_id = 1
        self.transactions: list[Json] = []
        self.wall_ns: list[int] = []  # when each transaction was recorded (wall clock), beside it
        self.orders: dict[str, Json] = {}
        self.order_by_client: dict[str, str] = {}
        self.trades: dict[str, TradeRecord] = {}
        self.trade_by_client: dict[str, str] = {}
        self.balance = balance
        self.pl = ZERO
        self.created_ns = market.clock.now_ns()
        self.last_fill_ns: int | None = None
        self.listeners: list[queue.Queue[Json]] = []
        self._request_seq = 0
        with self.batch() as b:
            b.add("CREATE", divisionID=1, siteID=101, accountUserID=USER_ID, homeCurrency=currency)
            b.add(
                "TRANSFER_FUNDS",
                amount=fmt_money(balance),
                fundingReason="CLIENT_FUNDING",
                accountBalance=fmt_money(balance),
            )

    # Transactions -------------------------------------------------------------------------
    def new_request_id(self) -> str:
        """A fresh digit-string request id."""
        self._request_seq += 1
        return str(61209475832950000 + self._request_seq)

    @contextmanager
    def batch(self, request_id: str | None = None, ts_ns: int | None = None) -> Iterator[Batch]:
        """Collect transactions of one request and publish them to stream listeners at the end."""
        b = Batch(self, request_id or self.new_request_id(), ts_ns or self.market.clock.now_ns())
        try:
            yield b
        finally:
            self.transactions.extend(b.items)
            self.wall_ns.extend([time.time_ns()] * len(b.items))
            for q in list(self.listeners):
                for tx in b.items:
                    q.put(tx)

    @property
    def last_transaction_id(self) -> str:
        """Id of the newest transaction."""
        return str(self.next_id - 1)

    # Prices and money -----------------------------------------------------------------------
    def spec(self, name: str) -> InstrumentSpec:
        """Spec of a tradeable instrument (KeyError if unknown)."""
        return self.instruments[name]

    def quote(self, name: str) -> Quote:
        """Current quote of any known instrument."""
        return self.market.quote(name)

    def dec(self, value: float, name: str) -> Decimal:
        """A float price as a Decimal rounded to the instrument's precision."""
        return Decimal(fmt_price(value, SPECS[name].display_precision))

    def _mid(self, name: str) -> Decimal:
        q = self.quote(name)
        return Decimal(repr((q.bid + q.ask) / 2))

    def quote_to_home(self, currency: str) -> Decimal:
        """Factor converting an amount in ``currency`` to the home currency."""
        if currency == self.currency:
            return Decimal(1)
        direct, inverse = f"{currency}_{self.currency}", f"{self.currency}_{currency}"
        if direct in SPECS:
            return self._mid(direct)
        if inverse in SPECS:
            return Decimal(1) / self._mid(inverse)
        return Decimal(1)

    def closing_price(self, trade: TradeRecord) -> Decimal:
        """The price the trade would close at now (bid for longs, ask for shorts)."""
        q = self.quote(trade.instrument)
        return self.dec(q.bid if trade.current_units > 0 else q.ask, trade.instrument)

    def pl_of(self, instrument: str, open_price: Decimal, close_price: Decimal, units: Decimal) -> Decimal:
        """Home-currency P&L of ``units`` (signed as the trade) from open to close price."""
        quote = SPECS[instrument].quote
        return ((close_price - open_price) * units * self.quote_to_home(quote)).quantize(Decimal("0.0001"))

    def unrealized(self, trade: TradeRecord) -> Decimal:
        """Unrealized P&L of an open trade."""
        return self.pl_of(trade.instrument, trade.price, self.closing_price(trade), trade.current_units)

    def margin_for(self, instrument: str, units: Decimal) -> Decimal:
        """Margin that ``units`` of ``instrument`` require now."""
        spec = SPECS[instrument]
        value = abs(units) * self._mid(instrument) * self.quote_to_home(spec.quote)
        return (value * Decimal(spec.margin_rate)).quantize(Decimal("0.0001"))

    def open_trade_list(self) -> list[TradeRecord]:
        """Open trades, oldest first."""
        return [t for t in self.trades.values() if t.state == "OPEN"]

    def totals(self) -> tuple[Decimal, Decimal, Decimal]:
        """Unrealized P&L, margin used and position value over all open trades."""
        upl = used = value = ZERO
        for t in self.open_trade_list():
            upl += self.unrealized(t)
            m = self.margin_for(t.instrument, t.current_units)
            used += m
            value += m / Decimal(SPECS[t.instrument].margin_rate)
        return upl, used, value.quantize(Decimal("0.0001"))

    # Closing trades -----------------------------------------------------------------------
    def close_units(
        self, b: Batch, trade: TradeRecord, units: Decimal, price: Decimal, fill_id: str
    ) -> tuple[Json, Decimal]:
        """Close ``units`` (positive amount) of ``trade`` at ``price`` within batch ``b``.

        Returns:
            The ``TradeReduce`` entry for the fill and the realized P&L.
        """
        sign = Decimal(1) if trade.current_units > 0 else Decimal(-1)
        amount = min(units, abs(trade.current_units))
        pl = self.pl_of(trade.instrument, trade.price, price, sign * amount)
        closed_before = abs(trade.initial_units) - abs(trade.current_units)
        trade.current_units -= sign * amount
        trade.realized_pl += pl
        trade.closing_ids.append(fill_id)
        total = closed_before + amount
        prev = trade.average_close_price or ZERO
        avg = (prev * closed_before + price * amount) / total
        trade.average_close_price = self.dec(float(avg), trade.instrument)
        self.balance += pl
        self.pl += pl
        entry: Json = {
            "tradeID": trade.id,
            "units": fmt_decimal(-sign * amount),
            "price": fmt_price(price, SPECS[trade.instrument].display_precision),
            "realizedPL": fmt_money(pl),
            "financing": "0.0000",
            "guaranteedExecutionFee": "0.0000",
            "halfSpreadCost": "0.0000",
        }
        if trade.client_id:
            entry["clientTradeID"] = trade.client_id
        if trade.current_units == 0:
            trade.state = "CLOSED"
            trade.close_ns = b.ts_ns
            for order_id in (trade.take_profit_id, trade.stop_loss_id):
                order = self.orders.get(order_id or "")
                if order is not None and order["state"] == "PENDING":
                    self.cancel_order_record(b, order, "LINKED_TRADE_CLOSED")
        return entry, pl

    def cancel_order_record(self, b: Batch, order: Json, reason: str, **extra: Any) -> Json:
        """Cancel a pending order within ``b`` (ORDER_CANCEL transaction)."""
        tx = b.add(
            "ORDER_CANCEL",
            orderID=order["id"],
            clientOrderID=(order.get("clientExtensions") or {}).get("id"),
            reason=reason,
            **extra,
        )
        order["state"] = "CANCELLED"
        order["cancellingTransactionID"] = tx["id"]
        order["cancelledTime"] = Ts(b.ts_ns)
        trade = self.trades.get(order.get("tradeID", ""))
        if trade is not None:
            if trade.take_profit_id == order["id"]:
                trade.take_profit_id = None
            if trade.stop_loss_id == order["id"]:
                trade.stop_loss_id = None
        return tx

    def fill_price_json(self, name: str, quote: Quote) -> Json:
        """A ``fullPrice`` object for a fill at ``quote``."""
        p = SPECS[name].display_precision
        bid, ask = fmt_price(quote.bid, p), fmt_price(quote.ask, p)
        return {
            "type": "PRICE",
            "time": Ts(quote.tick_s * NS),
            "bids": [{"price": bid, "liquidity": 10000000}],
            "asks": [{"price": ask, "liquidity": 10000000}],
            "closeoutBid": bid,
            "closeoutAsk": ask,
        }
