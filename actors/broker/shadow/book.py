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
- **Persistence.** The book's records and file format are ``actors.broker.shadow.state``. Every
  change is written to ``state_path`` crash-safely (``actors.core.atomicfile.write_atomically``:
  temporary file, fsync, rename, directory fsync); a restart restores the book. A file that
  cannot be read raises ``ConfigError`` naming it (when unsure, do not trade). A book opened
  with ``read_only=True`` (a reader in another process, such as the reconciler) re-reads the file
  whenever it changed and refuses order-path calls.
- **Threads.** One lock guards the book; the transaction stream waits on a condition of it.
  Nothing calls the inner broker while holding it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

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
from actors.broker.oanda.precision import build_market_order, build_trade_orders
from actors.broker.shadow.state import STATE_VERSION, Book, BookOrder, BookTrade, read_book
from actors.core.atomicfile import write_atomically
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
from actors.core.errors import BrokerRejectedError, ConfigError, InvariantViolation
from actors.core.fills import ExitReason, bar_exit, market_fill, slippage_price, tick_exit
from actors.core.money import quote_to_home
from actors.core.timefmt import format_rfc3339, parse_time

__all__ = ["STATE_VERSION", "ShadowBook"]

_MONEY = Decimal("0.0001")
_ZERO = Decimal(0)
_OANDA_EXIT = {ExitReason.STOP_LOSS: "STOP_LOSS_ORDER", ExitReason.TAKE_PROFIT: "TAKE_PROFIT_ORDER"}


def _rejected(message: str, reason: str, transaction: dict[str, Any] | None = None) -> BrokerRejectedError:
    return BrokerRejectedError(message, reason=reason, transaction=transaction)


