"""Tick validation: the rules a stream price must pass before the feed publishes it (pure).

The feed publishes a price as ``md.tick.<INSTR>`` only when it passes these checks; a rejected
price is never published, so it never reaches the risk and execution roles, the shadow book or
the bar clock. Prices are ``Decimal`` (the broker layer's type), times integer UTC nanoseconds.
The checks, in order (``TickReason`` codes, stable: journal rows and reports query them):

- ``not_finite``: bid or ask NaN or infinite;
- ``non_positive``: bid or ask zero or negative;
- ``crossed``: bid above ask (a locked quote, bid = ask, passes);
- ``future``: the price's time lies more than ``feed.max_tick_ahead_s`` after the newest time the
  stream has shown (heartbeats and accepted prices of any instrument): impossible for a stream
  that heartbeats every 5 s, and a price from the far future would move the bar clock and every
  role's market time forward; a time at or before the epoch is impossible as well (``stale``);
- ``stale``: older than the instrument's last accepted price;
- ``jump``: the mid lies more than ``feed.max_tick_jump_atr`` x ATR from the instrument's last
  accepted mid, the ATR being that of the feed's validated bars (``actors.core.bars.average_true_range``
  over ``feed.atr_bars`` bars of ``feed.granularity``). Before an ATR exists (fewer validated bars,
  or a flat history) the bound is relative: ``feed.max_tick_jump_fraction`` of the reference mid
  (1 % by default, about ten M15 ATRs of EUR_USD: a 5 % spike is still refused).

Reference. An instrument's reference is its last accepted price (the anchor). Before it has one
(the feed just started) the reference is the close of the last validated bar; with neither, the
price is ``unconfirmed``: held, not published (and neither journaled nor counted as a rejection:
it is not known to be bad) until a run of prices confirms it (below).

Level shifts. A real gap (the weekend open, a price stream that was down while the market moved)
must not freeze an instrument's prices for ever. Prices that fail only ``stale``, ``jump`` or
``unconfirmed`` form a run of prices that agree with each other (each within the jump bound of the
run's first mid, each at a later time than the one before: copies of one moment count once, a
time going back starts a new run). A run of ``feed.tick_reanchor_ticks`` prices replaces the
anchor (the last price of the run is accepted and published, ``TickVerdict.reanchored``; the feed
journals ``feed.tick_reanchored``) only when a second source agrees that the market is there:

- a validated bar (the broker's candles, not the stream) that ended after the run began and whose
  mid range, widened by the jump bound, holds the run's mid (``BarSpan``): a real move within a
  session shows in the next closed bar; a stream that repeats a wrong level does not, however
  often it repeats it (seen: an emulator that sent only 5 %-spiked prices for 15 s re-anchored on
  five of them and the next decision was sized around the spike);
- or the anchor is older than the market's current session (``session_start_ns``: the weekend
  or a holiday lies between them), where a new level is expected and no bar of the session exists
  yet; the same before there is any anchor.

An accepted price ends the run (the old level is alive: the outliers were spikes); a price that
disagrees with the run starts a new run. Until a run is confirmed its prices stay refused, so an
instrument whose stream insists on a level the candles contradict freezes (below) and trading
stops: unsure, no trade. A frozen
instrument never looks healthy: ``TickGuard.rejecting_for`` tells the feed how long an instrument
has had only refused prices while they keep coming, and the feed reports the stream unhealthy past
``feed.stale_after_s``.

Journal volume (``RejectionLog``). A broken source can send thousands of bad prices a minute, so
not every rejection is a journal row: in each period of ``REJECTION_LOG_PERIOD_S`` the first
rejection of each (instrument, reason) is journaled at once, with its detail and prices; the
others are counted, and when the period ends one row per instrument carries their counts. Every
row has ``counts``: the instrument's rejections by reason since its previous row, this one
included, so the counts of all rows add up to every rejection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.core.config import BarValidationConfig, TickValidationConfig

import enum
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "REJECTION_LOG_PERIOD_S",
    "Anchor",
    "BarSpan",
    "LevelRun",
    "RejectionLog",
    "TickGuard",
    "TickReason",
    "TickVerdict",
    "jump_bound",
    "quote_problem",
]

_NS = 1_000_000_000
# A rejection period of the journal's rate limit (seconds of the feed's monotonic clock).
REJECTION_LOG_PERIOD_S = 60.0


class TickReason(enum.StrEnum):
    """Why a price was not published (stable codes)."""

    NOT_FINITE = "not_finite"
    NON_POSITIVE = "non_positive"
    CROSSED = "crossed"
    FUTURE = "future"
    STALE = "stale"
    JUMP = "jump"
    UNCONFIRMED = "unconfirmed"  # held: no reference yet (never journaled nor counted)


# Reasons a run of agreeing prices can overrule (a level shift, a bad anchor, no anchor yet).
_RUN_REASONS = frozenset({TickReason.STALE, TickReason.JUMP, TickReason.UNCONFIRMED})


@dataclass(frozen=True, slots=True)
class Anchor:
    """An instrument's reference: the time and mid of its last accepted price."""

    ts: int
    mid: Decimal


