"""The broker factory: the one way a role gets a broker client.

``broker_factory(config, mode)`` returns the function a role's runtime calls for a new client
(one per worker thread: clients are not shared). It decides by ``broker.kind`` (the embedded
emulator and OANDA both go through ``OandaBroker`` and the real oandapyV20 client) and by
``host.mode``: in shadow mode the client reads the real account and market but refuses every
order-path call (``ShadowGuard``), so no role can send an order in shadow mode even by mistake;
the shadow book of the orders issue plugs in here, and no role has an ``if shadow`` branch.
Credentials are read from the environment of the role's own process (never pickled or passed
through messages); a missing secret raises ``ConfigError`` with a one-line reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from actors.broker import (
    AccountState,
    Broker,
    Candle,
    CloseResult,
    Heartbeat,
    Instrument,
    MarketOrderRequest,
    OrderResult,
    OrderState,
    PositionState,
    Price,
    TradeOrdersResult,
    TradeState,
    Transaction,
    TransactionHeartbeat,
    TransactionPage,
)
from actors.broker.config import BrokerConfig, load_credentials
from actors.broker.oanda import OandaBroker
from actors.errors import InvariantViolation

__all__ = ["BrokerFactory", "ShadowGuard", "broker_factory", "open_broker"]

RequestOutcome = Callable[[bool, str], None]


class BrokerFactory(Protocol):
    """Makes a new broker client; ``on_request_outcome(ok, detail)`` hears every REST attempt."""

    def __call__(self, *, on_request_outcome: RequestOutcome | None = None) -> Broker:
        """A new client."""


def open_broker(
    config: BrokerConfig,
    environ: Mapping[str, str] | None = None,
    *,
    on_request_outcome: RequestOutcome | None = None,
) -> OandaBroker:
    """A new ``OandaBroker`` for ``config`` (for tools and tests; roles use ``broker_factory``)."""
    credentials = load_credentials(os.environ if environ is None else environ, kind=config.kind)
    return OandaBroker(config, credentials, on_request_outcome=on_request_outcome)


def broker_factory(config: BrokerConfig, mode: str, environ: Mapping[str, str] | None = None) -> BrokerFactory:
    """The factory a role runtime hands its actor.

    Args:
        config: the ``[broker]`` section.
        mode: ``host.mode``: ``"shadow"`` guards every order-path call, ``"live"`` does not.
        environ: where credentials come from (default ``os.environ``, read at each call).
    """

    def make(*, on_request_outcome: RequestOutcome | None = None) -> Broker:
        broker = open_broker(config, environ, on_request_outcome=on_request_outcome)
        return broker if mode == "live" else ShadowGuard(broker)

    return make


class ShadowGuard:
    """A ``Broker`` that reads through ``inner`` and refuses every call that would change the account.

    Shadow mode's promise is that nothing is ever sent: an order-path call reaching this guard is a
    bug, so it raises ``InvariantViolation`` (the role fails and the supervisor latches nothing
    is traded) instead of quietly doing nothing.
    """

    def __init__(self, inner: Broker) -> None:
        self.inner = inner

    def _refuse(self, what: str) -> InvariantViolation:
        return InvariantViolation(f"shadow mode: {what} must never reach the broker")

    def instruments(self, names: Sequence[str] | None = None) -> list[Instrument]:
        """Instrument metadata (read)."""
        return self.inner.instruments(names)

    def candles(self, instrument: str, granularity: str, **kwargs: Any) -> list[Candle]:
        """Candles (read)."""
        return self.inner.candles(instrument, granularity, **kwargs)

    def pricing_stream(self, instruments: Sequence[str], *, snapshot: bool = True) -> Iterator[Price | Heartbeat]:
        """The price stream (read)."""
        return self.inner.pricing_stream(instruments, snapshot=snapshot)

    def account_summary(self) -> AccountState:
        """The account summary (read)."""
        return self.inner.account_summary()

    def open_trades(self) -> list[TradeState]:
        """Open trades (read)."""
        return self.inner.open_trades()

    def open_positions(self) -> list[PositionState]:
        """Open positions (read)."""
        return self.inner.open_positions()

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
        """Close the inner client."""
        self.inner.close()
