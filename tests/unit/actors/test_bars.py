"""Bar time and validation: OANDA alignment, the market-time bar clock, expected bars, every check.

The last test replays real EURUSD hours (2017-04 .. 2018-02, from the ``backtesting`` package)
with their real weekends, Christmas and New Year through the calendar, the clock and the checks.
"""

from __future__ import annotations

import collections
import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core import markethours
from actors.core.bars import BarCandle, BarReason, average_true_range, validate_bar
from actors.core.bartime import (
    BarClock,
    CandleLookup,
    bar_end,
    bar_start,
    closed_bar_lookup,
    expected_bars,
    first_candle_from,
    missing_bar_is_gap,
)
from actors.core.config import BarValidationConfig
from actors.core.domain import DAY_ALIGNED, GRANULARITIES, OHLC, Candle, granularity_seconds
from tests.markettime import NS, ny, utc, weekly_closed_oracle

pytestmark = pytest.mark.unit

HOUR_NS = 3600 * NS
ANY_TS = st.integers(946_684_800 * NS, 2_208_988_800 * NS)  # 2000 .. 2040
CONFIG = BarValidationConfig()


# --- Granularities and alignment ---------------------------------------------------------------------


def test_granularities_are_oandas_names_from_s5_to_d_with_their_lengths() -> None:
    assert GRANULARITIES == (
        "S5", "S10", "S15", "S30", "M1", "M2", "M4", "M5", "M10", "M15", "M30",
        "H1", "H2", "H3", "H4", "H6", "H8", "H12", "D",
    )  # fmt: skip
    assert [granularity_seconds(g) for g in ("S5", "M4", "M30", "H3", "H12", "D")] == [
        5,
        240,
        1800,
        10800,
        43200,
        86400,
    ]


@pytest.mark.parametrize("name", ["W", "M", "H5", "m15", ""])
def test_an_unknown_granularity_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown granularity"):
        granularity_seconds(name)
    with pytest.raises(ValueError, match="unknown granularity"):
        bar_start(utc("2018-01-10T12:00"), name)


# A winter (EST) Wednesday: the rollover is 22:00 UTC.
WINTER = [
    ("S5", "2018-01-10T13:37:40"), ("S10", "2018-01-10T13:37:40"), ("S15", "2018-01-10T13:37:30"),
    ("S30", "2018-01-10T13:37:30"), ("M1", "2018-01-10T13:37:00"), ("M2", "2018-01-10T13:36:00"),
    ("M4", "2018-01-10T13:36:00"), ("M5", "2018-01-10T13:35:00"), ("M10", "2018-01-10T13:30:00"),
    ("M15", "2018-01-10T13:30:00"), ("M30", "2018-01-10T13:30:00"), ("H1", "2018-01-10T13:00:00"),
    ("H2", "2018-01-10T12:00:00"), ("H3", "2018-01-10T13:00:00"), ("H4", "2018-01-10T10:00:00"),
    ("H6", "2018-01-10T10:00:00"), ("H8", "2018-01-10T06:00:00"), ("H12", "2018-01-10T10:00:00"),
    ("D", "2018-01-09T22:00:00"),
]  # fmt: skip
# A summer (EDT) Wednesday: the rollover is 21:00 UTC, so day-aligned bars move an hour.
SUMMER = [
    ("M15", "2017-07-05T13:30:00"), ("H1", "2017-07-05T13:00:00"), ("H2", "2017-07-05T13:00:00"),
    ("H3", "2017-07-05T12:00:00"), ("H4", "2017-07-05T13:00:00"), ("H6", "2017-07-05T09:00:00"),
    ("H8", "2017-07-05T13:00:00"), ("H12", "2017-07-05T09:00:00"), ("D", "2017-07-04T21:00:00"),
]  # fmt: skip


@pytest.mark.parametrize(("granularity", "start"), WINTER)
def test_each_granularity_aligns_as_oanda_aligns_it_in_winter(granularity: str, start: str) -> None:
    ts = utc("2018-01-10T13:37:41") + 123_456_789
    assert bar_start(ts, granularity) == utc(start)
    assert bar_end(ts, granularity) == utc(start) + granularity_seconds(granularity) * NS


@pytest.mark.parametrize(("granularity", "start"), SUMMER)
def test_day_aligned_granularities_follow_1700_new_york_in_summer(granularity: str, start: str) -> None:
    assert bar_start(utc("2017-07-05T13:37:41"), granularity) == utc(start)


