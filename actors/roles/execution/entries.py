"""The order desk's entries: an intent checked again at send time, sent once, and its outcome.

An intent is refused before it leaves (no trading permit, stale, missing stops, a trade already
open at the broker), else journaled ``exec.sending`` and sent once as a FOK market order; its
fill, cancel or reject is journaled and reported; an ambiguous outcome is resolved by the client
id, never by sending again, and past ``execution.resolve_timeout_s`` latches no-trade. At start,
intents journaled as sent without an outcome are resolved the same way.
"""

from __future__ import annotations

import threading
from decimal import Decimal

from actors.broker import Broker, MarketOrderRequest
from actors.core.domain import InstrumentId, OrderState
from actors.core.errors import BrokerAmbiguousError, BrokerError, BrokerFatalError, BrokerRejectedError
from actors.core.fills import slippage_pips
from actors.roles.execution.deskbase import DeskBase
from actors.roles.execution.memos import TradeMemo, save_memos
from actors.roles.execution.orders import MissingStops, intent_from_rows, market_order
from actors.runtime.journalrows import (
    ExecAmbiguousRow,
    ExecCancelledRow,
    ExecFilledRow,
    ExecRejectedRow,
    ExecResolvedFillRow,
    ExecResolvedRow,
    ExecSendingRow,
)
from actors.runtime.messages import ExecutionReport, RiskIntent

RESOLVE_POLL_S = 1.0
VIEW_WAIT_S = 0.05  # how long an entry waits for the stream to bring the desk's own last transaction


