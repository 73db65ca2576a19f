"""Reconciler role: the broker is the truth; the host's book, P&L and drawdown follow it.

The supervisor enters RECONCILING once every role is up (and again after a reconciler or
emulator restart, when the REST API is back, and on ``ctl reconcile``) and moves on only when
this role reports. A worker does the blocking broker reads every ``reconciler.poll_interval_s``
(at once when a reconciliation is asked for): the account summary, the open trades with their
SL/TP, the pending orders and the transactions since the last persisted transaction id. It
compares the broker's trades with the trades the host knows (``actors.core.truth.compare``) and
journals every difference with both sides (``recon.difference``): unknown trades are adopted and
alerted, vanished ones dropped with their real P&L, changed SL/TP/units taken from the broker, a
trade without SL or TP handed to the execution role to repair or close
(``reconciler.unprotected``), and a trade tagged by another tradehost instance latches
``another_host``. It folds every NAV it reads, the first one too (before the system trades), into
the daily-loss and drawdown zones (``actors.core.zones``, the trading day on the market's clock: the
latest tick or bar close, before the first one the broker's latest candle); when a trading day
begins it rebuilds the day-start NAV from the broker's records (``actors.roles.reconciler.dayreads``
with ``actors.core.daystart``), and deposits and withdrawals (``TRANSFER_FUNDS``) move day start and
peak. In shadow mode it hands its (read-only) shadow book every stream price, so the book's NAV is
marked at the current bid/ask as the broker marks a live account. It publishes ``recon.state`` (the
account, the open trades,
today's P&L against the day-start NAV, the peak NAV, the drawdown and its zone), which the risk
role decides on and ``ctl status`` shows, and journals ``account.snapshot`` whenever those numbers
change (``recon.day_start``, ``account.transfer``). Its state (last transaction id, zone state, known
trades) is written crash-safely to ``recon-state.json``. In shadow mode its broker is the
shadow book, read-only. The REST connection's health goes to the supervisor with every heartbeat
and at once when a request fails (the first timeout is already a health fact).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from actors.broker import Broker, Transaction
from actors.core import markethours
from actors.core.backoff import Backoff
from actors.core.config import FeedConfig, ReconcilerConfig, RiskConfig
from actors.core.domain import AccountState, InstrumentId, Price, TradeId, TradeState, granularity_seconds
from actors.core.entry import host_tag
from actors.core.errors import BrokerError, BrokerNotReadyError, BrokerRejectedError
from actors.core.truth import ReconDifference, compare, realized_pl
from actors.core.zones import ZoneVerdict, resume_after_drawdown_stop, update_zones
from actors.roles.reconciler.dayreads import DayStart, rebuild_day_start
from actors.roles.reconciler.state import ReconState
from actors.runtime.actor import RoleActor
from actors.runtime.marketview import price_of
from actors.runtime.messages import (
    TOPIC_EXEC_REPORT,
    TOPIC_MD_BARS,
    TOPIC_MD_TICK,
    TOPIC_RECON_ACTION,
    TOPIC_RECON_HEALTH,
    TOPIC_RECON_STATE,
    AccountSnapshot,
    BarsClosed,
    BrokerHealth,
    CauseHealthy,
    Envelope,
    ExecutionReport,
    NoTradeRequested,
    PriceTick,
    ProtectionRequested,
    Reason,
    ReconcileNow,
    ReconciliationCompleted,
    SystemState,
    SystemStateChanged,
    TradeView,
)

NOT_READ = "not read yet"
# Fills that close a trade by its own broker-side orders (not behind the host's back).
OWN_CLOSES = frozenset({"STOP_LOSS_ORDER", "TAKE_PROFIT_ORDER", "TRAILING_STOP_LOSS_ORDER"})
STATE_FILE = "recon-state.json"


@dataclass(frozen=True, slots=True)
class _Polled:
    account: AccountState
    trades: list[TradeState]
    pending_orders: int
    differences: list[ReconDifference]
    closed_pl: dict[str, str]
    verdict: ZoneVerdict
    day_start_nav: float
    peak_nav: float
    full: bool
    transactions_unknown: str = ""  # the saved last transaction id the broker did not know (and why)
    day_start: DayStart | None = None  # a trading day began at this read: its day-start NAV and sources
    transfers: float = 0.0  # deposits (+) and withdrawals (-) read since the previous poll


@dataclass(slots=True)
class _Unprotected:
    """An open trade without SL or TP, and where its repair stands."""

    trade_id: str
    instrument: str
    first_seen_ns: int  # wall clock: the reason's own since_ns when it was raised before
    backoff: Backoff
    next_try_s: float = 0.0  # monotonic
    attempts: int = 0
    close_requested_s: float | None = None
    latched: bool = False


def _unprotected(trade: TradeState) -> bool:
    return trade.stop_loss_price is None or trade.take_profit_price is None


UNPROTECTED_POLL_S = 1.0  # how often the account is read while a trade is unprotected


@dataclass(frozen=True, slots=True)
class _PollFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class _RequestOutcome:
    ok: bool
    detail: str


_WorkerResult = _Polled | _PollFailed | _RequestOutcome  # what the broker worker hands back


# The account-snapshot fields whose change journals an ``account.snapshot`` row.
SNAPSHOT_FIELDS = (
    "currency", "nav", "balance", "unrealized_pl", "margin_used", "margin_available", "daily_pnl", "day_start_nav",
    "peak_nav", "drawdown", "zone", "multiplier", "drawdown_resumed",
)  # fmt: skip


def _transfers(transactions: tuple[Transaction, ...]) -> float:
    # Deposits and withdrawals: not profit or loss (``actors.core.zones``).
    total = 0.0
    for tx in transactions:
        if tx.type == "TRANSFER_FUNDS":
            try:
                total += float(tx.raw.get("amount") or 0.0)
            except (TypeError, ValueError):
                continue
    return total


class ReconcilerActor(RoleActor[ReconcilerConfig, _WorkerResult]):
    """The reconciler's actor."""

    ROLE: ClassVar[str] = "reconciler"
    TOPICS: ClassVar[tuple[str, ...]] = (TOPIC_EXEC_REPORT, TOPIC_MD_BARS, TOPIC_MD_TICK)
    CONFIG: ClassVar[type[ReconcilerConfig]] = ReconcilerConfig
    _journaled: tuple[object, ...] | None = None  # the values of the last account.snapshot row

    def on_start(self) -> None:
        """Load the saved state and start the broker worker."""
        self.risk = self.shared("risk", RiskConfig)
        self.step_ns = granularity_seconds(self.shared("feed", FeedConfig).granularity) * 10**9
        self.path = Path(self.runtime.journal_db.path).parent / STATE_FILE
        self.state = ReconState.load(self.path)  # unreadable: the role fails; a human looks
        self.granularity = self.shared("feed", FeedConfig).granularity
        self.first_instrument = self.shared("feed", FeedConfig).instruments[0]
        self.market_ns = 0  # the market's clock, from md.tick and md.bars (the trading day follows it)
        self.prices: dict[str, Price] = {}  # the latest bid/ask per instrument (actor writes, worker reads)
        self.resume_drawdown = threading.Event()
        self.close_reasons: dict[str, str] = {}  # trade id -> the closing fill's reason (worker writes)
        self.closed_by_host: set[str] = set()  # reported closing by the execution role, open at the last read
        self.want_full = threading.Event()
        self.unprotected: dict[str, _Unprotected] = {}  # trade id -> its repair (actor thread)
        self.waiting_protection = False
        self.connected = False
        self.last_ok_ns: int | None = None
        self.detail = NOT_READ
        self._published: tuple[bool, str] | None = None
        self.worker = self.start_worker("broker", self._poll_loop)

    def on_state_changed(self, previous: SystemState | None, current: SystemState) -> None:
        """Reconcile whenever the supervisor enters RECONCILING."""
        if current is SystemState.RECONCILING:
            self.want_full.set()

    def on_state_seen(self, message: SystemStateChanged) -> None:
        """An operator's resume cleared the drawdown stop: keep the peak, trade at the last zone's size."""
        zone = self.state.zone
        if zone is not None and zone.drawdown_stop and not any(r.code == "drawdown_stop" for r in message.reasons):
            self.resume_drawdown.set()

    def on_message(self, envelope: Envelope) -> None:
        """``ctl reconcile``; the market's clock and prices from each tick and close."""
        body = envelope.body
        if isinstance(body, PriceTick):
            # The shadow book is marked at these, as the broker marks a live account.
            self.prices[body.instrument] = price_of(body)
            self.market_ns = max(self.market_ns, body.ts)
        elif isinstance(body, ReconcileNow):
            self.want_full.set()
        elif isinstance(body, BarsClosed):
            self.market_ns = max(self.market_ns, body.ts + self.step_ns)
        elif isinstance(body, ExecutionReport) and body.status == "CLOSED" and body.trade_id:
            self.closed_by_host.add(body.trade_id)

    # --- the worker: reads, compares, remembers ---

    def _poll_loop(self, stop: threading.Event) -> None:
        last_ok: list[bool | None] = [None]

        def on_outcome(ok: bool, detail: str) -> None:
            # Every REST attempt, retries included: tell the actor only about changes.
            if ok != last_ok[0]:
                last_ok[0] = ok
                self.hand_back(_RequestOutcome(ok, detail))

        broker = self.runtime.open_broker(on_request_outcome=on_outcome)  # ConfigError: the role fails
        backoff = Backoff(self.cfg.retry_initial_s, self.cfg.retry_max_s)
        carry_full = False
        while not stop.is_set():
            full = self.want_full.is_set() or carry_full
            try:
                polled = self._reconcile(broker, full)
            except BrokerNotReadyError:  # the shadow book before its writer started: not an outage
                stop.wait(0.1)
                continue
            except BrokerError as e:
                self.hand_back(_PollFailed(f"{type(e).__name__}: {e}"))
                stop.wait(backoff.next_delay())
                continue
            backoff.reset()
            if full:
                self.want_full.clear()
            naked = any(_unprotected(t) for t in polled.trades)
            # A reconciliation completes only once every open trade is protected: read again soon.
            carry_full = full and naked
            self.hand_back(polled)
            # Wake early when a reconciliation is asked for.
            interval = min(self.cfg.poll_interval_s, UNPROTECTED_POLL_S) if naked else self.cfg.poll_interval_s
            deadline = self.clock.monotonic() + interval
            while not stop.is_set() and not self.want_full.is_set() and self.clock.monotonic() < deadline:
                stop.wait(0.05)

    def _market_now(self, broker: Broker) -> int:
        # The market's time: the latest tick or close; before the first one, the broker's latest
        # candle (the current one is incomplete: it started in this trading day).
        if self.market_ns:
            return self.market_ns
        candles = broker.candles(self.first_instrument, "S5", count=1)
        if not candles:
            raise BrokerNotReadyError("no candle yet to tell the market's time")
        return candles[-1].ts

    def _reconcile(self, broker: Broker, full: bool) -> _Polled:
        for price in list(self.prices.values()):
            broker.on_price(price)  # the shadow book marks its open trades; a real broker ignores it
        account = broker.account_summary()
        trades = broker.open_trades()
        pending = len(broker.pending_orders())
        closes: dict[str, tuple[str, str]] = {}  # trade id -> (realized P&L, why it closed)
        unknown = ""
        page = None
        if self.state.last_transaction_id:
            try:
                page = broker.transactions_since(self.state.last_transaction_id)
            except BrokerRejectedError as e:
                # An id the broker does not know (the account was reset, the run directory belongs
                # to another account): the transactions cannot be replayed, so the broker's snapshot
                # is the whole truth (known trades gone are looked up one by one).
                unknown = f"{self.state.last_transaction_id}: {e}"
        if page is not None:
            last_tx = page.last_transaction_id
            for tx in page.transactions:
                closed_list = tx.raw.get("tradesClosed") if tx.type == "ORDER_FILL" else None
                for closed in closed_list if isinstance(closed_list, list) else ():
                    if isinstance(closed, dict):
                        pl, why = str(closed.get("realizedPL", "")), str(tx.raw.get("reason"))
                        closes[str(closed.get("tradeID"))] = (pl, why)
        else:
            last_tx = account.last_transaction_id
        differences, known = compare(self.state.known, trades, own_tag=host_tag(self.runtime.host_id))
        closed_pl = {}
        for d in differences:
            if d.kind == "closed":
                if d.trade_id in closes:
                    self.close_reasons[d.trade_id] = closes[d.trade_id][1]
                # The trade's P&L, as the execution role reports it: the closing transaction's
                # alone would miss partial reductions before it (``actors.core.truth.realized_pl``).
                try:
                    closed_pl[d.trade_id] = format(realized_pl(broker.trade(d.trade_id)), "f")
                except BrokerError:  # the closing transaction's, where one was read, else unknown
                    closed_pl[d.trade_id] = closes[d.trade_id][0] if d.trade_id in closes else "unknown"
        nav = float(account.nav)
        zone = self.state.zone
        if zone is not None and self.resume_drawdown.is_set():
            zone = resume_after_drawdown_stop(zone)
            self.resume_drawdown.clear()
        now_ns = self._market_now(broker)
        rebuilt = None
        if zone is None or now_ns >= zone.day_end_ns:
            # A trading day begins (or the first read ever): its day start from the broker's records.
            rebuilt = rebuild_day_start(
                broker, account=account, trades=trades, boundary_ns=markethours.trading_day_start(now_ns),
                since=page.transactions if zone is not None and page is not None else None,
                granularity=self.granularity,
            )  # fmt: skip
        transfers = _transfers(page.transactions) if zone is not None and page is not None else 0.0
        zone, verdict = update_zones(
            zone, nav=nav, now_ns=now_ns, config=self.risk, transfer=transfers,
            day_start_nav=None if rebuilt is None else rebuilt.nav,
        )  # fmt: skip
        self.state = ReconState(last_transaction_id=last_tx, zone=zone, known=known)
        self.state.save(self.path)
        return _Polled(
            account, trades, pending, differences, closed_pl, verdict, zone.day_start_nav, zone.peak_nav, full,
            unknown, rebuilt, transfers,
        )  # fmt: skip

    # --- the actor: journal, publish, report ---

    def on_other(self, message: _WorkerResult) -> None:
        """Results of the broker worker."""
        if isinstance(message, _Polled):
            self.connected, self.last_ok_ns, self.detail = True, self.clock.time_ns(), "ok"
            if message.transactions_unknown:
                self._transactions_unknown(message)
            for d in message.differences:
                self._difference(d, message.closed_pl.get(d.trade_id))
            # A close reported for a trade not open at this read has no "closed" difference left to
            # wait for (its difference came first, or it opened and closed between two reads).
            self.closed_by_host.intersection_update(t.id for t in message.trades)
            naked = self._protection(message)
            snapshot = self._snapshot(message)
            self._journal_money(message, snapshot)
            self.runtime.publish(TOPIC_RECON_STATE, snapshot)
            self.runtime.to_supervisor(snapshot)
            if message.full and naked:
                # RECONCILING ends only when every open trade is protected (read again every second).
                if not self.waiting_protection:
                    self.waiting_protection = True
                    self.runtime.journal("recon.waiting_protection", {"unprotected": sorted(naked)})
            elif message.full:
                self.waiting_protection = False
                account = message.account
                kinds = sorted({d.kind for d in message.differences})
                detail = (
                    f"broker is the truth: {len(message.trades)} open trades, {message.pending_orders} pending "
                    f"orders; NAV {account.nav} {account.currency}; last transaction "
                    f"{account.last_transaction_id}; differences: {', '.join(kinds) or 'none'}"
                )
                self.runtime.journal("recon.completed", {"ok": True, "detail": detail})
                self.runtime.to_supervisor(ReconciliationCompleted(ok=True, detail=detail))
            self._report()
        elif isinstance(message, _PollFailed):
            self.connected, self.detail = False, message.reason
            self.runtime.journal("recon.broker_unreachable", {"reason": message.reason})
            self._report()
        elif isinstance(message, _RequestOutcome) and not message.ok and self.connected:
            # Unhealthy at the first failed attempt; healthy again only after a whole read.
            self.connected, self.detail = False, f"request failed (retrying): {message.detail}"
            self.runtime.journal("recon.broker_unreachable", {"reason": self.detail})
            self._report()

    def _journal_money(self, polled: _Polled, snapshot: AccountSnapshot) -> None:
        """``recon.day_start`` when a trading day began; ``account.transfer`` for deposits and
        withdrawals; ``account.snapshot`` whenever one of ``SNAPSHOT_FIELDS`` changed."""
        if polled.day_start is not None:
            how = "broker" if polled.day_start.nav is not None else "last_nav"
            body = {"day_start_nav": snapshot.day_start_nav, "from": how, **polled.day_start.detail}
            self.runtime.journal("recon.day_start", body)
        if polled.transfers:
            self.runtime.journal("account.transfer", {"amount": f"{polled.transfers:.4f}", "nav": snapshot.nav})
        values = tuple(getattr(snapshot, name) for name in SNAPSHOT_FIELDS)
        if values != self._journaled:
            self._journaled = values
            self.runtime.journal("account.snapshot", dict(zip(SNAPSHOT_FIELDS, values, strict=True)))

    def _transactions_unknown(self, polled: _Polled) -> None:
        detail = (
            f"the broker does not know the saved last transaction id {polled.transactions_unknown}; reconciled "
            f"from a full snapshot instead (now at transaction {polled.account.last_transaction_id}): was the "
            "account reset, or is this run directory another account's?"
        )
        self.runtime.journal(
            "recon.transactions_unknown",
            {"saved": polled.transactions_unknown, "broker_last": polled.account.last_transaction_id},
        )
        self.raise_alert("warning", "recon_transactions_unknown", detail)

    # --- unprotected trades: repair with backoff, close past the deadline, latch when that fails ---

    def _protection(self, polled: _Polled) -> dict[str, TradeState]:
        """Track every open trade without SL or TP (``unprotected:<trade id>`` holds NO_TRADE) and
        drive its repair; returns the unprotected trades."""
        now_s, now_ns = self.clock.monotonic(), self.clock.time_ns()
        naked = {t.id: t for t in polled.trades if _unprotected(t)}
        open_ids = {t.id for t in polled.trades}
        for trade_id in [t for t in self.unprotected if t not in naked]:
            gone = self.unprotected.pop(trade_id)
            self.runtime.journal(
                "recon.protected",
                {
                    "trade_id": trade_id,
                    "instrument": gone.instrument,
                    "outcome": "protected" if trade_id in open_ids else "closed",
                    "after_s": round((now_ns - gone.first_seen_ns) / 1e9, 1),
                    "attempts": gone.attempts,
                },
            )
        raised = {r.code: r for r in self.permit.reasons}
        for code, reason in raised.items():  # whoever raised it: the broker's word clears it
            prefix, _, trade_id = code.partition(":")
            if prefix == "unprotected" and trade_id not in naked and not reason.latched:
                self.runtime.to_supervisor(CauseHealthy(code=code))
        for trade_id, trade in naked.items():
            self._drive_repair(trade, raised.get(f"unprotected:{trade_id}"), now_s, now_ns)
        return naked

    def _drive_repair(self, trade: TradeState, reason: Reason | None, now_s: float, now_ns: int) -> None:
        cfg, code = self.cfg, f"unprotected:{trade.id}"
        track = self.unprotected.get(trade.id)
        missing = " and ".join(
            n for n, v in (("SL", trade.stop_loss_price), ("TP", trade.take_profit_price)) if v is None
        )
        if track is None:
            first_seen = reason.since_ns if reason is not None else now_ns  # the deadline survives a restart
            track = _Unprotected(
                trade.id, trade.instrument, first_seen, Backoff(cfg.repair_retry_s, cfg.repair_deadline_s / 4)
            )
            self.unprotected[trade.id] = track
            self.runtime.journal(
                "recon.unprotected",
                {"trade_id": trade.id, "instrument": trade.instrument, "missing": missing, "action": cfg.unprotected,
                 "first_seen_ns": first_seen, "deadline_s": cfg.repair_deadline_s},
            )  # fmt: skip
        age_s = (now_ns - track.first_seen_ns) / 1e9
        detail = (
            f"trade {trade.id} {trade.instrument} {trade.current_units} has no {missing} at the broker "
            f"for {age_s:.0f}s: {cfg.unprotected}, closed if still unprotected after {cfg.repair_deadline_s:g}s"
        )
        if age_s >= cfg.repair_deadline_s and track.close_requested_s is not None and not track.latched:
            # Closed past the deadline, and one poll later still open without its stops: a human.
            track.latched = now_s - track.close_requested_s >= cfg.poll_interval_s
        if track.latched:
            detail = (
                f"trade {trade.id} {trade.instrument} {trade.current_units} has had no {missing} at the broker "
                f"for {age_s:.0f}s and could not be closed: close it at the broker by hand (or "
                "`tradehost ctl flatten --yes`), then `tradehost ctl resume`"
            )
        # Every poll while it lasts (idempotent): a resume cannot clear it while the trade is naked.
        self.runtime.to_supervisor(NoTradeRequested(code=code, detail=detail, latch=track.latched))
        if age_s >= cfg.repair_deadline_s:
            if track.close_requested_s is None or now_s >= track.next_try_s:
                track.close_requested_s = track.close_requested_s or now_s
                self._request_protection(trade, track, "close", now_s, why=f"still unprotected after {age_s:.0f}s")
        elif now_s >= track.next_try_s:
            self._request_protection(trade, track, cfg.unprotected, now_s, why=f"attempt {track.attempts + 1}")

    def _request_protection(
        self, trade: TradeState, track: _Unprotected, action: str, now_s: float, *, why: str
    ) -> None:
        track.attempts += 1
        track.next_try_s = now_s + max(0.2, track.backoff.next_delay())
        self.runtime.journal(
            "recon.protection_requested",
            {"trade_id": trade.id, "instrument": trade.instrument, "action": action, "why": why},
        )
        request = ProtectionRequested(
            trade_id=TradeId(trade.id), instrument=InstrumentId(trade.instrument), action=action
        )
        self.runtime.publish(TOPIC_RECON_ACTION, request)

    def _difference(self, d: ReconDifference, realized_pl: str | None) -> None:
        body = d.body()
        if realized_pl is not None:
            body["realized_pl"] = realized_pl
        self.runtime.journal("recon.difference", body)
        if d.kind in ("caught_up", "changed", "unprotected"):
            return  # an unprotected trade becomes a reason and a repair (``_protection``)
        if d.kind == "closed":
            why = self.close_reasons.pop(d.trade_id, "")
            if why in OWN_CLOSES or d.trade_id in self.closed_by_host:
                self.closed_by_host.discard(d.trade_id)
                return  # its own SL/TP, or the host closed it: nothing behind anyone's back
        detail = f"trade {d.trade_id} {d.instrument}: {d.detail}" + (f" (P&L {realized_pl})" if realized_pl else "")
        if d.kind == "another_host":
            # A reason, alerted by the supervisor: one mail that tells the state it led to.
            self.runtime.to_supervisor(NoTradeRequested(code="another_host", detail=detail))
            return
        self.raise_alert("warning", f"recon_{d.kind}:{d.instrument}", detail)

    def _snapshot(self, polled: _Polled) -> AccountSnapshot:
        account, verdict = polled.account, polled.verdict
        return AccountSnapshot(
            currency=account.currency,
            balance=str(account.balance),
            nav=str(account.nav),
            unrealized_pl=str(account.unrealized_pl),
            margin_used=str(account.margin_used),
            open_trades=len(polled.trades),
            pending_orders=polled.pending_orders,
            last_transaction_id=account.last_transaction_id,
            ts=self.clock.time_ns(),
            trades=tuple(map(TradeView.of, polled.trades)),
            day_start_nav=f"{polled.day_start_nav:.4f}",
            daily_pnl=f"{verdict.daily_pnl:.4f}",
            peak_nav=f"{polled.peak_nav:.4f}",
            drawdown=round(verdict.drawdown, 6),
            zone=verdict.zone,
            multiplier=verdict.multiplier,
            daily_loss_hit=verdict.daily_loss_hit,
            drawdown_stop=verdict.drawdown_stop,
            margin_available=str(account.margin_available),
            drawdown_resumed=verdict.resumed,
        )

    def on_heartbeat(self) -> None:
        """Re-send the REST health with every heartbeat."""
        if self.detail != NOT_READ:
            self._report()  # nothing to say before the first read has an outcome

    def _report(self) -> None:
        health = BrokerHealth(source="rest", connected=self.connected, last_ok_ns=self.last_ok_ns, detail=self.detail)
        self.runtime.to_supervisor(health)
        if (health.connected, health.detail) != self._published:  # the bus (the watchdog) hears changes
            self._published = (health.connected, health.detail)
            self.runtime.publish(TOPIC_RECON_HEALTH, health)

    def on_shutdown(self, deadline_s: float) -> str:
        """Stop the broker worker."""
        stopped = self.worker.stop(min(0.5, deadline_s / 2))
        return "broker worker stopped" if stopped else "broker worker still blocked in a request; exiting anyway"


ACTOR = ReconcilerActor