@dataclass(frozen=True, slots=True)
class BarSpan:
    """The newest validated bar of an instrument, as a second source for a level shift: when it
    ended and its mid low and high."""

    end_ns: int
    low: Decimal
    high: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class TickVerdict:
    """The outcome of ``TickGuard.check``.

    Attributes:
        ok: publish the price.
        reason: why not (``None`` when ok); when ``reanchored``, what the price would have failed.
        detail: a readable explanation of the reason.
        reanchored: the price ends a run of agreeing prices that became the new reference.
        previous_mid: with ``reanchored``, the reference mid it replaced (``None``: there was none).
        run: with ``reanchored``, how many prices the run held.
    """

    ok: bool
    reason: TickReason | None = None
    detail: str = ""
    reanchored: bool = False
    previous_mid: Decimal | None = None
    run: int = 0


_OK = TickVerdict(ok=True)


def quote_problem(bid: Decimal, ask: Decimal) -> tuple[TickReason, str] | None:
    """The sanity checks of one quote: ``not_finite``, ``non_positive``, ``crossed`` (or None)."""
    if not (bid.is_finite() and ask.is_finite()):
        return TickReason.NOT_FINITE, f"bid {bid} / ask {ask} not finite"
    if bid <= 0 or ask <= 0:
        return TickReason.NON_POSITIVE, f"bid {bid} / ask {ask} not above zero"
    if bid > ask:
        return TickReason.CROSSED, f"bid {bid} above ask {ask}"
    return None


def jump_bound(reference_mid: Decimal, atr: Decimal | None, config: BarValidationConfig) -> tuple[Decimal, str]:
    """How far a mid may move from ``reference_mid`` in one price, and what the bound is made of.

    The bar checks use it too (``actors.core.bars``: a bar's open is the price after the previous
    bar's close).

    Args:
        reference_mid: the mid the move is measured from.
        atr: the ATR of the validated bars (price units), or None before there is one.
        config: the thresholds.

    Returns:
        (the bound in price units, a description such as ``5 x ATR 0.00091``).
    """
    if atr is not None and atr > 0:
        k = Decimal(repr(config.max_tick_jump_atr))
        return k * atr, f"{config.max_tick_jump_atr:g} x ATR {atr:.6g}"
    fraction = Decimal(repr(config.max_tick_jump_fraction))
    return fraction * reference_mid, f"{config.max_tick_jump_fraction:.4g} of {reference_mid} (no ATR yet)"


