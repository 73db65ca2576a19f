"""The shadow book's state: the virtual account as loaded and saved, its transactions and prices.

What every part of the book shares: the ``Book`` records (``actors.broker.shadow.state``) under
one lock, read at start (a new book starts from the real account's NAV) and saved crash-safely
after every change (``actors.broker.shadow.store``: what the change touched, in one SQLite
transaction), brought up to date by a read-only book when its writer saved; the last bid/ask per
instrument and instrument metadata; the transactions' numbering and time; and the valuation of
open trades (unrealized P&L, margin, home-currency factors). ``actors.broker.shadow.book.ShadowBook``
puts the parts together.
"""

from __future__ import annotations

import os
import threading
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from actors.broker import Broker, Transaction
from actors.broker.shadow.state import Book, BookOrder, BookTrade
from actors.broker.shadow.store import BookReader, BookWriter, LiveRecords
from actors.core.clock import SYSTEM_CLOCK, Clock
from actors.core.domain import Instrument, Price
from actors.core.errors import BrokerRejectedError
from actors.core.money import quote_to_home
from actors.core.timefmt import format_rfc3339, parse_time

_MONEY = Decimal("0.0001")
_ZERO = Decimal(0)


def _rejected(message: str, reason: str, transaction: dict[str, Any] | None = None) -> BrokerRejectedError:
    return BrokerRejectedError(message, reason=reason, transaction=transaction)


class BookBase:
    """The shadow book's state and shared steps (constructed as ``ShadowBook``, which documents the
    arguments)."""

    def __init__(
        self,
        inner: Broker,
        state_path: str | os.PathLike[str],
        *,
        slippage_pips: float = 0.0,
        clock: Clock = SYSTEM_CLOCK,
        read_only: bool = False,
        heartbeat_s: float = 5.0,
    ) -> None:
        self.inner = inner
        self.path = Path(state_path)
        self.read_only = read_only
        self._slippage_pips = slippage_pips
        self._clock = clock
        self._heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._quotes: dict[str, Price] = {}
        self._meta: dict[str, Instrument] = {}
        self._now_ns = 0
        self._closed = False
        self._open_trades = LiveRecords(lambda t: t.state == "OPEN")
        self._pending = LiveRecords(lambda o: o.state == "PENDING")
        self._reader: BookReader | None = None
        self._writer: BookWriter | None = None
        self.migrated: dict[str, Any] | None = None  # the JSON book this open migrated (journaled by the role)
        if read_only:
            self._reader = BookReader(self.path)
            self._book = self._reader.load()
        else:
            self._writer = BookWriter(self.path)
            book = self._writer.open()
            self.migrated = self._writer.migrated
            if book is None:
                summary = inner.account_summary()  # a read: the starting NAV of the virtual account
                book = Book(
                    account_id=summary.id, currency=summary.currency, balance=summary.nav, next_id=1,
                    trades={}, orders={}, transactions=[],
                )  # fmt: skip
                self._book = book
                self._save()
            else:
                self._book = book

    # --- Persistence ---------------------------------------------------------------------------
    def _save(self) -> None:
        if self._writer is not None:
            self._writer.save(self._book)

    def _refresh(self) -> None:
        # Lock held. A reader picks up what the writer saved since the last read.
        if self._reader is not None:
            self._reader.refresh(self._book)

    def _close_store(self) -> None:
        for store in (self._reader, self._writer):
            if store is not None:
                store.close()

    # --- Transactions --------------------------------------------------------------------------
    def _ts(self) -> int:
        return self._now_ns or self._clock.time_ns()

    def _tx(self, tx_type: str, **fields: Any) -> dict[str, Any]:
        tx_id = str(self._book.next_id)
        self._book.next_id += 1
        raw: dict[str, Any] = {
            "id": tx_id,
            "type": tx_type,
            "time": format_rfc3339(self._ts()),
            "accountID": self._book.account_id,
            **{k: v for k, v in fields.items() if v is not None},
        }
        self._book.transactions.append(raw)
        return raw

    def _last_id(self) -> str:
        return str(self._book.next_id - 1)

    @staticmethod
    def _transaction(raw: dict[str, Any]) -> Transaction:
        return Transaction(id=raw["id"], type=raw["type"], ts=parse_time(raw["time"]), raw=dict(raw))

    def _instrument(self, name: str) -> Instrument:
        # Outside the lock: may read the inner broker once per instrument.
        meta = self._meta.get(name)
        if meta is None:
            found = [i for i in self.inner.instruments([name]) if i.name == name]
            if not found:
                raise _rejected(f"unknown instrument {name}", "INSTRUMENT_UNKNOWN")
            meta = found[0]
            with self._lock:
                self._meta[name] = meta
        return meta

    def _open(self, instrument: str | None = None) -> list[BookTrade]:
        # Open trades, oldest first, without walking the closed ones (the book keeps them all).
        trades: list[BookTrade] = sorted(self._open_trades.live(self._book.trades), key=lambda t: int(t.id))
        return trades if instrument is None else [t for t in trades if t.instrument == instrument]

    def _pending_orders(self) -> list[BookOrder]:
        orders: list[BookOrder] = self._pending.live(self._book.orders)
        return sorted(orders, key=lambda o: int(o.id))

    def _transactions_after(self, after: int) -> list[dict[str, Any]]:
        # Transaction ids run 1, 2, 3 ... in the list: slice instead of walking the history.
        txs = self._book.transactions
        if txs and int(txs[0]["id"]) + len(txs) - 1 == int(txs[-1]["id"]):
            start = max(0, after - int(txs[0]["id"]) + 1)
            return txs[start:]
        return [t for t in txs if int(t["id"]) > after]

    def _mids(self) -> dict[str, float]:
        return {name: (float(p.bid) + float(p.ask)) / 2.0 for name, p in self._quotes.items()}

    def _factor(self, instrument: str) -> Decimal | None:
        factor = quote_to_home(instrument.split("_", 1)[1], self._book.currency, self._mids())
        return None if factor is None else Decimal(repr(factor))

    @staticmethod
    def _price_decimal(value: float, meta: Instrument) -> Decimal:
        return Decimal(repr(value)).quantize(Decimal(1).scaleb(-meta.display_precision), rounding=ROUND_HALF_UP)

    def _unrealized(self, trade: BookTrade) -> Decimal:
        quote = self._quotes.get(trade.instrument)
        if quote is None:
            return _ZERO
        close = quote.bid if trade.current_units > 0 else quote.ask
        factor = self._factor(trade.instrument) or trade.open_factor
        return ((close - trade.price) * trade.current_units * factor).quantize(_MONEY)

    def _margin(self, instrument: str, units: Decimal) -> Decimal:
        quote, meta = self._quotes.get(instrument), self._meta.get(instrument)
        if quote is None or meta is None:
            return _ZERO
        factor = self._factor(instrument) or _ZERO
        return (abs(units) * (quote.bid + quote.ask) / 2 * factor * meta.margin_rate).quantize(_MONEY)
