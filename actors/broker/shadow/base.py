"""The shadow book's state: the virtual account as loaded and saved, its transactions and prices.

What every part of the book shares: the ``Book`` records (``actors.broker.shadow.state``) under
one lock, read at start (a new book starts from the real account's NAV) and saved crash-safely
after every change, re-read by a read-only book when its writer saved; the last bid/ask per
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
from actors.broker.shadow.state import Book, BookTrade, read_book
from actors.core.atomicfile import write_atomically
from actors.core.clock import SYSTEM_CLOCK, Clock
from actors.core.domain import Instrument, Price
from actors.core.errors import BrokerRejectedError, ConfigError
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
        self._stamp: tuple[int, int, int] | None = None
        book = read_book(self.path)
        if book is None:
            if read_only:
                raise ConfigError(f"{self.path}: no shadow book to read (the execution role creates it)")
            summary = inner.account_summary()  # a read: the starting NAV of the virtual account
            book = Book(
                account_id=summary.id, currency=summary.currency, balance=summary.nav, next_id=1,
                trades={}, orders={}, transactions=[],
            )  # fmt: skip
            self._book = book
            self._save()
        else:
            self._book = book
            self._stamp = self._file_stamp()

    # --- Persistence ---------------------------------------------------------------------------
    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _save(self) -> None:
        write_atomically(self.path, self._book.encode())
        self._stamp = self._file_stamp()

    def _refresh(self) -> None:
        # Lock held. A reader picks up what the writer saved since the last read.
        if not self.read_only:
            return
        stamp = self._file_stamp()
        if stamp is not None and stamp != self._stamp:
            book = read_book(self.path)
            if book is not None:
                self._book, self._stamp = book, stamp

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
        return [
            t
            for t in self._book.trades.values()
            if t.state == "OPEN" and (instrument is None or t.instrument == instrument)
        ]

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
