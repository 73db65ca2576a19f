"""Bar time and bar validation: OANDA's granularities and alignment, the bar clock, gaps, checks.

Alignment is OANDA's (candles ``dailyAlignment=17``, ``alignmentTimezone=America/New_York``, the
defaults): S5 to M1 align to the minute and M2 to H1 to the hour, which in integer UTC
nanoseconds is ``ts - ts % step``; H2, H3, H4, H6, H8, H12 and D align to the 17:00 New York
rollover that starts each trading day (``actors.core.markethours``), so an H4 bar starts at 21:00, 01:00,
05:00 ... UTC in summer and 22:00, 02:00, 06:00 ... in winter, and a D bar is one trading day. Every
bar of every granularity therefore lies wholly inside or wholly outside the weekly session. The
``BarClock`` is driven only by market timestamps (the pricing stream's price and heartbeat
``time``), never by wall-clock time, so the same code closes bars in real time against OANDA and
faster against an accelerated emulator.

Gaps. Real FX candles do not exist for an interval without ticks (OANDA makes no candle then),
so an absent bar is not automatically a fault. ``expected_bars`` lists the bars the calendar
expects between two bars (open hours only: weekends and the expected holidays are silence), and
``missing_bar_is_gap`` is the live rule: a bar that did not arrive is a gap only if the calendar
expected the market open *and* the broker sent at least one tradeable price during the bar's
interval; otherwise it is "no ticks, expected" (the first minutes after the 17:00 rollover, a
halt, a holiday). Recorded data has no stream to ask: ``tradehost train`` and ``backtest`` check
the bars a file has and do not look for absent ones, and an absent bar is never a rejection of the
bar that follows it (``validate_bar`` does not look at gaps).

Validation (``validate_bar``) works on ``BarCandle``: bid and ask OHLC as ``Decimal`` (the broker
layer's type; exact, so "an exact copy of the previous bar" and OHLC ordering are exact
comparisons), mid derived as (bid + ask) / 2. Each failed check has a stable ``BarReason`` code.
``validate_history`` is the one rule for every bar that enters features or an ATR, live or loaded:
``validate_bar`` over a sequence, each bar against the bars accepted before it. The live feed
checks each close that way; the model, risk and feed roles check the bars they load from the
broker at every (re)start (``validate_candles``, journaled as ``history.loaded``), and ``tradehost
train`` and ``backtest`` check the candles they read; so a bar rejected live never enters the
features or an ATR after a restart, and a backtest drops the bars the live run dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors.core.domain import DAY_ALIGNED, granularity_seconds

if TYPE_CHECKING:
    from actors.core.config import BarValidationConfig

import enum
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from actors.core import markethours
from actors.core.domain import OHLC, Candle

__all__ = [
    "BarCandle",
    "BarClock",
    "BarReason",
    "BarVerdict",
    "CandleLookup",
    "HasMid",
    "MidBar",
    "RejectedBar",
    "average_true_range",
    "bar_end",
    "bar_start",
    "closed_bar_lookup",
    "expected_bars",
    "history_report",
    "missing_bar_is_gap",
    "validate_bar",
    "validate_candles",
    "validate_history",
]

_NS = 1_000_000_000


def bar_start(ts_ns: int, granularity: str) -> int:
    """The start of the bar of ``granularity`` that contains ``ts_ns`` (OANDA's candle ``time``).

    Args:
        ts_ns: a UTC time in nanoseconds.
        granularity: an OANDA granularity from ``GRANULARITIES``.

    Returns:
        The bar's start in UTC nanoseconds.

    Raises:
        ValueError: unknown granularity.
    """
    step_ns = granularity_seconds(granularity) * _NS
    if granularity not in DAY_ALIGNED:
        return ts_ns - ts_ns % step_ns
    day_ns = markethours.trading_day_start(ts_ns)
    return day_ns + (ts_ns - day_ns) // step_ns * step_ns


def bar_end(ts_ns: int, granularity: str) -> int:
    """The end (exclusive) of the bar of ``granularity`` that contains ``ts_ns``.

    Normally ``bar_start + granularity_seconds``. Day-aligned bars never cross a 17:00 New York
    rollover, so on the 23- and 25-hour trading days of a daylight-saving switch (always inside
    the weekend) the last bar of the day is shorter or longer.

    Raises:
        ValueError: unknown granularity.
    """
    start_ns = bar_start(ts_ns, granularity)
    end_ns = start_ns + granularity_seconds(granularity) * _NS
    if granularity in DAY_ALIGNED:
        rollover_ns = markethours.next_rollover(ts_ns)
        if granularity == "D" or end_ns > rollover_ns:
            end_ns = rollover_ns
    return end_ns


def _bars_in(from_ns: int, to_ns: int, granularity: str, keep: Callable[[int], bool]) -> Iterator[int]:
    # Starts of the bars with from_ns <= start < to_ns (from_ns aligned) whose trading day passes
    # ``keep``. Closures are whole trading days, so closed days are skipped in one step.
    start_ns = from_ns
    while start_ns < to_ns:
        day_end_ns = markethours.next_rollover(start_ns)
        if not keep(start_ns):
            start_ns = day_end_ns
            continue
        stop_ns = min(day_end_ns, to_ns)
        while start_ns < stop_ns:
            yield start_ns
            start_ns = bar_end(start_ns, granularity)


def expected_bars(prev_ts_ns: int, next_ts_ns: int, granularity: str) -> list[int]:
    """Start times of the bars the calendar expects strictly between two bars.

    Weekends and the calendar's expected holidays are not expected to have bars, so an empty
    list across them means "no gap". Whether an expected bar that is absent is a fault is decided
    by ``missing_bar_is_gap`` (live only: recorded data has no stream to ask).

    Args:
        prev_ts_ns: the start of the earlier bar.
        next_ts_ns: the start of the later bar.
        granularity: the bars' granularity.

    Returns:
        Bar starts ``s`` with ``prev_ts_ns < s < next_ts_ns`` in expected open hours, ascending.
    """
    return list(_bars_in(bar_end(prev_ts_ns, granularity), next_ts_ns, granularity, markethours.is_open))


def missing_bar_is_gap(bar_start_ns: int, *, had_prices: bool) -> bool:
    """Whether a bar that never arrived is a gap (a fault to journal) rather than expected silence.

    Args:
        bar_start_ns: the start of the bar that did not arrive.
        had_prices: whether the broker streamed at least one tradeable price for the instrument
            during the bar's interval.

    Returns:
        True only when the calendar expected the market open and the broker had prices: no
        ticks (after the rollover, a halt, a holiday the broker keeps closed) is not a gap.
    """
    return had_prices and markethours.is_open(bar_start_ns)


class CandleLookup(enum.StrEnum):
    """What one answer of the broker says about the candle of a closed bar (``closed_bar_lookup``)."""

    FOUND = "found"
    WAIT = "wait"
    ABSENT = "absent"


def closed_bar_lookup(bar_start_ns: int, first: Candle | None, *, had_prices: bool) -> CandleLookup:
    """Whether to take, wait for, or give up on the candle of the closed bar at ``bar_start_ns``.

    ``first`` is the first candle the broker returns from ``bar_start_ns`` on (``from`` =
    ``bar_start_ns``, ``count`` = 1). The wait (``feed.bar_wait_s``) is for a candle the broker is
    still closing; a bar the broker will never have a candle for is given up at once, so a closure
    of many bars (a holiday the clock does not skip, a replay against an accelerated emulator)
    costs one request per bar, not one wait:

    - the bar's candle, complete: ``FOUND``; not complete yet: ``WAIT``;
    - a later candle: ``ABSENT`` (candles come in time order: the bar had no ticks and never will);
    - no candle: ``WAIT`` when the broker streamed tradeable prices during the bar (its candle is
      late), else ``ABSENT`` (no ticks: a holiday, a halt, the minutes after the rollover).

    Args:
        bar_start_ns: the start of the closed bar.
        first: the broker's first candle at or after ``bar_start_ns``; ``None`` when it has none.
        had_prices: whether the stream brought a tradeable price of the instrument during the bar.

    Returns:
        The verdict of this answer.
    """
    if first is None:
        return CandleLookup.WAIT if had_prices else CandleLookup.ABSENT
    if first.ts > bar_start_ns:
        return CandleLookup.ABSENT
    if first.ts == bar_start_ns and first.complete:
        return CandleLookup.FOUND
    return CandleLookup.WAIT


class BarClock:
    """Detects bar closes from market timestamps alone (prices and heartbeats), never wall-clock.

    ``observe`` is fed the ``time`` of every price and heartbeat of the stream; it returns the
    starts of the bars that closed since the previous observation: usually none, one at each
    boundary (heartbeats alone are enough, every 5 s), several after a stream gap, and never a
    bar inside the weekend. The first observation only sets the position: bars that closed
    before it are history, loaded from the broker's candles. Timestamps that do not advance
    (late or reordered prices) are ignored.

    Args:
        granularity: the bars' granularity.
        last_ts_ns: market time already seen (e.g. the last one before a restart); ``None`` to
            start at the first observation.
        include_holidays: report closes of bars on the calendar's expected holidays too (the
            broker's ``tradeable`` flag decides whether such a bar can exist; when it does not, the
            feed gives the candle up at once, ``closed_bar_lookup``, and ``missing_bar_is_gap``
            says it is not a gap). False skips those days like the weekend.

    Raises:
        ValueError: unknown granularity.
    """

    def __init__(self, granularity: str, *, last_ts_ns: int | None = None, include_holidays: bool = True) -> None:
        granularity_seconds(granularity)
        self.granularity = granularity
        self._keep = markethours.in_weekly_session if include_holidays else markethours.is_open
        self._last_ns = last_ts_ns
        self._pending_end_ns = None if last_ts_ns is None else bar_end(last_ts_ns, granularity)

    def observe(self, ts_ns: int) -> list[int]:
        """Advance to market time ``ts_ns``.

        Args:
            ts_ns: the ``time`` of a price or heartbeat, UTC nanoseconds.

        Returns:
            Starts of the bars (in open hours) that closed in ``(last, ts_ns]``, ascending.
        """
        last_ns, pending_ns = self._last_ns, self._pending_end_ns
        if last_ns is None or pending_ns is None:
            self._last_ns, self._pending_end_ns = ts_ns, bar_end(ts_ns, self.granularity)
            return []
        if ts_ns <= last_ns:
            return []
        self._last_ns = ts_ns
        if ts_ns < pending_ns:
            return []
        self._pending_end_ns = bar_end(ts_ns, self.granularity)
        from_ns = bar_start(last_ns, self.granularity)
        return list(_bars_in(from_ns, bar_start(ts_ns, self.granularity), self.granularity, self._keep))


class BarReason(enum.StrEnum):
    """Why a bar was rejected (stable codes: journal rows and reports query them)."""

    INCOMPLETE = "incomplete"
    MISALIGNED = "misaligned"
    NOT_FINITE = "not_finite"
    NON_POSITIVE = "non_positive"
    OHLC_INCONSISTENT = "ohlc_inconsistent"
    ZERO_VOLUME = "zero_volume"
    SPREAD_TOO_WIDE = "spread_too_wide"
    STALE = "stale"
    SPIKE = "spike"


@dataclass(frozen=True, slots=True, kw_only=True)
class BarVerdict:
    """The outcome of ``validate_bar``: ``ok``, or the ``reason`` code and a readable ``detail``."""

    ok: bool
    reason: BarReason | None = None
    detail: str = ""


_OK = BarVerdict(ok=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class BarCandle:
    """One candle with bid and ask OHLC, as validation needs it.

    Attributes:
        ts: the candle's start, UTC nanoseconds.
        volume: the number of prices in the period.
        complete: whether the period has ended.
        bid: bid OHLC.
        ask: ask OHLC.
    """

    ts: int
    volume: int
    complete: bool
    bid: OHLC
    ask: OHLC
    # Mid OHLC, each field (bid + ask) / 2 (so the mid high is the mean of the two highs); computed
    # once here, as every ATR over recent bars reads it again for each bar.
    mid: OHLC = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        b, a = self.bid, self.ask
        mid = OHLC(o=_mean(b.o, a.o), h=_mean(b.h, a.h), l=_mean(b.l, a.l), c=_mean(b.c, a.c))
        object.__setattr__(self, "mid", mid)

    @classmethod
    def from_candle(cls, candle: Candle) -> BarCandle:
        """Take a broker ``Candle`` fetched with ``price="BA"`` (or ``"MBA"``).

        Raises:
            ValueError: the candle lacks its bid or ask component.
        """
        if candle.bid is None or candle.ask is None:
            raise ValueError("a candle for validation needs bid and ask prices (request price='BA')")
        return cls(ts=candle.ts, volume=candle.volume, complete=candle.complete, bid=candle.bid, ask=candle.ask)


_TWO = Decimal(2)
_NAN = Decimal("NaN")


def _mean(bid: Decimal, ask: Decimal) -> Decimal:
    # NaN for a non-finite side (validate_bar refuses such a bar before it looks at the mid).
    return (bid + ask) / _TWO if bid.is_finite() and ask.is_finite() else _NAN


def _fields(ohlc: OHLC) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return ohlc.o, ohlc.h, ohlc.l, ohlc.c


def _inconsistency(name: str, ohlc: OHLC) -> str | None:
    if ohlc.h < ohlc.l:
        return f"{name} high {ohlc.h} < low {ohlc.l}"
    if ohlc.h < max(ohlc.o, ohlc.c):
        return f"{name} high {ohlc.h} < max(open {ohlc.o}, close {ohlc.c})"
    if ohlc.l > min(ohlc.o, ohlc.c):
        return f"{name} low {ohlc.l} > min(open {ohlc.o}, close {ohlc.c})"
    return None


class HasMid(Protocol):
    """Anything with mid OHLC prices: a ``BarCandle``, or the backtest's ``MidBar``."""

    @property
    def mid(self) -> OHLC:
        """Mid open, high, low, close."""
        ...


