"""Feed role: prices in from the broker's stream; ticks, validated bars and market status out.

A stream worker holds the OANDA pricing stream through the broker factory (the real oandapyV20
client, against the emulator by default) and reconnects with exponential backoff and jitter
whenever the stream ends, resets or stalls. The actor publishes every price that passes the tick
checks (``actors.core.ticks``: finite, positive, not crossed, not stale or from the future, no jump
beyond ``feed.max_tick_jump_atr`` x the validated bars' ATR) as ``md.tick.<INSTR>``; a refused
price is never published (nor fed to the bar clock), is counted (``ticks_rejected`` in ``ctl
status``) and journaled as ``feed.tick_rejected`` under a rate limit, and an instrument whose
prices are all refused for ``feed.stale_after_s`` reports the stream unhealthy (frozen). The
stream's health goes out as ``md.health`` and to the supervisor. The recent bars the checks need
are loaded from the broker at start and pass the bar checks first (``history.loaded``). Bars follow
the market's own clock: every accepted price and heartbeat timestamp goes through a ``BarClock``
(``actors.core.bartime``), never a wall-clock sleep, so the same code runs in real time against OANDA
and faster against an accelerated emulator. At each close a bars worker fetches the closed
candle of every instrument (bid and ask), waiting up to ``feed.bar_wait_s`` for one the broker is
still closing and none for one it will never have (no ticks in the bar: a holiday, a halt,
``closed_bar_lookup``); closes queued behind a late fetch (or the start-up load) are fetched together,
one request per instrument for all their bars, and a bar the load holds is not asked for again
(``actors.core.barfetch``); the actor validates each (``actors.core.bars.BarGuard``) and publishes
``md.bar.<INSTR>`` (a ``Bar`` whose corr is its bar id) or journals ``feed.bar_rejected`` with the reason and the
candle, then ``md.bars`` for the close (a closing bar the start-up load already holds is
published as loaded: a duplicate, not a rejection). A bar with no candle is a gap only if the broker had
prices during it. Market status per instrument (calendar + the broker's ``tradeable`` flags,
``actors.core.markethours``) is journaled as ``feed.market`` on each change and reported to the
supervisor (``market`` in ``ctl status``): a closed market is not an unhealthy system.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from actors.broker import Broker
from actors.core import markethours
from actors.core.backoff import Backoff
from actors.core.barfetch import PendingCloses
from actors.core.bars import (
    BarCandle,
    BarGuard,
    RejectedBar,
    average_true_range,
    history_report,
    validate_candles,
)
from actors.core.bartime import (
    BarClock,
    bar_end,
    bar_start,
    missing_bar_is_gap,
)
from actors.core.config import FeedConfig
from actors.core.domain import OHLC, Candle, Price, PriceHeartbeat, bar_id
from actors.core.errors import BrokerError
from actors.core.ticks import REJECTION_LOG_PERIOD_S, BarSpan, RejectionLog, TickGuard, TickReason, TickVerdict
from actors.runtime.actor import RoleActor
from actors.runtime.messages import (
    TOPIC_MD_BAR,
    TOPIC_MD_BARS,
    TOPIC_MD_HEALTH,
    TOPIC_MD_TICK,
    Bar,
    BarsClosed,
    BrokerHealth,
    InstrumentMarket,
    MarketReport,
    Prices,
    PriceTick,
)

BAR_POLL_S = 0.25
RECENT_BAR_STARTS = 64


@dataclass(frozen=True, slots=True)
class _StreamItem:
    item: Price | PriceHeartbeat


@dataclass(frozen=True, slots=True)
class _StreamDown:
    reason: str


@dataclass(frozen=True, slots=True)
class _Prepared:
    pip_locations: dict[str, int]
    history: dict[str, list[BarCandle]]
    rejected: dict[str, list[RejectedBar]]


@dataclass(frozen=True, slots=True)
class _Fetched:
    start_ns: int
    candles: dict[str, BarCandle]
    errors: dict[str, str] = field(default_factory=dict)  # the last failed request's error per instrument


_WorkerResult = _StreamItem | _StreamDown | _Prepared | _Fetched  # what the stream and bars workers hand back


def _prices(ohlc: OHLC) -> Prices:
    return Prices(o=str(ohlc.o), h=str(ohlc.h), l=str(ohlc.l), c=str(ohlc.c))


def _strings(ohlc: OHLC) -> dict[str, str]:
    return {"o": str(ohlc.o), "h": str(ohlc.h), "l": str(ohlc.l), "c": str(ohlc.c)}


def _candle_body(candle: BarCandle) -> dict[str, Any]:
    # The rejected candle as the broker gave it, for the journal row.
    return {
        "ts": candle.ts,
        "volume": candle.volume,
        "complete": candle.complete,
        "bid": _strings(candle.bid),
        "ask": _strings(candle.ask),
    }


class FeedActor(RoleActor[FeedConfig, _WorkerResult]):
    """The feed's actor."""

    ROLE: ClassVar[str] = "feed"
    TOPICS: ClassVar[tuple[str, ...]] = ()
    CONFIG: ClassVar[type[FeedConfig]] = FeedConfig

    def on_start(self) -> None:
        """Start the stream and bars workers."""
        cfg = self.cfg
        self.connected = False
        self.last_ok_ns: int | None = None
        self.last_ok_mono: float | None = None
        self.reconnects = 0
        self.detail = "connecting"
        self.bar_clock = BarClock(cfg.granularity)
        # The bar checks per instrument (actors.core.bars.BarGuard); history: the accepted bars they hold.
        self.bar_guards = {i: BarGuard(granularity=cfg.granularity, config=cfg) for i in cfg.instruments}
        self.history: dict[str, deque[BarCandle]] = {i: g.recent for i, g in self.bar_guards.items()}
        self.pip_locations: dict[str, int] = {}
        self.markets: dict[str, markethours.MarketStatus] = {}
        self.priced_bars: dict[str, deque[int]] = {i: deque(maxlen=RECENT_BAR_STARTS) for i in cfg.instruments}
        # Each close: the bar's start and the instruments with tradeable prices during it.
        self.closes: queue.SimpleQueue[tuple[int, frozenset[str]]] = queue.SimpleQueue()
        self.last_bar_ns: int | None = None
        self.published = self.rejected = 0
        # Tick validation (actors.core.ticks): one guard per instrument, the journal's rate limit.
        self.guards = {i: TickGuard(cfg) for i in cfg.instruments}
        self.stream_ts: int | None = None  # the newest heartbeat or accepted price time
        self.ticks_rejected = 0
        self.tick_log = RejectionLog(REJECTION_LOG_PERIOD_S, self.clock.monotonic())
        self.last_rejection: dict[str, dict[str, Any]] = {}
        self._atr_cache: dict[str, tuple[int | None, Decimal | None]] = {}
        self._session: tuple[int, int] = (-1, 0)  # (hour, the session's start) of the last price checked
        self.frozen = ""  # why the prices of an instrument count as frozen ("" when none is)
        self.latest_unsupported = False  # the broker answered 404 for candles/latest: per instrument
        self.worker = self.start_worker("stream", self._stream_loop)
        self.start_worker("bars", self._bars_loop)

    # --- workers (blocking I/O) ---

    def _stream_loop(self, stop: threading.Event) -> None:
        backoff = Backoff(self.cfg.reconnect_initial_s, self.cfg.reconnect_max_s)
        broker = self.runtime.open_broker()  # a ConfigError ends the worker: the role fails
        while not stop.is_set():
            try:
                for item in broker.pricing_stream(self.cfg.instruments):
                    backoff.reset()
                    self.hand_back(_StreamItem(item))
                    if stop.is_set():
                        return
                reason = "stream ended"
            except BrokerError as e:
                reason = f"{type(e).__name__}: {e}"
            self.hand_back(_StreamDown(reason))
            stop.wait(backoff.next_delay())

    def _bars_loop(self, stop: threading.Event) -> None:
        cfg = self.cfg
        broker = self.runtime.open_broker()
        backoff = Backoff(0.5, 15.0)
        history: dict[str, list[BarCandle]] = {}
        while not stop.is_set():  # instrument metadata and the recent bars the checks need
            try:
                pips = {i.name: i.pip_location for i in broker.instruments(cfg.instruments)}
                history, rejected = {}, {}
                for name in cfg.instruments:  # checked as every close is (atr_bars + 1 more: a full ATR)
                    candles = broker.candles(name, cfg.granularity, count=2 * cfg.atr_bars + 3, price="BA")
                    accepted, rejected[name] = validate_candles(
                        candles, granularity=cfg.granularity, pip_location=pips.get(name, -4), config=cfg
                    )
                    history[name] = [BarCandle.from_candle(c) for c in accepted]
                self.hand_back(_Prepared(pips, history, rejected))
                break
            except BrokerError:
                stop.wait(backoff.next_delay())
        held = {name: {c.ts: c for c in candles} for name, candles in history.items()}  # not asked again
        pending = PendingCloses(cfg.instruments, cfg.granularity, cfg.bar_wait_s, held)
        while not stop.is_set():
            if not pending.closes:
                try:
                    start, priced = self.closes.get(timeout=0.2)
                except queue.Empty:
                    continue
                pending.add(start, priced, self.clock.monotonic())
            again = self._fetch_round(broker, pending)
            for close in pending.done():  # in order, each once: a close waits for the ones before it
                self.hand_back(_Fetched(close.start, close.found, close.errors))
            if pending.closes and not again:
                stop.wait(BAR_POLL_S)

    def _fetch_round(self, broker: Broker, pending: PendingCloses) -> bool:
        # One round of requests for the closed candles still waited for (actors.core.barfetch): the
        # closes queued meanwhile join first; every instrument waiting only for the newest close in
        # one candles/latest request (while the broker serves it); every other instrument in one
        # candles request for all its waiting bars (a fetch late by more than a bar catches up in
        # one request per instrument, not one per bar). A candle the broker is still closing is
        # asked for again until feed.bar_wait_s has passed (a frozen candle is then a missing bar);
        # one it will never have (closed_bar_lookup) is given up at once. True: candles/latest
        # could not reach a bar, ask again at once (those instruments alone).
        while True:
            try:
                start, priced = self.closes.get_nowait()
            except queue.Empty:
                break
            pending.add(start, priced, self.clock.monotonic())
        plan = pending.plan(latest_supported=not self.latest_unsupported)
        if plan.latest and pending.latest_answer(plan, self._latest(broker, list(plan.latest))):
            return True
        for name, (from_ns, count) in plan.ranges.items():
            try:
                candles = broker.candles(name, self.cfg.granularity, from_ts=from_ns, count=count, price="BA")
            except BrokerError as e:  # kept for the journal: a malformed candle (1e300) is no candle
                pending.range_failed(name, f"{type(e).__name__}: {e}")
                continue
            pending.range_answer(name, plan, candles)
        pending.expire(self.clock.monotonic())
        return False

    def _latest(self, broker: Broker, names: list[str]) -> dict[str, list[Candle]] | None:
        # None: ask per instrument (the broker has no candles/latest, or this attempt failed).
        if self.latest_unsupported or not names:
            return None
        try:
            latest = broker.latest_candles(names, self.cfg.granularity, price="BA")
        except BrokerError:
            return None
        if latest is None:
            self.latest_unsupported = True  # 404: never asked again by this process
        return latest

    # --- the actor ---

    def on_other(self, message: _WorkerResult) -> None:
        """Prices, heartbeats and failures from the stream; candles from the bars worker."""
        if isinstance(message, _StreamItem):
            self._on_stream_item(message.item)
        elif isinstance(message, _StreamDown):
            was = self.connected
            self.connected, self.detail = False, message.reason
            self.reconnects += 1
            self.runtime.journal("feed.stream_down", {"reason": message.reason, "reconnects": self.reconnects})
            if was or self.reconnects == 1:
                self._report()
        elif isinstance(message, _Prepared):
            self.pip_locations = message.pip_locations
            for name, candles in message.history.items():
                self.bar_guards[name].preload(candles)  # ``history[name]`` is the guard's own
            loaded = {name: (len(candles), message.rejected.get(name, [])) for name, candles in message.history.items()}
            self.runtime.journal("history.loaded", {"purpose": "checks", **history_report(loaded)})
        elif isinstance(message, _Fetched):
            self._on_bars(message.start_ns, message.candles, message.errors)

    def _on_stream_item(self, item: Price | PriceHeartbeat) -> None:
        self.last_ok_ns, self.last_ok_mono = self.clock.time_ns(), self.clock.monotonic()
        if not self.connected:
            self.connected, self.detail = True, "streaming"
            self._report()
        if isinstance(item, Price):
            verdict = self._check_tick(item)
            if not verdict.ok:
                return  # never published, never a bar's price, never the bar clock's time
            tick = PriceTick(
                instrument=item.instrument, ts=item.ts, bid=str(item.bid), ask=str(item.ask), tradeable=item.tradeable
            )
            self.runtime.publish(TOPIC_MD_TICK + item.instrument, tick)
            if item.tradeable and item.instrument in self.priced_bars:
                starts = self.priced_bars[item.instrument]
                start = bar_start(item.ts, self.cfg.granularity)
                if not starts or starts[-1] != start:
                    starts.append(start)
            self._market(item.instrument, item.ts, item.tradeable)
        else:
            for name in self.cfg.instruments:
                self._market(name, item.ts, None)
        self.stream_ts = item.ts if self.stream_ts is None else max(self.stream_ts, item.ts)
        for start in self.bar_clock.observe(item.ts):
            self.closes.put((start, self._priced(start)))

    def _check_tick(self, item: Price) -> TickVerdict:
        # The tick rules (actors.core.ticks) against the instrument's anchor, the validated bars' ATR and
        # the stream's newest time; a rejection is counted and journaled (rate-limited).
        guard = self.guards.get(item.instrument)
        if guard is None:
            return TickVerdict(ok=True)  # not an instrument of this feed: nobody trades it
        history = self.history[item.instrument]
        now_s = self.clock.monotonic()
        verdict = guard.check(
            bid=item.bid,
            ask=item.ask,
            ts=item.ts,
            atr=self._tick_atr(item.instrument),
            stream_ts=self.stream_ts,
            reference_mid=history[-1].mid.c if history else None,
            now_s=now_s,
            bar=BarSpan(bar_end(history[-1].ts, self.cfg.granularity), history[-1].mid.l, history[-1].mid.h)
            if history
            else None,
            session_start_ns=self._session_start(item.ts),
        )
        if verdict.reanchored:
            self.runtime.journal(
                "feed.tick_reanchored",
                {
                    "instrument": item.instrument,
                    "from_mid": None if verdict.previous_mid is None else str(verdict.previous_mid),
                    "to_mid": str((item.bid + item.ask) / 2),
                    "ticks": verdict.run,
                    "reason": verdict.reason.value if verdict.reason else None,
                    "detail": verdict.detail,
                },
            )
        elif not verdict.ok and verdict.reason is not TickReason.UNCONFIRMED:
            self._tick_rejected(item, verdict, now_s)
        return verdict

    def _session_start(self, ts: int) -> int:
        # The market's current session began at its last opening; sessions turn on whole hours
        # (17:00 New York), so one calendar look-up per hour of prices.
        hour = ts - ts % (3600 * 10**9)
        if self._session[0] != hour:
            self._session = (hour, markethours.period_start(ts))
        return self._session[1]

    def _tick_rejected(self, item: Price, verdict: TickVerdict, now_s: float) -> None:
        self.ticks_rejected += 1
        reason = verdict.reason.value if verdict.reason else "invalid"
        last = {
            "instrument": item.instrument,
            "reason": reason,
            "detail": verdict.detail,
            "tick_ts": item.ts,
            "bid": str(item.bid),
            "ask": str(item.ask),
        }
        self.last_rejection[item.instrument] = last
        counts = self.tick_log.record(item.instrument, reason, now_s)
        if counts is not None:
            self.runtime.journal("feed.tick_rejected", {**last, "counts": counts, "summary": False})

    def _tick_summaries(self) -> None:
        # The rate limit's periodic rows: the rejections counted but not journaled one by one.
        rows = self.tick_log.due(self.clock.monotonic())
        for instrument, counts in rows:
            last = self.last_rejection.get(instrument, {"instrument": instrument})
            self.runtime.journal("feed.tick_rejected", {**last, "counts": counts, "summary": True})

    def _tick_atr(self, instrument: str) -> Decimal | None:
        # The ATR of the validated bars (the spike check's), recomputed only when a bar arrives.
        history = self.history[instrument]
        key = history[-1].ts if history else None
        cached = self._atr_cache.get(instrument)
        if cached is None or cached[0] != key:
            cached = self._atr_cache[instrument] = (key, average_true_range(history, period=self.cfg.atr_bars))
        return cached[1]

    def _frozen_detail(self) -> str:
        # An instrument whose prices have all been refused for feed.stale_after_s, while they keep
        # coming, is frozen: the stream is then reported unhealthy (no trading on stale quotes).
        now_s = self.clock.monotonic()
        window_s = self.cfg.stale_after_s
        for name, guard in self.guards.items():
            refusing_s = guard.rejecting_for(now_s, recent_s=window_s)
            if refusing_s is not None and refusing_s > window_s:
                why = self.last_rejection.get(name, {}).get("reason", "unconfirmed")
                return f"prices of {name} refused for {refusing_s:.0f}s ({why}): frozen"
        return ""

    def _market(self, instrument: str, ts: int, tradeable: bool | None) -> None:
        if instrument not in self.history:
            return
        status, changed = markethours.update_market_status(
            self.markets.get(instrument), instrument=instrument, ts_ns=ts, tradeable=tradeable
        )
        self.markets[instrument] = status
        if changed:
            self.runtime.journal(
                "feed.market",
                {
                    "instrument": instrument,
                    "open": status.is_open,
                    "why": status.why.value if status.why else None,
                    "since_ns": status.since_ns,
                    "next_open_ns": status.next_open_ns,
                },
            )
            self.runtime.to_supervisor(self._market_report())

    def _priced(self, start: int) -> frozenset[str]:
        # The instruments the broker streamed tradeable prices for during the bar at ``start``.
        return frozenset(name for name, starts in self.priced_bars.items() if start in starts)

    def _on_bars(self, start: int, candles: dict[str, BarCandle], errors: dict[str, str] | None = None) -> None:
        cfg = self.cfg
        published, rejected, missing = [], [], []
        rows: list[tuple[str, dict[str, Any], str | None, int]] = []  # journaled in one transaction at the end
        for name in cfg.instruments:
            corr = bar_id(name, cfg.granularity, start)
            candle = candles.get(name)
            if candle is None:
                if missing_bar_is_gap(start, had_prices=start in self.priced_bars[name]):
                    missing.append(name)
                    detail = f"no complete candle within {cfg.bar_wait_s:g}s although the broker had prices"
                    if errors and name in errors:
                        detail += f"; the last request failed: {errors[name]}"
                    body = {"instrument": name, "bar_ts": start, "reason": "missing", "detail": detail}
                    rows.append(("feed.bar_rejected", body, corr, self.clock.time_ns()))
                continue
            guard = self.bar_guards[name]
            verdict = guard.check(candle, pip_location=self.pip_locations.get(name, -4), expected_ts_ns=start)
            if verdict.duplicate:  # loaded at start while this bar closed: the close still has its bar
                candle = guard.bar_at(start) or candle
            if not verdict.ok:
                rejected.append(name)
                reason = verdict.reason.value if verdict.reason else "invalid"
                body = {"instrument": name, "bar_ts": start, "reason": reason, "detail": verdict.detail}
                rows.append(("feed.bar_rejected", {**body, "candle": _candle_body(candle)}, corr, self.clock.time_ns()))
                continue
            bar = Bar(
                instrument=name,  # type: ignore[arg-type]
                granularity=cfg.granularity,
                ts=start,
                bid=_prices(candle.bid),
                ask=_prices(candle.ask),
                mid=_prices(candle.mid),
                volume=candle.volume,
            )
            self.runtime.publish(TOPIC_MD_BAR + name, bar, corr=corr)
            rows.append(
                ("md.bar", {"instrument": name, "bar_ts": start, "close": bar.mid.c}, corr, self.clock.time_ns())
            )
            published.append(name)
        self.published += len(published)
        self.rejected += len(rejected) + len(missing)
        if published:  # a close without a bar (a holiday hour, every candle rejected) is no bar
            self.last_bar_ns = start
        closed = BarsClosed(
            granularity=cfg.granularity,
            ts=start,
            published=tuple(published),
            rejected=tuple(rejected),
            missing=tuple(missing),
        )
        self.runtime.publish(TOPIC_MD_BARS, closed)
        if rows:
            self.runtime.journal_many(rows)

    def _market_report(self) -> MarketReport:
        return MarketReport(
            instruments=tuple(
                InstrumentMarket(
                    instrument=s.instrument,  # type: ignore[arg-type]
                    open=s.is_open,
                    since_ns=s.since_ns,
                    why=s.why.value if s.why else "",
                    next_open_ns=s.next_open_ns,
                )
                for s in self.markets.values()
            ),
            last_bar_ns=self.last_bar_ns,
            bars_published=self.published,
            bars_rejected=self.rejected,
            ticks_rejected=self.ticks_rejected,
        )

    def on_heartbeat(self) -> None:
        """Re-send the stream health and the market with every heartbeat."""
        self._tick_summaries()
        frozen = self._frozen_detail()
        if frozen != self.frozen:
            self.frozen = frozen
            if self.connected:
                self._report()
        silent_s = self.clock.monotonic() - self.last_ok_mono if self.last_ok_mono is not None else 0.0
        if self.connected and silent_s > self.cfg.stale_after_s:
            # The read timeout will end the stream later; until then prices are frozen: unsure.
            self.connected, self.detail = False, f"stale: nothing received for {silent_s:.0f}s"
            self.runtime.journal("feed.stream_stale", {"silent_s": round(silent_s, 1)})
            self._report()
            return
        if self.connected or self.reconnects:
            self._report(changed=False)  # nothing to say before the first attempt has an outcome
        if self.markets:
            self.runtime.to_supervisor(self._market_report())

    def _report(self, *, changed: bool = True) -> None:
        health = BrokerHealth(
            source="stream",
            connected=self.connected and not self.frozen,
            last_ok_ns=self.last_ok_ns,
            detail=self.frozen if self.connected and self.frozen else self.detail,
            reconnects=self.reconnects,
        )
        self.runtime.to_supervisor(health)
        if changed:  # the bus (and whoever journals it) hears about changes, not every second
            self.runtime.publish(TOPIC_MD_HEALTH, health)

    def on_shutdown(self, deadline_s: float) -> str:
        """Stop the stream worker."""
        # The worker may sit in a blocking stream read until the next line; the process exit
        # closes that connection, so waiting for it would only slow the shutdown down.
        stopped = self.worker.stop(0.05)
        return "stream closed" if stopped else "stream connection closed at process exit"


ACTOR = FeedActor
