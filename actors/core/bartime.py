"""Bar time: OANDA's granularities and alignment, the bar clock, and gaps.

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

Bar validation is ``actors.core.bars``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors.core.domain import DAY_ALIGNED, granularity_seconds

if TYPE_CHECKING:
    pass

import enum
from collections.abc import Callable, Iterator, Sequence

from actors.core import markethours
from actors.core.domain import Candle

__all__ = [
    "BarClock",
    "CandleLookup",
    "bar_end",
    "bar_start",
    "closed_bar_lookup",
    "expected_bars",
    "first_candle_from",
    "missing_bar_is_gap",
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


def first_candle_from(bar_start_ns: int, candles: Sequence[Candle] | None) -> tuple[Candle | None] | None:
    """The answer ``closed_bar_lookup`` takes (the broker's first candle at or after
    ``bar_start_ns``), read from a list of an instrument's latest candles (``candles/latest``), in
    a 1-tuple; None when the list cannot tell: missing, or every candle in it is later than the
    bar (the bar's candle may exist before them: ask for it by its time instead).

    Args:
        bar_start_ns: the start of the closed bar.
        candles: the instrument's latest candles, oldest first (None: not in the answer).
    """
    if not candles or all(c.ts > bar_start_ns for c in candles):
        return None
    return (next((c for c in candles if c.ts >= bar_start_ns), None),)


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
