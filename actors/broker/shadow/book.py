"""``ShadowBook``: the ``Broker`` of shadow mode, with a virtual account that fills from live prices.

Market data (instruments, candles, the pricing stream) is read through an inner, real broker;
everything that would change or report the account is answered from a virtual book instead, and
no order-path call ever reaches the inner broker: MARKET orders with SL/TP and client ids, trade
closes, SL/TP changes and order cancels, and the reads of what they produced (order and trade
look-ups by id or ``@clientID``, open trades, pending orders, the account summary,
transactions since an id and the transaction stream). The book is what the execution role, the
reconciler, the risk limits and ``ctl status`` see in shadow mode, in the same types and with the
same errors as the real broker, so no role has an ``if shadow`` branch.

- **Prices.** The book fills from the last bid/ask it was told about (``on_price``; its own
  ``pricing_stream`` also feeds every price through it). No price yet, or a non-tradeable one: the
  order is cancelled with ``MARKET_HALTED``, like OANDA's FOK cancel.
- **Fills** go through ``actors.core.fills`` (the same model as ``tradehost backtest``): buys at the
  ask, sells at the bid, ``slippage_pips`` worse; SL/TP of open trades trigger on ``on_price``
  (a long's on the bid, a short's on the ask). Orders are netted like OANDA's non-hedging
  account: an order against open trades closes them first, oldest first.
- **Checks** like the emulator's FOK checks: ``BOUNDS_VIOLATION``, ``STOP_LOSS_ON_FILL_LOSS``,
  ``TAKE_PROFIT_ON_FILL_LOSS``, ``INSUFFICIENT_MARGIN``; a request that cannot be formatted
  (``actors.broker.oanda.precision``) is refused before anything is recorded, as the real broker
  refuses to send it. A reused client id answers with the earlier outcome, as ``OandaBroker``
  resolves it. A P&L that cannot be converted to the home currency (no price of a conversion
  pair yet) cancels the order with ``SHADOW_NO_CONVERSION_RATE``.
- **Money.** The virtual balance starts from the real account's NAV when the book is created (or
  from its saved state); P&L is converted to the home currency with ``actors.core.money.quote_to_home``
  at the prices of the close (falling back to the rate at the open), rounded to 0.0001 like the
  emulator. NAV = balance + unrealized P&L at the current prices.
- **Persistence.** The book's records are ``actors.broker.shadow.state``; its file is a SQLite
  database (``actors.broker.shadow.store``): every change writes what it touched, in one
  transaction, so a change costs the same after 100,000 trades as after one, and a crash leaves
  the book after some whole change. A restart restores the book; a JSON book of an older version
  beside it (``<name>.json``) is migrated once (``migrated`` says so, and the execution role
  journals it as ``shadow.migrated``). A file that cannot be read raises ``ConfigError`` naming it
  (when unsure, do not trade). A book opened with ``read_only=True`` (a reader in another process,
  such as the reconciler) loads the writer's new changes before every read (it never sees half of
  one) and refuses order-path calls.
- **Threads.** One lock guards the book; the transaction stream waits on a condition of it.
  Nothing calls the inner broker while holding it.

The book is put together from its parts, one module each: ``base`` (the state, its persistence,
transactions and valuation), ``reads`` (the account as the roles read it), ``fills`` (prices,
fills and SL/TP triggers) and ``orders`` (the virtual order path); this module owns the
read-through market data and the class the factory builds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from actors.broker.shadow.orders import BookOrders
from actors.broker.shadow.state import STATE_VERSION
from actors.core.domain import Candle, Instrument, Price, PriceHeartbeat

__all__ = ["STATE_VERSION", "ShadowBook"]


class ShadowBook(BookOrders):
    """A ``Broker`` whose orders fill virtually from live bid/ask (the module docstring).

    Args:
        inner: the real broker: market data is read through it; its order path is never used.
        state_path: where the book is persisted (created on first use).
        slippage_pips: ``execution.slippage_pips``: market and stop-loss fills are this much worse.
        clock: the time of transactions while no price has been seen (otherwise the latest
            price's time, so replays are deterministic).
        read_only: a reader of a book another process writes: reloads the file when it changed,
            refuses every order-path call, never triggers SL/TP.
        heartbeat_s: the transaction stream's heartbeat interval.

    Raises:
        ConfigError: the state file exists but cannot be read, or (``read_only``) does not exist.
    """

    # --- Read-through market data ----------------------------------------------------------------
    def instruments(self, names: Sequence[str] | None = None) -> list[Instrument]:
        """Instrument metadata from the inner broker (read)."""
        found = self.inner.instruments(names)
        with self._lock:
            self._meta.update((i.name, i) for i in found)
        return found

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
        """Candles from the inner broker (read)."""
        return self.inner.candles(
            instrument, granularity, count=count, from_ts=from_ts, to_ts=to_ts, price=price, include_first=include_first
        )

    def latest_candles(
        self, instruments: Sequence[str], granularity: str, *, price: str = "M"
    ) -> dict[str, list[Candle]] | None:
        """The latest candles from the inner broker (read)."""
        return self.inner.latest_candles(instruments, granularity, price=price)

    def pricing_stream(self, instruments: Sequence[str], *, snapshot: bool = True) -> Iterator[Price | PriceHeartbeat]:
        """The inner broker's price stream; every price also goes through ``on_price``."""
        for item in self.inner.pricing_stream(instruments, snapshot=snapshot):
            if isinstance(item, Price):
                self.on_price(item)
            yield item

    def close(self) -> None:
        """End the transaction streams, close the book's file and the inner broker."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()
            self._close_store()
        self.inner.close()
