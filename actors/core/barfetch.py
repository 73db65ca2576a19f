"""Planning the feed's requests for closed bars (pure: the feed's bars worker is a shell around it).

The bars worker holds every close that is not published yet (queued while it was busy: a late
fetch, the start-up load) and, per instrument, the bar starts still waiting for their candle. Each
round asks the broker as little as it can:

- every instrument waits for the same one bar, which ``candles/latest`` (the latest complete
  candle and the one forming) may still reach: one ``candles/latest`` request for all of them;
- otherwise one ``candles`` request per instrument for all its waiting bars at once (``from`` =
  the oldest, ``count`` = the bars the calendar has from there to the newest), never one per bar:
  a feed late by several bars catches up in one request per instrument.

``first_candles`` reads such an answer into what ``closed_bar_lookup`` takes for each bar (the
broker's first candle at or after it), or None where the answer cannot tell (then asked again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from actors.core.bars import BarCandle
from actors.core.bartime import CandleLookup, closed_bar_lookup, expected_bars, first_candle_from
from actors.core.domain import Candle

__all__ = [
    "MAX_CANDLES",
    "FetchPlan",
    "PendingClose",
    "PendingCloses",
    "first_candles",
    "plan_fetch",
    "range_count",
]

MAX_CANDLES = 5000  # OANDA's largest ``count``


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """One round of requests.

    Attributes:
        latest: the instruments to ask in one ``candles/latest`` request (each waits for ``latest_start``).
        latest_start: the one bar they wait for (None when ``latest`` is empty).
        ranges: per instrument asked alone, ``(from_ns, count)`` covering all its waiting bars.
    """

    latest: tuple[str, ...]
    latest_start: int | None
    ranges: dict[str, tuple[int, int]]


def range_count(starts: Sequence[int], granularity: str) -> int:
    """The ``count`` that covers every bar of ``starts`` from the oldest: the bars the calendar has
    from the oldest to the newest, both included (at least one per start), at most ``MAX_CANDLES``.

    Raises:
        ValueError: empty ``starts`` or an unknown granularity.
    """
    lo, hi = min(starts), max(starts)
    between = len(expected_bars(lo, hi, granularity)) + 2 if hi > lo else 1
    return min(MAX_CANDLES, max(len(set(starts)), between))


def plan_fetch(
    waiting: Mapping[str, Sequence[int]],
    granularity: str,
    *,
    latest_supported: bool = True,
    unreachable_below: Mapping[str, int] | None = None,
) -> FetchPlan:
    """The requests of one round for the bars still waiting.

    Args:
        waiting: per instrument, the starts of the closed bars it still waits for (empty: none).
        granularity: the bars' granularity.
        latest_supported: False when the broker has no ``candles/latest`` (404).
        unreachable_below: per instrument, the oldest start ``candles/latest`` may still reach (an
            earlier answer of it could not tell a bar before this): a bar before it is asked for alone.

    Returns:
        ``candles/latest`` for the instruments that wait only for the newest waiting bar (while it may
        reach it); one ``candles`` request for all the waiting bars of each other instrument.
    """
    reach = unreachable_below or {}
    pending = {name: sorted(set(starts)) for name, starts in waiting.items() if starts}
    newest = max((starts[-1] for starts in pending.values()), default=None)
    latest: tuple[str, ...] = ()
    if latest_supported and newest is not None:
        latest = tuple(n for n, s in pending.items() if s == [newest] and newest >= reach.get(n, newest))
    ranges = {n: (s[0], range_count(s, granularity)) for n, s in pending.items() if n not in latest}
    return FetchPlan(latest=latest, latest_start=newest if latest else None, ranges=ranges)


def first_candles(
    starts: Sequence[int], candles: Sequence[Candle], count: int
) -> dict[int, tuple[Candle | None] | None]:
    """What one ``candles`` answer (``from`` = the oldest of ``starts``, ``count``) says of each bar.

    Args:
        starts: the bars asked for.
        candles: the answer, oldest first.
        count: the ``count`` asked for.

    Returns:
        Per start, the broker's first candle at or after it in a 1-tuple (``(None,)``: the broker
        has none, the answer was shorter than ``count``), or None when the answer cannot tell (it
        is full and ends before the bar: ask again from there).
    """
    ordered = sorted(candles, key=lambda c: c.ts)
    complete_answer = len(ordered) < count
    out: dict[int, tuple[Candle | None] | None] = {}
    for start in starts:
        first = next((c for c in ordered if c.ts >= start), None)
        out[start] = (first,) if first is not None or complete_answer else None
    return out


@dataclass(slots=True)
class PendingClose:
    """A close the bars worker has not handed back yet.

    Attributes:
        start: the closed bar's start.
        priced: the instruments with tradeable prices during the bar (``closed_bar_lookup``).
        deadline_s: monotonic seconds after which a candle still waited for is given up (``feed.bar_wait_s``).
        waiting: the instruments whose candle is still waited for.
        found: the complete candles found, per instrument.
        errors: the last failed request's error per instrument (for the missing bar's journal row).
    """

    start: int
    priced: frozenset[str]
    deadline_s: float
    waiting: set[str]
    found: dict[str, BarCandle] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class PendingCloses:
    """The closes not handed back yet, oldest first, and what the broker's answers said of them.

    The bars worker adds each close it takes (``add``), asks what ``plan`` says, gives every answer
    back (``latest_answer``, ``range_answer``, ``range_failed``), gives up what waited too long
    (``expire``) and hands back the closes ``done`` returns, in order: a close waits for the ones
    before it, so bars go out in order, each once.

    Args:
        instruments: the feed's instruments.
        granularity: the bars' granularity.
        bar_wait_s: how long a close waits for a candle the broker is still closing.
        held: per instrument, the bars the start-up load already holds by start: a close of one of
            them takes it without asking the broker again.
    """

    def __init__(
        self,
        instruments: Sequence[str],
        granularity: str,
        bar_wait_s: float,
        held: Mapping[str, Mapping[int, BarCandle]] | None = None,
    ) -> None:
        self.instruments = tuple(instruments)
        self.granularity = granularity
        self.bar_wait_s = bar_wait_s
        self.held = held or {}
        self.closes: list[PendingClose] = []
        self.reach: dict[str, int] = {}  # per instrument: candles/latest could not tell a bar before this

    def add(self, start: int, priced: frozenset[str], now_s: float) -> None:
        """A close taken from the queue (after the ones added before it)."""
        close = PendingClose(start, priced, now_s + self.bar_wait_s, set(self.instruments))
        for name in self.instruments:
            candle = self.held.get(name, {}).get(start)
            if candle is not None:
                close.found[name] = candle
                close.waiting.discard(name)
        self.closes.append(close)

    def plan(self, *, latest_supported: bool) -> FetchPlan:
        """The requests of the next round."""
        waiting = {n: [c.start for c in self.closes if n in c.waiting] for n in self.instruments}
        return plan_fetch(waiting, self.granularity, latest_supported=latest_supported, unreachable_below=self.reach)

    def latest_answer(self, plan: FetchPlan, answer: Mapping[str, Sequence[Candle]] | None) -> bool:
        """The ``candles/latest`` answer for ``plan.latest`` (None: not asked or failed); True when it
        could not tell some bar: ask again at once, those instruments alone."""
        close = self._close(plan.latest_start)
        if close is None:
            return False
        again = False
        for name in plan.latest:
            first = first_candle_from(close.start, answer.get(name)) if answer is not None else None
            if first is None:
                self.reach[name] = max(self.reach.get(name, 0), close.start + 1)
                again = True
            else:
                self._settle(close, name, first[0])
        return again

    def range_answer(self, name: str, plan: FetchPlan, candles: Sequence[Candle]) -> None:
        """The answer of the ``candles`` request ``plan.ranges[name]``."""
        count = plan.ranges[name][1]
        waiting = [c for c in self.closes if name in c.waiting]
        answers = first_candles([c.start for c in waiting], candles, count)
        for close in waiting:
            first = answers[close.start]
            if first is not None:
                self._settle(close, name, first[0])

    def range_failed(self, name: str, error: str) -> None:
        """The ``candles`` request for ``name`` failed: its bars wait on (until their deadline)."""
        for close in self.closes:
            if name in close.waiting:
                close.errors[name] = error

    def expire(self, now_s: float) -> None:
        """Give up the candles of the closes whose deadline has passed (a missing bar, if it is a gap)."""
        for close in self.closes:
            if now_s >= close.deadline_s:
                close.waiting.clear()

    def done(self) -> list[PendingClose]:
        """The leading closes with nothing left to wait for, removed, oldest first."""
        n = next((i for i, c in enumerate(self.closes) if c.waiting), len(self.closes))
        out, self.closes = self.closes[:n], self.closes[n:]
        return out

    def _close(self, start: int | None) -> PendingClose | None:
        return next((c for c in self.closes if c.start == start), None)

    def _settle(self, close: PendingClose, name: str, candle: Candle | None) -> None:
        close.errors.pop(name, None)
        lookup = closed_bar_lookup(close.start, candle, had_prices=name in close.priced)
        if lookup is CandleLookup.FOUND and candle is not None:
            close.found[name] = BarCandle.from_candle(candle)
        if lookup is not CandleLookup.WAIT:
            close.waiting.discard(name)
