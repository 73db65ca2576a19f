"""The broker factory: the one way a role gets a broker client.

``broker_factory(config, mode, book=..., book_path=...)`` returns the function a role's runtime
calls for a new client (one per worker thread: clients are not shared). It decides by
``broker.kind`` (the embedded emulator and OANDA both go through ``OandaBroker`` and the real
oandapyV20 client), by ``host.mode`` and by the role's part in the shadow book (the registry's
``book``): in live mode every role gets the real broker; in shadow mode the execution role (the
one ``writer``) gets the ``ShadowBook`` (orders fill virtually from live bid/ask, nothing is sent),
the reconciler (a ``reader``) the same book read-only, so it reconciles the virtual account as it
would the real one, and every other role the real broker behind a ``ShadowGuard`` that refuses
every order-path call. No role has an ``if shadow`` branch. Credentials are read from the
environment of the role's own process (never pickled or passed through messages); a missing
secret raises ``ConfigError`` with a one-line reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from actors.broker import (
    Broker,
    CloseResult,
    MarketOrderRequest,
    OrderResult,
    TradeOrdersResult,
    Transaction,
    TransactionHeartbeat,
    TransactionPage,
)
from actors.broker.config import BrokerConfig, load_credentials
from actors.broker.oanda.client import OandaBroker
from actors.broker.shadow.book import ShadowBook
from actors.core.clock import SYSTEM_CLOCK, Clock
from actors.core.domain import (
    AccountState,
    Candle,
    Instrument,
    OrderState,
    Price,
    PriceHeartbeat,
    TradeState,
)
from actors.core.errors import BrokerNotReadyError, ConfigError, InvariantViolation

__all__ = ["BrokerFactory", "ShadowGuard", "broker_factory", "open_broker"]

RequestOutcome = Callable[[bool, str], None]


class BrokerFactory(Protocol):
    """Makes a new broker client; ``on_request_outcome(ok, detail)`` hears every REST attempt;
    ``slippage_pips`` prices the shadow book's fills."""

    def __call__(self, *, on_request_outcome: RequestOutcome | None = None, slippage_pips: float = 0.0) -> Broker:
        """A new client."""


def open_broker(
    config: BrokerConfig,
    environ: Mapping[str, str] | None = None,
    *,
    on_request_outcome: RequestOutcome | None = None,
) -> OandaBroker:
    """A new ``OandaBroker`` for ``config`` (for tools and tests; roles use ``broker_factory``)."""
    credentials = load_credentials(
        os.environ if environ is None else environ, kind=config.kind, token_file=config.token_file
    )
    return OandaBroker(config, credentials, on_request_outcome=on_request_outcome)