@dataclass(slots=True)
class LevelRun:
    """Refused prices in a row that agree with each other: a new level in the making (the level
    shifts of the module docstring). The bar checks keep one of refused bars (``actors.core.bars``).

    Attributes:
        first_mid: the mid of the run's first price (the level the others must agree with).
        first_ts: the first price's time.
        last_ts: the latest price's time.
        count: the prices in the run (copies of one moment count once).
    """

    first_mid: Decimal
    first_ts: int
    last_ts: int
    count: int

    @staticmethod
    def extend(run: LevelRun | None, *, mid: Decimal, ts: int, bound: Decimal) -> LevelRun:
        """The run after one more refused price: the same run, one longer, when the price agrees
        with it (within ``bound`` of its first mid, at a later time; a copy of its latest moment
        leaves the count as it is); else a new run that starts with the price."""
        if run is not None and (ts < run.last_ts or abs(mid - run.first_mid) > bound):
            run = None
        if run is None:
            return LevelRun(first_mid=mid, first_ts=ts, last_ts=ts, count=1)
        if ts > run.last_ts:
            run.count += 1
            run.last_ts = ts
        return run


class TickGuard:
    """One instrument's tick checks and what they remember (the anchor, the run); pure, no I/O.

    Args:
        config: the thresholds.
    """

    def __init__(self, config: TickValidationConfig) -> None:
        self.config = config
        self.anchor: Anchor | None = None
        self._run: LevelRun | None = None
        self._refusing_since_s: float | None = None  # first refusal since the last accepted price
        self._refused_at_s: float | None = None  # the latest refusal

    def check(
        self,
        *,
        bid: Decimal,
        ask: Decimal,
        ts: int,
        atr: Decimal | None,
        stream_ts: int | None,
        reference_mid: Decimal | None,
        now_s: float,
        bar: BarSpan | None = None,
        session_start_ns: int | None = None,
    ) -> TickVerdict:
        """Check one price; an accepted price becomes the anchor.

        Args:
            bid: the best bid.
            ask: the best ask.
            ts: the price's time (UTC ns).
            atr: the ATR of the instrument's validated bars, or None.
            stream_ts: the newest time the stream has shown (heartbeats, accepted prices), or None.
            reference_mid: the close (mid) of the last validated bar, used while there is no anchor.
            now_s: the caller's monotonic clock (for ``rejecting_for``).
            bar: the newest validated bar, the second source a level shift needs (or None).
            session_start_ns: when the market's current session began (its last opening), or None.

        Returns:
            The verdict (see the module docstring).
        """
        problem = quote_problem(bid, ask)
        if problem is None and ts <= 0:
            problem = TickReason.STALE, f"impossible time {ts}"
        if problem is None and stream_ts is not None and ts - stream_ts > self.config.max_tick_ahead_s * _NS:
            ahead_s = (ts - stream_ts) / _NS
            problem = TickReason.FUTURE, f"time {ts} is {ahead_s:.0f} s after the stream's newest time {stream_ts}"
        if problem is not None:
            return self._refused(problem[0], problem[1], now_s)
        mid = (bid + ask) / 2
        anchor = self.anchor
        reason: TickReason | None = None
        detail = ""
        if anchor is not None and ts < anchor.ts:
            reason, detail = TickReason.STALE, f"time {ts} is before the last accepted price's {anchor.ts}"
        else:
            reference = anchor.mid if anchor is not None else reference_mid
            if reference is None:
                reason, detail = TickReason.UNCONFIRMED, "no reference price yet"
            else:
                bound, made_of = jump_bound(reference, atr, self.config)
                move = abs(mid - reference)
                if move > bound:
                    source = "last accepted mid" if anchor is not None else "last bar's close"
                    size = f" ({move / atr:.1f} ATR)" if atr is not None and atr > 0 else ""
                    reason = TickReason.JUMP
                    detail = f"mid {mid} moved {move}{size} from the {source} {reference} > {made_of}"
        if reason is None:
            self._accept(ts, mid)
            return _OK
        return self._in_run(reason, detail, ts=ts, mid=mid, atr=atr, now_s=now_s, bar=bar, session=session_start_ns)

    def _accept(self, ts: int, mid: Decimal) -> None:
        self.anchor = Anchor(ts, mid)
        self._run = None
        self._refusing_since_s = self._refused_at_s = None

    def _refused(self, reason: TickReason, detail: str, now_s: float) -> TickVerdict:
        if self._refusing_since_s is None:
            self._refusing_since_s = now_s
        self._refused_at_s = now_s
        return TickVerdict(ok=False, reason=reason, detail=detail)

    def _in_run(
        self,
        reason: TickReason,
        detail: str,
        *,
        ts: int,
        mid: Decimal,
        atr: Decimal | None,
        now_s: float,
        bar: BarSpan | None,
        session: int | None,
    ) -> TickVerdict:
        bound, _ = jump_bound(self._run.first_mid if self._run is not None else mid, atr, self.config)
        run = self._run = LevelRun.extend(self._run, mid=mid, ts=ts, bound=bound)
        if run.count < self.config.tick_reanchor_ticks:
            return self._refused(reason, detail, now_s)
        if not self._confirmed(run, bar, bound, session):
            return self._refused(reason, f"{detail}; a new level the broker's bars do not show yet", now_s)
        previous = self.anchor.mid if self.anchor is not None else None
        self._accept(ts, mid)
        return TickVerdict(ok=True, reason=reason, detail=detail, reanchored=True, previous_mid=previous, run=run.count)

    def _confirmed(self, run: LevelRun, bar: BarSpan | None, bound: Decimal, session: int | None) -> bool:
        # A second source for the run's level: the anchor is from an earlier session (a gap over a
        # closure is expected), or a validated bar that ended after the run began holds the level.
        if self.anchor is None or (session is not None and self.anchor.ts < session):
            return True
        if bar is None or bar.end_ns <= run.first_ts:
            return False
        return bar.low - bound <= run.first_mid <= bar.high + bound

    def rejecting_for(self, now_s: float, *, recent_s: float) -> float | None:
        """How long this instrument has had only refused prices, while they keep coming.

        Args:
            now_s: the caller's monotonic clock.
            recent_s: refusals older than this do not count as "still coming" (an instrument that
                fell silent after a spike is quiet, not frozen).

        Returns:
            Seconds since the first refusal after the last accepted price, or None when the last
            price was accepted or the refusals stopped more than ``recent_s`` ago.
        """
        since, latest = self._refusing_since_s, self._refused_at_s
        if since is None or latest is None or now_s - latest > recent_s:
            return None
        return now_s - since