class ShadowBook:
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

    # --- Prices --------------------------------------------------------------------------------
    def on_price(self, price: Price) -> None:
        """Take a new bid/ask: it prices later fills, and open trades' SL/TP trigger on it."""
        with self._lock:
            self._quotes[price.instrument] = price
            self._now_ns = max(self._now_ns, price.ts)
            if self.read_only or not price.tradeable:
                return
            meta = self._meta.get(price.instrument)
            if meta is not None:
                if self._trigger(price, meta):
                    self._save()
                    self._changed.notify_all()
                return
            if not self._open(price.instrument):
                return
        # Open trades restored from the saved book, metadata not read yet: read it (not under
        # the lock), then trigger.
        meta = self._instrument(price.instrument)
        with self._lock:
            if self._trigger(self._quotes[price.instrument], meta):
                self._save()
                self._changed.notify_all()

    def on_bar(self, instrument: str, candle: Candle, end_ns: int) -> None:
        """A closed bar: SL/TP its range reached that no streamed price did fire now.

        The stream (OANDA's as much as the emulator's) is a thinned view of the prices a broker's
        SL/TP see; the bar's bid/ask range is not. A trade open since the bar's first tenth is
        checked with the backtest's bar rule (``fills.bar_exit``: a gap at the open fills there,
        the stop first when both could have hit), so shadow fills and backtest fills agree.
        """
        if candle.bid is None or candle.ask is None:
            return
        with self._lock:
            meta = self._meta.get(instrument)
            if self.read_only or meta is None:
                return
            self._now_ns = max(self._now_ns, end_ns)
            since_open_ns = candle.ts + (end_ns - candle.ts) // 10
            slippage = slippage_price(self._slippage_pips, meta)
            fired = False
            for trade in sorted(self._open(instrument), key=lambda t: int(t.id)):
                if trade.open_ts > since_open_ns:
                    continue  # entered late in the bar: its range before the entry is not the trade's
                sign = 1 if trade.current_units > 0 else -1
                side = candle.bid if sign > 0 else candle.ask
                sl, tp = self._levels(trade)
                hit = bar_exit(
                    sign, sl, tp, float(side.o), float(side.h), float(side.l),
                    slippage=slippage, precision=meta.display_precision,
                )  # fmt: skip
                if hit is not None:
                    self._fill_exit(trade, *hit, meta)
                    fired = True
            if fired:
                self._save()
                self._changed.notify_all()

    def _trigger(self, price: Price, meta: Instrument) -> bool:
        fired = False
        bid, ask = float(price.bid), float(price.ask)
        slippage = slippage_price(self._slippage_pips, meta)
        for trade in sorted(self._open(price.instrument), key=lambda t: int(t.id)):
            sl, tp = self._levels(trade)
            sign = 1 if trade.current_units > 0 else -1
            hit = tick_exit(sign, sl, tp, bid, ask, slippage=slippage, precision=meta.display_precision)
            if hit is not None:
                self._fill_exit(trade, *hit, meta)
                fired = True
        return fired

    @staticmethod
    def _levels(trade: BookTrade) -> tuple[float | None, float | None]:
        sl = None if trade.stop_loss_price is None else float(trade.stop_loss_price)
        tp = None if trade.take_profit_price is None else float(trade.take_profit_price)
        return sl, tp

    def _fill_exit(self, trade: BookTrade, reason: ExitReason, fill: float, meta: Instrument) -> None:
        order_id = trade.stop_loss_order_id if reason is ExitReason.STOP_LOSS else trade.take_profit_order_id
        order = self._book.orders[order_id or ""]
        price_dec = self._price_decimal(fill, meta)
        fill_tx = self._tx(
            "ORDER_FILL", orderID=order.id, instrument=trade.instrument, units=format(-trade.current_units, "f"),
            price=format(price_dec, "f"), reason=_OANDA_EXIT[reason],
        )  # fmt: skip
        order.state, order.filling_transaction_id = "FILLED", fill_tx["id"]
        fill_tx["tradesClosed"] = [self._close_units(trade, abs(trade.current_units), price_dec, fill_tx)]

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

    def pricing_stream(self, instruments: Sequence[str], *, snapshot: bool = True) -> Iterator[Price | PriceHeartbeat]:
        """The inner broker's price stream; every price also goes through ``on_price``."""
        for item in self.inner.pricing_stream(instruments, snapshot=snapshot):
            if isinstance(item, Price):
                self.on_price(item)
            yield item

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

    # --- Virtual account reads -----------------------------------------------------------------
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
                pending_order_count=sum(1 for o in self._book.orders.values() if o.state == "PENDING"),
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
            return [self._order_state(o) for o in self._book.orders.values() if o.state == "PENDING"]

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
            found = tuple(self._transaction(t) for t in self._book.transactions if int(t["id"]) > after)
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
                new = [self._transaction(t) for t in self._book.transactions if int(t["id"]) > seen]
                seen = self._book.next_id - 1
                beat = TransactionHeartbeat(ts=self._ts(), last_transaction_id=self._last_id())
            yield from new or (beat,)

    # --- Order path (virtual) ------------------------------------------------------------------
    def _writable(self, what: str) -> None:
        if self.read_only:
            raise InvariantViolation(f"shadow book {self.path} is read-only here: {what} belongs to its writer")

    def _quote(self, instrument: str) -> Price | None:
        quote = self._quotes.get(instrument)
        return quote if quote is not None and quote.tradeable else None

    def submit_market_order(self, request: MarketOrderRequest) -> OrderResult:
        """Fill a MARKET order virtually at the current bid/ask (FOK), with its SL/TP.

        Raises:
            BrokerRejectedError: invalid request (nothing recorded), or cancelled (recorded):
                ``MARKET_HALTED``, ``BOUNDS_VIOLATION``, ``STOP_LOSS_ON_FILL_LOSS``,
                ``TAKE_PROFIT_ON_FILL_LOSS``, ``INSUFFICIENT_MARGIN``, ``SHADOW_NO_CONVERSION_RATE``;
                or an earlier order with the same client id was cancelled; or the trade client id
                is taken (``CLIENT_TRADE_ID_ALREADY_EXISTS``, nothing recorded).
            InvariantViolation: the book is read-only.
        """
        self._writable(f"order @{request.client_id}")
        meta = self._instrument(request.instrument)
        body = build_market_order(request, meta)["order"]  # refuses what the real broker would not send
        units = Decimal(body["units"])
        sl = None if "stopLossOnFill" not in body else Decimal(body["stopLossOnFill"]["price"])
        tp = None if "takeProfitOnFill" not in body else Decimal(body["takeProfitOnFill"]["price"])
        with self._lock:
            earlier = self._book.order_by_client.get(request.client_id)
            if earlier is not None:
                return self._earlier_outcome(self._book.orders[earlier])
            if request.trade_client_id and request.trade_client_id in self._book.trade_by_client:
                raise _rejected(f"trade client id {request.trade_client_id} is taken", "CLIENT_TRADE_ID_ALREADY_EXISTS")
            create = self._tx("MARKET_ORDER", **{k: v for k, v in body.items() if k != "type"}, reason="CLIENT_ORDER")
            order = BookOrder(
                id=create["id"], type="MARKET", state="PENDING", instrument=meta.name, units=units,
                client_id=request.client_id,
            )  # fmt: skip
            self._book.orders[order.id] = order
            self._book.order_by_client[request.client_id] = order.id
            problem = self._fok_problem(meta, units, sl, tp, body.get("priceBound"))
            if problem is not None:
                cancel = self._cancel(order, problem)
                self._save()
                self._changed.notify_all()
                raise _rejected(f"order @{request.client_id} cancelled: {problem}", problem, cancel)
            result = self._fill(order, meta, units=units, sl=sl, tp=tp, request=request)
            self._save()
            self._changed.notify_all()
            return result

    def _earlier_outcome(self, order: BookOrder) -> OrderResult:
        # As OandaBroker resolves a reused client id: the earlier fill, or the earlier cancel.
        if order.state == "FILLED" and order.filling_transaction_id is not None:
            fill = next(t for t in self._book.transactions if t["id"] == order.filling_transaction_id)
            return OrderResult(
                order_id=order.id, client_id=order.client_id or "", instrument=fill["instrument"],
                units=Decimal(fill["units"]), fill_transaction_id=fill["id"], fill_price=Decimal(fill["price"]),
                trade_id=(fill.get("tradeOpened") or {}).get("tradeID"), last_transaction_id=self._last_id(),
                resolved_by_lookup=True,
            )  # fmt: skip
        cancel = next((t for t in self._book.transactions if t["id"] == order.cancelling_transaction_id), {})
        reason = str(cancel.get("reason", "CANCELLED"))
        raise _rejected(f"order @{order.client_id} was cancelled: {reason}", reason, dict(cancel))

    def _fok_problem(
        self, meta: Instrument, units: Decimal, sl: Decimal | None, tp: Decimal | None, bound: str | None
    ) -> str | None:
        quote = self._quote(meta.name)
        if quote is None:
            return "MARKET_HALTED"
        price = quote.ask if units > 0 else quote.bid
        if bound is not None and ((units > 0 and price > Decimal(bound)) or (units < 0 and price < Decimal(bound))):
            return "BOUNDS_VIOLATION"
        trigger = quote.bid if units > 0 else quote.ask
        if sl is not None and ((units > 0 and sl >= trigger) or (units < 0 and sl <= trigger)):
            return "STOP_LOSS_ON_FILL_LOSS"
        if tp is not None and ((units > 0 and tp <= trigger) or (units < 0 and tp >= trigger)):
            return "TAKE_PROFIT_ON_FILL_LOSS"
        if self._factor(meta.name) is None:
            return "SHADOW_NO_CONVERSION_RATE"
        opposite = sum((abs(t.current_units) for t in self._opposite(meta.name, units)), _ZERO)
        needed = self._margin(meta.name, max(_ZERO, abs(units) - opposite))
        open_trades = self._open()
        used = sum((self._margin(t.instrument, t.current_units) for t in open_trades), _ZERO)
        nav = self._book.balance + sum((self._unrealized(t) for t in open_trades), _ZERO)
        if needed > 0 and used + needed > nav:
            return "INSUFFICIENT_MARGIN"
        return None

    def _opposite(self, instrument: str, units: Decimal) -> list[BookTrade]:
        return sorted(
            (t for t in self._open(instrument) if (t.current_units > 0) != (units > 0)), key=lambda t: int(t.id)
        )

    def _cancel(self, order: BookOrder, reason: str, **extra: Any) -> dict[str, Any]:
        tx = self._tx("ORDER_CANCEL", orderID=order.id, clientOrderID=order.client_id, reason=reason, **extra)
        order.state, order.cancelling_transaction_id = "CANCELLED", tx["id"]
        return tx

    def _fill(
        self,
        order: BookOrder,
        meta: Instrument,
        *,
        units: Decimal,
        sl: Decimal | None,
        tp: Decimal | None,
        request: MarketOrderRequest,
    ) -> OrderResult:
        quote = self._quotes[meta.name]
        sign = 1 if units > 0 else -1
        slippage = slippage_price(self._slippage_pips, meta)
        raw_price = market_fill(
            sign, float(quote.bid), float(quote.ask), slippage=slippage, precision=meta.display_precision
        )
        price = self._price_decimal(raw_price, meta)
        fill = self._tx(
            "ORDER_FILL", orderID=order.id, clientOrderID=order.client_id, instrument=meta.name,
            units=format(units, "f"), price=format(price, "f"), reason="MARKET_ORDER",
        )  # fmt: skip
        remaining, closed, reduced = abs(units), [], None
        for trade in self._opposite(meta.name, units):
            if remaining == 0:
                break
            amount = min(remaining, abs(trade.current_units))
            entry = self._close_units(trade, amount, price, fill)
            remaining -= amount
            if trade.state == "CLOSED":
                closed.append(entry)
            else:
                reduced = entry
        if closed:
            fill["tradesClosed"] = closed
        if reduced is not None:
            fill["tradeReduced"] = reduced
        trade_id = None
        if remaining > 0:
            trade = self._open_trade(fill, meta, units=sign * remaining, price=price, sl=sl, tp=tp, request=request)
            trade_id = trade.id
        entries = [*closed, reduced] if reduced is not None else closed
        fill["pl"] = format(sum((Decimal(e["realizedPL"]) for e in entries), _ZERO), "f")
        fill["accountBalance"] = format(self._book.balance, "f")
        order.state, order.filling_transaction_id, order.trade_opened_id = "FILLED", fill["id"], trade_id
        return OrderResult(
            order_id=order.id, client_id=request.client_id, instrument=meta.name, units=units,
            fill_transaction_id=fill["id"], fill_price=price, trade_id=trade_id, last_transaction_id=self._last_id(),
        )  # fmt: skip

    def _open_trade(
        self,
        fill: dict[str, Any],
        meta: Instrument,
        *,
        units: Decimal,
        price: Decimal,
        sl: Decimal | None,
        tp: Decimal | None,
        request: MarketOrderRequest,
    ) -> BookTrade:
        trade = BookTrade(
            id=fill["id"], instrument=meta.name, price=price, open_ts=self._ts(), initial_units=units,
            current_units=units, realized_pl=_ZERO, open_factor=self._factor(meta.name) or Decimal(1),
            client_id=request.trade_client_id, client_tag=request.tag,
        )  # fmt: skip
        self._book.trades[trade.id] = trade
        if trade.client_id:
            self._book.trade_by_client[trade.client_id] = trade.id
        opened: dict[str, Any] = {"tradeID": trade.id, "units": format(units, "f"), "price": format(price, "f")}
        if request.trade_client_id or request.tag:
            ext = {"id": request.trade_client_id, "tag": request.tag}
            opened["clientExtensions"] = {k: v for k, v in ext.items() if v}
        fill["tradeOpened"] = opened
        if tp is not None:
            self._add_dependent(trade, "TAKE_PROFIT", tp, reason="ON_FILL", fill_id=fill["id"])
        if sl is not None:
            self._add_dependent(trade, "STOP_LOSS", sl, reason="ON_FILL", fill_id=fill["id"])
        return trade

    def _add_dependent(self, trade: BookTrade, kind: str, price: Decimal, *, reason: str, **extra: Any) -> str:
        tx = self._tx(f"{kind}_ORDER", tradeID=trade.id, clientTradeID=trade.client_id, price=format(price, "f"),
                      timeInForce="GTC", reason=reason, **extra)  # fmt: skip
        self._book.orders[tx["id"]] = BookOrder(
            id=tx["id"], type=kind, state="PENDING", instrument=trade.instrument, price=price, trade_id=trade.id
        )
        if kind == "STOP_LOSS":
            trade.stop_loss_order_id, trade.stop_loss_price = tx["id"], price
        else:
            trade.take_profit_order_id, trade.take_profit_price = tx["id"], price
        return str(tx["id"])

    def _close_units(self, trade: BookTrade, amount: Decimal, price: Decimal, fill: dict[str, Any]) -> dict[str, Any]:
        # Close ``amount`` (positive) of ``trade`` at ``price``; the trade's SL/TP go when it closes.
        sign = 1 if trade.current_units > 0 else -1
        factor = self._factor(trade.instrument) or trade.open_factor
        pl = ((price - trade.price) * sign * amount * factor).quantize(_MONEY)
        trade.current_units -= sign * amount
        trade.realized_pl += pl
        self._book.balance += pl
        if trade.current_units == 0:
            trade.state, trade.close_ts = "CLOSED", self._ts()
            for order_id in (trade.take_profit_order_id, trade.stop_loss_order_id):
                dependent = self._book.orders.get(order_id or "")
                if dependent is not None and dependent.state == "PENDING":
                    self._cancel(dependent, "LINKED_TRADE_CLOSED", closedTradeID=trade.id)
        fill["accountBalance"] = format(self._book.balance, "f")
        fill.setdefault("pl", format(pl, "f"))
        return {"tradeID": trade.id, "units": format(-sign * amount, "f"), "price": format(price, "f"),
                "realizedPL": format(pl, "f")}  # fmt: skip

    def _open_trade_instrument(self, spec: str) -> str:
        with self._lock:
            trade = self._find_trade(spec)
            if trade.state != "OPEN":
                raise _rejected(f"trade {spec} is not open", "NO_SUCH_TRADE")
            return trade.instrument

    def close_trade(self, spec: str, units: Decimal | None = None) -> CloseResult:
        """Close a virtual trade (all of it, or ``units`` of it) at the current bid/ask.

        Raises:
            BrokerRejectedError: no such open trade, units beyond its size, or ``MARKET_HALTED``.
            InvariantViolation: the book is read-only.
        """
        self._writable(f"close of trade {spec}")
        meta = self._instrument(self._open_trade_instrument(spec))
        with self._lock:
            trade = self._find_trade(spec)
            if trade.state != "OPEN":
                raise _rejected(f"trade {spec} is not open", "NO_SUCH_TRADE")
            size = abs(trade.current_units)
            amount = size if units is None else abs(units)
            if amount <= 0 or amount > size:
                raise _rejected(f"close of {amount} units of trade {trade.id} ({size})",
                                "CLOSE_TRADE_UNITS_EXCEED_TRADE_SIZE")  # fmt: skip
            sign = 1 if trade.current_units > 0 else -1
            create = self._tx(
                "MARKET_ORDER", instrument=trade.instrument, units=format(-sign * amount, "f"), timeInForce="FOK",
                positionFill="REDUCE_ONLY", reason="TRADE_CLOSE", tradeClose={"tradeID": trade.id},
            )  # fmt: skip
            order = BookOrder(id=create["id"], type="MARKET", state="PENDING", instrument=trade.instrument,
                           units=-sign * amount)  # fmt: skip
            self._book.orders[order.id] = order
            quote = self._quote(trade.instrument)
            if quote is None:
                cancel = self._cancel(order, "MARKET_HALTED")
                self._save()
                self._changed.notify_all()
                raise _rejected(f"close of trade {trade.id} cancelled: MARKET_HALTED", "MARKET_HALTED", cancel)
            slippage = slippage_price(self._slippage_pips, meta)
            raw_price = market_fill(
                -sign, float(quote.bid), float(quote.ask), slippage=slippage, precision=meta.display_precision
            )
            price = self._price_decimal(raw_price, meta)
            fill = self._tx(
                "ORDER_FILL", orderID=order.id, instrument=trade.instrument, units=format(-sign * amount, "f"),
                price=format(price, "f"), reason="MARKET_ORDER_TRADE_CLOSE",
            )  # fmt: skip
            entry = self._close_units(trade, amount, price, fill)
            fill["tradesClosed" if trade.state == "CLOSED" else "tradeReduced"] = (
                [entry] if trade.state == "CLOSED" else entry
            )
            order.state, order.filling_transaction_id = "FILLED", fill["id"]
            self._save()
            self._changed.notify_all()
            return CloseResult(
                trade_id=trade.id, units=-sign * amount, price=price, realized_pl=Decimal(entry["realizedPL"]),
                fill_transaction_id=fill["id"], last_transaction_id=self._last_id(),
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
        """Set, replace or cancel a virtual trade's SL/TP (a crossed level triggers on the next price).

        Raises:
            BrokerRejectedError: no such open trade, or an invalid request.
            InvariantViolation: the book is read-only.
        """
        self._writable(f"SL/TP change of trade {spec}")
        meta = self._instrument(self._open_trade_instrument(spec))
        with self._lock:
            trade = self._find_trade(spec)
            if trade.state != "OPEN":
                raise _rejected(f"trade {spec} is not open", "NO_SUCH_TRADE")
            body = build_trade_orders(
                meta, stop_loss=stop_loss, take_profit=take_profit,
                cancel_stop_loss=cancel_stop_loss, cancel_take_profit=cancel_take_profit,
            )  # fmt: skip
            for key, kind in (("takeProfit", "TAKE_PROFIT"), ("stopLoss", "STOP_LOSS")):
                if key not in body:
                    continue
                existing_id = trade.take_profit_order_id if kind == "TAKE_PROFIT" else trade.stop_loss_order_id
                existing = self._book.orders.get(existing_id or "")
                if body[key] is None:
                    if existing is not None and existing.state == "PENDING":
                        self._cancel(existing, "CLIENT_REQUEST")
                    if kind == "TAKE_PROFIT":
                        trade.take_profit_order_id, trade.take_profit_price = None, None
                    else:
                        trade.stop_loss_order_id, trade.stop_loss_price = None, None
                    continue
                price = Decimal(body[key]["price"])
                if existing is not None and existing.state == "PENDING":
                    cancel = self._cancel(existing, "CLIENT_REQUEST_REPLACED")
                    self._add_dependent(trade, kind, price, reason="REPLACEMENT", replacesOrderID=existing.id,
                                        cancellingTransactionID=cancel["id"])  # fmt: skip
                else:
                    self._add_dependent(trade, kind, price, reason="CLIENT_ORDER")
            quote = self._quote(trade.instrument)
            if quote is not None:
                self._trigger(quote, meta)
            self._save()
            self._changed.notify_all()
            return TradeOrdersResult(
                trade_id=trade.id,
                stop_loss_order_id=trade.stop_loss_order_id,
                take_profit_order_id=trade.take_profit_order_id,
                last_transaction_id=self._last_id(),
            )

    def cancel_order(self, spec: str) -> str:
        """Cancel a pending virtual SL/TP order; returns the cancel transaction id.

        Raises:
            BrokerRejectedError: no such order, or it is not pending (``ORDER_DOESNT_EXIST``).
            InvariantViolation: the book is read-only.
        """
        self._writable(f"cancel of order {spec}")
        with self._lock:
            order = self._find_order(spec)
            if order.state != "PENDING":
                raise _rejected(f"order {spec} is not pending", "ORDER_DOESNT_EXIST")
            tx = self._cancel(order, "CLIENT_REQUEST")
            trade = self._book.trades.get(order.trade_id or "")
            if trade is not None and trade.stop_loss_order_id == order.id:
                trade.stop_loss_order_id, trade.stop_loss_price = None, None
            if trade is not None and trade.take_profit_order_id == order.id:
                trade.take_profit_order_id, trade.take_profit_price = None, None
            self._save()
            self._changed.notify_all()
            return str(tx["id"])

    def close(self) -> None:
        """End the transaction streams and close the inner broker."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()
        self.inner.close()
