"""Bar validation: the checks every bar passes before it enters features or an ATR, and the ATR.

Validation (``validate_bar``) works on ``BarCandle``: bid and ask OHLC as ``Decimal`` (the broker
layer's type; exact, so "an exact copy of the previous bar" and OHLC ordering are exact
comparisons), mid derived as (bid + ask) / 2. Each failed check has a stable ``BarReason`` code.
``validate_history`` is the one rule for every bar that enters features or an ATR, live or loaded:
``validate_bar`` over a sequence, each bar against the bars accepted before it. The live feed
checks each close that way; the model, risk and feed roles check the bars they load from the
broker at every (re)start (``validate_candles``, journaled as ``history.loaded``), and ``tradehost
train`` and ``backtest`` check the candles they read; so a bar rejected live never enters the
features or an ATR after a restart, and a backtest drops the bars the live run dropped. Bar time
(alignment, the bar clock, gaps) is ``actors.core.bartime``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.core.config import BarValidationConfig

import enum
import itertools
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from actors.core import markethours
from actors.core.bartime import bar_start
from actors.core.domain import OHLC, Candle
from actors.core.ticks import LevelRun, jump_bound

__all__ = [
    "MAX_PRICE_PIPS",
    "BarCandle",
    "BarGuard",
    "BarReason",
    "BarVerdict",
    "HasMid",
    "MidBar",
    "RejectedBar",
    "average_true_range",
    "history_report",
    "validate_bar",
    "validate_candles",
    "validate_history",
]


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
    OUT_OF_RANGE = "out_of_range"
    JUMP = "jump"


@dataclass(frozen=True, slots=True, kw_only=True)
class BarVerdict:
    """The outcome of ``validate_bar``: ``ok``, or the ``reason`` code and a readable ``detail``.

    ``reanchored`` (from ``BarGuard.check``): the bar is accepted although it jumped, as the last
    of ``bar_reanchor_bars`` bars in a row that hold the new level (``reason`` is then ``jump``).
    ``duplicate`` (from ``BarGuard.check``): a bar at a time the guard already accepted (the bar is
    ``BarGuard.bar_at`` that time; it was not added again).
    """

    ok: bool
    reason: BarReason | None = None
    detail: str = ""
    reanchored: bool = False
    duplicate: bool = False


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
# The largest price in pips a bar may have: beyond 2**53 a float (the features, the backtest's
# frames) no longer holds every pip of it exactly; 9e11 for EUR_USD, far beyond any market. A
# price below one pip is no price either. Both need no neighbours (the first bar of a load too).
MAX_PRICE_PIPS = Decimal(2**53)
_ONE = Decimal(1)


def _mean(bid: Decimal, ask: Decimal) -> Decimal:
    # NaN for a non-finite side (validate_bar refuses such a bar before it looks at the mid).
    return (bid + ask) / _TWO if bid.is_finite() and ask.is_finite() else _NAN


def _fields(ohlc: OHLC) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return ohlc.o, ohlc.h, ohlc.l, ohlc.c


def _named(candle: BarCandle) -> list[tuple[str, Decimal]]:
    # The prices by name (bid.o ... ask.c), for a rejection's detail.
    return [
        (f"{side}.{key}", value)
        for side, ohlc in (("bid", candle.bid), ("ask", candle.ask))
        for key, value in zip("ohlc", _fields(ohlc), strict=True)
    ]


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
    ranges = [true_range(None, mids[0])] if len(mids) == period else []
    ranges += [true_range(prev, cur) for prev, cur in itertools.pairwise(mids)]
    return _mean_range(ranges, period)


def true_range(prev: OHLC | None, cur: OHLC) -> Decimal:
    """A bar's true range (mid prices): max(high - low, |high - previous close|, |low - previous
    close|), or high - low without a previous bar (``average_true_range`` averages them)."""
    if prev is None:
        return cur.h - cur.l
    return max(cur.h - cur.l, abs(cur.h - prev.c), abs(cur.l - prev.c))


def _mean_range(ranges: Iterable[Decimal], period: int) -> Decimal:
    return sum(ranges, Decimal(0)) / period


class _RecentRanges:
    """The true range of each of the last bars against the bar before it, kept beside them so the
    ATR of every next bar (``validate_history``) sums them instead of computing each again; the same
    ranges in the same order as ``average_true_range`` over those bars, so the same value."""

    __slots__ = ("bars", "period", "ranges")

    def __init__(self, bars: deque[BarCandle], period: int) -> None:
        self.bars, self.period = bars, period
        # ranges[i] is bars[i]'s range against bars[i - 1]; ranges[0] is never read (see atr()).
        mids = [bar.mid for bar in bars]
        first = [_NAN] if mids else []
        pairs = [true_range(prev, cur) for prev, cur in itertools.pairwise(mids)]
        self.ranges: deque[Decimal] = deque(first + pairs, maxlen=bars.maxlen)

    def append(self, bar: BarCandle) -> None:
        self.ranges.append(true_range(self.bars[-1].mid, bar.mid) if self.bars else _NAN)
        self.bars.append(bar)

    def atr(self) -> Decimal | None:
        # average_true_range(self.bars, period): with exactly ``period`` bars the oldest counts high -
        # low; with one more, the ranges of the ``period`` latest against their previous bars.
        bars, period = self.bars, self.period
        if period < 1 or len(bars) < period:
            return None
        ranges = list(itertools.islice(self.ranges, len(bars) - period, None))
        if len(bars) == period:
            ranges[0] = true_range(None, bars[0].mid)
        elif len(bars) > period + 1:  # a deque longer than period + 1 (maxlen not period + 1)
            return average_true_range(bars, period=period)
        return _mean_range(ranges, period)


def validate_bar(
    candle: BarCandle,
    *,
    granularity: str,
    pip_location: int,
    config: BarValidationConfig,
    expected_ts_ns: int | None = None,
    history: Sequence[BarCandle] = (),
    recent: _RecentRanges | None = None,
) -> BarVerdict:
    """Check one closed bar before it is published; the first failing check decides.

    Checks, in order: ``incomplete`` (not complete); ``misaligned`` (time not on the
    granularity's grid, or not ``expected_ts_ns``); ``not_finite``; ``non_positive``;
    ``out_of_range`` (a price below one pip or above ``MAX_PRICE_PIPS``); ``ohlc_inconsistent``
    (high < max(open, close), low > min(open, close), high < low, in bid or ask, or a crossed
    quote: ask open or close below bid); ``zero_volume``; ``spread_too_wide`` (ask close - bid
    close above ``max_spread_pips``); ``stale`` (bid and ask OHLC and volume equal
    to the previous bar's); ``spike`` (mid high - low above ``max_range_atr`` x the ATR of the
    previous ``atr_bars`` bars; skipped while there are fewer, or the ATR is zero); ``jump`` (the
    mid open lies farther from the previous bar's mid close than the tick checks let one price move
    from the last: ``actors.core.ticks.jump_bound``, ``max_tick_jump_atr`` x that ATR, or
    ``max_tick_jump_fraction`` of the close before there is one; not when the previous bar is from
    an earlier market session: a gap over a closure is no jump). A jump may be a real level shift:
    ``BarGuard`` accepts it once bars in a row hold the new level. Whether the bar follows a gap is
    not checked here (``missing_bar_is_gap``, live).

    Args:
        candle: the bar.
        granularity: the feed's granularity.
        pip_location: the instrument's ``pipLocation`` (-4 for EUR_USD: one pip is 0.0001).
        config: the thresholds.
        expected_ts_ns: the bar start the caller asked for (from ``BarClock``); ``None`` checks
            the grid only.
        history: the previously accepted bars of the instrument, oldest first.
        recent: ``history`` with its true ranges kept (``validate_history``; the same ATR, summed
            from them).

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
    values = (*_fields(candle.bid), *_fields(candle.ask))
    if not all(value.is_finite() for value in values):
        bad = [f"{key}={value}" for key, value in _named(candle) if not value.is_finite()]
        return BarVerdict(ok=False, reason=BarReason.NOT_FINITE, detail=", ".join(bad))
    if not all(value > 0 for value in values):
        bad = [f"{key}={value}" for key, value in _named(candle) if value <= 0]
        return BarVerdict(ok=False, reason=BarReason.NON_POSITIVE, detail=", ".join(bad))
    if not all(_ONE <= value.scaleb(-pip_location) <= MAX_PRICE_PIPS for value in values):
        bad = [
            f"{key}={value}"
            for key, value in _named(candle)
            if not _ONE <= value.scaleb(-pip_location) <= MAX_PRICE_PIPS
        ]
        low, high = _ONE.scaleb(pip_location), MAX_PRICE_PIPS.scaleb(pip_location)
        detail = f"{', '.join(bad)} outside one pip .. 2**53 pips ({low} .. {high:.4g})"
        return BarVerdict(ok=False, reason=BarReason.OUT_OF_RANGE, detail=detail)
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
    atr = average_true_range(history, period=config.atr_bars) if recent is None else recent.atr()
    if atr is not None and atr > 0:
        mid = candle.mid
        ratio = (mid.h - mid.l) / atr
        if ratio > config.max_range_atr:
            return BarVerdict(
                ok=False,
                reason=BarReason.SPIKE,
                detail=f"range {mid.h - mid.l:.6g} is {ratio:.4g} x ATR {atr:.6g} > {config.max_range_atr}",
            )
    if history:
        prev = history[-1]
        reference = prev.mid.c
        bound, made_of = jump_bound(reference, atr, config)
        gap = abs(candle.mid.o - reference)
        # The session look-up only for a jump (rare): a gap over a closure is expected.
        if gap > bound and prev.ts >= markethours.period_start(candle.ts):
            return BarVerdict(
                ok=False,
                reason=BarReason.JUMP,
                detail=f"open {candle.mid.o} is {gap:.6g} from the close {reference} of the bar at {prev.ts}"
                f" > {made_of}",
            )
    return _OK


class BarGuard:
    """One instrument's bar checks and what they remember (pure, no I/O): the accepted bars the
    checks compare with (``recent``) and the run of bars refused as a ``jump``.

    A jump within a session may be a real level shift or an outlier; the bars after it tell. The
    rule is the tick checks' re-anchoring (``actors.core.ticks.LevelRun``): bars refused as jumps
    whose closes agree with each other (within the jump bound of the first) form a run; the
    ``bar_reanchor_bars``-th bar of a run is accepted (``BarVerdict.reanchored``) and becomes the
    reference, the bars before it stay refused (they were refused when they closed, live). An
    accepted bar ends the run (the old level is alive: the jump was an outlier); a bar refused for
    another reason leaves it as it is. The live feed keeps one guard per instrument;
    ``validate_history`` runs one over a sequence, so both decide alike.

    A bar at a time already accepted is a duplicate, not a new bar: the feed's start-up load can
    hold the bar that is closing (a load spanning a bar boundary), which the close then fetches
    again. It is accepted as the bar it already is (``BarVerdict.duplicate``; the accepted one
    stands, even if the copy differs) and never checked against itself (that made it ``stale``).
    A bar older than the newest accepted one that the guard does not hold is ``misaligned``, as
    ``validate_history`` rejects a bar out of order.

    Args:
        granularity: the bars' granularity.
        config: the thresholds (the ``[feed]`` section).
        history: bars accepted before, oldest first.
    """

    def __init__(self, *, granularity: str, config: BarValidationConfig, history: Iterable[BarCandle] = ()) -> None:
        self.granularity = granularity
        self.config = config
        self.recent: deque[BarCandle] = deque(history, maxlen=config.atr_bars + 1)
        self.ranges = _RecentRanges(self.recent, config.atr_bars)  # appends to ``recent`` too
        self.run: LevelRun | None = None

    def check(self, candle: BarCandle, *, pip_location: int, expected_ts_ns: int | None = None) -> BarVerdict:
        """Check one closed bar (``validate_bar`` against ``recent``, then the run); an accepted
        bar joins ``recent``. A bar at a time already accepted is a ``duplicate`` (not checked, not
        added again); an older one the guard does not hold is ``misaligned``.

        Args:
            candle: the bar.
            pip_location: the instrument's ``pipLocation``.
            expected_ts_ns: the bar start the caller asked for, or None.
        """
        config = self.config
        recent = self.recent
        if recent and candle.ts <= recent[-1].ts and expected_ts_ns in (None, candle.ts):
            known = self.bar_at(candle.ts)
            if known is None:
                detail = f"time {candle.ts} is not after the previous bar's {recent[-1].ts}"
                return BarVerdict(ok=False, reason=BarReason.MISALIGNED, detail=detail)
            same = (known.bid, known.ask, known.volume) == (candle.bid, candle.ask, candle.volume)
            detail = "already accepted" if same else "already accepted; this copy differs, the accepted bar stands"
            return BarVerdict(ok=True, detail=detail, duplicate=True)
        verdict = validate_bar(
            candle,
            granularity=self.granularity,
            pip_location=pip_location,
            config=config,
            expected_ts_ns=expected_ts_ns,
            history=self.recent,
            recent=self.ranges,
        )
        if verdict.ok:
            self._accept(candle)
            return verdict
        if verdict.reason is not BarReason.JUMP:
            return verdict
        atr = self.ranges.atr()
        mid = candle.mid.c
        bound, _ = jump_bound(self.run.first_mid if self.run is not None else mid, atr, config)
        run = self.run = LevelRun.extend(self.run, mid=mid, ts=candle.ts, bound=bound)
        held = f"{run.count} of {config.bar_reanchor_bars} bars in a row at the new level"
        if run.count < config.bar_reanchor_bars:
            return BarVerdict(ok=False, reason=BarReason.JUMP, detail=f"{verdict.detail}; {held}")
        self._accept(candle)
        return BarVerdict(ok=True, reason=BarReason.JUMP, detail=f"{verdict.detail}; {held}: accepted", reanchored=True)

    def preload(self, candles: Iterable[BarCandle]) -> None:
        """Remember bars accepted elsewhere (the history the feed loaded and checked at start)."""
        for candle in candles:
            self.ranges.append(candle)

    def bar_at(self, ts: int) -> BarCandle | None:
        """The accepted bar that starts at ``ts``, if the guard still holds it."""
        for bar in reversed(self.recent):
            if bar.ts <= ts:
                return bar if bar.ts == ts else None
        return None

    def _accept(self, candle: BarCandle) -> None:
        self.ranges.append(candle)
        self.run = None


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

    Runs a ``BarGuard`` (the checks the live feed runs on each close: ``validate_bar``, and a jump
    accepted once following bars hold the new level) over a sequence of bars, oldest first, each
    against the bars accepted before it, exactly as the feed checks a close against its accepted
    bars: a bar the feed rejected live is rejected again, for the same
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
    guard = BarGuard(granularity=granularity, config=config, history=history)
    recent = guard.recent
    accepted: list[BarCandle] = []
    rejected: list[RejectedBar] = []
    for candle in candles:
        if not candle.complete:
            continue
        if recent and candle.ts <= recent[-1].ts:
            detail = f"time {candle.ts} is not after the previous bar's {recent[-1].ts}"
            rejected.append(RejectedBar(candle=candle, reason=BarReason.MISALIGNED, detail=detail))
            continue
        verdict = guard.check(candle, pip_location=pip_location)
        if verdict.ok:
            accepted.append(candle)
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
