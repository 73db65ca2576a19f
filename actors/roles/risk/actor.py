"""Risk role: one decision per signal, from signal to intent or skip.

For every ``model.signal.<INSTR>`` the role decides once and journals the decision with the
bar's corr and the model version: ``risk.intent`` (published for the execution role, with a
deterministic intent id that becomes the order's client id) or ``risk.skip`` with the stable
reason. Entries are decided only while the role holds an unexpired TRADING permit (else the skip
reason is ``no_permit``). The decision itself is ``actors.core.entry.decide_entry`` (gate, daily loss
limit and drawdown zones, sizing, intent id), the same function ``tradehost backtest`` calls.
Inputs come from the bus: quotes (``md.tick.*``), bars for the ATR (``md.bar.*``, the recent ones
loaded from the broker at start), the account with its open trades and zone verdict
(``recon.state``) and execution reports (fills and closed trades: an intent in flight or a fresh
fill counts as a position until the reconciler has seen it; a closed trade no longer does, even
before the reconciler has seen it go; a losing close starts the instrument's cool-down at the
close it was reported at).

Same decisions as a backtest. A close's signals are decided only once the execution role has
checked every open trade at that close (``ExitsChecked``), so trades that ended by then (and their
losses) count, as they do in ``tradehost backtest``; signals that wait longer than
``risk.exits_wait_s`` are skipped (``exits_unchecked``: unsure, so no trade). The market time of a
decision is the end of its bar, never the arrival time of whichever price came next.

An intent the execution role never reported on (it was down or restarting when the intent went
out, so it never saw it) stops counting as a position after ``risk.intent_expiry_s``
(``risk.intent_expired``). That is safe: the execution role reports every intent it takes
(``SENDING``, before the order leaves; such an intent never expires: it counts until its outcome,
however long an ambiguous order takes to resolve), it refuses any intent older than
``execution.max_intent_age_s`` when its turn comes (and reports that too), and the start-up check
keeps the expiry longer than ``max_intent_age_s`` plus a request and a reconciler poll. Under all
of it (a report lost on the bus) the execution role reads the broker's open trades just before
every entry and never sends one for an instrument that has a trade open.

A restart forgets nothing: the role rebuilds its intents in flight and its loss cool-downs from
the journal at start (``recover``), the record every role already writes before it acts, rather
than from a state file of its own: the journal also holds what happened while this role was down
(an order cancelled, a trade closed at a loss, reported on the bus to nobody), which a file the
dead process last wrote cannot know. An intent counts again until its journaled story ends
(cancelled, refused, expired, filled and closed, or an unresolved order followed by a full
reconciliation), exactly as it counted before; every losing close starts a cool-down journaled as
``risk.cooldown`` with its market time, and a losing close the role never heard of (only the
execution role's ``exec.closed`` row) gets one estimated conservatively from that row's age.
What was rebuilt is journaled once as ``risk.recovered``.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from actors.core.backoff import Backoff
from actors.core.bars import BarCandle, RejectedBar, history_report, validate_candles
from actors.core.bartime import bar_end, bar_start
from actors.core.config import FeedConfig, RiskConfig
from actors.core.domain import Direction, Instrument, Position, Signal
from actors.core.entry import EntryIntent, decide_entry
from actors.core.errors import BrokerError
from actors.core.money import position_margin
from actors.core.zones import ZoneVerdict
from actors.roles.risk.recovery import RECOVERY_KINDS, InFlight, UnheardLoss, _loss, recover, unheard_loss_ns
from actors.runtime.actor import RoleActor
from actors.runtime.journal import Journal
from actors.runtime.journalrows import RiskIntentRow, RiskSkipRow
from actors.runtime.marketview import MarketView, bar_candle
from actors.runtime.messages import (
    TOPIC_EXEC_REPORT,
    TOPIC_MD_BAR,
    TOPIC_MD_TICK,
    TOPIC_MODEL_SIGNAL,
    TOPIC_RECON_STATE,
    TOPIC_RISK_INTENT,
    TOPIC_RISK_SKIP,
    AccountSnapshot,
    Bar,
    Envelope,
    ExecutionReport,
    ExitsChecked,
    IntentSkipped,
    PriceTick,
    RiskIntent,
    SignalProduced,
)

log = logging.getLogger(__name__)

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class _Prepared:
    instruments: dict[str, Instrument]
    bars: dict[str, list[BarCandle]]
    rejected: dict[str, list[RejectedBar]]


def book_of(account: AccountSnapshot, closed: frozenset[str] | set[str] = frozenset()) -> dict[str, Position]:
    """The open positions by instrument, as the gate and sizing take them, without the trades in
    ``closed`` (reported closed since the snapshot was taken).

    Net per instrument: the units of all its trades summed with their signs (a trade opened by
    hand beside the host's counts in full), the entry price their size-weighted average. An
    instrument whose trades net out to zero (both sides open on a hedging account) is still in
    the book, with no units: it has open trades, so no new entry on it.
    """
    signed: dict[str, Decimal] = {}
    size: dict[str, Decimal] = {}
    cost: dict[str, Decimal] = {}
    for trade in account.trades:
        units = Decimal(trade.units)
        if units == 0 or trade.trade_id in closed:
            continue
        name = trade.instrument
        signed[name] = signed.get(name, _ZERO) + units
        size[name] = size.get(name, _ZERO) + abs(units)
        cost[name] = cost.get(name, _ZERO) + abs(units) * Decimal(trade.price)
    return {
        name: Position(
            instrument=name,
            direction=Direction.LONG if net >= 0 else Direction.SHORT,
            units=float(abs(net)),
            entry_price=float(cost[name] / size[name]),
        )
        for name, net in signed.items()
    }


def margin_of(account: AccountSnapshot) -> float:
    """The broker's ``marginAvailable`` in the snapshot, NaN when unknown (sizing then skips: ``margin``)."""
    try:
        value = float(account.margin_available)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def verdict_of(account: AccountSnapshot) -> ZoneVerdict:
    """The zone verdict the reconciler put in ``account`` (daily loss, drawdown zone and its
    multiplier), as ``decide_entry`` takes it."""
    return ZoneVerdict(
        zone=account.zone,
        multiplier=account.multiplier,
        drawdown=account.drawdown,
        daily_pnl=float(account.daily_pnl or 0),
        daily_loss_hit=account.daily_loss_hit,
        drawdown_stop=account.drawdown_stop,
    )


class RiskActor(RoleActor[RiskConfig, _Prepared]):
    """The risk gate's actor."""

    ROLE: ClassVar[str] = "risk"
    CONFIG: ClassVar[type[RiskConfig]] = RiskConfig
    TOPICS: ClassVar[tuple[str, ...]] = (
        TOPIC_MODEL_SIGNAL,
        TOPIC_RECON_STATE,
        TOPIC_MD_TICK,
        TOPIC_MD_BAR,
        TOPIC_EXEC_REPORT,
    )

    def on_start(self) -> None:
        """Load instrument metadata and the recent bars on a worker."""
        self.feed = self.shared("feed", FeedConfig)
        self.market = MarketView(keep_bars=self.cfg.atr_period + 1)
        self.instruments: dict[str, Instrument] = {}
        self.account: AccountSnapshot | None = None
        # Intents sent or filled, not yet in recon.state, by instrument.
        self.in_flight: dict[str, InFlight] = {}
        self.last_loss_close_ns: dict[str, int] = {}
        self.closed_ids: set[str] = set()  # reported CLOSED, maybe still in the last recon.state
        self.exits_checked_ts = 0  # the last close whose exits the execution role has checked
        self.waiting: list[tuple[SignalProduced, str | None, float]] = []  # signals of unchecked closes
        self.decisions = 0
        self.unheard: dict[str, UnheardLoss] = {}  # losing closes to start a cool-down for (recover)
        self._recover()
        self.start_worker("prepare", self._prepare)

    def _prepare(self, stop: threading.Event) -> None:
        # The ATR's bars pass the live feed's checks (the rule of every close, with feed.atr_bars
        # + 1 bars before them for a full ATR), so a bar the feed rejected never sets a stop.
        broker = self.runtime.open_broker()
        backoff = Backoff(0.5, 15.0)
        count = self.cfg.atr_period + 2 + self.feed.atr_bars + 1
        while not stop.is_set():
            try:
                metadata = {i.name: i for i in broker.instruments()}
                bars, rejected = {}, {}
                for name in self.feed.instruments:
                    candles = broker.candles(name, self.feed.granularity, count=count, price="BA")
                    accepted, rejected[name] = validate_candles(
                        candles,
                        granularity=self.feed.granularity,
                        pip_location=metadata[name].pip_location if name in metadata else -4,  # as the feed
                        config=self.feed,
                    )
                    bars[name] = [BarCandle.from_candle(c) for c in accepted]
                self.hand_back(_Prepared(metadata, bars, rejected))
                break
            except BrokerError:
                stop.wait(backoff.next_delay())
        stop.wait()  # done; a worker that ends on its own fails the role

    def on_other(self, message: _Prepared) -> None:
        """Instrument metadata and history from the worker."""
        if isinstance(message, _Prepared):
            self.instruments = message.instruments
            for name, candles in message.bars.items():
                for candle in candles:
                    self.market.on_bar(name, candle)
            loaded = {name: (len(candles), message.rejected.get(name, [])) for name, candles in message.bars.items()}
            self.runtime.journal("history.loaded", {"purpose": "atr", **history_report(loaded)})

    def on_message(self, envelope: Envelope) -> None:
        """Signals are decided; everything else updates what the decision looks at."""
        body = envelope.body
        if isinstance(body, PriceTick):
            self.market.on_tick(body)
        elif isinstance(body, Bar):
            self.market.on_bar(body.instrument, bar_candle(body))
        elif isinstance(body, AccountSnapshot):
            self.account = body
            # An intent leaves the in-flight list when its own trade (client id = intent id) shows
            # up, never because another trade of the instrument does (an old snapshot may still
            # list a trade that closed since).
            seen = {t.client_id for t in body.trades if t.client_id}
            self.in_flight = {k: v for k, v in self.in_flight.items() if v.intent_id not in seen}
            self.closed_ids &= {t.trade_id for t in body.trades}
        elif isinstance(body, ExecutionReport):
            self._on_report(body)
        elif isinstance(body, ExitsChecked):
            self.exits_checked_ts = max(self.exits_checked_ts, body.bar_ts)
            ready = [w for w in self.waiting if w[0].bar_ts <= self.exits_checked_ts]
            self.waiting = [w for w in self.waiting if w[0].bar_ts > self.exits_checked_ts]
            for signal, corr, _ in ready:
                self._decide(signal, corr)
        elif isinstance(body, SignalProduced):
            if body.bar_ts <= self.exits_checked_ts:
                self._decide(body, envelope.corr)
            else:
                self.waiting.append((body, envelope.corr, self.clock.monotonic()))

    def on_heartbeat(self) -> None:
        """Signals whose close was not checked for exits within ``exits_wait_s``: skipped; intents
        nobody took within ``intent_expiry_s``: no longer positions."""
        now = self.clock.monotonic()
        self._expire_intents(now)
        late = [w for w in self.waiting if now - w[2] > self.cfg.exits_wait_s]
        self.waiting = [w for w in self.waiting if now - w[2] <= self.cfg.exits_wait_s]
        for signal, corr, since in late:
            detail = f"the execution role did not check this close's exits within {now - since:.1f} s"
            self._skip(signal, corr, "exits_unchecked", detail)

    def _expire_intents(self, now: float) -> None:
        for name, flying in list(self.in_flight.items()):
            age_s = now - flying.since
            if flying.reported or age_s <= self.cfg.intent_expiry_s:
                continue
            del self.in_flight[name]
            why = (
                "it filled before this role restarted and no account read has shown its trade since: closed"
                if flying.filled_before_restart
                else "the execution role never reported on it (it was down when the intent went out)"
            )
            log.warning("intent %s for %s expired after %.0f s: %s", flying.intent_id, name, age_s, why)
            self.runtime.journal(
                "risk.intent_expired",
                {
                    "intent_id": flying.intent_id,
                    "instrument": name,
                    "age_s": round(age_s, 1),
                    "detail": f"{why}; no longer counted as a position",
                },
            )

    def _on_report(self, report: ExecutionReport) -> None:
        flying = self.in_flight.get(report.instrument)
        if flying is not None and report.intent_id and report.intent_id == flying.intent_id:
            flying.reported = True
            if report.status in ("CANCELLED", "REJECTED", "CLOSED"):  # CLOSED: maybe before the reconciler saw it
                del self.in_flight[report.instrument]
        if report.status == "CLOSED":
            if report.trade_id:
                self.closed_ids.add(report.trade_id)
            if report.realized_pl and _loss(report.realized_pl):
                # At the close it was reported at, as a backtest counts it (not the next price's time).
                since = bar_start(self.market.now_ns, self.feed.granularity)
                self.last_loss_close_ns[report.instrument] = since
                self._cooldown(report.instrument, report.trade_id, report.realized_pl, since, estimated=False)

    def _cooldown(self, instrument: str, trade_id: str, realized_pl: str, since_ns: int, *, estimated: bool) -> None:
        # Journaled: a restarted role starts from these rows (``recover``).
        self.runtime.journal(
            "risk.cooldown",
            {
                "instrument": instrument,
                "trade_id": trade_id,
                "realized_pl": realized_pl,
                "since_ns": since_ns,
                "until_ns": since_ns + round(self.cfg.cooldown_after_loss_s * 1e9),
                "estimated": estimated,
            },
        )

    def _decide(self, message: SignalProduced, corr: str | None) -> None:
        signal = Signal(
            instrument=message.instrument,
            bar_ts_ns=message.bar_ts,
            p_up=message.p_up,
            model_version=message.model_version,
        )
        # Decided at the bar's close in market time, as a backtest decides; a signal whose bar
        # ended more than a bar before the newest price is stale (a backlog, a catch-up after a
        # gap): its calendar checks would run at a time long past.
        decided_at = bar_end(message.bar_ts, self.feed.granularity)
        late_ns = self.market.now_ns - decided_at
        if self.market.now_ns and late_ns > decided_at - message.bar_ts:
            self._skip(message, corr, "stale_signal", f"its bar ended {late_ns / 1e9:.0f} s of market time ago")
            return
        if self.unheard:  # losses closed while this role was down: their cool-downs start now
            self._settle_unheard(self.market.now_ns or decided_at)
        meta = self.instruments.get(message.instrument)
        if not self.permit.allows_entry():
            self._skip(message, corr, "no_permit", f"system state {self.permit.state}")
            return
        if self.account is None or meta is None:
            self._skip(message, corr, "not_ready", "no account or instrument metadata yet")
            return
        book = {**book_of(self.account, self.closed_ids), **{k: v.position for k, v in self.in_flight.items()}}
        mids = self.market.mids()
        decision = decide_entry(
            signal,
            self.market.quote(message.instrument),
            self.market.atr(message.instrument, self.cfg.atr_period),
            instrument=meta,
            book=book,
            mids=mids,
            nav=float(self.account.nav),
            home_currency=self.account.currency,
            now_ns=decided_at,
            last_loss_close_ns=self.last_loss_close_ns,
            zone=verdict_of(self.account),
            margin_available=margin_of(self.account) - self._in_flight_margin(mids, self.account.currency),
            config=self.cfg,
        )
        self.decisions += 1
        if not isinstance(decision, EntryIntent):
            direction = decision.direction.value if decision.direction else None
            self._skip(message, corr, decision.reason.value, decision.detail, direction)
            return
        self._enter(message, corr, decision)

    def _enter(self, message: SignalProduced, corr: str | None, decision: EntryIntent) -> None:
        # The entry: counted in flight until its outcome, journaled, then published to execution.
        sized = decision.sized
        intent = RiskIntent(
            intent_id=decision.intent_id,  # type: ignore[arg-type]
            instrument=message.instrument,
            direction=sized.direction.value,
            units=format(sized.units, "f"),
            stop_loss=format(sized.stop_loss, "f"),
            take_profit=format(sized.take_profit, "f"),
            decision_price=sized.entry_price,
            sl_distance=sized.sl_distance,
            bar_ts=message.bar_ts,
            decided_ns=self.clock.time_ns(),
            p_up=message.p_up,
            model_version=message.model_version,
            multiplier=decision.multiplier,
        )
        self.in_flight[message.instrument] = InFlight(
            intent_id=intent.intent_id,
            position=decision.position(),
            since=self.clock.monotonic(),
            margin_home=sized.margin_home,
        )
        self.record(
            RiskIntentRow(
                intent_id=intent.intent_id,
                instrument=intent.instrument,
                direction=intent.direction,
                units=intent.units,
                stop_loss=intent.stop_loss,
                take_profit=intent.take_profit,
                decision_price=intent.decision_price,
                risk_home=round(sized.risk_home, 4),
                margin_home=round(sized.margin_home, 4),
                multiplier=intent.multiplier,
                p_up=intent.p_up,
                bar_ts=intent.bar_ts,
                model_version=intent.model_version,
            ),
            corr=corr,
        )
        self.runtime.publish(TOPIC_RISK_INTENT, intent, corr=corr)

    def _recover(self) -> None:
        # What the process before this one counted, from the journal (see the module docstring).
        db: Journal | None = self.runtime.journal_db
        if db is None:  # a unit test without a journal
            return
        rows = [e for kind in RECOVERY_KINDS for e in db.entries(kind)]
        got = recover(
            rows,
            now_ns=self.clock.time_ns(),
            now_mono=self.clock.monotonic(),
            cooldown_after_loss_s=self.cfg.cooldown_after_loss_s,
        )
        self.in_flight, self.last_loss_close_ns, self.unheard = got.in_flight, dict(got.losses), dict(got.unheard)
        self.runtime.journal(
            "risk.recovered",
            {
                "in_flight": {k: {"intent_id": v.intent_id, "reported": v.reported} for k, v in self.in_flight.items()},
                "cooldown_since_ns": self.last_loss_close_ns,
                "unheard_losses": {k: v.trade_id for k, v in self.unheard.items()},
            },
        )

    def _settle_unheard(self, market_ns: int) -> None:
        now_ns = self.clock.time_ns()
        for instrument, loss in self.unheard.items():
            since = unheard_loss_ns(loss, market_ns=market_ns, now_ns=now_ns)
            if since > self.last_loss_close_ns.get(instrument, since - 1):
                self.last_loss_close_ns[instrument] = since
                self._cooldown(instrument, loss.trade_id, loss.realized_pl, since, estimated=True)
        self.unheard = {}

    def _in_flight_margin(self, mids: dict[str, float], home: str) -> float:
        # What the intents in flight took from the margin available (the account does not show them).
        total = 0.0
        for name, flying in self.in_flight.items():
            if flying.margin_home is not None:
                total += flying.margin_home
            else:
                total += position_margin({name: flying.position}, self.instruments, mids, home)
        return total

    def _skip(
        self, message: SignalProduced, corr: str | None, reason: str, detail: str, direction: str | None = None
    ) -> None:
        skip = IntentSkipped(
            instrument=message.instrument,
            bar_ts=message.bar_ts,
            reason=reason,
            detail=detail,
            direction=direction,
            p_up=message.p_up,
            model_version=message.model_version,
        )
        self.record(
            RiskSkipRow(
                instrument=skip.instrument,
                bar_ts=skip.bar_ts,
                reason=reason,
                detail=detail,
                direction=direction,
                p_up=message.p_up,
                model_version=message.model_version,
            ),
            corr=corr,
        )
        self.runtime.publish(TOPIC_RISK_SKIP, skip, corr=corr)


ACTOR = RiskActor