class EntryDesk(DeskBase):
    """The order desk's entries (see the module docstring)."""

    def _submit(self, broker: Broker, intent: RiskIntent, corr: str | None, stop: threading.Event) -> None:
        request, refusal, checked_by = self._checked_at_send_time(broker, intent)
        if request is None or refusal:
            self.journal(
                ExecRejectedRow(
                    intent_id=intent.intent_id,
                    instrument=intent.instrument,
                    model_version=intent.model_version,
                    reason=refusal,
                    sent=False,
                ),
                corr=corr,
            )
            self._report(
                ExecutionReport(
                    status="REJECTED",
                    instrument=intent.instrument,
                    intent_id=intent.intent_id,
                    reason=refusal,
                    model_version=intent.model_version,
                ),
                corr,
            )
            return
        self.journal(
            ExecSendingRow(
                intent_id=intent.intent_id,
                instrument=intent.instrument,
                model_version=intent.model_version,
                units=format(request.units, "f"),
                stop_loss=intent.stop_loss,
                take_profit=intent.take_profit,
                client_id=request.client_id,
                tag=request.tag,
                position_check=checked_by,
            ),
            corr=corr,
        )
        # Taken: from here the risk role counts the intent until its outcome, however long that takes.
        self._report(
            ExecutionReport(
                status="SENDING",
                instrument=intent.instrument,
                intent_id=intent.intent_id,
                model_version=intent.model_version,
            ),
            corr,
        )
        self._send(broker, intent, request, corr, stop)

    def _checked_at_send_time(
        self, broker: Broker, intent: RiskIntent
    ) -> tuple[MarketOrderRequest | None, str, str | None]:
        """The order for ``intent``, or why it must not leave: no trading permit, stale, without
        valid stops, or a trade already open on the instrument at the broker; and where the open
        trades were checked ("stream" or "broker"; None when it never came to that)."""
        age_s = (self.clock.time_ns() - intent.decided_ns) / 1e9
        refusal = ""
        request = None
        if not self.allows_entry():
            refusal = "no trading permit at send time"
        elif age_s > self.cfg.max_intent_age_s:
            refusal = f"stale intent: decided {age_s:.1f}s ago"
        try:
            request = market_order(intent, host_id=self.host_id)
        except MissingStops as e:
            refusal = refusal or str(e)
        checked_by = None
        if not refusal:
            refusal, checked_by = self._position_held(broker, intent.instrument)
        if not refusal and not self.allows_entry():  # the read above may have taken a while (retries)
            refusal = "no trading permit at send time (lost during the open-trades read)"
        return request, refusal, checked_by

    def _send(
        self, broker: Broker, intent: RiskIntent, request: MarketOrderRequest, corr: str | None, stop: threading.Event
    ) -> None:
        """Send the order once, and journal and report what became of it."""
        started = self.clock.monotonic()
        try:
            result = broker.submit_market_order(request)
        except BrokerAmbiguousError as e:
            self.trade_view.drop(f"order {intent.intent_id}: outcome unknown")  # rebuilt from a new snapshot
            self.journal(
                ExecAmbiguousRow(
                    intent_id=intent.intent_id,
                    instrument=intent.instrument,
                    model_version=intent.model_version,
                    detail=str(e),
                ),
                corr=corr,
            )
            self._resolve(broker, intent.intent_id, instrument=intent.instrument, intent=intent, corr=corr, stop=stop)
            return
        except BrokerRejectedError as e:
            cancelled = e.transaction.get("type") == "ORDER_CANCEL"  # created, then cancelled (FOK, margin...)
            self._refused(intent, corr, e.reason or "REJECTED", str(e), cancelled=cancelled)
            return
        except BrokerFatalError as e:
            self._refused(intent, corr, "BROKER_FATAL", str(e), cancelled=False)
            self._request_no_trade("broker_fatal", str(e))
            return
        except BrokerError as e:  # certainly not placed (429, refused connection): never retried
            self._refused(intent, corr, "NOT_SENT", str(e), cancelled=False)
            return
        latency_ms = round((self.clock.monotonic() - started) * 1000, 1)
        self.trade_view.expect(result.last_transaction_id)
        if result.resolved_by_lookup:  # the answer was lost; the broker layer found the fill by client id
            self.journal(
                ExecAmbiguousRow(
                    intent_id=intent.intent_id,
                    instrument=intent.instrument,
                    model_version=intent.model_version,
                    detail="answer lost; found by client id",
                    resolved=True,
                ),
                corr=corr,
            )
        self._filled(
            broker,
            intent,
            corr,
            trade_id=result.trade_id or "",
            price=result.fill_price,
            units=result.units,
            latency_ms=latency_ms,
            kind="exec.filled",
        )

    def _position_held(self, broker: Broker, instrument: str) -> tuple[str, str]:
        """The broker's word, just before an entry leaves, that the instrument has no open trade:
        the risk role's count of intents in flight is the rule, this is the net under it (a
        restarted risk role, an expired intent whose late fill appeared since, a trade opened
        behind the host's back). From the transaction stream's view when it can vouch for it
        (``actors.roles.execution.tradeview``: synced, fresh, caught up with this desk's own
        requests; waited for ``VIEW_WAIT_S`` at most), else from a read of the open trades.
        Unreadable: refused. Returns (refusal or "", "stream" or "broker").
        """
        answer = self.trade_view.open_trade_on(instrument, VIEW_WAIT_S)
        if answer is not None:
            if answer.trade_id:
                return (
                    f"position_open at send time: trade {answer.trade_id} on {instrument} is open at the broker "
                    "(transaction stream)",
                    "stream",
                )
            return "", "stream"
        try:
            held = [t.id for t in broker.open_trades() if t.instrument == instrument]
        except BrokerError as e:
            return f"open trades unreadable at send time: {e}", "broker"
        if held:
            return f"position_open at send time: trade {held[0]} on {instrument} is open at the broker", "broker"
        return "", "broker"

    def _refused(self, intent: RiskIntent, corr: str | None, reason: str, detail: str, *, cancelled: bool) -> None:
        row, status = (ExecCancelledRow, "CANCELLED") if cancelled else (ExecRejectedRow, "REJECTED")
        self.journal(
            row(
                intent_id=intent.intent_id,
                instrument=intent.instrument,
                model_version=intent.model_version,
                reason=reason,
                detail=detail,
                sent=True,
            ),
            corr=corr,
        )
        self._report(
            ExecutionReport(
                status=status,
                instrument=intent.instrument,
                intent_id=intent.intent_id,
                reason=reason,
                model_version=intent.model_version,
            ),
            corr,
        )
        self._alert("error", f"order_{status.lower()}:{intent.instrument}", f"{intent.intent_id}: {reason}: {detail}")

    def _filled(
        self,
        broker: Broker,
        intent: RiskIntent,
        corr: str | None,
        *,
        trade_id: str,
        price: Decimal,
        units: Decimal,
        latency_ms: float | None,
        kind: str,
    ) -> None:
        pip = 10.0 ** self._instrument(broker, intent.instrument).pip_location
        slip = (
            slippage_pips(intent.direction, intent.decision_price, float(price), pip) if intent.decision_price else None
        )
        self.memos[trade_id] = TradeMemo(
            trade_id=trade_id,
            intent_id=intent.intent_id,
            instrument=intent.instrument,
            direction=intent.direction,
            units=format(units, "f"),
            initial_stop_loss=intent.stop_loss,
            corr=corr,
            model_version=intent.model_version,
            open_bar_ts=intent.bar_ts,
        )
        save_memos(self.state_path, self.memos)
        row = ExecFilledRow if kind == "exec.filled" else ExecResolvedFillRow
        self.journal(
            row(
                intent_id=intent.intent_id,
                instrument=intent.instrument,
                trade_id=trade_id,
                units=format(units, "f"),
                fill_price=format(price, "f"),
                slippage_pips=slip,
                latency_ms=latency_ms,
                model_version=intent.model_version,
            ),
            corr=corr,
        )
        self._report(
            ExecutionReport(
                status="FILLED" if kind == "exec.filled" else "RESOLVED",
                instrument=intent.instrument,
                intent_id=intent.intent_id,
                trade_id=trade_id,
                units=format(units, "f"),
                price=format(price, "f"),
                slippage_pips=slip,
                latency_ms=latency_ms,
                model_version=intent.model_version,
            ),
            corr,
        )

    def _resolve(
        self,
        broker: Broker,
        client_id: str,
        *,
        instrument: str,
        intent: RiskIntent | None,
        corr: str | None,
        stop: threading.Event,
    ) -> None:
        # By the client id only, never by sending again; past the timeout a latched no-trade.
        deadline = self.clock.monotonic() + self.cfg.resolve_timeout_s
        detail = "not looked up"
        while not stop.is_set():
            try:
                order = broker.order(f"@{client_id}")
            except BrokerError as e:
                detail = str(e)
            else:
                detail = f"order is {order.state}"
                if self._settled(broker, order, client_id, instrument=instrument, intent=intent, corr=corr):
                    return
            if self.clock.monotonic() >= deadline:
                break
            stop.wait(RESOLVE_POLL_S)
        why = f"order @{client_id} still unresolved after {self.cfg.resolve_timeout_s:g}s ({detail})"
        self.journal(ExecAmbiguousRow(intent_id=client_id, final=True, detail=why), corr=corr)
        report = ExecutionReport(
            status="UNRESOLVED", instrument=InstrumentId(instrument), intent_id=client_id, reason=why
        )
        self._report(report, corr)
        self._request_no_trade(f"order_unresolved:{instrument}", why)

    def _settled(
        self,
        broker: Broker,
        order: OrderState,
        client_id: str,
        *,
        instrument: str,
        intent: RiskIntent | None,
        corr: str | None,
    ) -> bool:
        """Journal and report what the order, found by its client id, came to; False while it is
        neither filled nor cancelled."""
        if order.state == "FILLED" and order.trade_opened_id and intent is not None:
            trade = broker.trade(order.trade_opened_id)
            self._filled(
                broker,
                intent,
                corr,
                trade_id=trade.id,
                price=trade.price,
                units=trade.initial_units,
                latency_ms=None,
                kind="exec.resolved",
            )
            return True
        if order.state == "FILLED":  # no trade id to read, or no intent to book it against
            row = ExecResolvedRow(
                intent_id=client_id,
                instrument=instrument,
                outcome="filled",
                trade_id=order.trade_opened_id or "",
                detail="filled; booked by the reconciler",
            )
            self.journal(row, corr=corr)
            return True
        if order.state == "CANCELLED":
            self.journal(ExecResolvedRow(intent_id=client_id, outcome="cancelled"), corr=corr)
            report = ExecutionReport(
                status="CANCELLED",
                instrument=InstrumentId(instrument),
                intent_id=client_id,
                reason="resolved: cancelled",
            )
            self._report(report, corr)
            return True
        return False

    def _resolve_leftovers(self, broker: Broker, stop: threading.Event) -> None:
        # Intents journaled as sent whose outcome never made it to the journal (a kill -9 between
        # the two): find out from the broker, by client id. The intent is rebuilt from its own
        # journal rows, so a fill found now is journaled and remembered like any other (trade id,
        # units, price, memo: its exits are managed and its close is booked).
        db = self.journal_db
        outcome_kinds = ("exec.filled", "exec.cancelled", "exec.rejected", "exec.resolved")
        done = {e.body.get("intent_id") for kind in outcome_kinds for e in db.entries(kind)}
        done |= {e.body.get("intent_id") for e in db.entries("exec.ambiguous") if e.body.get("final")}
        intents = {e.body.get("intent_id"): e for e in db.entries("risk.intent")}
        for entry in db.entries("exec.sending"):
            intent_id = entry.body.get("intent_id")
            if isinstance(intent_id, str) and intent_id not in done:
                self.journal(ExecAmbiguousRow(intent_id=intent_id, detail="outcome lost (restart)"), corr=entry.corr)
                instrument = str(entry.body.get("instrument", ""))
                decided = intents.get(intent_id)
                intent = intent_from_rows(entry.body, decided.body if decided else None, decided_ns=entry.ts_ns)
                self._resolve(broker, intent_id, instrument=instrument, intent=intent, corr=entry.corr, stop=stop)