@dataclass(frozen=True, slots=True)
class MidBar:
    """A bar known only by its mid prices (the backtest's input to the ATR rule: it has no
    separate bid and ask candles to average, so it skips building them)."""

    mid: OHLC


def average_true_range(bars: Sequence[HasMid], *, period: int) -> Decimal | None:
    """The mean true range of the mid prices of the last ``period`` bars.

    The true range of a bar is max(high - low, |high - previous close|, |low - previous close|);
    the oldest bar in ``bars`` has no previous close and counts high - low.

    Args:
        bars: previous bars, oldest first.
        period: how many of the latest bars to average.

    Returns:
        The ATR in price units, or ``None`` with fewer than ``period`` bars.
    """
    if period < 1 or len(bars) < period:
        return None
    # Indexing rather than slicing, so a deque of recent bars works too.
    mids = [bars[i].mid for i in range(max(len(bars) - period - 1, 0), len(bars))]
    ranges = [mids[0].h - mids[0].l] if len(mids) == period else []
    ranges += [max(cur.h - cur.l, abs(cur.h - prev.c), abs(cur.l - prev.c)) for prev, cur in itertools.pairwise(mids)]
    return sum(ranges, Decimal(0)) / period


def validate_bar(
    candle: BarCandle,
    *,
    granularity: str,
    pip_location: int,
    config: BarValidationConfig,
    expected_ts_ns: int | None = None,
    history: Sequence[BarCandle] = (),
) -> BarVerdict:
    """Check one closed bar before it is published; the first failing check decides.

    Checks, in order: ``incomplete`` (not complete); ``misaligned`` (time not on the
    granularity's grid, or not ``expected_ts_ns``); ``not_finite``; ``non_positive``;
    ``ohlc_inconsistent`` (high < max(open, close), low > min(open, close), high < low, in bid or
    ask, or a crossed quote: ask open or close below bid); ``zero_volume``; ``spread_too_wide``
    (ask close - bid close above ``max_spread_pips``); ``stale`` (bid and ask OHLC and volume equal
    to the previous bar's); ``spike`` (mid high - low above ``max_range_atr`` x the ATR of the
    previous ``atr_bars`` bars; skipped while there are fewer, or the ATR is zero). Whether the bar
    follows a gap is not checked here (``missing_bar_is_gap``, live).

    Args:
        candle: the bar.
        granularity: the feed's granularity.
        pip_location: the instrument's ``pipLocation`` (-4 for EUR_USD: one pip is 0.0001).
        config: the thresholds.
        expected_ts_ns: the bar start the caller asked for (from ``BarClock``); ``None`` checks
            the grid only.
        history: the previously accepted bars of the instrument, oldest first.

    Returns:
        The verdict.
    """
    if not candle.complete:
        return BarVerdict(ok=False, reason=BarReason.INCOMPLETE, detail="candle not complete")
    aligned_ns = bar_start(candle.ts, granularity)
    if candle.ts != aligned_ns:
        return BarVerdict(
            ok=False, reason=BarReason.MISALIGNED, detail=f"time {candle.ts} is not a {granularity} bar start"
        )
    if expected_ts_ns is not None and candle.ts != expected_ts_ns:
        return BarVerdict(
            ok=False, reason=BarReason.MISALIGNED, detail=f"time {candle.ts} is not the expected bar {expected_ts_ns}"
        )
    prices = {
        f"{side}.{key}": value
        for side, ohlc in (("bid", candle.bid), ("ask", candle.ask))
        for key, value in zip("ohlc", _fields(ohlc), strict=True)
    }
    bad = [f"{key}={value}" for key, value in prices.items() if not value.is_finite()]
    if bad:
        return BarVerdict(ok=False, reason=BarReason.NOT_FINITE, detail=", ".join(bad))
    bad = [f"{key}={value}" for key, value in prices.items() if value <= 0]
    if bad:
        return BarVerdict(ok=False, reason=BarReason.NON_POSITIVE, detail=", ".join(bad))
    problem = _inconsistency("bid", candle.bid) or _inconsistency("ask", candle.ask)
    if problem is None and (candle.ask.o < candle.bid.o or candle.ask.c < candle.bid.c):
        problem = f"crossed: ask o/c {candle.ask.o}/{candle.ask.c} below bid o/c {candle.bid.o}/{candle.bid.c}"
    if problem is not None:
        return BarVerdict(ok=False, reason=BarReason.OHLC_INCONSISTENT, detail=problem)
    if candle.volume <= 0:
        return BarVerdict(ok=False, reason=BarReason.ZERO_VOLUME, detail=f"volume {candle.volume}")
    spread_pips = (candle.ask.c - candle.bid.c).scaleb(-pip_location)
    if spread_pips > config.max_spread_pips:
        return BarVerdict(
            ok=False,
            reason=BarReason.SPREAD_TOO_WIDE,
            detail=f"closing spread {spread_pips} pips > {config.max_spread_pips}",
        )
    if history:
        prev = history[-1]
        if (prev.bid, prev.ask, prev.volume) == (candle.bid, candle.ask, candle.volume):
            return BarVerdict(ok=False, reason=BarReason.STALE, detail=f"same OHLC and volume as the bar at {prev.ts}")
    atr = average_true_range(history, period=config.atr_bars)
    if atr is not None and atr > 0:
        mid = candle.mid
        ratio = (mid.h - mid.l) / atr
        if ratio > config.max_range_atr:
            return BarVerdict(
                ok=False,
                reason=BarReason.SPIKE,
                detail=f"range {mid.h - mid.l:.6g} is {ratio:.4g} x ATR {atr:.6g} > {config.max_range_atr}",
            )
    return _OK


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedBar:
    """A bar ``validate_history`` left out: the candle, the stable reason code and a readable detail."""

    candle: BarCandle
    reason: BarReason
    detail: str


