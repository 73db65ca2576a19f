"""The shadow book's file: a SQLite database written one change at a time (issue 18).

The book used to be one JSON document rewritten whole after every change, so a change cost what
the whole history weighed (673 KB after 202 order + close pairs). Here a change writes only what
it touched, in one SQLite transaction: the account row (balance, next transaction id, change
counter), the transactions it appended, and the trades and orders it created or changed.

- **What changed.** A trade or order can only change while it is live (an OPEN trade, a PENDING
  order: a CLOSED trade, a FILLED or CANCELLED order is final) or in the change that created it;
  the store keeps the encoding of every live record it wrote and writes a record again only when
  its encoding differs. A change therefore costs O(open trades + pending orders + what it added),
  whatever the history holds. Transactions are appended, never rewritten (they are complete when
  the change that made them is saved).
- **Crash safety.** WAL mode; every change is one transaction, so a crash leaves the book as it
  was after some whole change, never half of one. ``synchronous=NORMAL``, as the journal: a change
  is in the file when ``save`` returns, so a kill -9 of the role (or of the whole tree) loses
  nothing; an OS crash or power cut may lose the last changes before SQLite's next checkpoint
  fsync (with the journal rows that told of them), never the book's consistency. An fsync per
  change (``FULL``) costs 0.1-2.3 ms on the reference machine's shared disk, which alone would cap
  the book at 200-5,000 pairs/s (the JSON book fsynced the file and its directory per change).
- **Readers.** The reconciler opens the same file read-only (``BookReader``) from another process.
  WAL gives each read transaction a snapshot: a reader sees whole changes only. It notices a new
  change by ``PRAGMA data_version`` (no file read) and loads only the records of the changes it
  has not seen (each row carries the change counter that last wrote it).
- **The JSON book of older versions.** A store that does not exist yet next to a JSON book
  (``<name>.json`` beside ``<name>.db``) is created from it once (``migrate_json``); the JSON file
  is kept, renamed ``<name>.json.migrated``, and the writer journals the migration
  (``shadow.migrated``).

Records are encoded as ``actors.broker.shadow.state`` encodes them in the JSON book, so the two
formats hold the same thing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from actors.broker.shadow.state import (
    Book,
    BookOrder,
    BookTrade,
    _decimal,
    _decode_order,
    _decode_trade,
    _encode_record,
    read_book,
)
from actors.core.errors import ConfigError

__all__ = ["BookReader", "BookWriter", "LiveRecords", "legacy_json_path"]

STORE_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS account (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    version    INTEGER NOT NULL,
    account_id TEXT    NOT NULL,
    currency   TEXT    NOT NULL,
    balance    TEXT    NOT NULL,
    next_id    INTEGER NOT NULL,
    change     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS trades (id INTEGER PRIMARY KEY, change INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, change INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS trades_change ON trades(change);
CREATE INDEX IF NOT EXISTS orders_change ON orders(change);
"""


_ALL = "SELECT body FROM {} ORDER BY id"


def legacy_json_path(path: Path) -> Path:
    """Where an older version kept the book that ``path`` replaces (``<name>.json``)."""
    return path.with_suffix(".json")


class LiveRecords:
    """The ids of a dict's records that may still change (live ones), kept without rescanning it.

    Records are only ever added to the dict (at its end); ``live(records)`` looks at the ids it
    held live, plus the records added since the last call, and keeps those ``is_live`` says are.
    """

    def __init__(self, is_live: Any) -> None:
        self._is_live = is_live
        self._ids: dict[str, None] = {}
        self._seen = 0

    def reset(self, records: dict[str, Any]) -> None:
        """Start over from every record of ``records`` (after a load)."""
        self._ids = {k: None for k, r in records.items() if self._is_live(r)}
        self._seen = len(records)

    def added(self, records: dict[str, Any]) -> list[str]:
        """The ids added to ``records`` since the last call (oldest first)."""
        new = len(records) - self._seen
        if new <= 0:
            return []
        out: list[str] = []
        for key in reversed(records):
            out.append(key)
            if len(out) == new:
                break
        self._seen = len(records)
        out.reverse()
        return out

    def live(self, records: dict[str, Any]) -> list[Any]:
        """The live records (oldest id first among the earlier ones, then the added ones)."""
        for key in self.added(records):
            self._ids[key] = None
        out = []
        for key in list(self._ids):
            record = records.get(key)
            if record is not None and self._is_live(record):
                out.append(record)
            else:
                del self._ids[key]
        return out


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    if read_only:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0, check_same_thread=False,
                             isolation_level=None)  # fmt: skip
    else:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # private from the start, like the JSON file
        os.close(fd)
        db = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # as the journal: see the module docstring
    db.execute("PRAGMA busy_timeout=10000")
    return db


