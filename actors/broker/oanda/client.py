"""``OandaBroker``: the ``Broker`` Protocol over oandapyV20, against OANDA or the emulator.

With ``actors.broker.oanda.session`` (its REST session), the only code of tradehost that imports
oandapyV20. It registers non-default base URLs
(the emulator, a proxy) as a new key of ``TRADING_ENVIRONMENTS`` (never overwriting "practice" or
"live"), always passes ``request_params={"timeout": ...}``, paces requests and new connections,
retries reads only (through one ``Retrier``), and translates every failure into the
``actors.core.errors`` hierarchy with ``raise ... from e``. An order submission is sent once; when its
outcome is unknown it is resolved by looking the client id up, never by sending it again. A
malformed answer is ``BrokerTemporaryError`` on a read, and ``BrokerAmbiguousError`` on an
order-path request (submit, close, cancel, SL/TP) that the broker answered: it may have been
carried out. Every REST attempt is reported to the optional ``on_request_outcome`` hook, so a
hung API is a health fact after its first timeout, not after the retries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from oandapyV20.endpoints import accounts, instruments, orders, pricing, trades, transactions
from oandapyV20.endpoints.apirequest import APIRequest
from oandapyV20.exceptions import V20Error

from actors.broker import (
    CloseResult,
    MarketOrderRequest,
    OrderResult,
    TradeOrdersResult,
    Transaction,
    TransactionHeartbeat,
    TransactionPage,
)
from actors.broker.oanda import parse as p
from actors.broker.oanda.precision import build_market_order, build_trade_orders, format_units
from actors.broker.oanda.session import OandaSession
from actors.broker.oanda.translate import error_from_fill_response
from actors.core.domain import (
    AccountState,
    Candle,
    Instrument,
    OrderState,
    Price,
    PriceHeartbeat,
    TradeState,
)
from actors.core.errors import BrokerAmbiguousError, BrokerError, BrokerRejectedError, BrokerTemporaryError
from actors.core.timefmt import format_rfc3339

__all__ = ["OandaBroker"]

log = logging.getLogger(__name__)


def _reason(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value else default


DUPLICATE_ID_REASONS = frozenset({"CLIENT_ORDER_ID_ALREADY_EXISTS", "CLIENT_TRADE_ID_ALREADY_EXISTS"})


class AccountCandlesLatest(APIRequest):  # type: ignore[misc,unused-ignore]  # untyped base (strict run)
    """``GET /v3/accounts/{accountID}/candles/latest`` (not among oandapyV20's endpoints): the
    latest candles for a csv list of ``INSTRUMENT:GRANULARITY:PRICE`` specifications, sent through
    the library's own ``API.request`` like every other endpoint."""

    def __init__(self, account_id: str, params: dict[str, str]) -> None:
        super().__init__(f"v3/accounts/{account_id}/candles/latest", method="GET")
        self.params = params


class OandaBroker(OandaSession):
    """The real broker adapter.

    Args:
        config: the broker section.
        credentials: token and account id.
        api_url: base URL override (e.g. a just-started emulator); default from ``config``.
        stream_url: stream base URL override; default ``api_url``.
        clock: monotonic seconds for pacing (injectable).
        sleep: blocking sleep for pacing, retries and look-ups (injectable).
        retrier: retry policy for reads.
        lookup_delays_s: waits between client-id look-ups after an ambiguous submission.
        on_request_outcome: called after every REST request attempt (each retry counts; streams
            do not) with ``(True, "ok")`` when the API answered (a 4xx reject is an answer) and
            ``(False, reason)`` on a timeout, a connection error, a 5xx, a 429 or an unreadable
            answer; ``reason`` is one line without the token. A hook that raises is logged and
            never breaks the request.
    """

    def __repr__(self) -> str:
        return f"OandaBroker(environment={self.environment!r}, account_id={self.account_id!r})"

    # Reference data and market data ----------------------------------------------------------
    def instruments(self, names: Sequence[str] | None = None) -> list[Instrument]:
        """Instrument metadata, fetched once and cached."""
        if not self._instruments or any(n not in self._instruments for n in names or ()):
            body = self._read(lambda: accounts.AccountInstruments(self.account_id), "instruments")
            fetched = [p.instrument(obj) for obj in p.children(body, "instruments")]
            self._instruments.update((inst.name, inst) for inst in fetched)
        if names is None:
            return list(self._instruments.values())
        missing = [n for n in names if n not in self._instruments]
        if missing:
            raise BrokerRejectedError(f"unknown instruments {missing}", reason="INSTRUMENT_UNKNOWN")
        return [self._instruments[n] for n in names]

    def instrument(self, name: str) -> Instrument:
        """Metadata of one instrument."""
        return self.instruments([name])[0]

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
        """Candles, oldest first (``to`` must not be in the future)."""
        params: dict[str, Any] = {"granularity": granularity, "price": price}
        if count is not None:
            params["count"] = count
        if from_ts is not None:
            params["from"] = format_rfc3339(from_ts)
            params["includeFirst"] = "true" if include_first else "false"
        if to_ts is not None:
            params["to"] = format_rfc3339(to_ts)
        body = self._read(lambda: instruments.InstrumentsCandles(instrument, params=params), "candles")
        return [p.candle(c) for c in p.children(body, "candles")]

    def latest_candles(
        self, instruments: Sequence[str], granularity: str, *, price: str = "M"
    ) -> dict[str, list[Candle]] | None:
        """The latest candles of every instrument in one request (``candles/latest``, through the
        same session, pacing and retries as every read); None when the broker answers 404 for the
        endpoint (the caller falls back to ``candles`` per instrument)."""
        specs = ",".join(f"{name}:{granularity}:{price}" for name in instruments)
        params = {"candleSpecifications": specs}
        try:
            body = self._read(lambda: AccountCandlesLatest(self.account_id, params=params), "latest candles")
        except BrokerError as e:
            cause = e.__cause__
            if isinstance(cause, V20Error) and cause.code == 404:
                return None
            raise
        out: dict[str, list[Candle]] = {}
        for entry in p.children(body, "latestCandles"):
            name = p.optional_text(entry, "instrument", "") or ""
            if name in instruments and p.optional_text(entry, "granularity", granularity) == granularity:
                out[name] = sorted((p.candle(c) for c in p.children(entry, "candles")), key=lambda c: c.ts)
        return out

    def pricing_stream(self, instruments: Sequence[str], *, snapshot: bool = True) -> Iterator[Price | PriceHeartbeat]:
        """Prices and heartbeats; a stream end, reset or stall raises BrokerTemporaryError."""
        params = {"instruments": ",".join(instruments), "snapshot": "true" if snapshot else "false"}
        for obj in self._stream(lambda: pricing.PricingStream(self.account_id, params=params), "pricing stream"):
            try:
                yield p.price_event(obj)
            except BrokerTemporaryError as e:
                # One unusable line (e.g. an empty book, which OANDA allows) is not a broken stream.
                log.warning("broker: pricing stream: skipped a line: %s", e)

    def on_price(self, price: Price) -> None:
        """A real broker prices its own fills: nothing to do."""

    def on_bar(self, instrument: str, candle: Candle, end_ns: int) -> None:
        """A real broker triggers its own SL/TP: nothing to do."""

    def transaction_stream(self) -> Iterator[Transaction | TransactionHeartbeat]:
        """New transactions and heartbeats; breaks raise BrokerTemporaryError."""
        for obj in self._stream(lambda: transactions.TransactionsStream(self.account_id), "transaction stream"):
            yield p.transaction_event(obj)

    # Account state ------------------------------------------------------------------------------
    def account_summary(self) -> AccountState:
        """Balance, NAV, margin and counts."""
        body = self._read(lambda: accounts.AccountSummary(self.account_id), "account summary")
        return p.account_state(p.child(body, "account"))

    def open_trades(self) -> list[TradeState]:
        """Open trades, newest first."""
        body = self._read(lambda: trades.OpenTrades(self.account_id), "open trades")
        return [p.trade_state(t) for t in p.children(body, "trades")]

    def pending_orders(self) -> list[OrderState]:
        """Pending orders including SL/TP."""
        body = self._read(lambda: orders.OrdersPending(self.account_id), "pending orders")
        return [p.order_state(o) for o in p.children(body, "orders")]

    def order(self, spec: str) -> OrderState:
        """An order by id or ``@clientID``."""
        body = self._read(lambda: orders.OrderDetails(self.account_id, spec), f"order {spec}")
        return p.order_state(p.child(body, "order"))

    def trade(self, spec: str) -> TradeState:
        """A trade by id or ``@clientTradeID``."""
        body = self._read(lambda: trades.TradeDetails(self.account_id, spec), f"trade {spec}")
        return p.trade_state(p.child(body, "trade"))

    def transactions_since(self, transaction_id: str) -> TransactionPage:
        """Transactions after ``transaction_id``."""
        params = {"id": transaction_id}
        body = self._read(
            lambda: transactions.TransactionsSinceID(self.account_id, params=params), "transactions since id"
        )
        return TransactionPage(
            transactions=tuple(p.transaction(t) for t in p.children(body, "transactions")),
            last_transaction_id=p.optional_text(body, "lastTransactionID", transaction_id) or transaction_id,
        )

    # Orders and trades ---------------------------------------------------------------------------
    def submit_market_order(self, request: MarketOrderRequest) -> OrderResult:
        """Send a MARKET order once.

        Raises:
            BrokerRejectedError: rejected (400) or created and cancelled (201 without a fill).
            BrokerTemporaryError: certainly not placed (429, connection refused).
            BrokerAmbiguousError: the outcome stayed unknown after the client-id look-ups, or the
                order filled and the fill cannot be read.
            BrokerFatalError: 401/403.
        """
        body = build_market_order(request, self.instrument(request.instrument))
        op = f"submit order @{request.client_id}"
        try:
            response = self._send(orders.OrderCreate(self.account_id, data=body), op, order_post=True)
        except BrokerAmbiguousError as e:
            log.warning("broker: %s; resolving through the client id", e)
            return self._resolve(request.client_id, e)
        except BrokerRejectedError as e:
            if e.reason not in DUPLICATE_ID_REASONS:
                raise
            # Our id is taken: an earlier submission of this very intent may have filled.
            log.warning("broker: %s; resolving through the client id", e)
            return self._resolve(request.client_id, BrokerAmbiguousError(str(e)))
        outcome = error_from_fill_response(response, op=op)
        if isinstance(outcome, BrokerAmbiguousError):
            return self._resolve(request.client_id, outcome)
        if outcome is not None:
            raise outcome
        try:
            return p.fill_result(
                response["orderFillTransaction"],
                client_id=request.client_id,
                last_transaction_id=p.optional_text(response, "lastTransactionID", "") or "",
            )
        except BrokerError as e:  # it filled: whatever else is wrong, "not placed" would be a lie
            raise BrokerAmbiguousError(f"{op}: filled, but the fill could not be read: {e}") from e

    def _transaction(self, tx_id: str) -> dict[str, Any]:
        body = self._read(lambda: transactions.TransactionDetails(self.account_id, tx_id), f"transaction {tx_id}")
        return dict(p.child(body, "transaction"))

    def _transaction_after_lag(self, tx_id: str) -> dict[str, Any]:
        # The read side can lag the write side (OANDA.md 8.2): a 404 right after may mean "not yet".
        for delay_s in self._lookup_delays_s:
            try:
                return self._transaction(tx_id)
            except (BrokerTemporaryError, BrokerRejectedError):
                self._sleep(delay_s)
        return self._transaction(tx_id)

    def _resolve(self, client_id: str, cause: BrokerAmbiguousError) -> OrderResult:
        last_error: BrokerError = cause
        for attempt, delay_s in enumerate((0.0, *self._lookup_delays_s)):
            if delay_s:
                self._sleep(delay_s)
            try:
                found = self._send(orders.OrderDetails(self.account_id, f"@{client_id}"), f"resolve @{client_id}")
            except (BrokerRejectedError, BrokerTemporaryError) as e:
                last_error = e
                log.info("broker: look-up %d of @%s: %s", attempt + 1, client_id, e)
                continue
            try:
                order = p.child(found, "order")
                state = p.optional_text(order, "state")
                fill_id = p.optional_text(order, "fillingTransactionID")
                cancel_id = p.optional_text(order, "cancellingTransactionID")
                last_id = p.optional_text(found, "lastTransactionID", "") or ""
            except BrokerTemporaryError as e:
                last_error = BrokerAmbiguousError(f"order @{client_id}: the look-up answer cannot be read: {e}")
                log.info("broker: look-up %d of @%s: %s", attempt + 1, client_id, e)
                continue
            if state == "FILLED" and fill_id:
                try:
                    tx = self._transaction_after_lag(fill_id)
                    return p.fill_result(tx, client_id=client_id, last_transaction_id=last_id, resolved_by_lookup=True)
                except BrokerError as e:  # known filled: never report it as rejected or retryable
                    raise BrokerAmbiguousError(
                        f"order @{client_id} FILLED (fill transaction {fill_id}) but the fill could not be read: {e}"
                    ) from e
            if state == "CANCELLED" and cancel_id:
                try:
                    tx = self._transaction_after_lag(cancel_id)
                except BrokerError:
                    tx = {}
                reason = _reason(tx.get("reason"), "CANCELLED")
                raise BrokerRejectedError(
                    f"order @{client_id} was cancelled: {reason}", reason=reason, transaction=tx
                ) from cause
            last_error = BrokerAmbiguousError(f"order @{client_id} is {state}")
        raise BrokerAmbiguousError(
            f"order @{client_id}: outcome unknown after {1 + len(self._lookup_delays_s)} look-ups ({last_error})"
        ) from cause

    def cancel_order(self, spec: str) -> str:
        """Cancel a pending order (not retried); returns the cancel transaction id.

        Raises:
            BrokerRejectedError: refused (e.g. ``ORDER_DOESNT_EXIST``): nothing was cancelled.
            BrokerTemporaryError: certainly not sent (429, connection refused).
            BrokerAmbiguousError: timeout, reset, 5xx or an answer that cannot be read: it may have
                been cancelled; re-read the order before deciding anything.
        """
        op = f"cancel order {spec}"
        body = self._send(orders.OrderCancel(self.account_id, spec), op, order_post=True)
        try:
            return p.text(p.child(body, "orderCancelTransaction"), "id")
        except BrokerTemporaryError as e:
            raise BrokerAmbiguousError(f"{op}: answered, but the answer cannot be read: {e}") from e

    def close_trade(self, spec: str, units: Decimal | None = None) -> CloseResult:
        """Close a trade fully or partially (never retried).

        Raises:
            BrokerRejectedError: refused, or the closing order was cancelled: nothing was closed.
            BrokerTemporaryError: certainly not sent (429, connection refused), or the trade read
                that a partial close needs first failed.
            BrokerAmbiguousError: timeout, reset, 5xx or an answer that cannot be read: it may have
                executed; re-read the trade (``currentUnits``) before deciding anything.
        """
        data = None
        if units is not None:
            trade = self.trade(spec)
            data = {"units": format_units(abs(units), self.instrument(trade.instrument))}
        op = f"close trade {spec}"
        body = self._send(trades.TradeClose(self.account_id, spec, data=data), op, order_post=True)
        outcome = error_from_fill_response(body, op=op)
        if outcome is not None:
            raise outcome
        try:
            return p.close_result(
                body["orderFillTransaction"],
                trade_id=spec,
                last_transaction_id=p.optional_text(body, "lastTransactionID", "") or "",
            )
        except BrokerTemporaryError as e:  # it filled: "retry" would close twice
            raise BrokerAmbiguousError(f"{op}: filled, but the answer cannot be read: {e}") from e

    def set_trade_orders(
        self,
        spec: str,
        *,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        cancel_stop_loss: bool = False,
        cancel_take_profit: bool = False,
    ) -> TradeOrdersResult:
        """Set/replace/cancel SL and TP (idempotent in effect; sent once).

        Raises:
            BrokerRejectedError: a requested stop loss or take profit was not created (rejected,
                or created and cancelled at once): the trade may be unprotected.
            BrokerAmbiguousError: timeout, reset, 5xx, or an answer (or the re-read after it) that
                cannot be read: re-read the trade.
            BrokerTemporaryError: the trade or instrument read before sending failed (nothing sent),
                or certainly not sent (429, connection refused).
        """
        trade = self.trade(spec)
        data = build_trade_orders(
            self.instrument(trade.instrument),
            stop_loss=stop_loss,
            take_profit=take_profit,
            cancel_stop_loss=cancel_stop_loss,
            cancel_take_profit=cancel_take_profit,
        )
        op = f"set orders of trade {spec}"
        body = self._send(trades.TradeCRCDO(self.account_id, spec, data=data), op, order_post=True)
        created: dict[str, str | None] = {}
        for key, prefix, requested in (
            ("stopLoss", "stopLossOrder", stop_loss is not None),
            ("takeProfit", "takeProfitOrder", take_profit is not None),
        ):
            if not requested:
                continue
            # The answer, not a re-read (which can lag), says whether the order now exists.
            for bad in (f"{prefix}RejectTransaction", f"{prefix}CreatedCancelTransaction"):
                refusal = body.get(bad)
                if not refusal:
                    continue
                if not isinstance(refusal, dict):
                    raise BrokerAmbiguousError(f"{op}: malformed broker answer: {bad!r} is not an object")
                reason = _reason(refusal.get("rejectReason"), "") or _reason(refusal.get("reason"), "NOT_CREATED")
                raise BrokerRejectedError(f"{op}: {key} not in place: {reason}", reason=reason, transaction=refusal)
            if not body.get(f"{prefix}Transaction"):
                raise BrokerAmbiguousError(f"{op}: the answer does not show the new {key}")
            try:
                created[key] = p.text(p.child(body, f"{prefix}Transaction"), "id")
            except BrokerTemporaryError as e:
                raise BrokerAmbiguousError(f"{op}: carried out, but the answer cannot be read: {e}") from e
        try:
            last_id = p.optional_text(body, "lastTransactionID", "") or ""
            # The ids the answer does not give (a side left alone or cancelled) come from a re-read.
            after = None if len(created) == 2 else self.trade(trade.id)
        except BrokerError as e:  # carried out: a "temporary" error would invite a resend
            raise BrokerAmbiguousError(f"{op}: carried out, but its result cannot be read: {e}") from e
        return TradeOrdersResult(
            trade_id=trade.id,
            stop_loss_order_id=created.get("stopLoss", after.stop_loss_order_id if after else None),
            take_profit_order_id=created.get("takeProfit", after.take_profit_order_id if after else None),
            last_transaction_id=last_id,
        )

    def __enter__(self) -> OandaBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