def test_h4_bars_start_at_the_rollover_and_every_four_hours_after_it() -> None:
    day = markethours.trading_day_start(utc("2017-07-05T12:00"))
    starts = [bar_start(day + h * HOUR_NS, "H4") for h in range(0, 24, 4)]
    assert [datetime.fromtimestamp(s // NS, tz=UTC).hour for s in starts] == [21, 1, 5, 9, 13, 17]


def test_the_last_day_aligned_bar_of_a_dst_switch_day_ends_at_the_rollover() -> None:
    # Both switch days lie inside the weekend; bars still tile them without crossing 17:00 New York.
    assert bar_start(utc("2018-03-11T19:00"), "H4") == utc("2018-03-11T18:00")
    assert bar_end(utc("2018-03-11T19:00"), "H4") == utc("2018-03-11T21:00")  # 23-hour day: 3 hours
    assert bar_start(utc("2017-11-05T21:30"), "H4") == utc("2017-11-05T21:00")
    assert bar_end(utc("2017-11-05T21:30"), "H4") == utc("2017-11-05T22:00")  # 25-hour day: 1 hour
    assert bar_end(utc("2018-03-11T12:00"), "D") == utc("2018-03-11T21:00")


@settings(max_examples=300)
@given(ANY_TS, st.sampled_from(GRANULARITIES))
def test_bar_start_is_idempotent_aligned_and_bars_tile_time(ts: int, granularity: str) -> None:
    start, end = bar_start(ts, granularity), bar_end(ts, granularity)
    step = granularity_seconds(granularity) * NS
    assert start <= ts < end
    assert bar_start(start, granularity) == start
    assert bar_end(start, granularity) == end
    assert bar_start(end, granularity) == end  # the next bar begins where this one ends
    anchor = markethours.trading_day_start(start) if granularity in DAY_ALIGNED else 0
    assert (start - anchor) % step == 0


@settings(max_examples=300)
@given(ANY_TS, st.sampled_from(GRANULARITIES))
def test_no_bar_straddles_the_weekly_open_or_close(ts: int, granularity: str) -> None:
    start, end = bar_start(ts, granularity), bar_end(ts, granularity)
    assert markethours.in_weekly_session(start) == markethours.in_weekly_session(end - 1)


# --- BarClock ----------------------------------------------------------------------------------------


def test_the_first_observation_only_sets_the_position() -> None:
    clock = BarClock("M15")
    assert clock.observe(utc("2018-01-10T13:44:59")) == []
    assert clock.observe(utc("2018-01-10T13:45:00")) == [utc("2018-01-10T13:30")]


def test_heartbeats_alone_close_a_bar_at_the_first_heartbeat_past_its_end() -> None:
    # Arrange: a heartbeat every 5 s, no prices at all, from 13:40:02 to 13:50:02.
    clock = BarClock("M15")
    beats = [utc("2018-01-10T13:40:02") + i * 5 * NS for i in range(121)]

    # Act
    closes = [(beat, clock.observe(beat)) for beat in beats]

    # Assert
    closed = [(beat, bars) for beat, bars in closes if bars]
    assert closed == [(utc("2018-01-10T13:45:02"), [utc("2018-01-10T13:30")])]


def test_a_stream_gap_closes_every_bar_it_skipped_at_once() -> None:
    clock = BarClock("M15")
    clock.observe(utc("2018-01-10T10:02"))
    assert clock.observe(utc("2018-01-10T11:01")) == [utc(f"2018-01-10T10:{m:02d}") for m in (0, 15, 30, 45)]
    assert clock.observe(utc("2018-01-10T11:05")) == []


def test_timestamps_that_do_not_advance_are_ignored() -> None:
    clock = BarClock("M1")
    clock.observe(utc("2018-01-10T10:00:30"))
    assert clock.observe(utc("2018-01-10T10:01:01")) == [utc("2018-01-10T10:00")]
    assert clock.observe(utc("2018-01-10T10:00:59")) == []  # a late price
    assert clock.observe(utc("2018-01-10T10:01:01")) == []


def test_heartbeats_through_a_weekend_close_no_bar_in_closed_hours_and_the_first_bar_after_the_open() -> None:
    # Arrange: heartbeats every 5 s from Friday 16:30 to Sunday 17:30 New York (winter).
    clock = BarClock("M15")
    first, last = ny("2018-01-12T16:30:02"), ny("2018-01-14T17:30:02")

    # Act
    closed: list[tuple[int, int]] = []
    for beat in range(first, last + 1, 5 * NS):
        closed.extend((beat, bar) for bar in clock.observe(beat))

    # Assert
    assert [bar for _, bar in closed] == [
        ny("2018-01-12T16:30"),
        ny("2018-01-12T16:45"),
        ny("2018-01-14T17:00"),
        ny("2018-01-14T17:15"),
    ]
    assert closed[2][0] == ny("2018-01-14T17:15:02")  # the first bar of the week closes at the first beat after its end


def test_one_jump_across_the_weekend_closes_fridays_last_and_sundays_first_bar_only() -> None:
    clock = BarClock("H1")
    clock.observe(ny("2018-01-12T16:50"))
    assert clock.observe(ny("2018-01-14T18:20")) == [ny("2018-01-12T16:00"), ny("2018-01-14T17:00")]


def test_a_daily_clock_closes_each_trading_day_but_not_the_weekend_days() -> None:
    clock = BarClock("D")
    clock.observe(ny("2018-01-11T12:00"))
    assert clock.observe(ny("2018-01-16T12:00")) == [ny(f"2018-01-{d}T17:00") for d in (10, 11, 14)]


def test_a_clock_restarted_with_its_last_time_reports_the_bars_closed_since() -> None:
    clock = BarClock("M5", last_ts_ns=utc("2018-01-10T10:03"))
    assert clock.observe(utc("2018-01-10T10:11")) == [utc("2018-01-10T10:00"), utc("2018-01-10T10:05")]


def test_holiday_bars_close_by_default_and_can_be_skipped_like_the_weekend() -> None:
    with_holidays, without = BarClock("H4"), BarClock("H4", include_holidays=False)
    for clock in (with_holidays, without):
        clock.observe(ny("2017-12-22T12:00"))
    assert with_holidays.observe(ny("2017-12-26T01:00")) == [
        ny("2017-12-22T09:00"), ny("2017-12-22T13:00"),  # Friday
        *[ny("2017-12-24T17:00") + h * HOUR_NS for h in range(0, 24, 4)],  # Christmas (broker decides)
        ny("2017-12-25T17:00"), ny("2017-12-25T21:00"),
    ]  # fmt: skip
    assert without.observe(ny("2017-12-26T01:00")) == [
        ny("2017-12-22T09:00"), ny("2017-12-22T13:00"), ny("2017-12-25T17:00"), ny("2017-12-25T21:00"),
    ]  # fmt: skip


def brute_force_closes(first: int, last: int, granularity: str) -> list[int]:
    # Every bar from the first observation's bar up to (not including) the last observation's
    # bar, stepped one by one, kept when the textbook weekly rule says open.
    out, start = [], bar_start(first, granularity)
    while start < bar_start(last, granularity):
        if not weekly_closed_oracle(start):
            out.append(start)
        start = bar_end(start, granularity)
    return out


@settings(max_examples=150, deadline=None)
@given(
    ANY_TS,
    st.sampled_from(GRANULARITIES),
    st.lists(st.tuples(st.integers(0, 300), st.floats(0, 1, exclude_max=True)), min_size=1, max_size=8),
)
def test_observe_reports_each_open_bar_exactly_once_and_never_one_in_closed_hours(
    first: int, granularity: str, moves: list[tuple[int, float]]
) -> None:
    step = granularity_seconds(granularity) * NS
    clock = BarClock(granularity)
    clock.observe(first)
    ts, closed = first, []
    for bars, fraction in moves:
        ts += bars * step + int(fraction * step)
        closed.extend(clock.observe(ts))
    assert closed == brute_force_closes(first, ts, granularity)
    assert all(markethours.in_weekly_session(bar) for bar in closed)


# --- Expected bars and gaps -------------------------------------------------------------------------


def test_consecutive_bars_expect_nothing_between_them() -> None:
    assert expected_bars(utc("2018-01-10T10:00"), utc("2018-01-10T11:00"), "H1") == []


@pytest.mark.parametrize("granularity", ["M1", "M15", "H1", "H4", "D"])
def test_fridays_last_and_sundays_first_bar_are_not_a_gap(granularity: str) -> None:
    last_friday = bar_start(ny("2018-01-12T16:59:59"), granularity)
    first_sunday = bar_start(ny("2018-01-14T17:00"), granularity)
    assert expected_bars(last_friday, first_sunday, granularity) == []


def test_a_missing_bar_inside_the_week_is_expected() -> None:
    assert expected_bars(utc("2018-01-10T10:00"), utc("2018-01-10T12:00"), "H1") == [utc("2018-01-10T11:00")]


def test_the_rollover_hour_is_an_ordinary_hour_inside_the_week() -> None:
    assert expected_bars(ny("2018-01-10T16:00"), ny("2018-01-10T18:00"), "H1") == [ny("2018-01-10T17:00")]


def test_christmas_and_new_year_are_not_gaps() -> None:
    assert expected_bars(ny("2017-12-22T16:00"), ny("2017-12-25T17:00"), "H1") == []
    assert expected_bars(ny("2017-12-29T16:45"), ny("2018-01-01T17:00"), "M15") == []


def test_a_missing_bar_is_a_gap_only_when_the_market_was_open_and_the_broker_had_prices() -> None:
    wednesday, saturday, christmas = ny("2018-01-10T09:00"), ny("2018-01-13T09:00"), ny("2017-12-25T09:00")
    assert missing_bar_is_gap(wednesday, had_prices=True)
    assert not missing_bar_is_gap(wednesday, had_prices=False)  # no ticks: expected silence
    assert not missing_bar_is_gap(saturday, had_prices=True)
    assert not missing_bar_is_gap(christmas, had_prices=True)


def _candle(ts: int, *, complete: bool = True) -> Candle:
    price = OHLC(o=Decimal("1.18"), h=Decimal("1.19"), l=Decimal("1.17"), c=Decimal("1.18"))
    return Candle(ts=ts, volume=10, complete=complete, bid=price, ask=price)


def test_a_closed_bars_candle_is_taken_when_complete_and_waited_for_while_the_broker_closes_it() -> None:
    wednesday = utc("2018-01-10T14:00")
    assert closed_bar_lookup(wednesday, _candle(wednesday), had_prices=True) is CandleLookup.FOUND
    assert closed_bar_lookup(wednesday, _candle(wednesday), had_prices=False) is CandleLookup.FOUND  # prices missed
    assert closed_bar_lookup(wednesday, _candle(wednesday, complete=False), had_prices=True) is CandleLookup.WAIT
    assert closed_bar_lookup(wednesday, None, had_prices=True) is CandleLookup.WAIT  # late at the broker


def test_a_holiday_bar_without_prices_or_with_a_later_candle_is_given_up_at_once() -> None:
    # Christmas 2017: the clock closes the holiday's hours from Sunday 22:00 UTC (the broker may
    # trade them); the recorded market had no tick until Monday 22:00 UTC.
    sunday_evening, reopening = utc("2017-12-24T22:00"), utc("2017-12-25T22:00")
    assert closed_bar_lookup(sunday_evening, None, had_prices=False) is CandleLookup.ABSENT
    # Once the market has reopened, the first candle from the holiday's hour on is Monday 22:00's.
    assert closed_bar_lookup(sunday_evening, _candle(reopening, complete=False), had_prices=True) is CandleLookup.ABSENT
    assert closed_bar_lookup(sunday_evening, _candle(reopening), had_prices=False) is CandleLookup.ABSENT


def test_the_latest_candles_answer_the_lookup_only_when_they_reach_back_to_the_bar() -> None:
    m15 = 15 * 60 * NS
    bar_ts = utc("2018-01-10T14:00")
    before, closed, forming = _candle(bar_ts - m15), _candle(bar_ts), _candle(bar_ts + m15, complete=False)
    # The usual answer just after the close: the closed bar and the one forming.
    assert first_candle_from(bar_ts, [closed, forming]) == (closed,)
    # No candle at the bar but one before and one after it: the bar had no ticks (as a later first candle).
    got = first_candle_from(bar_ts, [before, forming])
    assert got == (forming,) and closed_bar_lookup(bar_ts, got[0], had_prices=True) is CandleLookup.ABSENT
    # Nothing at or after the bar yet: the candle is late (the lookup waits while there were prices).
    assert first_candle_from(bar_ts, [before]) == (None,)
    # Every candle later than the bar, or no answer for the instrument: the list cannot tell.
    assert first_candle_from(bar_ts, [forming]) is None
    assert first_candle_from(bar_ts, []) is None
    assert first_candle_from(bar_ts, None) is None


# --- Validation --------------------------------------------------------------------------------------

T0 = utc("2018-01-10T10:00")


def ohlc(o: str, h: str, low: str, c: str) -> OHLC:
    return OHLC(o=Decimal(o), h=Decimal(h), l=Decimal(low), c=Decimal(c))


def bar(
    ts: int = T0,
    bid: tuple[str, str, str, str] = ("1.10000", "1.10100", "1.09900", "1.10050"),
    spread: str = "0.00010",
    volume: int = 100,
    complete: bool = True,
) -> BarCandle:
    b = ohlc(*bid)
    s = Decimal(spread)
    return BarCandle(
        ts=ts, volume=volume, complete=complete, bid=b, ask=OHLC(o=b.o + s, h=b.h + s, l=b.l + s, c=b.c + s)
    )


def calm_bars(count: int, *, end: int = T0, range_: str = "0.00100") -> list[BarCandle]:
    # ``count`` calm H1 bars before ``end``, each with the given range and a slowly rising close.
    out = []
    for i in range(count):
        base = Decimal("1.10000") + Decimal(i) / Decimal(100000)
        out.append(
            bar(
                ts=end - (count - i) * HOUR_NS,
                bid=(str(base), str(base + Decimal(range_)), str(base), str(base + Decimal(range_))),
            )
        )
    return out


def check(
    candle: BarCandle,
    *,
    config: BarValidationConfig = CONFIG,
    pip_location: int = -4,
    expected_ts_ns: int | None = None,
    history: list[BarCandle] | None = None,
) -> tuple[BarReason | None, str]:
    verdict = validate_bar(
        candle,
        granularity="H1",
        pip_location=pip_location,
        config=config,
        expected_ts_ns=expected_ts_ns,
        history=history or [],
    )
    assert verdict.ok == (verdict.reason is None)
    return verdict.reason, verdict.detail


def test_a_good_bar_passes() -> None:
    verdict = validate_bar(
        bar(), granularity="H1", pip_location=-4, config=CONFIG, expected_ts_ns=T0, history=calm_bars(20)
    )
    assert verdict.ok
    assert (verdict.reason, verdict.detail) == (None, "")


def test_an_incomplete_bar_is_rejected() -> None:
    assert check(bar(complete=False))[0] is BarReason.INCOMPLETE


def test_a_bar_off_the_granularity_grid_is_misaligned() -> None:
    reason, detail = check(bar(ts=T0 + 60 * NS))
    assert reason is BarReason.MISALIGNED
    assert "not a H1 bar start" in detail


def test_a_bar_other_than_the_expected_one_is_misaligned() -> None:
    reason, detail = check(bar(ts=T0), expected_ts_ns=T0 + HOUR_NS)
    assert reason is BarReason.MISALIGNED
    assert "expected" in detail


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_a_bar_with_a_non_finite_price_is_rejected(value: str) -> None:
    good = bar()
    broken = BarCandle(ts=T0, volume=100, complete=True, bid=ohlc("1.1", value, "1.0", "1.05"), ask=good.ask)
    reason, detail = check(broken)
    assert reason is BarReason.NOT_FINITE
    assert detail == f"bid.h={Decimal(value)}"


@pytest.mark.parametrize("bid", [("0", "1.1", "0", "1.0"), ("-1.1", "1.1", "-1.2", "1.0")])
def test_a_bar_with_a_zero_or_negative_price_is_rejected(bid: tuple[str, str, str, str]) -> None:
    assert check(bar(bid=bid))[0] is BarReason.NON_POSITIVE


def test_a_bar_with_high_below_low_is_rejected() -> None:
    reason, detail = check(bar(bid=("1.1000", "1.0990", "1.1010", "1.1000")))
    assert reason is BarReason.OHLC_INCONSISTENT
    assert "high" in detail


def test_a_bar_with_high_below_its_close_is_rejected() -> None:
    assert check(bar(bid=("1.1000", "1.1005", "1.0990", "1.1010")))[0] is BarReason.OHLC_INCONSISTENT


def test_a_bar_with_low_above_its_open_is_rejected() -> None:
    assert check(bar(bid=("1.0990", "1.1010", "1.0995", "1.1000")))[0] is BarReason.OHLC_INCONSISTENT


def test_a_bar_whose_ask_is_inconsistent_is_rejected_even_when_the_bid_is_fine() -> None:
    good = bar()
    broken = BarCandle(ts=T0, volume=100, complete=True, bid=good.bid, ask=ohlc("1.1001", "1.1000", "1.0990", "1.1006"))
    reason, detail = check(broken)
    assert reason is BarReason.OHLC_INCONSISTENT
    assert detail.startswith("ask")


def test_a_crossed_bar_with_ask_below_bid_is_rejected() -> None:
    reason, detail = check(bar(spread="-0.00010"))
    assert reason is BarReason.OHLC_INCONSISTENT
    assert "crossed" in detail


def test_a_bar_with_zero_volume_is_rejected() -> None:
    assert check(bar(volume=0))[0] is BarReason.ZERO_VOLUME


def test_a_spread_above_the_limit_in_pips_is_rejected_and_one_at_the_limit_passes() -> None:
    config = BarValidationConfig(max_spread_pips=3.0)
    assert check(bar(spread="0.00031"), config=config)[0] is BarReason.SPREAD_TOO_WIDE
    assert check(bar(spread="0.00030"), config=config)[0] is None


def test_the_pip_size_comes_from_the_instruments_pip_location() -> None:
    config = BarValidationConfig(max_spread_pips=3.0)
    jpy = bar(bid=("150.000", "150.100", "149.900", "150.050"), spread="0.040")  # 4 pips at pipLocation -2
    assert check(jpy, config=config, pip_location=-2)[0] is BarReason.SPREAD_TOO_WIDE
    assert check(jpy, config=config, pip_location=-1)[0] is None


def test_an_exact_copy_of_the_previous_bar_is_stale() -> None:
    previous = bar(ts=T0 - HOUR_NS)
    reason, detail = check(bar(ts=T0), history=[previous])
    assert reason is BarReason.STALE
    assert str(previous.ts) in detail


def test_a_bar_that_differs_from_the_previous_one_only_in_volume_is_not_stale() -> None:
    assert check(bar(ts=T0, volume=101), history=[bar(ts=T0 - HOUR_NS)])[0] is None


def test_a_range_far_beyond_the_recent_atr_is_a_spike() -> None:
    calm = calm_bars(14)  # ATR 0.00100 (the close-to-close drift is smaller than the range)
    wild = bar(bid=("1.10000", "1.12500", "1.09900", "1.10050"))  # range 0.02600 = 26 ATR
    reason, detail = check(wild, history=calm)
    assert reason is BarReason.SPIKE
    assert "ATR" in detail
    within = bar(bid=("1.10000", "1.11500", "1.09900", "1.10050"))  # 16 ATR, under the default 20
    assert check(within, history=calm)[0] is None


def test_the_spike_check_is_skipped_until_there_is_enough_history() -> None:
    wild = bar(bid=("1.10000", "1.12500", "1.09900", "1.10050"))
    assert check(wild, history=calm_bars(13))[0] is None
    assert check(wild, history=calm_bars(14))[0] is BarReason.SPIKE


def test_the_spike_check_is_skipped_when_the_recent_bars_were_flat() -> None:
    flat = [bar(ts=T0 - (14 - i) * HOUR_NS, bid=("1.1", "1.1", "1.1", "1.1"), volume=i + 1) for i in range(14)]
    assert average_true_range(flat, period=14) == 0
    assert check(bar(), history=flat)[0] is None


def test_the_atr_is_the_mean_true_range_of_the_last_bars_including_gaps_from_the_previous_close() -> None:
    bars = [
        bar(
            ts=T0 - 3 * HOUR_NS, bid=("1.0000", "1.0010", "1.0000", "1.0010"), spread="0"
        ),  # only the prior close counts
        bar(ts=T0 - 2 * HOUR_NS, bid=("1.0010", "1.0020", "1.0005", "1.0015"), spread="0"),  # TR = 0.0015
        bar(ts=T0 - 1 * HOUR_NS, bid=("1.0040", "1.0045", "1.0035", "1.0040"), spread="0"),  # TR = 1.0045 - 1.0015
    ]
    assert average_true_range(bars, period=2) == Decimal("0.00225")
    assert average_true_range(bars[1:], period=2) == (Decimal("0.0015") + Decimal("0.0030")) / 2
    assert average_true_range(bars[2:], period=2) is None


def test_the_atr_takes_a_deque_of_recent_bars_as_the_feed_keeps_them() -> None:
    recent = calm_bars(20)
    assert average_true_range(collections.deque(recent, maxlen=15), period=14) == average_true_range(recent, period=14)
    assert average_true_range(recent, period=14) == Decimal("0.00100")


def test_the_first_failing_check_decides() -> None:
    assert check(bar(ts=T0 + NS, complete=False, volume=0))[0] is BarReason.INCOMPLETE
    assert check(bar(ts=T0 + NS, volume=0))[0] is BarReason.MISALIGNED


def test_the_mid_is_the_mean_of_bid_and_ask() -> None:
    candle = bar(spread="0.00020")
    assert candle.mid == ohlc("1.10010", "1.10110", "1.09910", "1.10060")


def test_a_broker_candle_with_bid_and_ask_converts_and_one_without_ask_is_refused() -> None:
    b, a = ohlc("1.1", "1.2", "1.0", "1.1"), ohlc("1.11", "1.21", "1.01", "1.11")
    converted = BarCandle.from_candle(Candle(ts=T0, volume=5, complete=True, bid=b, ask=a))
    assert (converted.ts, converted.volume, converted.bid, converted.ask) == (T0, 5, b, a)
    with pytest.raises(ValueError, match="bid and ask"):
        BarCandle.from_candle(Candle(ts=T0, volume=5, complete=True, mid=b, bid=b))


# --- Real hourly EURUSD data ------------------------------------------------------------------------


def test_real_hourly_eurusd_with_its_weekends_and_holidays_passes_with_no_rejection_and_no_false_gap() -> None:
    data = pytest.importorskip(
        "backtesting.test", reason="real EURUSD hours come from the `backtesting` package (test extra)"
    ).EURUSD
    half = Decimal("0.00005")  # a fixed synthetic spread of 1 pip around the recorded mid

    # Arrange: the recorded mid hours as bid/ask candles (times are hour starts in UTC).
    candles = []
    for stamp, o, h, low, c, volume in data[["Open", "High", "Low", "Close", "Volume"]].itertuples():
        mid = [Decimal(repr(float(v))) for v in (o, h, low, c)]
        candles.append(
            BarCandle(
                ts=int(stamp.to_pydatetime().replace(tzinfo=UTC).timestamp()) * NS,
                volume=int(volume),
                complete=True,
                bid=OHLC(o=mid[0] - half, h=mid[1] - half, l=mid[2] - half, c=mid[3] - half),
                ask=OHLC(o=mid[0] + half, h=mid[1] + half, l=mid[2] + half, c=mid[3] + half),
            )
        )
    starts = [candle.ts for candle in candles]

    # Act: validate every bar against the ones accepted before it.
    accepted: collections.deque[BarCandle] = collections.deque(maxlen=CONFIG.atr_bars + 1)
    rejected = []
    for candle in candles:
        verdict = validate_bar(
            candle, granularity="H1", pip_location=-4, config=CONFIG, expected_ts_ns=candle.ts, history=accepted
        )
        if verdict.ok:
            accepted.append(candle)
        else:
            rejected.append((candle.ts, verdict))

    # Assert: nothing rejected, and no gap anywhere (the data has every hour of every open week).
    assert len(candles) == 5000
    assert rejected == []
    assert [(a, b) for a, b in itertools.pairwise(starts) if expected_bars(a, b, "H1")] == []
    # Every silence in the data (weekends, Christmas, New Year) ends exactly when the calendar
    # says the market opens: the source agrees with 17:00 New York across both DST switches.
    silences = [(a, b) for a, b in itertools.pairwise(starts) if b - a > HOUR_NS]
    assert len(silences) == 42
    assert all(b == markethours.next_open(a + HOUR_NS) for a, b in silences)
    assert {(a, b) for a, b in silences if b - a >= 50 * HOUR_NS} == {
        (utc("2017-11-03T20:00"), utc("2017-11-05T22:00")),  # EDT close, EST open
        (utc("2017-12-22T21:00"), utc("2017-12-25T22:00")),  # Christmas (a Monday)
        (utc("2017-12-29T21:00"), utc("2018-01-01T22:00")),  # New Year (a Monday)
    }
    # Two one-tick bars sit just after a Friday close (17:00 New York); they pass validation, and
    # a live clock would never ask for them.
    outside = [candle for candle in candles if not markethours.in_weekly_session(candle.ts)]
    assert [(c.ts, c.volume) for c in outside] == [(utc("2017-10-06T21:00"), 1), (utc("2017-10-20T21:00"), 1)]

    # A heartbeat-driven clock across the whole period asks for every bar the data has inside the
    # weekly session, plus exactly the hours of the two holiday trading days (no candle: silence).
    clock = BarClock("H1")
    closes: list[int] = []
    for beat in range(starts[0], starts[-1] + HOUR_NS + 1, 600 * NS):
        closes.extend(clock.observe(beat))
    holiday_hours = {day + h * HOUR_NS for day in (ny("2017-12-24T17:00"), ny("2017-12-31T17:00")) for h in range(24)}
    inside = {candle.ts for candle in candles} - {c.ts for c in outside}
    assert len(closes) == len(set(closes))
    assert set(closes) == inside | holiday_hours
    assert not any(missing_bar_is_gap(hour, had_prices=False) for hour in holiday_hours)


# --- validate_history keeps the true ranges: the same verdicts as validate_bar bar by bar ---------------


def _walk(steps: list[tuple[int, int, int, int, int]], atr_bars: int) -> list[BarCandle]:
    # A price path in ticks of 0.00001: each step (move, range, open offset, volume, repeat); a
    # range of 40+ ticks is a spike next to the others, a volume of 0 a zero_volume bar, and
    # repeat 1 sends the same bar again (stale, or a time not after the last: misaligned).
    bars, price = [], 110_000
    half = Decimal("0.00005")
    for k, (move, wide, offset, volume, repeat) in enumerate(steps):
        price += move
        low, high = price - wide, price + wide // 2
        o = min(max(price + offset, low), high)
        tick = [Decimal(v).scaleb(-5) for v in (o, high, low, price)]
        bars.append(
            BarCandle(
                ts=(1_700_000_000 + 900 * k) * NS - (1_700_000_000 * NS) % (900 * NS),
                volume=volume,
                complete=True,
                bid=OHLC(**{key: v - half for key, v in zip("ohlc", tick, strict=True)}),
                ask=OHLC(**{key: v + half for key, v in zip("ohlc", tick, strict=True)}),
            )
        )
        if repeat:
            bars.append(bars[-1])
    return bars


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(-30, 30),
            st.one_of(st.integers(0, 12), st.integers(40, 400)),
            st.integers(-10, 10),
            st.sampled_from([0, 3, 5, 5, 5]),
            st.sampled_from([0, 0, 0, 0, 1]),
        ),
        max_size=120,
    ),
    atr_bars=st.sampled_from([1, 2, 3, 14]),
    loaded=st.integers(0, 20),
)
def test_validate_history_gives_each_bar_the_verdict_validate_bar_gives_it_against_the_bars_before_it(
    steps: list[tuple[int, int, int, int, int]], atr_bars: int, loaded: int
) -> None:
    # Arrange: validate_history (its BarGuard) sums the true ranges it keeps; the reference is the
    # same guard with every ATR computed afresh from its bars (average_true_range over them).
    from unittest import mock

    from actors.core import bars as bars_module
    from actors.core.bars import average_true_range, validate_history

    config = BarValidationConfig(atr_bars=atr_bars, max_range_atr=4.0)
    bars = _walk(steps, atr_bars)
    history, candles = bars[:loaded], bars[loaded:]

    def afresh(ranges: Any) -> Any:
        return average_true_range(ranges.bars, period=ranges.period)

    def verdicts() -> tuple[list[int], list[tuple[int, BarReason, str]]]:
        accepted, rejected = validate_history(
            candles, granularity="M15", pip_location=-4, config=config, history=history
        )
        return [bar.ts for bar in accepted], [(r.candle.ts, r.reason, r.detail) for r in rejected]

    with mock.patch.object(bars_module._RecentRanges, "atr", afresh):
        expected_accepted, expected_rejected = verdicts()

    # Act
    accepted, rejected = verdicts()

    # Assert
    assert accepted == expected_accepted
    assert rejected == expected_rejected