def _corrupt(path: Path, e: Exception) -> ConfigError:
    return ConfigError(f"{path}: shadow book is corrupt ({e}); inspect or remove it")


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection, begin: str = "BEGIN") -> Iterator[None]:
    db.execute(begin)
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _trade_live(t: BookTrade) -> bool:
    return t.state == "OPEN"


def _order_live(o: BookOrder) -> bool:
    return o.state == "PENDING"


class _Loader:
    """Reads a store into a ``Book`` (whole, or the changes since the last read)."""

    def __init__(self, path: Path, db: sqlite3.Connection) -> None:
        self.path = path
        self.db = db
        self.change = -1
        self.last_tx = 0

    def _account(self) -> tuple[str, str, Decimal, int, int] | None:
        row = self.db.execute(
            "SELECT version, account_id, currency, balance, next_id, change FROM account WHERE one = 1"
        ).fetchone()
        if row is None:
            return None
        version, account_id, currency, balance, next_id, change = row
        if version != STORE_VERSION:
            raise TypeError(f"not a shadow book of version {STORE_VERSION}")
        if not isinstance(account_id, str) or not isinstance(currency, str):
            raise TypeError("account id or currency missing")
        if isinstance(next_id, bool) or not isinstance(next_id, int) or next_id < 1:
            raise TypeError("next_id is not a positive integer")
        return account_id, currency, _decimal(balance, "balance"), next_id, int(change)

    def load(self) -> Book | None:
        """The whole book, or None when the store holds none yet."""
        try:
            with _transaction(self.db):
                account = self._account()
                if account is None:
                    return None
                account_id, currency, balance, next_id, change = account
                trades = [_decode_trade(orjson.loads(b)) for (b,) in self.db.execute(_ALL.format("trades"))]
                orders = [_decode_order(orjson.loads(b)) for (b,) in self.db.execute(_ALL.format("orders"))]
                txs = [orjson.loads(b) for (b,) in self.db.execute("SELECT body FROM transactions ORDER BY id")]
        except (sqlite3.DatabaseError, orjson.JSONDecodeError, TypeError, ValueError) as e:
            raise _corrupt(self.path, e) from e
        if not all(isinstance(t, dict) and isinstance(t.get("id"), str) for t in txs):
            raise _corrupt(self.path, TypeError("a transaction is malformed"))
        self.change = change
        self.last_tx = int(txs[-1]["id"]) if txs else 0
        return Book(
            account_id=account_id, currency=currency, balance=balance, next_id=next_id,
            trades={t.id: t for t in trades}, orders={o.id: o for o in orders}, transactions=txs,
        )  # fmt: skip

    def update(self, book: Book) -> bool:
        """Bring ``book`` up to the store's last change; False when there was none."""
        try:
            with _transaction(self.db):
                account = self._account()
                if account is None or account[4] == self.change:
                    return False
                _, _, balance, next_id, change = account
                trades = [
                    _decode_trade(orjson.loads(b))
                    for (b,) in self.db.execute("SELECT body FROM trades WHERE change > ? ORDER BY id", (self.change,))
                ]
                orders = [
                    _decode_order(orjson.loads(b))
                    for (b,) in self.db.execute("SELECT body FROM orders WHERE change > ? ORDER BY id", (self.change,))
                ]
                txs = [
                    orjson.loads(b)
                    for (b,) in self.db.execute(
                        "SELECT body FROM transactions WHERE id > ? ORDER BY id", (self.last_tx,)
                    )
                ]
        except (sqlite3.DatabaseError, orjson.JSONDecodeError, TypeError, ValueError) as e:
            raise _corrupt(self.path, e) from e
        book.balance, book.next_id = balance, next_id
        for t in trades:
            book.trades[t.id] = t
            if t.client_id:
                book.trade_by_client[t.client_id] = t.id
        for o in orders:
            book.orders[o.id] = o
            if o.client_id:
                book.order_by_client[o.client_id] = o.id
        book.transactions.extend(txs)
        self.change = change
        if txs:
            self.last_tx = int(txs[-1]["id"])
        return True


class BookReader:
    """A read-only view of a store another process writes (the reconciler's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            raise ConfigError(f"{path}: no shadow book to read (the execution role creates it)")
        try:
            self._db = _connect(path, read_only=True)
        except sqlite3.Error as e:
            raise ConfigError(f"{path}: shadow book is unreadable ({e}); inspect or remove it") from e
        self._loader = _Loader(path, self._db)
        self._version = -1

    def load(self) -> Book:
        """The whole book.

        Raises:
            ConfigError: the store is corrupt, or holds no book yet.
        """
        self._version = self._data_version()
        book = self._loader.load()
        if book is None:
            raise ConfigError(f"{self.path}: no shadow book to read (the execution role creates it)")
        return book

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def refresh(self, book: Book) -> bool:
        """Apply the writer's changes since the last call to ``book``; False when there were none."""
        version = self._data_version()
        if version == self._version:
            return False
        self._version = version
        return self._loader.update(book)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


