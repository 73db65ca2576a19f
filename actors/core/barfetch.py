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
from dataclasses import dataclass

from actors.core.bartime import expected_bars
from actors.core.domain import Candle

__all__ = ["MAX_CANDLES", "FetchPlan", "first_candles", "plan_fetch", "range_count"]

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
        unreachable_below: per instrument, the oldest start ``candles/latest`` can still reach (its
            last answer began there, and the market only moves on): a bar before it is asked for alone.

    Returns:
        ``candles/latest`` for all the instruments when they all wait for the same one bar that it may
        reach; one ``candles`` request per other instrument for all its waiting bars.
    """
    reach = unreachable_below or {}
    pending = {name: sorted(set(starts)) for name, starts in waiting.items() if starts}
    singles = {starts[0] for starts in pending.values() if len(starts) == 1}
    latest: list[str] = []
    latest_start = None
    if latest_supported and len(singles) == 1 and all(len(s) == 1 for s in pending.values()):
        latest_start = singles.pop()
        latest = [name for name in pending if latest_start >= reach.get(name, latest_start)]
    ranges = {
        name: (starts[0], range_count(starts, granularity)) for name, starts in pending.items() if name not in latest
    }
    return FetchPlan(latest=tuple(latest), latest_start=latest_start if latest else None, ranges=ranges)


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