def validate_history(
    candles: Iterable[BarCandle],
    *,
    granularity: str,
    pip_location: int,
    config: BarValidationConfig,
    history: Sequence[BarCandle] = (),
) -> tuple[list[BarCandle], list[RejectedBar]]:
    """The one rule for every bar that enters features or an ATR, live or loaded.

    Runs ``validate_bar`` (the check the live feed runs on each close) over a sequence of bars,
    oldest first, each against the bars accepted before it, exactly as the feed checks a close
    against its accepted bars: a bar the feed rejected live is rejected again, for the same
    reason, when a restarted role loads it from the broker's candles, and when ``tradehost
    train`` or ``backtest`` read it. The spike check needs ``config.atr_bars`` accepted bars
    before a bar, so a loader that keeps the last N bars should validate N + ``atr_bars`` + 1.

    Candles that are not complete (the bar still forming at the end of a broker's answer) are not
    history: they are left out, neither accepted nor rejected. A bar that does not come after the
    last accepted one (a duplicate, or out of order) is rejected as ``misaligned``.

    Args:
        candles: the bars, oldest first.
        granularity: their granularity.
        pip_location: the instrument's ``pipLocation`` (for the spread check).
        config: the thresholds (the ``[feed]`` section).
        history: bars accepted before the first of ``candles``, oldest first (may be empty).

    Returns:
        The accepted bars (oldest first) and the rejected ones with their verdicts.
    """
    recent: deque[BarCandle] = deque(history, maxlen=config.atr_bars + 1)
    accepted: list[BarCandle] = []
    rejected: list[RejectedBar] = []
    for candle in candles:
        if not candle.complete:
            continue
        if recent and candle.ts <= recent[-1].ts:
            detail = f"time {candle.ts} is not after the previous bar's {recent[-1].ts}"
            rejected.append(RejectedBar(candle=candle, reason=BarReason.MISALIGNED, detail=detail))
            continue
        verdict = validate_bar(
            candle, granularity=granularity, pip_location=pip_location, config=config, history=recent
        )
        if verdict.ok:
            accepted.append(candle)
            recent.append(candle)
        else:
            reason = verdict.reason if verdict.reason is not None else BarReason.MISALIGNED
            rejected.append(RejectedBar(candle=candle, reason=reason, detail=verdict.detail))
    return accepted, rejected


