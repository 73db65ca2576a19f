"""Risk role: one decision per signal, from signal to intent or skip.

For every ``model.signal.<INSTR>`` the role decides once and journals the decision with the
bar's corr and the model version: ``risk.intent`` (published for the execution role, with a
deterministic intent id that becomes the order's client id) or ``risk.skip`` with the stable
reason. Entries are decided only while the role holds an unexpired TRADING permit (else the skip
reason is ``no_permit``). The decision itself is ``actors.sizing.decide_entry`` (gate, daily loss
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from actors.backoff import Backoff
from actors.bars import BarCandle, RejectedBar, bar_end, bar_start, history_report, validate_candles
from actors.base import RoleActor
from actors.broker import Instrument
from actors.errors import BrokerError, ConfigError
from actors.feed import FeedConfig
from actors.gate import Direction, OpenPosition, Signal
from actors.journal import Journal, JournalEntry
from actors.marketview import MarketView, bar_candle
from actors.messages import (
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
from actors.sizing import STRATEGY_RE, EntryIntent, decide_entry, position_margin
from actors.zones import ZoneVerdict

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskConfig:
    """The ``[risk]`` section: the entry gate, sizing, the daily loss limit and the drawdown zones.

    The pure rules (``actors.gate``, ``actors.sizing``, ``actors.zones``) read this object
    directly, in the risk role and in ``tradehost backtest`` alike: it is the one source of truth.
    """

    strategy: str = field(
        default="main",
        metadata={"doc": "Strategy name: the first part of every intent id ([A-Za-z0-9_-], at most 40 characters)."},
    )
    min_probability: float = field(
        default=0.6,
        metadata={
            "doc": "Enter long when P(up) >= this, short when P(up) <= 1 - this (must be above 0.5).",
            "min": 0.5,
            "max": 1.0,
        },
    )
    max_open_positions: int = field(
        default=3, metadata={"doc": "Most instruments with an open position at once.", "min": 1, "max": 100}
    )
    risk_per_trade: float = field(
        default=0.005,
        metadata={
            "doc": "Fraction of NAV lost when a trade's stop loss fills (before the zone multiplier).",
            "min": 0.0,
            "max": 0.05,
        },
    )
    max_exposure_per_currency: float = field(
        default=10.0,
        metadata={
            "doc": "Largest net exposure to one currency other than the home currency, as a multiple of NAV.",
            "min": 0.0,
            "max": 100.0,
        },
    )
    max_spread_pips: float = field(
        default=3.0,
        metadata={"doc": "No entry while the spread is wider than this, in pips.", "min": 0.0, "max": 1000.0},
    )
    atr_period: int = field(
        default=14, metadata={"doc": "Bars in the ATR that sets the stop-loss distance.", "min": 1, "max": 1000}
    )
    sl_atr_mult: float = field(
        default=1.5, metadata={"doc": "Stop-loss distance from the entry price, in ATRs.", "min": 0.01, "max": 100.0}
    )
    reward_ratio: float = field(
        default=1.5,
        metadata={"doc": "Take-profit distance as a multiple of the stop-loss distance.", "min": 0.01, "max": 100.0},
    )
    min_units: float = field(
        default=1.0,
        metadata={"doc": "Smallest order; a smaller size is skipped (never rounded up).", "min": 0.0, "max": 1e9},
    )
    max_units: float = field(
        default=1_000_000.0, metadata={"doc": "Largest order; a larger size is cut to this.", "min": 1.0, "max": 1e9}
    )
    margin_reserve: float = field(
        default=0.05,
        metadata={
            "doc": "Part of the NAV a new entry leaves free of margin: the margin cut sizes to the margin "
            "available less this * NAV, so an order still fits when open trades moved between the "
            "reconciler's read and the fill (0.05: a 0.17 % move of open trades using all the margin at 30:1).",
            "min": 0.0,
            "max": 0.9,
        },
    )
    no_entry_before_weekly_close_s: float = field(
        default=1800.0,
        metadata={
            "doc": "No entry this many seconds before the market closes (Friday 17:00 New York, or a holiday).",
            "min": 0.0,
            "max": 172_800.0,
        },
    )
    rollover_window_s: float = field(
        default=900.0,
        metadata={
            "doc": "No entry this many seconds either side of the 17:00 New York rollover.",
            "min": 0.0,
            "max": 21_600.0,
        },
    )
    cooldown_after_loss_s: float = field(
        default=3600.0,
        metadata={
            "doc": "No entry on an instrument this long after a losing trade on it closed.",
            "min": 0.0,
            "max": 604_800.0,
        },
    )
    daily_loss_limit: float = field(
        default=0.03,
        metadata={
            "doc": "Loss since the trading day began (17:00 New York), as a fraction of the day-start NAV, "
            "that stops new entries until the next trading day.",
            "min": 0.0,
            "max": 1.0,
        },
    )
    exits_wait_s: float = field(
        default=5.0,
        metadata={
            "doc": "A close's signals wait at most this long for the execution role's exit check of that close "
            "(trades closed by then count); later they are skipped (exits_unchecked).",
            "min": 0.1,
            "max": 3600.0,
        },
    )
    intent_expiry_s: float = field(
        default=120.0,
        metadata={
            "doc": "An intent the execution role never reported on (it was down when the intent went out) stops "
            "counting as an open position after this long (risk.intent_expired); must be longer than "
            "execution.max_intent_age_s + broker.timeout_s + reconciler.poll_interval_s (checked at start).",
            "min": 1.0,
            "max": 86400.0,
        },
    )
    drawdown_zones: tuple[tuple[float, float], ...] = field(
        default=((0.05, 1.0), (0.10, 0.5), (0.15, 0.25)),
        metadata={
            "doc": "[[drawdown, size multiplier], ...] by rising drawdown from peak NAV: below the first "
            "drawdown the first multiplier applies, and so on; beyond the last, no new trades (latched).",
            "min": 0.0,
            "max": 1.0,
        },
    )

    def __post_init__(self) -> None:
        """Cross-value rules the loader's per-field checks cannot express.

        Raises:
            ConfigError: one line per problem, each starting with ``risk.<key>:``.
        """
        problems: list[str] = []
        if not STRATEGY_RE.fullmatch(self.strategy):
            problems.append(f"risk.strategy: {self.strategy!r} must match {STRATEGY_RE.pattern}")
        if not 0.5 < self.min_probability <= 1.0:
            problems.append(f"risk.min_probability: {self.min_probability!r} must be above 0.5 and at most 1")
        if not self.risk_per_trade > 0:
            problems.append(f"risk.risk_per_trade: {self.risk_per_trade!r} must be above 0")
        if not self.daily_loss_limit > 0:
            problems.append(f"risk.daily_loss_limit: {self.daily_loss_limit!r} must be above 0")
        if self.min_units > self.max_units:
            problems.append(f"risk.min_units: {self.min_units!r} is above risk.max_units ({self.max_units!r})")
        problems.extend(_zone_problems(self.drawdown_zones))
        if problems:
            raise ConfigError(problems)


def _zone_problems(zones: object) -> list[str]:
    key = "risk.drawdown_zones"
    if not isinstance(zones, tuple) or not zones:
        return [f"{key}: expected at least one [drawdown, multiplier] pair"]
    problems: list[str] = []
    previous: tuple[float, float] | None = None
    for i, pair in enumerate(zones):
        if (
            not isinstance(pair, tuple)
            or len(pair) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
        ):
            problems.append(f"{key}[{i}]: expected a [drawdown, multiplier] pair of numbers, got {pair!r}")
            previous = None
            continue
        limit, multiplier = float(pair[0]), float(pair[1])
        if not 0.0 < limit <= 1.0:
            problems.append(f"{key}[{i}]: drawdown {limit!r} must be above 0 and at most 1")
        if not 0.0 < multiplier <= 1.0:
            problems.append(f"{key}[{i}]: multiplier {multiplier!r} must be above 0 and at most 1")
        if previous is not None and limit <= previous[0]:
            problems.append(f"{key}[{i}]: drawdowns must rise ({limit!r} after {previous[0]!r})")
        if previous is not None and multiplier > previous[1]:
            problems.append(
                f"{key}[{i}]: a deeper zone cannot have a larger multiplier ({multiplier!r} after {previous[1]!r})"
            )
        previous = (limit, multiplier)
    return problems


@dataclass(frozen=True, slots=True)
class _Prepared:
    instruments: dict[str, Instrument]
    bars: dict[str, list[BarCandle]]
    rejected: dict[str, list[RejectedBar]]


@dataclass(slots=True)
class InFlight:
    """An intent sent or filled and not yet in ``recon.state``: it counts as a position.

    Attributes:
        intent_id: the intent's id (the order's client id).
        position: the position it would open.
        since: when it was decided (the role's monotonic clock).
        reported: the execution role has reported on it (so it took it: never expired).
        margin_home: what it took from the margin available (``SizedEntry.margin_home``); None:
            unknown, valued as ``actors.sizing.position_margin`` of its position.
        filled_before_restart: the journal says it filled before this role started (``since``
            is then the fill's time): it counts until the account shows its trade, or at most
            ``risk.intent_expiry_s``, by when every account read shows a trade still open.
    """

    intent_id: str
    position: OpenPosition
    since: float
    reported: bool = False
    margin_home: float | None = None
    filled_before_restart: bool = False


def book_of(account: AccountSnapshot, closed: frozenset[str] | set[str] = frozenset()) -> dict[str, OpenPosition]:
    """The open positions by instrument, as the gate and sizing take them (net per instrument),
    without the trades in ``closed`` (reported closed since the snapshot was taken)."""
    book: dict[str, OpenPosition] = {}
    for trade in account.trades:
        units = float(trade.units)
        if units == 0 or trade.trade_id in closed:
            continue
        book[trade.instrument] = OpenPosition(
            instrument=trade.instrument,
            direction=Direction.LONG if units > 0 else Direction.SHORT,
            units=abs(units),
            entry_price=float(trade.price),
        )
    return book


def margin_of(account: AccountSnapshot) -> float:
    """The broker's ``marginAvailable`` in the snapshot, NaN when unknown (sizing then skips: ``margin``)."""
    try:
        value = float(account.margin_available)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def zone_of(account: AccountSnapshot) -> ZoneVerdict:
    """The reconciler's zone verdict, as the decision takes it."""
    return ZoneVerdict(
        zone=account.zone,
        multiplier=account.multiplier,
        drawdown=account.drawdown,
        daily_pnl=float(account.daily_pnl or 0),
        daily_loss_hit=account.daily_loss_hit,
        drawdown_stop=account.drawdown_stop,
    )


# The journal rows a restarted role reads back: its own, the execution role's (each intent's
# outcome, each close) and the reconciler's full reconciliations.
RECOVERY_KINDS = (
    "risk.intent", "risk.intent_expired", "risk.cooldown", "exec.sending", "exec.filled", "exec.resolved",
    "exec.cancelled", "exec.rejected", "exec.ambiguous", "exec.closed", "recon.completed",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class UnheardLoss:
    """A losing close the execution role journaled while the risk role was not there to hear it.

    Attributes:
        trade_id: the closed trade.
        realized_pl: its P&L (home currency, decimal string).
        journaled_ns: when its ``exec.closed`` row was written (wall clock).
    """

    trade_id: str
    realized_pl: str
    journaled_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovered:
    """What a restarted risk role takes over from the journal (``recover``).

    Attributes:
        in_flight: by instrument, the intent whose journaled story has not ended.
        losses: by instrument, the market time of the last losing close a cool-down was started
            for (``risk.cooldown`` rows).
        unheard: by instrument, the newest losing close within ``risk.cooldown_after_loss_s`` that
            no ``risk.cooldown`` row answers: its market time is estimated once the role knows
            the market's time (``unheard_loss_ns``).
    """

    in_flight: dict[str, InFlight]
    losses: dict[str, int]
    unheard: dict[str, UnheardLoss]


def _loss(realized_pl: object) -> bool:
    try:
        return Decimal(str(realized_pl)) < 0
    except InvalidOperation:  # "unknown": the close could not be read
        return False


def recover(
    entries: Iterable[JournalEntry], *, now_ns: int, now_mono: float, cooldown_after_loss_s: float
) -> Recovered:
    """Rebuild the intents in flight and the loss cool-downs from the journal's rows.

    An instrument's newest ``risk.intent`` is in flight unless the journal ended its story: an
    ``exec.cancelled``, ``exec.rejected``, ``exec.resolved`` cancelled or ``risk.intent_expired``
    row, an ``exec.closed`` of the trade it filled, or a final ``exec.ambiguous`` (unresolved)
    followed by a ``recon.completed`` (a full read of the broker's trades after the order's last
    word: if it filled, the account shows it). Sent (``exec.sending``) or unresolved, it counts as
    reported (never expires, as live); never taken, its age is its row's age, so
    ``risk.intent_expiry_s`` applies as before the restart. Filled, it counts until the account
    shows its trade (as live) or ``risk.intent_expiry_s`` after the fill: the start-up check keeps
    that longer than an account read takes to show a fill, so a trade no read shows by then has
    closed (a close whose row lacks the trade id cannot hold a slot for ever).

    Args:
        entries: the journal rows of ``RECOVERY_KINDS`` (any order).
        now_ns: the wall clock now (the journal's ``ts_ns`` clock).
        now_mono: the role's monotonic clock now (``InFlight.since``).
        cooldown_after_loss_s: ``risk.cooldown_after_loss_s``.
    """
    newest: dict[str, JournalEntry] = {}
    ended: set[str] = set()
    sent: set[str] = set()
    filled: dict[str, tuple[str, int]] = {}  # intent id -> (trade id or "", when the fill was journaled)
    unresolved: set[str] = set()
    closed: set[str] = set()
    heard: set[str] = set()
    losses: dict[str, int] = {}
    last_loss: dict[str, JournalEntry] = {}
    for e in sorted(entries, key=lambda e: e.seq):
        body, kind = e.body, e.kind
        intent_id, trade_id = str(body.get("intent_id") or ""), str(body.get("trade_id") or "")
        instrument = str(body.get("instrument") or "")
        if kind == "risk.intent":
            newest[instrument] = e
        elif kind == "exec.sending":
            sent.add(intent_id)
        elif kind in ("exec.cancelled", "exec.rejected", "risk.intent_expired") or (
            kind == "exec.resolved" and body.get("outcome") == "cancelled"
        ):
            ended.add(intent_id)
        elif kind in ("exec.filled", "exec.resolved"):
            filled[intent_id] = (trade_id, e.ts_ns)
        elif kind == "exec.ambiguous" and body.get("final"):
            unresolved.add(intent_id)
        elif kind == "recon.completed" and body.get("ok") is True:
            ended |= unresolved
            unresolved.clear()
        elif kind == "exec.closed":
            closed.add(trade_id)
            if _loss(body.get("realized_pl")):
                last_loss[instrument] = e
        elif kind == "risk.cooldown" and isinstance(body.get("since_ns"), int):
            heard.add(trade_id)
            losses[instrument] = max(losses.get(instrument, body["since_ns"]), body["since_ns"])
    in_flight: dict[str, InFlight] = {}
    for instrument, e in newest.items():
        body = e.body
        intent_id = str(body.get("intent_id") or "")
        fill = filled.get(intent_id)
        if intent_id in ended or (fill is not None and fill[0] in closed):
            continue
        try:
            position = OpenPosition(
                instrument=instrument,
                direction=Direction(body["direction"]),
                units=float(body["units"]),
                entry_price=float(body["decision_price"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            log.error("risk.intent row %d cannot be rebuilt (%s): %s", e.seq, err, body)
            continue
        margin = body.get("margin_home")
        in_flight[instrument] = InFlight(
            intent_id=intent_id,
            position=position,
            since=now_mono - (now_ns - (e.ts_ns if fill is None else fill[1])) / 1e9,
            reported=fill is None and (intent_id in sent or intent_id in unresolved),
            margin_home=float(margin) if isinstance(margin, int | float) else None,
            filled_before_restart=fill is not None,
        )
    unheard = {
        instrument: UnheardLoss(
            trade_id=str(e.body.get("trade_id")), realized_pl=str(e.body.get("realized_pl")), journaled_ns=e.ts_ns
        )
        for instrument, e in last_loss.items()
        if str(e.body.get("trade_id")) not in heard and (now_ns - e.ts_ns) / 1e9 < cooldown_after_loss_s
    }
    return Recovered(in_flight=in_flight, losses=losses, unheard=unheard)


def unheard_loss_ns(loss: UnheardLoss, *, market_ns: int, now_ns: int) -> int:
    """The market time a cool-down starts at for a loss the role never heard of.

    Its ``exec.closed`` row was written ``now_ns - journaled_ns`` wall seconds ago; the market
    moved at least as far in that time (a live market runs at the wall clock's pace, a replay or
    an accelerated emulator faster), so the close happened no later than ``market_ns`` less that
    age: the estimate never ends the cool-down before the real one would.
    """
    return market_ns - max(0, now_ns - loss.journaled_ns)


class RiskActor(RoleActor[RiskConfig]):
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
                self.actor_ref.tell(_Prepared(metadata, bars, rejected))
                break
            except BrokerError:
                stop.wait(backoff.next_delay())
        stop.wait()  # done; a worker that ends on its own fails the role

    def on_other(self, message: Any) -> None:
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
            zone=zone_of(self.account),
            margin_available=margin_of(self.account) - self._in_flight_margin(mids, self.account.currency),
            config=self.cfg,
        )
        self.decisions += 1
        if not isinstance(decision, EntryIntent):
            direction = decision.direction.value if decision.direction else None
            self._skip(message, corr, decision.reason.value, decision.detail, direction)
            return
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
            position=OpenPosition(
                instrument=message.instrument,
                direction=sized.direction,
                units=float(sized.units),
                entry_price=sized.entry_price,
            ),
            since=self.clock.monotonic(),
            margin_home=sized.margin_home,
        )
        self.runtime.journal(
            "risk.intent",
            {
                "intent_id": intent.intent_id,
                "instrument": intent.instrument,
                "direction": intent.direction,
                "units": intent.units,
                "stop_loss": intent.stop_loss,
                "take_profit": intent.take_profit,
                "decision_price": intent.decision_price,
                "risk_home": round(sized.risk_home, 4),
                "margin_home": round(sized.margin_home, 4),
                "multiplier": intent.multiplier,
                "p_up": intent.p_up,
                "bar_ts": intent.bar_ts,
                "model_version": intent.model_version,
            },
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
        self.runtime.journal(
            "risk.skip",
            {
                "instrument": skip.instrument,
                "bar_ts": skip.bar_ts,
                "reason": reason,
                "detail": detail,
                "direction": direction,
                "p_up": message.p_up,
                "model_version": message.model_version,
            },
            corr=corr,
        )
        self.runtime.publish(TOPIC_RISK_SKIP, skip, corr=corr)


ACTOR = RiskActor
