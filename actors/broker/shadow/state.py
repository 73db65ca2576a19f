"""The shadow book's records and its state file: open and closed trades, orders, the balance and
every transaction, encoded as one JSON document and validated when read back.

``actors.broker.shadow.book.ShadowBook`` keeps a ``Book`` in memory and writes it with
``actors.core.atomicfile.write_atomically`` after every change; ``read_book`` restores it (a file that
cannot be read or decoded is a ``ConfigError`` naming it: when unsure, do not trade).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

from actors.core.errors import ConfigError

__all__ = ["STATE_VERSION", "Book", "BookOrder", "BookTrade", "read_book"]

STATE_VERSION = 1


@dataclass(slots=True, kw_only=True)
class BookTrade:
    """A virtual trade (open or closed), in OANDA's terms."""

    id: str
    instrument: str
    price: Decimal
    open_ts: int
    initial_units: Decimal
    current_units: Decimal
    realized_pl: Decimal
    open_factor: Decimal  # quote->home at the open: the fallback when no rate is known at the close
    state: str = "OPEN"
    client_id: str | None = None
    client_tag: str | None = None
    stop_loss_order_id: str | None = None
    stop_loss_price: Decimal | None = None
    take_profit_order_id: str | None = None
    take_profit_price: Decimal | None = None
    close_ts: int | None = None


@dataclass(slots=True, kw_only=True)
class BookOrder:
    """A virtual order: the MARKET order of an entry or close, or a trade's SL/TP order."""

    id: str
    type: str
    state: str
    instrument: str | None = None
    units: Decimal | None = None
    price: Decimal | None = None
    client_id: str | None = None
    trade_id: str | None = None
    filling_transaction_id: str | None = None
    trade_opened_id: str | None = None
    cancelling_transaction_id: str | None = None


_TRADE_DECIMALS = ("price", "initial_units", "current_units", "realized_pl", "open_factor")
_TRADE_OPT_DECIMALS = ("stop_loss_price", "take_profit_price")
_ORDER_OPT_DECIMALS = ("units", "price")


def _encode_record(record: BookTrade | BookOrder) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in record.__slots__:
        value = getattr(record, name)
        out[name] = format(value, "f") if isinstance(value, Decimal) else value
    return out


def _decimal(value: Any, what: str) -> Decimal:
    if not isinstance(value, str):
        raise TypeError(f"{what} is not a decimal string")
    try:
        result = Decimal(value)
    except InvalidOperation as e:
        raise TypeError(f"{what} is not a decimal string") from e
    if not result.is_finite():
        raise TypeError(f"{what} is not finite")
    return result


def _decode_trade(raw: Any) -> BookTrade:
    if not isinstance(raw, dict):
        raise TypeError("a trade is not an object")
    fields = dict(raw)
    for name in _TRADE_DECIMALS:
        fields[name] = _decimal(fields.get(name), f"trade.{name}")
    for name in _TRADE_OPT_DECIMALS:
        if fields.get(name) is not None:
            fields[name] = _decimal(fields[name], f"trade.{name}")
    trade = BookTrade(**fields)
    if not isinstance(trade.id, str) or not isinstance(trade.instrument, str) or not isinstance(trade.open_ts, int):
        raise TypeError("a trade has a malformed id, instrument or open time")
    return trade


def _decode_order(raw: Any) -> BookOrder:
    if not isinstance(raw, dict):
        raise TypeError("an order is not an object")
    fields = dict(raw)
    for name in _ORDER_OPT_DECIMALS:
        if fields.get(name) is not None:
            fields[name] = _decimal(fields[name], f"order.{name}")
    order = BookOrder(**fields)
    if not all(isinstance(v, str) for v in (order.id, order.type, order.state)):
        raise TypeError("an order has a malformed id, type or state")
    return order


@dataclass(slots=True, kw_only=True)
class Book:
    """The whole virtual account: balance, trades, orders and every transaction."""

    account_id: str
    currency: str
    balance: Decimal
    next_id: int
    trades: dict[str, BookTrade]
    orders: dict[str, BookOrder]
    transactions: list[dict[str, Any]]
    # Client id -> order / trade id: derived from the records, never saved.
    order_by_client: dict[str, str] = field(default_factory=dict)
    trade_by_client: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.order_by_client = {o.client_id: o.id for o in self.orders.values() if o.client_id}
        self.trade_by_client = {t.client_id: t.id for t in self.trades.values() if t.client_id}

    def encode(self) -> bytes:
        """The state file's content."""
        return orjson.dumps(
            {
                "version": STATE_VERSION,
                "account_id": self.account_id,
                "currency": self.currency,
                "balance": format(self.balance, "f"),
                "next_id": self.next_id,
                "trades": [_encode_record(t) for t in self.trades.values()],
                "orders": [_encode_record(o) for o in self.orders.values()],
                "transactions": self.transactions,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Book:
        """Read a state file's content back.

        Raises:
            TypeError, ValueError, orjson.JSONDecodeError: the content is not a book of this version.
        """
        raw = orjson.loads(data)
        if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
            raise TypeError(f"not a shadow book of version {STATE_VERSION}")
        account_id, currency, next_id = raw.get("account_id"), raw.get("currency"), raw.get("next_id")
        if not isinstance(account_id, str) or not isinstance(currency, str):
            raise TypeError("account id or currency missing")
        if isinstance(next_id, bool) or not isinstance(next_id, int) or next_id < 1:
            raise TypeError("next_id is not a positive integer")
        trades, orders, transactions = raw.get("trades"), raw.get("orders"), raw.get("transactions")
        if not isinstance(trades, list) or not isinstance(orders, list) or not isinstance(transactions, list):
            raise TypeError("trades, orders or transactions are not lists")
        if not all(isinstance(t, dict) and isinstance(t.get("id"), str) for t in transactions):
            raise TypeError("a transaction is malformed")
        book = cls(
            account_id=account_id,
            currency=currency,
            balance=_decimal(raw.get("balance"), "balance"),
            next_id=next_id,
            trades={t.id: t for t in map(_decode_trade, trades)},
            orders={o.id: o for o in map(_decode_order, orders)},
            transactions=transactions,
        )
        if any(int(t["id"]) >= next_id for t in transactions):
            raise TypeError("a transaction id is not below next_id")
        return book


def read_book(path: Path) -> Book | None:
    """The book saved at ``path``, or None when there is none yet.

    Raises:
        ConfigError: the file exists but cannot be read or decoded (it names the file).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"{path}: shadow book is unreadable ({e}); inspect or remove it") from e
    try:
        return Book.decode(data)
    except (orjson.JSONDecodeError, TypeError, ValueError) as e:
        raise ConfigError(f"{path}: shadow book is corrupt ({e}); inspect or remove it") from e
