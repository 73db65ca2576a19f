"""The execution role's order desk: every broker call of the role, one at a time, on its worker.

Intents, exits, protection and flattening arrive as jobs (``Submit``, ``Exits``, ``Protect``,
``Flatten``, ``Protection``) on one queue and are carried out in order, so nothing races on the
account. The rules are the pure modules' (``actors.roles.execution.orders``, ``actors.core.exits``); what goes out
(reports, alerts, no-trade requests) is handed back to the actor as ``Publish`` / ``ToSupervisor``
(only the actor's thread touches the runtime's sockets); journal rows are written here, before
and after each request, so the journal always knows what was attempted. See ``actors.roles.execution.actor``
for the behaviour in full.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actors.broker import Broker
from actors.core.backoff import Backoff
from actors.core.bars import BarCandle, average_true_range, validate_history
from actors.core.clock import Clock
from actors.core.config import BarValidationConfig
from actors.core.domain import Candle, Instrument, InstrumentId, TradeId, TradeState
from actors.core.errors import BrokerAmbiguousError, BrokerError, BrokerFatalError, BrokerRejectedError
from actors.core.exits import CloseTrade, MoveStopLoss, bars_held, manage_trade, protective_stops
from actors.core.fills import slippage_pips
from actors.roles.execution.memos import TradeMemo, load_memos, save_memos
from actors.roles.execution.orders import MissingStops, intent_from_rows, market_order
from actors.runtime.journal import Journal
from actors.runtime.marketview import MarketView
from actors.runtime.messages import (
    TOPIC_ALERT,
    TOPIC_EXEC_REPORT,
    AlertRaised,
    CauseHealthy,
    ExecutionReport,
    ExitsChecked,
    NoTradeRequested,
    ProtectionReport,
    RiskIntent,
    TradeProtection,
)

if TYPE_CHECKING:
    from actors.core.config import ExecutionConfig, RiskConfig

RESOLVE_POLL_S = 1.0
CLOSE_REPORT_TRIES = 3  # closes in a row a gone trade's close may fail to be read before it is given up
STOP_ORDER_TYPES = frozenset({"STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP_LOSS", "GUARANTEED_STOP_LOSS"})


@dataclass(frozen=True, slots=True)
class Submit:
    """Send this intent's order."""

    intent: RiskIntent
    corr: str | None


@dataclass(frozen=True, slots=True)
class Exits:
    """A close: manage the exits of every open trade."""

    bar_ts: int


@dataclass(frozen=True, slots=True)
class BarRange:
    """A validated bar: the broker (the shadow book) checks SL/TP against its range, in turn with
    the exits of the closes around it."""

    instrument: str
    candle: Candle
    end_ns: int


@dataclass(frozen=True, slots=True)
class Protect:
    """Give an unprotected trade its SL and TP ("repair") or close it."""

    trade_id: str
    action: str
    instrument: str = ""


@dataclass(frozen=True, slots=True)
class Flatten:
    """Close every open trade."""

    why: str


@dataclass
class Protection:
    """The shutdown check, retried until ``until`` (monotonic); ``done`` is set with the report
    when it is through."""

    until: float
    done: threading.Event = field(default_factory=threading.Event)
    report: ProtectionReport | None = None


Job = Submit | Exits | BarRange | Protect | Flatten | Protection


@dataclass(frozen=True, slots=True)
class Publish:
    """For the actor: publish ``body`` on ``topic`` (only the actor's thread touches the runtime)."""

    topic: str
    body: Any
    corr: str | None


@dataclass(frozen=True, slots=True)
class ToSupervisor:
    """For the actor: send ``body`` to the supervisor."""

    body: Any


