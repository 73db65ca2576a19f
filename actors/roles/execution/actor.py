"""Execution role: intents in, broker orders with server-side SL/TP out, exits managed at the broker.

One orders worker does every broker call, one at a time (so nothing races on the account):

- **An intent** (``risk.intent``) is checked again at send time (an unexpired TRADING permit; not
  stale; both SL and TP; no trade open on the instrument at the broker, read just before; else it
  is never sent), journaled as ``exec.sending`` *before* the request and reported ``SENDING``,
  then sent once as a FOK MARKET order with ``stopLossOnFill``/``takeProfitOnFill`` and
  the intent id as client id (``actors.roles.execution.orders.market_order``). A fill → ``exec.filled`` (trade
  id, fill price, slippage against the decision price, latency) and ``exec.report`` FILLED; a
  cancel or reject → ``exec.cancelled`` / ``exec.rejected``, an alert, never retried; an
  ambiguous outcome → ``exec.ambiguous``, then resolved by the client id (never sent again) →
  ``exec.resolved``, or after ``execution.resolve_timeout_s`` a latched ``order_unresolved``.
  At start, intents journaled as sent without an outcome are resolved the same way.
- **Exits** (each ``md.bars``): every open trade goes through ``actors.core.exits.manage_trade``
  (breakeven, trailing, time exit) and the actions become broker-side order changes
  (``exec.exit_changed``, ``exec.closed``); trades the broker closed (SL/TP) are reported CLOSED
  with their real P&L. Exits go on in NO_TRADE and PAUSED: protecting open trades never stops.
- **Protection** (``recon.action`` from the reconciler, and the shutdown hook): a trade without
  SL or TP gets them (``actors.core.exits.protective_stops``) or is closed; at shutdown pending entry
  orders are cancelled and every open trade is checked for SL and TP at the broker
  (``shutdown.protection``). ``ctl flatten --yes`` closes every open trade.

In shadow mode the broker is the shadow book (the runtime's factory decides; nothing is sent),
fed with every price this role hears.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

from actors.core.bartime import bar_end
from actors.core.config import ExecutionConfig, FeedConfig, RiskConfig
from actors.core.domain import Candle
from actors.core.errors import BrokerTemporaryError
from actors.roles.execution.desk import OrderDesk
from actors.roles.execution.jobs import (
    BarRange,
    Exits,
    Flatten,
    Handback,
    Protect,
    Protection,
    Publish,
    Snapshot,
    Submit,
    ToSupervisor,
)
from actors.roles.execution.tradeview import follow_transactions
from actors.runtime.actor import RoleActor
from actors.runtime.journalrows import ShutdownUncheckedRow
from actors.runtime.marketview import MarketView, bar_candle
from actors.runtime.messages import (
    TOPIC_MD_BAR,
    TOPIC_MD_BARS,
    TOPIC_MD_TICK,
    TOPIC_RECON_ACTION,
    TOPIC_RISK_INTENT,
    AlertRaised,
    Bar,
    BarsClosed,
    Envelope,
    FlattenRequested,
    PriceTick,
    ProtectionReport,
    ProtectionRequested,
    RiskIntent,
)

SNAPSHOT_WAIT_S = 60.0  # the desk may be busy with a close's exits and orders (each read retried)

STATE_FILE = "execution-state.json"


class ExecutionActor(RoleActor[ExecutionConfig, Handback]):
    """The execution's actor (see the module docstring)."""

    ROLE: ClassVar[str] = "execution"
    CONFIG: ClassVar[type[ExecutionConfig]] = ExecutionConfig
    TOPICS: ClassVar[tuple[str, ...]] = (
        TOPIC_RISK_INTENT,
        TOPIC_MD_TICK,
        TOPIC_MD_BAR,
        TOPIC_MD_BARS,
        TOPIC_RECON_ACTION,
    )

    def on_start(self) -> None:
        """Start the order desk on its worker (it opens the broker there)."""
        feed = self.shared("feed", FeedConfig)
        risk = self.shared("risk", RiskConfig)
        self.market = MarketView(keep_bars=risk.atr_period + 1)
        self.desk = OrderDesk(
            cfg=self.cfg,
            risk=risk,
            granularity=feed.granularity,
            market=self.market,
            state_path=Path(self.runtime.journal_db.path).parent / STATE_FILE,
            journal=self.record,
            journal_db=self.runtime.journal_db,
            post=self.hand_back,
            permit=self.permit,
            open_broker=self.runtime.open_broker,
            host_id=self.runtime.host_id,
            clock=self.clock,
            bar_checks=feed,
        )
        self.jobs = self.desk.jobs
        self.worker = self.start_worker("orders", self.desk.run)
        self.start_worker("transactions", self._follow_transactions)

    def _follow_transactions(self, stop: threading.Event) -> None:
        # The send-time check's view of open trades, kept by the transaction stream of the desk's
        # broker (in shadow mode the shadow book's), once the desk has opened it.
        def changed(state: str, detail: str) -> None:
            self.runtime.journal("exec.trade_view", {"state": state, "detail": detail})

        def snapshot() -> tuple[dict[str, str], str]:  # on the desk's worker, in turn with the orders
            job = Snapshot()
            self.jobs.put(job)
            if not job.done.wait(SNAPSHOT_WAIT_S) or job.error:
                raise BrokerTemporaryError(f"open trades snapshot: {job.error or 'the order desk did not answer'}")
            return job.trades, job.last_id

        follow_transactions(self.desk.trade_view, lambda: self.desk.broker, stop, snapshot=snapshot, on_change=changed)

    # --- the actor: messages in, jobs out ---

    def on_message(self, envelope: Envelope) -> None:
        """Queue broker work; feed prices to the broker (the shadow book fills on them)."""
        body = envelope.body
        if isinstance(body, PriceTick):
            price = self.market.on_tick(body)
            if self.desk.broker is not None:
                self.desk.broker.on_price(price)
        elif isinstance(body, Bar):
            candle = bar_candle(body)
            self.market.on_bar(body.instrument, candle)
            # The shadow book checks SL/TP against the bar's range, on the desk's queue: in turn with
            # the exits of the closes around it.
            whole = Candle(ts=body.ts, volume=body.volume, complete=True, bid=candle.bid, ask=candle.ask)
            self.jobs.put(BarRange(body.instrument, whole, bar_end(body.ts, body.granularity)))
        elif isinstance(body, BarsClosed):
            self.jobs.put(Exits(body.ts))
        elif isinstance(body, RiskIntent):
            self.jobs.put(Submit(body, envelope.corr))
        elif isinstance(body, ProtectionRequested):
            self.jobs.put(Protect(body.trade_id, body.action, body.instrument))
        elif isinstance(body, FlattenRequested):
            self.jobs.put(Flatten(body.why))

    def on_shutdown(self, deadline_s: float) -> str:
        """Cancel pending entries and verify SL/TP of every open trade at the broker (retried for
        the ``protection_s`` the supervisor gives), report the outcome, stop the worker."""
        budget_s = self.protection_s or max(0.1, deadline_s * 0.7)
        budget_s = min(budget_s, max(0.1, deadline_s - 1.0))  # the hook itself must end in time
        protection = Protection(until=self.clock.monotonic() + budget_s)
        self.jobs.put(protection)
        # New attempts start until ``until``; the last may still be in a broker read (with its own
        # retries) then: wait for it as long as the deadline allows.
        if protection.done.wait(max(budget_s + 0.5, deadline_s - 1.0)) and protection.report is not None:
            report = protection.report
        else:
            summary = "NOT VERIFIED: the protection check did not finish before the shutdown deadline"
            report = ProtectionReport(complete=False, summary=summary)
            self.record(ShutdownUncheckedRow(complete=False, unverified=[], summary=summary))
        self.runtime.to_supervisor(report)
        self.worker.stop(0.1)
        return report.summary

    def on_other(self, message: Handback) -> None:
        """What the desk hands back: publications and requests go out from the actor's thread."""
        if isinstance(message, Publish) and isinstance(message.body, AlertRaised):
            body = message.body
            self.raise_alert(body.severity, body.code, body.detail, corr=message.corr)
        elif isinstance(message, Publish):
            self.runtime.publish(message.topic, message.body, corr=message.corr)
        elif isinstance(message, ToSupervisor):
            self.runtime.to_supervisor(message.body)


ACTOR = ExecutionActor