class RejectionLog:
    """Which rejected prices become journal rows (the rate limit in the module docstring).

    Args:
        period_s: the length of one period.
        now_s: the start of the first period (the caller's monotonic clock).
    """

    def __init__(self, period_s: float, now_s: float) -> None:
        self.period_s = period_s
        self._period_start_s = now_s
        self._journaled: set[tuple[str, str]] = set()  # (instrument, reason) journaled this period
        self._pending: dict[str, dict[str, int]] = {}  # counts since each instrument's last row

    def record(self, instrument: str, reason: str, now_s: float) -> dict[str, int] | None:
        """Count one rejection.

        Returns:
            The counts for a row to journal now (the first of its reason for the instrument in
            this period), or None: counted for the row at the end of the period.
        """
        counts = self._pending.setdefault(instrument, {})
        counts[reason] = counts.get(reason, 0) + 1
        if (instrument, reason) in self._journaled:
            return None
        self._journaled.add((instrument, reason))
        return self._pending.pop(instrument)

    def due(self, now_s: float) -> list[tuple[str, dict[str, int]]]:
        """At the end of a period: one (instrument, counts) per instrument with counted rejections
        not journaled yet; the next period starts. Before its end: nothing."""
        if now_s - self._period_start_s < self.period_s:
            return []
        self._period_start_s = now_s
        self._journaled.clear()
        rows = sorted(self._pending.items())
        self._pending = {}
        return rows