class OrderDesk:
    """The orders worker of the execution role.

    Args:
        cfg: the ``[execution]`` section.
        risk: the ``[risk]`` section (ATR period and stop distances for repairs).
        granularity: the bars' granularity (bars held).
        market: the role's market view (quotes, ATR), read here, written by the actor.
        state_path: where the trade memos are kept.
        journal: append a journal row (kind, body, corr=...).
        journal_db: the journal, read at start for intents whose outcome was lost.
        post: hand a ``Publish`` / ``ToSupervisor`` to the actor.
        allows_entry: the role's trading permit, checked again at send time.
        open_broker: the runtime's broker factory.
        host_id: this host's instance id (every order's tag).
        clock: the clock.
        bar_checks: the feed's bar checks (``[feed]``), for history read from the broker.
    """

    def __init__(
        self,
        *,
        cfg: ExecutionConfig,
        risk: RiskConfig,
        granularity: str,
        market: MarketView,
        state_path: Path,
        journal: Callable[..., None],
        journal_db: Journal,
        post: Callable[[Any], None],
        allows_entry: Callable[[], bool],
        open_broker: Callable[..., Broker],
        host_id: str,
        clock: Clock,
        bar_checks: BarValidationConfig | None = None,
    ) -> None:
        self.cfg = cfg
        self.risk = risk
        self.granularity = granularity
        self.market = market
        self.state_path = state_path
        self.journal = journal
        self.journal_db = journal_db
        self.post = post
        self.allows_entry = allows_entry
        self.open_broker = open_broker
        self.host_id = host_id
        self.clock = clock
        self.bar_checks = bar_checks or BarValidationConfig()
        self.jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self.broker: Broker | None = None
        self.memos = load_memos(state_path)  # an unreadable file fails the role: a human looks
        self.meta: dict[str, Instrument] = {}
        self.known_open: dict[str, TradeState] = {}
        self.report_failures: dict[str, int] = {}  # trade id -> failed look-ups of its close
        self.last_bar_ts = 0

    def run(self, stop: threading.Event) -> None:
        """The worker's body: open the broker, resolve what a restart left open, then do the jobs."""
        broker = self.open_broker(slippage_pips=self.cfg.slippage_pips)
        self.broker = broker
        self._resolve_leftovers(broker, stop)
        while not stop.is_set():
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._do(broker, job, stop)
            except BrokerError as e:  # one failed job must not end the worker (reads are retried next time)
                self.journal("exec.error", {"job": type(job).__name__, "error": f"{type(e).__name__}: {e}"})
            if isinstance(job, Protection):
                job.done.set()

    def _do(self, broker: Broker, job: Job, stop: threading.Event) -> None:
        if isinstance(job, Submit):
            self._submit(broker, job.intent, job.corr, stop)
        elif isinstance(job, BarRange):
            broker.on_bar(job.instrument, job.candle, job.end_ns)
        elif isinstance(job, Exits):
            if self._exits(broker, job.bar_ts):  # every close of this bar reported: the risk role may decide
                self.post(Publish(TOPIC_EXEC_REPORT, ExitsChecked(bar_ts=job.bar_ts), None))
        elif isinstance(job, Protect):
            self._protect_requested(broker, job)
        elif isinstance(job, Flatten):
            for trade in broker.open_trades():
                self._close(broker, trade, reason=f"flatten: {job.why}")
        elif isinstance(job, Protection):
            job.report = self._shutdown_protection(broker, job, stop)

    def _instrument(self, broker: Broker, name: str) -> Instrument:
        meta = self.meta.get(name)
        if meta is None:
            meta = self.meta[name] = broker.instruments([name])[0]
        return meta

    def _report(self, report: ExecutionReport, corr: str | None) -> None:
        self.post(Publish(TOPIC_EXEC_REPORT, report, corr))

    def _alert(self, severity: str, code: str, detail: str) -> None:
        self.post(Publish(TOPIC_ALERT, AlertRaised(severity=severity, code=code, detail=detail), None))

    # --- orders ---

    def _submit(self, broker: Broker, intent: RiskIntent, corr: str | None, stop: threading.Event) -> None:
        base = {"intent_id": intent.intent_id, "instrument": intent.instrument, "model_version": intent.model_version}
        age_s = (self.clock.time_ns() - intent.decided_ns) / 1e9
        refusal = ""
        if not self.allows_entry():
            refusal = "no trading permit at send time"
        elif age_s > self.cfg.max_intent_age_s:
            refusal = f"stale intent: decided {age_s:.1f}s ago"
        try:
            request = market_order(intent, host_id=self.host_id)
        except MissingStops as e:
            refusal = refusal or str(e)
        if not refusal:
            refusal = self._position_held(broker, intent.instrument)
        if not refusal and not self.allows_entry():  # the read above may have taken a while (retries)
            refusal = "no trading permit at send time (lost during the open-trades read)"
        if refusal:
            self.journal("exec.rejected", {**base, "reason": refusal, "sent": False}, corr=corr)
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
            "exec.sending",
            {
                **base,
                "units": format(request.units, "f"),
                "stop_loss": intent.stop_loss,
                "take_profit": intent.take_profit,
                "client_id": request.client_id,
                "tag": request.tag,
            },
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
        started = self.clock.monotonic()
        try:
            result = broker.submit_market_order(request)
        except BrokerAmbiguousError as e:
            self.journal("exec.ambiguous", {**base, "detail": str(e)}, corr=corr)
            self._resolve(broker, intent.intent_id, instrument=intent.instrument, intent=intent, corr=corr, stop=stop)
            return
        except BrokerRejectedError as e:
            cancelled = e.transaction.get("type") == "ORDER_CANCEL"  # created, then cancelled (FOK, margin...)
            self._refused(intent, corr, base, e.reason or "REJECTED", str(e), cancelled=cancelled)
            return
        except BrokerFatalError as e:
            self._refused(intent, corr, base, "BROKER_FATAL", str(e), cancelled=False)
            self._request_no_trade("broker_fatal", str(e))
            return
        except BrokerError as e:  # certainly not placed (429, refused connection): never retried
            self._refused(intent, corr, base, "NOT_SENT", str(e), cancelled=False)
            return
        latency_ms = round((self.clock.monotonic() - started) * 1000, 1)
        if result.resolved_by_lookup:  # the answer was lost; the broker layer found the fill by client id
            self.journal(
                "exec.ambiguous", {**base, "detail": "answer lost; found by client id", "resolved": True}, corr=corr
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

    @staticmethod
    def _position_held(broker: Broker, instrument: str) -> str:
        """The broker's word, read just before an entry leaves, that the instrument has no open
        trade: the risk role's count of intents in flight is the rule, this is the net under it (a
        restarted risk role, an expired intent whose late fill appeared since). Unreadable: refused.
        """
        try:
            held = [t.id for t in broker.open_trades() if t.instrument == instrument]
        except BrokerError as e:
            return f"open trades unreadable at send time: {e}"
        if held:
            return f"position_open at send time: trade {held[0]} on {instrument} is open at the broker"
        return ""

    def _refused(
        self, intent: RiskIntent, corr: str | None, base: dict[str, Any], reason: str, detail: str, *, cancelled: bool
    ) -> None:
        kind, status = ("exec.cancelled", "CANCELLED") if cancelled else ("exec.rejected", "REJECTED")
        self.journal(kind, {**base, "reason": reason, "detail": detail, "sent": True}, corr=corr)
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
        self.journal(
            kind,
            {
                "intent_id": intent.intent_id,
                "instrument": intent.instrument,
                "trade_id": trade_id,
                "units": format(units, "f"),
                "fill_price": format(price, "f"),
                "slippage_pips": slip,
                "latency_ms": latency_ms,
                "model_version": intent.model_version,
                **({"outcome": "filled"} if kind == "exec.resolved" else {}),
            },
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
                    return
                if order.state == "FILLED":  # no trade id to read, or no intent to book it against
                    body = {
                        "intent_id": client_id,
                        "instrument": instrument,
                        "outcome": "filled",
                        "trade_id": order.trade_opened_id or "",
                        "detail": "filled; booked by the reconciler",
                    }
                    self.journal("exec.resolved", body, corr=corr)
                    return
                if order.state == "CANCELLED":
                    self.journal("exec.resolved", {"intent_id": client_id, "outcome": "cancelled"}, corr=corr)
                    report = ExecutionReport(
                        status="CANCELLED",
                        instrument=InstrumentId(instrument),
                        intent_id=client_id,
                        reason="resolved: cancelled",
                    )
                    self._report(report, corr)
                    return
            if self.clock.monotonic() >= deadline:
                break
            stop.wait(RESOLVE_POLL_S)
        why = f"order @{client_id} still unresolved after {self.cfg.resolve_timeout_s:g}s ({detail})"
        self.journal("exec.ambiguous", {"intent_id": client_id, "final": True, "detail": why}, corr=corr)
        report = ExecutionReport(
            status="UNRESOLVED", instrument=InstrumentId(instrument), intent_id=client_id, reason=why
        )
        self._report(report, corr)
        self._request_no_trade(f"order_unresolved:{instrument}", why)

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
                self.journal(
                    "exec.ambiguous", {"intent_id": intent_id, "detail": "outcome lost (restart)"}, corr=entry.corr
                )
                instrument = str(entry.body.get("instrument", ""))
                decided = intents.get(intent_id)
                intent = intent_from_rows(entry.body, decided.body if decided else None, decided_ns=entry.ts_ns)
                self._resolve(broker, intent_id, instrument=instrument, intent=intent, corr=entry.corr, stop=stop)

    def _request_no_trade(self, code: str, detail: str, *, latch: bool = False) -> None:
        # The supervisor raises the reason and alerts it (one path: never an alert alone, and the
        # mail tells the state the reason led to).
        self.post(ToSupervisor(NoTradeRequested(code=code, detail=detail, latch=latch)))

    def _protect_requested(self, broker: Broker, job: Protect) -> None:
        """The reconciler's request for an unprotected trade: repair or close; a close that fails
        latches ``unprotected:<trade id>`` with what the operator must do."""
        code = f"unprotected:{job.trade_id}"
        try:
            outcome = self._protect(broker, job.trade_id, job.action, why="reconciler")
        except BrokerError as e:
            error = f"{type(e).__name__}: {e}"
            self.journal("exec.protect_failed", {"trade_id": job.trade_id, "instrument": job.instrument,
                                                 "action": job.action, "error": error})  # fmt: skip
            if job.action == "close":
                detail = (
                    f"trade {job.trade_id} {job.instrument} has no SL or TP at the broker and could not be closed "
                    f"({error}): close it at the broker by hand (or `tradehost ctl flatten --yes`), then "
                    "`tradehost ctl resume`"
                )
                self._request_no_trade(code, detail, latch=True)
            return
        self.journal("exec.protected", {"trade_id": job.trade_id, "instrument": job.instrument,
                                        "action": job.action, "outcome": outcome})  # fmt: skip
        self.post(ToSupervisor(CauseHealthy(code=code)))

    # --- exits and protection ---

    def _exits(self, broker: Broker, bar_ts: int) -> bool:
        """Report trades closed at the broker, then manage every open trade's exits.

        Returns:
            True when every close was reported (a failed look-up is tried again next close and
            given up after ``CLOSE_REPORT_TRIES``, then reported without its P&L and alerted).
        """
        self.last_bar_ts = max(self.last_bar_ts, bar_ts)
        trades = {t.id: t for t in broker.open_trades()}
        # Trades this desk opened (memos) or saw open: gone now means closed at the broker.
        gone = {*self.memos, *self.known_open} - set(trades)
        unreported = {trade_id: self.known_open[trade_id] for trade_id in gone if trade_id in self.known_open}
        for trade_id in sorted(gone):
            if self._report_gone(broker, trade_id):
                unreported.pop(trade_id, None)
        self.known_open = {**unreported, **trades}  # a copy: closing a trade below forgets it there
        for trade in trades.values():
            if trade.stop_loss_price is None or trade.take_profit_price is None:
                self._unprotected_seen(broker, trade)
            try:
                self._manage(broker, trade, bar_ts)
            except BrokerError as e:  # this trade's exits wait for the next close; the others go on
                self.journal("exec.error", {"job": "Exits", "trade_id": trade.id, "error": f"{type(e).__name__}: {e}"})
        return not any(trade_id in self.known_open or trade_id in self.memos for trade_id in gone)

    def _unprotected_seen(self, broker: Broker, trade: TradeState) -> None:
        # Seen here first maybe (before the reconciler's next poll): no trading from this moment,
        # and one repair at once; the reconciler retries and escalates past its deadline.
        sides = (("SL", trade.stop_loss_price), ("TP", trade.take_profit_price))
        missing = " and ".join(name for name, price in sides if price is None)
        detail = f"trade {trade.id} {trade.instrument} has no {missing} at the broker (seen by the exit check)"
        self._request_no_trade(f"unprotected:{trade.id}", detail)
        self._protect_requested(broker, Protect(trade.id, "repair", trade.instrument))

    def _report_gone(self, broker: Broker, trade_id: str) -> bool:
        why = "closed at the broker (SL/TP or outside the host)"
        try:
            self._report_closed(broker, trade_id, reason=why)
        except BrokerError as e:
            tries = self.report_failures[trade_id] = self.report_failures.get(trade_id, 0) + 1
            error = f"{type(e).__name__}: {e}"
            self.journal("exec.error", {"job": "Exits", "trade_id": trade_id, "error": error, "tries": tries})
            if tries < CLOSE_REPORT_TRIES:
                return False
            memo = self.memos.pop(trade_id, None)
            save_memos(self.state_path, self.memos)
            instrument = str(
                getattr(self.known_open.get(trade_id), "instrument", "") or (memo.instrument if memo else "")
            )
            detail = f"trade {trade_id} ({instrument}) is gone but its close could not be read ({error}); P&L unknown"
            self.journal("exec.closed", {"trade_id": trade_id, "instrument": instrument, "reason": why,
                                         "realized_pl": "unknown"}, corr=memo.corr if memo else None)  # fmt: skip
            self._report(ExecutionReport(status="CLOSED", instrument=InstrumentId(instrument), trade_id=trade_id,
                                         intent_id=memo.intent_id if memo else "", reason=why), None)  # fmt: skip
            self._alert("error", f"close_unread:{instrument}", detail)
        self.report_failures.pop(trade_id, None)
        return True

    def _manage(self, broker: Broker, trade: TradeState, bar_ts: int) -> None:
        """One open trade at a close: the exit rules (breakeven, trailing, time exit) at the broker."""
        quote = self.market.prices.get(trade.instrument)
        if quote is None or not quote.tradeable:
            return
        memo = self.memos.get(trade.id)
        actions = manage_trade(
            trade,
            initial_stop_loss=Decimal(memo.initial_stop_loss) if memo else None,
            bars_held=bars_held(memo.open_bar_ts, bar_ts, self.granularity) if memo else 0,
            bid=float(quote.bid),
            ask=float(quote.ask),
            atr=self.market.atr(trade.instrument, self.risk.atr_period),
            instrument=self._instrument(broker, trade.instrument),
            config=self.cfg,
        )
        for action in actions:
            corr = memo.corr if memo else None
            if isinstance(action, MoveStopLoss):
                broker.set_trade_orders(trade.id, stop_loss=action.price)
                self.journal(
                    "exec.exit_changed",
                    {
                        "trade_id": trade.id,
                        "instrument": trade.instrument,
                        "reason": action.reason,
                        "stop_loss": format(action.price, "f"),
                        "was": str(trade.stop_loss_price),
                    },
                    corr=corr,
                )
            elif isinstance(action, CloseTrade):
                self._close(broker, trade, reason=action.reason)

    def _close(self, broker: Broker, trade: TradeState, *, reason: str) -> None:
        result = broker.close_trade(trade.id)
        self.known_open.pop(trade.id, None)
        memo = self.memos.pop(trade.id, None)
        save_memos(self.state_path, self.memos)
        self.journal(
            "exec.closed",
            {
                "trade_id": trade.id,
                "instrument": trade.instrument,
                "reason": reason,
                "price": format(result.price, "f"),
                "realized_pl": format(result.realized_pl, "f"),
                "model_version": memo.model_version if memo else "",
            },
            corr=memo.corr if memo else None,
        )
        self._report(
            ExecutionReport(
                status="CLOSED",
                instrument=InstrumentId(trade.instrument),
                trade_id=trade.id,
                intent_id=memo.intent_id if memo else "",
                reason=reason,
                realized_pl=format(result.realized_pl, "f"),
            ),
            memo.corr if memo else None,
        )

    def _report_closed(self, broker: Broker, trade_id: str, *, reason: str) -> None:
        was = closed = broker.trade(trade_id)
        memo = self.memos.pop(trade_id, None)
        save_memos(self.state_path, self.memos)
        self.journal(
            "exec.closed",
            {
                "trade_id": was.id,
                "instrument": was.instrument,
                "reason": reason,
                "realized_pl": format(closed.realized_pl, "f"),
                "model_version": memo.model_version if memo else "",
            },
            corr=memo.corr if memo else None,
        )
        self._report(
            ExecutionReport(
                status="CLOSED",
                instrument=InstrumentId(was.instrument),
                trade_id=was.id,
                intent_id=memo.intent_id if memo else "",
                reason=reason,
                realized_pl=format(closed.realized_pl, "f"),
            ),
            memo.corr if memo else None,
        )

    def _protect(self, broker: Broker, trade_id: str, action: str, *, why: str) -> str:
        """Give an open trade that lacks SL or TP the missing orders ("repair") or close it.

        Returns ``protected`` (it had both), ``repaired`` (the broker's answer shows both now),
        ``closed`` or ``gone`` (no longer open).

        Raises:
            BrokerError: a read, the repair or the close failed (the caller retries or escalates).
        """
        trade = broker.trade(trade_id)
        if trade.state != "OPEN":
            return "gone"
        if trade.stop_loss_price is not None and trade.take_profit_price is not None:
            return "protected"
        if action == "close":
            self._close(broker, trade, reason=f"unprotected ({why})")
            return "closed"
        self._repair(broker, trade, why=why)
        after = broker.trade(trade_id)  # the broker's word, not the request's
        if after.state != "OPEN":
            return "gone"
        if after.stop_loss_price is None or after.take_profit_price is None:
            raise BrokerRejectedError(f"trade {trade_id}: the repair was answered but the trade still lacks SL or TP")
        return "repaired"

    def _repair(self, broker: Broker, trade: TradeState, *, why: str) -> None:
        # The stop of a repair is the entry rule's: sl_atr_mult ATRs of the instrument's validated
        # bars (read from the broker when this process has none yet, after a restart), measured from
        # the current price; 0.5 % of the price only when no ATR can be had at all.
        meta = self._instrument(broker, trade.instrument)
        atr, bid, ask, basis = self._repair_inputs(broker, trade)
        sl, tp = protective_stops(
            trade.direction,
            bid=bid,
            ask=ask,
            atr=atr,
            instrument=meta,
            sl_atr_mult=self.risk.sl_atr_mult,
            reward_ratio=self.risk.reward_ratio,
        )
        sent_sl = sl if trade.stop_loss_price is None else None
        sent_tp = tp if trade.take_profit_price is None else None
        broker.set_trade_orders(trade.id, stop_loss=sent_sl, take_profit=sent_tp)
        body: dict[str, Any] = {"trade_id": trade.id, "instrument": trade.instrument, "reason": f"repaired ({why})"}
        # Only what was sent: a TP the trade already had is not journaled as set.
        if sent_sl is not None:
            body["stop_loss"] = format(sent_sl, "f")
        if sent_tp is not None:
            body["take_profit"] = format(sent_tp, "f")
        body["atr"] = atr
        body["price_basis"] = basis
        memo = self.memos.get(trade.id)
        self.journal("exec.exit_changed", body, corr=memo.corr if memo else None)

    def _repair_inputs(self, broker: Broker, trade: TradeState) -> tuple[float | None, float, float, str]:
        """The ATR and the bid/ask a repair measures from, and where the price came from."""
        name = trade.instrument
        atr = self.market.atr(name, self.risk.atr_period)
        quote = self.market.prices.get(name)
        latest: Candle | None = None
        if atr is None or quote is None:
            try:
                # Enough bars before the ATR's own for the spike check, as every loader reads them.
                count = self.risk.atr_period + self.bar_checks.atr_bars + 2
                candles = broker.candles(name, self.granularity, count=count, price="BA")
            except BrokerError as e:
                self.journal("exec.error", {"job": "Repair", "trade_id": trade.id, "error": f"candles: {e}"})
                candles = []
            complete = [c for c in candles if c.complete and c.bid is not None and c.ask is not None]
            if atr is None:  # computed here: the market view belongs to the actor's thread
                bars, _rejected = validate_history(
                    [BarCandle.from_candle(c) for c in complete],
                    granularity=self.granularity,
                    pip_location=self._pip(broker, name),
                    config=self.bar_checks,
                )
                value = average_true_range(bars, period=self.risk.atr_period)
                atr = None if value is None else float(value)
            latest = candles[-1] if candles and candles[-1].bid is not None and candles[-1].ask is not None else None
        if quote is not None:
            return atr, float(quote.bid), float(quote.ask), "live quote"
        if latest is not None and latest.bid is not None and latest.ask is not None:
            return atr, float(latest.bid.c), float(latest.ask.c), "latest candle"
        return atr, float(trade.price), float(trade.price), "entry price (no price known)"

    def _pip(self, broker: Broker, name: str) -> int:
        return self._instrument(broker, name).pip_location

    def _shutdown_protection(self, broker: Broker, job: Protection, stop: threading.Event) -> ProtectionReport:
        """Cancel pending entries, then check every open trade's SL and TP at the broker, repairing
        what lacks them, retrying with backoff until ``job.until`` (monotonic): complete only when
        the open trades were read and every one is verified protected."""
        backoff = Backoff(0.2, 2.0)
        cancelled: list[str] = []
        checked: dict[str, TradeProtection] = {}
        pending: int | None = None
        attempts = 0
        error = "not checked"
        read = False
        while True:
            attempts += 1
            try:
                pending = self._cancel_entries(broker, cancelled)
                trades = broker.open_trades()
                read, error = True, ""
                checked = {t.id: checked[t.id] for t in trades if t.id in checked and checked[t.id].verified}
                for trade in trades:
                    if trade.id not in checked:
                        checked[trade.id] = self._check_one(broker, trade)
            except BrokerError as e:
                error = f"{type(e).__name__}: {e}"
            complete = read and not error and all(t.verified for t in checked.values())
            left_s = job.until - self.clock.monotonic()
            if complete or left_s <= 0 or stop.wait(min(backoff.next_delay(), left_s)):
                break
        summary = self._protection_summary(checked, cancelled, complete=complete, read=read, error=error)
        report = ProtectionReport(
            complete=complete,
            trades=tuple(checked.values()),
            cancelled_orders=tuple(cancelled),
            pending_orders=pending,
            attempts=attempts,
            summary=summary,
        )
        self.journal(
            "shutdown.protection",
            {
                "complete": complete,
                "trades": {t.trade_id: t.outcome for t in checked.values()},
                "unverified": [t.trade_id for t in report.unverified],
                "cancelled_orders": cancelled,
                "pending_orders": pending,
                "attempts": attempts,
                "error": error,
                "summary": summary,
            },
        )
        return report

    def _cancel_entries(self, broker: Broker, cancelled: list[str]) -> int:
        entries = [o for o in broker.pending_orders() if o.type not in STOP_ORDER_TYPES and not o.trade_id]
        for order in entries:
            if order.id not in cancelled:
                broker.cancel_order(order.id)
                cancelled.append(order.id)
        return len([o for o in entries if o.id not in cancelled])

    def _check_one(self, broker: Broker, trade: TradeState) -> TradeProtection:
        try:
            outcome = self._protect(broker, trade.id, "repair", why="shutdown check")
            after = broker.trade(trade.id) if outcome == "repaired" else trade
        except BrokerError as e:
            outcome, after = f"failed: {type(e).__name__}: {e}", trade
        verified = outcome in ("protected", "repaired", "closed", "gone")
        return TradeProtection(
            trade_id=TradeId(trade.id),
            instrument=InstrumentId(trade.instrument),
            units=format(after.current_units, "f"),
            stop_loss=None if after.stop_loss_price is None else format(after.stop_loss_price, "f"),
            take_profit=None if after.take_profit_price is None else format(after.take_profit_price, "f"),
            outcome=outcome,
            verified=verified,
        )

    @staticmethod
    def _protection_summary(
        checked: dict[str, TradeProtection], cancelled: list[str], *, complete: bool, read: bool, error: str
    ) -> str:
        outcomes = [t.outcome for t in checked.values()]
        counts = (
            f"{len(outcomes)} open trades, {outcomes.count('protected')} already protected, "
            f"{outcomes.count('repaired')} repaired, {len(cancelled)} pending entries cancelled"
        )
        if complete:
            return counts
        if not read:
            return f"NOT VERIFIED: the open trades could not be read ({error}); {counts}"
        naked = ", ".join(
            f"{t.trade_id} {t.instrument} (SL {t.stop_loss or 'NONE'}, TP {t.take_profit or 'NONE'}: {t.outcome})"
            for t in checked.values()
            if not t.verified
        )
        return f"NOT VERIFIED: {naked or error}; {counts}"
