"""The feed's fetch planning (actors.core.barfetch): a late feed asks once per instrument, not per bar."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.core.barfetch import MAX_CANDLES, PendingCloses, first_candles, plan_fetch, range_count
from actors.core.bars import BarCandle
from actors.core.bartime import CandleLookup, closed_bar_lookup
from actors.core.domain import OHLC, Candle
from actors.core.timefmt import parse_time

pytestmark = pytest.mark.unit

M15 = 15 * 60 * 10**9
WED = parse_time("2024-03-06T14:00:00Z")  # a Wednesday afternoon in London: open for days
FRI_LAST = parse_time("2024-03-08T21:45:00Z")  # the last M15 bar before Friday 17:00 New York (EST)
SUN_FIRST = parse_time("2024-03-10T21:00:00Z")  # the first after Sunday 17:00 New York (EDT from that day)
NAMES = ("EUR_USD", "GBP_USD", "USD_JPY")


def _candle(ts: int, *, complete: bool = True) -> Candle:
    p = OHLC(o=Decimal("1.1"), h=Decimal("1.1"), l=Decimal("1.1"), c=Decimal("1.1"))
    return Candle(ts=ts, volume=10, complete=complete, bid=p, ask=p)


def test_one_close_on_time_is_one_candles_latest_request_for_every_instrument() -> None:
    plan = plan_fetch({n: [WED] for n in NAMES}, "M15")
    assert plan.latest == NAMES and plan.latest_start == WED and plan.ranges == {}


def test_several_queued_closes_are_one_request_per_instrument_from_the_oldest() -> None:
    starts = [WED, WED + M15, WED + 2 * M15, WED + 3 * M15]
    plan = plan_fetch(dict.fromkeys(NAMES, starts), "M15")
    assert plan.latest == () and plan.latest_start is None
    assert plan.ranges == dict.fromkeys(NAMES, (WED, 4))  # 3 requests for 12 bars, not 12


def test_a_bar_candles_latest_no_longer_reaches_is_asked_alone_and_the_others_stay_on_latest() -> None:
    plan = plan_fetch({n: [WED] for n in NAMES}, "M15", unreachable_below={"GBP_USD": WED + M15})
    assert plan.latest == ("EUR_USD", "USD_JPY") and plan.latest_start == WED
    assert plan.ranges == {"GBP_USD": (WED, 1)}


def test_without_candles_latest_every_instrument_is_asked_alone() -> None:
    plan = plan_fetch({n: [WED] for n in NAMES}, "M15", latest_supported=False)
    assert plan.latest == () and plan.ranges == dict.fromkeys(NAMES, (WED, 1))


def test_instruments_waiting_for_different_bars_each_get_their_own_range_and_none_done_is_asked() -> None:
    waiting = {"EUR_USD": [WED + M15], "GBP_USD": [WED, WED + 2 * M15], "USD_JPY": []}
    plan = plan_fetch(waiting, "M15")
    assert plan.latest == ()
    # GBP_USD: the bar between its two waiting ones is in the count (the broker returns it too).
    assert plan.ranges == {"EUR_USD": (WED + M15, 1), "GBP_USD": (WED, 3)}


def test_one_instrument_still_waiting_for_an_older_bar_does_not_take_the_others_off_latest() -> None:
    plan = plan_fetch({"EUR_USD": [WED, WED + M15], "GBP_USD": [WED + M15], "USD_JPY": [WED + M15]}, "M15")
    assert plan.latest == ("GBP_USD", "USD_JPY") and plan.latest_start == WED + M15
    assert plan.ranges == {"EUR_USD": (WED, 2)}


def test_the_count_spans_the_weekend_by_the_calendar_not_by_the_clock() -> None:
    assert range_count([FRI_LAST, SUN_FIRST], "M15") == 2
    assert range_count([FRI_LAST - M15, FRI_LAST, SUN_FIRST], "M15") == 3
    assert range_count([WED, WED + 10 * 24 * 3600 * 10**9], "M1") == MAX_CANDLES


def test_a_range_answer_gives_each_bar_the_first_candle_at_or_after_it() -> None:
    starts = [WED, WED + M15, WED + 2 * M15]
    forming = _candle(WED + 2 * M15, complete=False)
    # The middle bar had no ticks (no candle); the newest is still forming.
    answer = [_candle(WED), forming]
    got = first_candles(starts, answer, 3)
    assert got == {WED: (answer[0],), WED + M15: (forming,), WED + 2 * M15: (forming,)}
    verdicts = [closed_bar_lookup(s, got[s][0], had_prices=True) for s in starts]  # type: ignore[index]
    assert verdicts == [CandleLookup.FOUND, CandleLookup.ABSENT, CandleLookup.WAIT]


def test_a_short_answer_means_no_candle_and_a_full_one_that_ends_early_cannot_tell() -> None:
    starts = [WED, WED + M15]
    assert first_candles(starts, [_candle(WED)], 2) == {WED: (_candle(WED),), WED + M15: (None,)}
    assert first_candles(starts, [_candle(WED)], 1) == {WED: (_candle(WED),), WED + M15: None}
    assert first_candles(starts, [], 2) == {WED: (None,), WED + M15: (None,)}


def _answer(starts: list[int]) -> list[Candle]:
    return [_candle(s) for s in starts]


def test_a_late_feed_catches_up_in_one_request_per_instrument_and_hands_the_closes_back_in_order() -> None:
    closes = PendingCloses(NAMES, "M15", bar_wait_s=2.0)
    starts = [WED, WED + M15, WED + 2 * M15]
    for start in starts:  # queued behind a slow fetch
        closes.add(start, frozenset(NAMES), now_s=0.0)
    plan = closes.plan(latest_supported=True)
    assert plan.latest == () and plan.ranges == dict.fromkeys(NAMES, (WED, 3))
    # The answers come one instrument at a time; nothing is handed back before all are in.
    closes.range_answer("EUR_USD", plan, _answer(starts))
    closes.range_answer("GBP_USD", plan, _answer(starts))
    assert closes.done() == []
    closes.range_answer("USD_JPY", plan, _answer(starts))
    done = closes.done()
    assert [c.start for c in done] == starts
    assert all(set(c.found) == set(NAMES) and c.found["EUR_USD"].ts == c.start for c in done)
    assert closes.done() == [] and closes.closes == []


def test_a_later_close_found_first_waits_for_the_earlier_one_and_a_frozen_candle_goes_missing_at_its_deadline() -> None:
    closes = PendingCloses(NAMES, "M15", bar_wait_s=2.0)
    closes.add(WED, frozenset(NAMES), now_s=0.0)
    closes.add(WED + M15, frozenset(NAMES), now_s=0.5)
    plan = closes.plan(latest_supported=True)
    for name in NAMES:  # EUR_USD's older candle is still forming at the broker (frozen)
        got = [_candle(WED, complete=False)] if name == "EUR_USD" else [_candle(WED), _candle(WED + M15)]
        closes.range_answer(name, plan, got)
    assert closes.done() == []
    plan = closes.plan(latest_supported=True)
    assert plan.ranges == {"EUR_USD": (WED, 2)} and plan.latest == ()
    closes.expire(1.0)
    assert closes.done() == []
    closes.expire(2.0)  # the first close's deadline: given up; the second waits on (its own deadline)
    first = closes.done()
    assert [c.start for c in first] == [WED] and set(first[0].found) == {"GBP_USD", "USD_JPY"}
    assert closes.plan(latest_supported=True).latest == ("EUR_USD",)
    closes.range_failed("EUR_USD", "BrokerTemporaryError: 503")
    closes.expire(2.5)
    (second,) = closes.done()
    assert second.start == WED + M15 and second.errors == {"EUR_USD": "BrokerTemporaryError: 503"}


def test_a_bar_the_start_up_load_holds_is_not_asked_for_again() -> None:
    held = {name: {WED: BarCandle.from_candle(_candle(WED))} for name in NAMES}
    closes = PendingCloses(NAMES, "M15", bar_wait_s=2.0, held=held)
    closes.add(WED, frozenset(NAMES), now_s=0.0)  # closed during the load
    closes.add(WED + M15, frozenset(NAMES), now_s=0.0)  # after it
    plan = closes.plan(latest_supported=True)
    assert plan.latest == NAMES and plan.latest_start == WED + M15 and plan.ranges == {}
    assert (
        closes.latest_answer(plan, {n: [_candle(WED + M15), _candle(WED + 2 * M15, complete=False)] for n in NAMES})
        is False
    )
    done = closes.done()
    assert [c.start for c in done] == [WED, WED + M15]
    assert done[0].found["GBP_USD"] is held["GBP_USD"][WED]


def test_candles_latest_that_cannot_reach_the_bar_sends_those_instruments_to_a_request_of_their_own() -> None:
    closes = PendingCloses(NAMES, "M15", bar_wait_s=2.0)
    closes.add(WED, frozenset(NAMES), now_s=0.0)
    plan = closes.plan(latest_supported=True)
    assert plan.latest == NAMES
    late = [_candle(WED + M15), _candle(WED + 2 * M15, complete=False)]  # the market moved on meanwhile
    answer = {"EUR_USD": [_candle(WED), _candle(WED + M15, complete=False)], "GBP_USD": late, "USD_JPY": late}
    assert closes.latest_answer(plan, answer) is True  # ask again at once
    plan = closes.plan(latest_supported=True)
    assert plan.latest == () and plan.ranges == {"GBP_USD": (WED, 1), "USD_JPY": (WED, 1)}


def test_a_failed_candles_latest_request_sends_every_instrument_to_a_request_of_its_own() -> None:
    closes = PendingCloses(NAMES, "M15", bar_wait_s=2.0)
    closes.add(WED, frozenset(NAMES), now_s=0.0)
    assert closes.latest_answer(closes.plan(latest_supported=True), None) is True
    assert closes.plan(latest_supported=True).ranges == dict.fromkeys(NAMES, (WED, 1))