def validate_candles(
    candles: Sequence[Candle], *, granularity: str, pip_location: int, config: BarValidationConfig
) -> tuple[list[Candle], list[RejectedBar]]:
    """``validate_history`` over a broker's candles, as every role loads its bars at (re)start.

    Args:
        candles: oldest first, fetched with bid and ask (``price="BA"`` or ``"MBA"``).
        granularity: their granularity.
        pip_location: the instrument's ``pipLocation``.
        config: the thresholds (the ``[feed]`` section).

    Returns:
        The accepted candles (complete, as given, oldest first) and the rejected bars.

    Raises:
        ValueError: a candle lacks its bid or ask.
    """
    by_ts = {c.ts: c for c in candles}
    accepted, rejected = validate_history(
        [BarCandle.from_candle(c) for c in candles],
        granularity=granularity,
        pip_location=pip_location,
        config=config,
    )
    return [by_ts[bar.ts] for bar in accepted], rejected


def history_report(loaded: Mapping[str, tuple[int, Sequence[RejectedBar]]]) -> dict[str, object]:
    """The journal body of a role's history load (``history.loaded``).

    Args:
        loaded: instrument -> (bars accepted, bars rejected).

    Returns:
        ``{"bars": {instrument: accepted}, "rejected": [{"instrument", "bar_ts", "reason",
        "detail"}, ...]}``.
    """
    return {
        "bars": {name: n for name, (n, _) in loaded.items()},
        "rejected": [
            {"instrument": name, "bar_ts": r.candle.ts, "reason": r.reason.value, "detail": r.detail}
            for name, (_, rejected) in loaded.items()
            for r in rejected
        ],
    }