def broker_factory(
    config: BrokerConfig,
    mode: str,
    environ: Mapping[str, str] | None = None,
    *,
    book: str = "",
    book_path: Path | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> BrokerFactory:
    """The factory a role runtime hands its actor.

    Args:
        config: the ``[broker]`` section.
        mode: ``host.mode``: ``"live"`` gives the real broker; ``"shadow"`` the shadow book or a guard.
        environ: where credentials come from (default ``os.environ``, read at each call).
        book: the role's part in the shadow book: ``"writer"``, ``"reader"`` or ``""`` (none).
        book_path: the shadow book's file (``<run_dir>/shadow-book.db``).
        clock: the book's clock before its first price.
    """

    def make(*, on_request_outcome: RequestOutcome | None = None, slippage_pips: float = 0.0) -> Broker:
        broker = open_broker(config, environ, on_request_outcome=on_request_outcome)
        if mode == "live":
            return broker
        if book and book_path is None:
            raise ConfigError("shadow mode: the shadow book needs a path")
        if book == "writer" and book_path is not None:
            return ShadowBook(broker, book_path, slippage_pips=slippage_pips, clock=clock)
        if book == "reader" and book_path is not None:
            path = book_path
            return ShadowGuard(broker, reads=lambda: ShadowBook(broker, path, read_only=True, clock=clock))
        return ShadowGuard(broker)

    return make


class ShadowGuard:
    """A ``Broker`` that reads through ``inner`` and refuses every call that would change the account.

    Shadow mode's promise is that nothing is ever sent: an order-path call reaching this guard is a
    bug, so it raises ``InvariantViolation`` (the role fails and the supervisor latches nothing
    is traded) instead of quietly doing nothing. With ``reads``, the account-side reads go to the
    broker that function opens (the shadow book, read-only), opened on first use: until the
    execution role has written the book, a read is a ``BrokerNotReadyError`` (waited for).
    """

    def __init__(self, inner: Broker, *, reads: Callable[[], Broker] | None = None) -> None:
        self.market = inner
        self._open_reads = reads
        self._reads: Broker | None = None if reads is not None else inner

    @property
    def inner(self) -> Broker:
        """Where account reads go."""
        if self._reads is None and self._open_reads is not None:
            try:
                self._reads = self._open_reads()
            except ConfigError as e:
                raise BrokerNotReadyError(f"shadow book not readable yet: {e}") from e
        if self._reads is None:
            raise BrokerNotReadyError("shadow book not readable yet")
        return self._reads

    def _refuse(self, what: str) -> InvariantViolation:
        return InvariantViolation(f"shadow mode: {what} must never reach the broker")

    def instruments(self, names: Sequence[str] | None = None) -> list[Instrument]:
        """Instrument metadata (read)."""
        return self.market.instruments(names)

    def candles(self, instrument: str, granularity: str, **kwargs: Any) -> list[Candle]:
        """Candles (read)."""
        return self.market.candles(instrument, granularity, **kwargs)

    def latest_candles(
        self, instruments: Sequence[str], granularity: str, *, price: str = "M"
    ) -> dict[str, list[Candle]] | None:
        """The latest candles of several instruments (read)."""
        return self.market.latest_candles(instruments, granularity, price=price)

    def pricing_stream(self, instruments: Sequence[str], *, snapshot: bool = True) -> Iterator[Price | PriceHeartbeat]:
        """The price stream (read)."""
        return self.market.pricing_stream(instruments, snapshot=snapshot)

    def on_price(self, price: Price) -> None:
        """A stream price (a read-only book only notes it)."""
        if self._reads is not None:
            self._reads.on_price(price)

    def on_bar(self, instrument: str, candle: Candle, end_ns: int) -> None:
        """A closed bar: nothing to do for a guard (only the book's writer triggers SL/TP)."""

    def account_summary(self) -> AccountState:
        """The account summary (read): the shadow book's, for a guard that reads the book.

        That guard (the reconciler's) also reads the real account first, a REST round trip whose
        failure raises as it would in live mode: the REST API's health (``broker_unreachable:rest``,
        the watchdog's ``account_stale``) stays the broker's, not the book file's.
        """
        book = self.inner  # first: no real round trips while the book is not there yet
        if self._open_reads is not None:
            self.market.account_summary()
        return book.account_summary()

    def open_trades(self) -> list[TradeState]:
        """Open trades (read)."""
        return self.inner.open_trades()

    def pending_orders(self) -> list[OrderState]:
        """Pending orders (read)."""
        return self.inner.pending_orders()

    def order(self, spec: str) -> OrderState:
        """One order (read)."""
        return self.inner.order(spec)

    def trade(self, spec: str) -> TradeState:
        """One trade (read)."""
        return self.inner.trade(spec)

    def transactions_since(self, transaction_id: str) -> TransactionPage:
        """Transactions after an id (read)."""
        return self.inner.transactions_since(transaction_id)

    def transaction_stream(self) -> Iterator[Transaction | TransactionHeartbeat]:
        """The transaction stream (read)."""
        return self.inner.transaction_stream()

    def submit_market_order(self, request: MarketOrderRequest) -> OrderResult:
        """Refused in shadow mode."""
        raise self._refuse(f"order @{request.client_id}")

    def cancel_order(self, spec: str) -> str:
        """Refused in shadow mode."""
        raise self._refuse(f"cancel of order {spec}")

    def close_trade(self, spec: str, units: Decimal | None = None) -> CloseResult:
        """Refused in shadow mode."""
        raise self._refuse(f"close of trade {spec}")

    def set_trade_orders(self, spec: str, **kwargs: Any) -> TradeOrdersResult:
        """Refused in shadow mode."""
        raise self._refuse(f"SL/TP change of trade {spec}")

    def close(self) -> None:
        """Close the clients."""
        if self._reads is not None and self._reads is not self.market:
            self._reads.close()
        self.market.close()
