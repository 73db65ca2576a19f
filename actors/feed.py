"""Feed role: prices in from the broker's stream; ticks, validated bars and market status out.

A stream worker holds the OANDA pricing stream through the broker factory (the real oandapyV20
client, against the emulator by default) and reconnects with exponential backoff and jitter
whenever the stream ends, resets or stalls. The actor publishes every price as
``md.tick.<INSTR>`` and the stream's health (``md.health`` and to the supervisor). Bars follow
the market's own clock: every price and heartbeat timestamp goes through a ``BarClock``
(``actors.bars``), never a wall-clock sleep, so the same code runs in real time against OANDA
and faster against an accelerated emulator. At each close a bars worker fetches the closed
candle of every instrument (bid and ask), waiting up to ``feed.bar_wait_s`` for one the broker is
still closing and none for one it will never have (no ticks in the bar: a holiday, a halt,
``closed_bar_lookup``); the actor validates each (``validate_bar``) and publishes ``md.bar.<INSTR>`` (a
``Bar`` whose corr is its bar id) or journals ``feed.bar_rejected`` with the reason and the
candle, then ``md.bars`` for the close. A bar with no candle is a gap only if the broker had
prices during it. Market status per instrument (calendar + the broker's ``tradeable`` flags,
``actors.calendar``) is journaled as ``feed.market`` on each change and reported to the
supervisor (``market`` in ``ctl status``): a closed market is not an unhealthy system.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from actors import calendar
from actors.backoff import Backoff
from actors.bars import (
    GRANULARITIES,
    BarCandle,
    BarClock,
    BarValidationConfig,
    CandleLookup,
    bar_start,
    closed_bar_lookup,
    missing_bar_is_gap,
    validate_bar,
)
from actors.base import RoleActor
from actors.broker import OHLC, Price, PriceHeartbeat
from actors.errors import BrokerError, ConfigError
from actors.messages import (
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
    bar_id,
)

BAR_POLL_S = 0.25
RECENT_BAR_STARTS = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedConfig(BarValidationConfig):
    """The ``[feed]`` section (the bar checks' thresholds come from ``BarValidationConfig``)."""

    instruments: tuple[str, ...] = field(
        default=("EUR_USD", "GBP_USD", "USD_JPY"), metadata={"doc": "Instruments to stream prices for."}
    )
    granularity: str = field(
        default="M15", metadata={"doc": "Bar granularity, as OANDA names it: S5 ... M15 ... H1 ... D."}
    )
    reconnect_initial_s: float = field(
        default=0.5, metadata={"doc": "First delay before reconnecting a broken stream.", "min": 0.01}
    )
    stale_after_s: float = field(
        default=10.0,
        metadata={
            "doc": "A stream silent this long (no price, no heartbeat: OANDA sends one every 5 s) is stale.",
            "min": 1.0,
            "max": 300.0,
        },
    )
    reconnect_max_s: float = field(
        default=30.0, metadata={"doc": "Upper bound of the reconnect delay (doubles, with jitter).", "min": 0.01}
    )

    def __post_init__(self) -> None:
        problems = []
        if self.granularity not in GRANULARITIES:
            problems.append(f"feed.granularity: {self.granularity!r} is not one of {', '.join(GRANULARITIES)}")
        if not self.instruments or len(set(self.instruments)) != len(self.instruments):
            problems.append("feed.instruments: name each instrument once, at least one")
        if problems:
            raise ConfigError(problems)


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


@dataclass(frozen=True, slots=True)
class _Fetched:
    start_ns: int
    candles: dict[str, BarCandle]


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


class FeedActor(RoleActor[FeedConfig]):
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
        self.history: dict[str, deque[BarCandle]] = {i: deque(maxlen=cfg.atr_bars + 1) for i in cfg.instruments}
        self.pip_locations: dict[str, int] = {}
        self.markets: dict[str, calendar.MarketStatus] = {}
        self.priced_bars: dict[str, deque[int]] = {i: deque(maxlen=RECENT_BAR_STARTS) for i in cfg.instruments}
        # Each close: the bar's start and the instruments with tradeable prices during it.
        self.closes: queue.SimpleQueue[tuple[int, frozenset[str]]] = queue.SimpleQueue()
        self.last_bar_ns: int | None = None
        self.published = self.rejected = 0
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
                    self.actor_ref.tell(_StreamItem(item))
                    if stop.is_set():
                        return
                reason = "stream ended"
            except BrokerError as e:
                reason = f"{type(e).__name__}: {e}"
            self.actor_ref.tell(_StreamDown(reason))
            stop.wait(backoff.next_delay())

    def _bars_loop(self, stop: threading.Event) -> None:
        cfg = self.cfg
        broker = self.runtime.open_broker()
        backoff = Backoff(0.5, 15.0)
        while not stop.is_set():  # instrument metadata and the recent bars the checks need
            try:
                pips = {i.name: i.pip_location for i in broker.instruments(cfg.instruments)}
                history = {}
                for name in cfg.instruments:
                    candles = broker.candles(name, cfg.granularity, count=cfg.atr_bars + 2, price="BA")
                    history[name] = [BarCandle.from_candle(c) for c in candles if c.complete]
                self.actor_ref.tell(_Prepared(pips, history))
                break
            except BrokerError:
                stop.wait(backoff.next_delay())
        while not stop.is_set():
            try:
                start, priced = self.closes.get(timeout=0.2)
            except queue.Empty:
                continue
            self.actor_ref.tell(_Fetched(start, self._fetch(broker, start, priced, stop)))

    def _fetch(self, broker: Any, start: int, priced: frozenset[str], stop: threading.Event) -> dict[str, BarCandle]:
        # The just-closed candle of every instrument. One the broker is still closing is asked for
        # again until feed.bar_wait_s has passed (a frozen candle is then a missing bar); one the
        # broker will never have (no ticks in the bar: closed_bar_lookup) is given up at once.
        found: dict[str, BarCandle] = {}
        waiting = list(self.cfg.instruments)
        deadline = self.clock.monotonic() + self.cfg.bar_wait_s
        while not stop.is_set():
            for name in tuple(waiting):
                try:
                    candles = broker.candles(name, self.cfg.granularity, from_ts=start, count=1, price="BA")
                except BrokerError:
                    continue
                lookup = closed_bar_lookup(start, candles[0] if candles else None, had_prices=name in priced)
                if lookup is CandleLookup.FOUND:
                    found[name] = BarCandle.from_candle(candles[0])
                if lookup is not CandleLookup.WAIT:
                    waiting.remove(name)
            if not waiting or self.clock.monotonic() >= deadline:
                break
            stop.wait(BAR_POLL_S)
        return found

    # --- the actor ---

    def on_other(self, message: Any) -> None:
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
                self.history[name].extend(candles)
        elif isinstance(message, _Fetched):
            self._on_bars(message.start_ns, message.candles)

    def _on_stream_item(self, item: Price | PriceHeartbeat) -> None:
        self.last_ok_ns, self.last_ok_mono = self.clock.time_ns(), self.clock.monotonic()
        if not self.connected:
            self.connected, self.detail = True, "streaming"
            self._report()
        if isinstance(item, Price):
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
        for start in self.bar_clock.observe(item.ts):
            self.closes.put((start, self._priced(start)))

    def _market(self, instrument: str, ts: int, tradeable: bool | None) -> None:
        if instrument not in self.history:
            return
        status, changed = calendar.update_market_status(
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

    def _on_bars(self, start: int, candles: dict[str, BarCandle]) -> None:
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
                    body = {"instrument": name, "bar_ts": start, "reason": "missing", "detail": detail}
                    rows.append(("feed.bar_rejected", body, corr, self.clock.time_ns()))
                continue
            verdict = validate_bar(
                candle,
                granularity=cfg.granularity,
                pip_location=self.pip_locations.get(name, -4),
                config=cfg,
                expected_ts_ns=start,
                history=tuple(self.history[name]),
            )
            if not verdict.ok:
                rejected.append(name)
                reason = verdict.reason.value if verdict.reason else "invalid"
                body = {"instrument": name, "bar_ts": start, "reason": reason, "detail": verdict.detail}
                rows.append(("feed.bar_rejected", {**body, "candle": _candle_body(candle)}, corr, self.clock.time_ns()))
                continue
            self.history[name].append(candle)
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
        )

    def on_heartbeat(self) -> None:
        """Re-send the stream health and the market with every heartbeat."""
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
            connected=self.connected,
            last_ok_ns=self.last_ok_ns,
            detail=self.detail,
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