class BookWriter:
    """The store of the book's one writer (the execution role): ``save`` after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.migrated: dict[str, Any] | None = None  # what ``open`` migrated, for the journal
        existed = path.exists()
        try:
            self._db = _connect(path, read_only=False)
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise _corrupt(path, e) if existed else ConfigError(f"{path}: cannot create the shadow book ({e})") from e
        self._loader = _Loader(path, self._db)
        self._change = 0
        self._saved_tx = 0
        self._written: dict[str, dict[str, bytes]] = {"trades": {}, "orders": {}}
        self._live = {"trades": LiveRecords(_trade_live), "orders": LiveRecords(_order_live)}
        self._full = True  # the next save writes every record (a new or migrated book)

    def open(self) -> Book | None:
        """The saved book (migrated from the older JSON book once if there is one), or None.

        Raises:
            ConfigError: the store or the JSON book is corrupt.
        """
        book = self._loader.load()
        if book is None:
            legacy = legacy_json_path(self.path)
            old = read_book(legacy) if legacy != self.path else None
            if old is None:
                return None
            self._change = 0
            self._adopt(old, saved=False)
            self.save(old)
            migrated = legacy.with_name(legacy.name + ".migrated")
            legacy.replace(migrated)
            self.migrated = {
                "source": str(legacy), "book": str(self.path), "kept_as": str(migrated), "trades": len(old.trades),
                "orders": len(old.orders), "transactions": len(old.transactions),
            }  # fmt: skip
            return old
        self._change = self._loader.change
        self._adopt(book, saved=True)
        return book

    def _adopt(self, book: Book, *, saved: bool) -> None:
        # What the store holds for ``book``: nothing yet (a new or migrated book), or all of it.
        for table, records in (("trades", book.trades), ("orders", book.orders)):
            live = self._live[table]
            if saved:
                live.reset(records)
                self._written[table] = {k: orjson.dumps(_encode_record(records[k])) for k in live._ids}
            else:
                live.reset({})
                self._written[table] = {}
        self._saved_tx = len(book.transactions) if saved else 0
        self._full = not saved

    def save(self, book: Book) -> None:
        """Write the change(s) made to ``book`` since the last save, as one transaction.

        Raises:
            sqlite3.Error: nothing was written (the caller's book is ahead of the file).
        """
        change = self._change + 1
        writes: dict[str, list[tuple[int, int, bytes]]] = {"trades": [], "orders": []}
        keep: dict[str, dict[str, bytes]] = {}
        for table, records in (("trades", book.trades), ("orders", book.orders)):
            written = self._written[table]
            keep[table] = {}
            for record in self._live[table].live(records):
                keep[table][record.id] = b""
            candidates = list(records) if self._full else [*keep[table], *(k for k in written if k not in keep[table])]
            for key in candidates:
                record = records[key]
                body = orjson.dumps(_encode_record(record))
                if written.get(key) != body:
                    writes[table].append((int(key), change, body))
                keep[table][key] = body
        # Records created and finalised within one change are not live any more: written above
        # only if they were live at some point. Catch them from the new transactions' ids.
        new_txs = book.transactions[self._saved_tx :]
        for table, records in (("trades", book.trades), ("orders", book.orders)):
            for tx in new_txs:
                key = tx["id"]
                if key in records and key not in keep[table]:
                    body = orjson.dumps(_encode_record(records[key]))
                    writes[table].append((int(key), change, body))
        with _transaction(self._db, "BEGIN IMMEDIATE"):
            self._db.execute(
                "INSERT INTO account (one, version, account_id, currency, balance, next_id, change) "
                "VALUES (1, ?, ?, ?, ?, ?, ?) ON CONFLICT(one) DO UPDATE SET balance = excluded.balance, "
                "next_id = excluded.next_id, change = excluded.change",
                (STORE_VERSION, book.account_id, book.currency, format(book.balance, "f"), book.next_id, change),
            )
            for table in ("trades", "orders"):
                if writes[table]:
                    self._db.executemany(
                        f"INSERT OR REPLACE INTO {table} (id, change, body) VALUES (?, ?, ?)",  # noqa: S608
                        writes[table],
                    )
            if new_txs:
                rows = [(int(t["id"]), orjson.dumps(t)) for t in new_txs]
                self._db.executemany("INSERT INTO transactions (id, body) VALUES (?, ?)", rows)
        self._change = change
        self._full = False
        self._saved_tx = len(book.transactions)
        self._written["trades"] = {k: v for k, v in keep["trades"].items() if v and _trade_live(book.trades[k])}
        self._written["orders"] = {k: v for k, v in keep["orders"].items() if v and _order_live(book.orders[k])}

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
