"""A bar the feed already has is a duplicate, not a stale new bar (issue 17, the go-live replay).

The feed loads its recent bars from the broker at start, then checks each close. When the load
runs while a bar boundary passes (a start at xx:59:59 live; every start of a fast replay, where a
load of a few hundred ms spans hours of market time), the just-closed bar is in the loaded history
AND is fetched again at its close. Checked against itself it looked like a ``stale`` bar (the same
OHLC and volume as the previous accepted one): the instrument lost its bar at that close (no
``md.bar``, no decision) and the data-quality line counted a rejection. A bar whose time the feed
already accepted is now a duplicate: accepted as the bar it already is (not added twice), the close
publishes it. A NEW bar with the previous bar's prices is still ``stale``.
"""

from __future__ import annotations

import dataclasses

import pytest

from actors.core.bars import BarCandle, BarGuard, BarReason
from actors.roles.feed import _Fetched
from actors.runtime.actor import HeartbeatDue
from actors.runtime.messages import TOPIC_MD_BAR, TOPIC_MD_BARS, Bar, BarsClosed
from tests.unit.actors.test_bar_jumps import CONFIG, STEP, _feed, _friday

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


def _guard(n: int = 30) -> tuple[BarGuard, list[BarCandle]]:
    bars = [BarCandle.from_candle(c) for c in _friday(n, seed=3)]
    guard = BarGuard(granularity="M15", config=CONFIG)
    for bar in bars:
        assert guard.check(bar, pip_location=-4).ok
    return guard, bars


def test_the_last_accepted_bar_delivered_again_is_a_duplicate_not_stale_and_not_added_twice() -> None:
    guard, bars = _guard()

    verdict = guard.check(bars[-1], pip_location=-4, expected_ts_ns=bars[-1].ts)

    assert verdict.ok, verdict
    assert verdict.duplicate
    assert [b.ts for b in guard.recent][-2:] == [bars[-2].ts, bars[-1].ts]


def test_an_older_accepted_bar_delivered_again_is_a_duplicate_and_leaves_the_bars_in_order() -> None:
    guard, bars = _guard()
    before = list(guard.recent)

    verdict = guard.check(bars[-3], pip_location=-4, expected_ts_ns=bars[-3].ts)

    assert verdict.ok and verdict.duplicate, verdict
    assert list(guard.recent) == before


def test_a_bar_at_an_accepted_time_with_other_prices_is_not_taken_in_place_of_the_accepted_one() -> None:
    guard, bars = _guard()
    other = dataclasses.replace(bars[-1], volume=bars[-1].volume + 7)

    verdict = guard.check(other, pip_location=-4)

    assert verdict.ok and verdict.duplicate, verdict
    assert "differs" in verdict.detail
    assert guard.recent[-1] is bars[-1]


def test_a_new_bar_with_the_previous_bars_prices_is_still_stale() -> None:
    guard, bars = _guard()
    copy = dataclasses.replace(bars[-1], ts=bars[-1].ts + STEP)

    verdict = guard.check(copy, pip_location=-4)

    assert not verdict.ok
    assert verdict.reason is BarReason.STALE


def test_the_feed_publishes_a_close_whose_bar_it_loaded_at_start_and_rejects_nothing() -> None:
    candles = _friday(40, seed=5)
    with _feed(candles) as (ref, runtime):  # the history holds the bar that is closing
        last = candles[-1]
        ref.tell(_Fetched(last.ts, {"EUR_USD": BarCandle.from_candle(last)}))
        ref.ask(HeartbeatDue(), timeout=5)
        bars = [b for t, b, _ in list(runtime.published) if t == TOPIC_MD_BAR + "EUR_USD" and isinstance(b, Bar)]
        closes = [b for t, b, _ in list(runtime.published) if t == TOPIC_MD_BARS and isinstance(b, BarsClosed)]
        rejected = [b for k, b, _ in list(runtime.journaled) if k == "feed.bar_rejected"]

    assert rejected == []
    assert [b.ts for b in bars] == [last.ts]
    assert bars[0].volume == last.volume
    assert [(c.ts, c.published, c.rejected) for c in closes] == [(last.ts, ("EUR_USD",), ())]
