"""FX market hours: weekly session across New York DST, rollover, holidays, market status transitions."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.core import markethours
from actors.core.markethours import ClosedReason, MarketStatus, update_market_status
from tests.markettime import NS, near_rollover_oracle, ny, utc, weekly_closed_oracle

pytestmark = pytest.mark.unit

HOUR_NS = 3600 * NS
# 2000-01-01 .. 2040-01-01, in ns.
ANY_TS = st.integers(946_684_800 * NS, 2_208_988_800 * NS)


# --- The rollover and trading days ----------------------------------------------------------------


def test_the_rollover_is_2200_utc_in_winter_and_2100_utc_in_summer() -> None:
    assert markethours.trading_day_start(utc("2018-01-10T12:00")) == utc("2018-01-09T22:00")
    assert markethours.trading_day_start(utc("2017-07-05T12:00")) == utc("2017-07-04T21:00")


def test_a_trading_day_starts_exactly_at_the_rollover_and_is_labelled_with_the_day_it_ends() -> None:
    rollover = ny("2018-01-10T17:00")
    assert markethours.trading_day_start(rollover) == rollover
    assert markethours.trading_day_start(rollover - 1) == ny("2018-01-09T17:00")
    assert markethours.trading_date(rollover) == date(2018, 1, 11)
    assert markethours.trading_date(rollover - 1) == date(2018, 1, 10)
    assert markethours.next_rollover(rollover) == ny("2018-01-11T17:00")


def test_the_trading_days_around_the_ny_dst_switches_last_23_and_25_hours() -> None:
    spring = utc("2018-03-11T12:00")  # clocks went forward at 02:00 New York that morning
    fall = utc("2017-11-05T12:00")  # clocks went back at 02:00 New York that morning
    assert markethours.trading_day_start(spring) == utc("2018-03-10T22:00")
    assert markethours.next_rollover(spring) == utc("2018-03-11T21:00")
    assert markethours.trading_day_start(fall) == utc("2017-11-04T21:00")
    assert markethours.next_rollover(fall) == utc("2017-11-05T22:00")


def test_the_rollover_oracle_is_true_within_the_window_either_side_and_false_outside() -> None:
    # The check the gate's hourly cache is tested against (``tests.markettime``).
    assert near_rollover_oracle(ny("2018-01-10T16:51"), window_s=600)
    assert near_rollover_oracle(ny("2018-01-10T17:10"), window_s=600)
    assert not near_rollover_oracle(ny("2018-01-10T16:49"), window_s=600)
    assert not near_rollover_oracle(ny("2018-01-10T17:10:01"), window_s=600)
    # Summer: the same New York times are an hour earlier in UTC.
    assert near_rollover_oracle(utc("2017-07-05T20:55"), window_s=600)
    assert not near_rollover_oracle(utc("2017-07-05T21:55"), window_s=600)


@given(ANY_TS)
def test_every_time_lies_in_one_trading_day_that_starts_and_ends_at_1700_new_york(ts: int) -> None:
    start, end = markethours.trading_day_start(ts), markethours.next_rollover(ts)
    assert start <= ts < end
    assert end - start in (23 * HOUR_NS, 24 * HOUR_NS, 25 * HOUR_NS)
    for edge in (start, end):
        local = datetime.fromtimestamp(edge // NS, tz=markethours.NEW_YORK)
        assert (local.hour, local.minute, local.second, edge % NS) == (17, 0, 0, 0)


# --- The weekly session ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("friday_close", "sunday_open"),
    [
        ("2018-01-12T22:00", "2018-01-14T22:00"),  # winter, EST
        ("2017-07-07T21:00", "2017-07-09T21:00"),  # summer, EDT
        ("2018-03-09T22:00", "2018-03-11T21:00"),  # EST close, EDT open (spring forward)
        ("2017-11-03T21:00", "2017-11-05T22:00"),  # EDT close, EST open (fall back)
    ],
)
def test_the_market_closes_friday_and_opens_sunday_at_1700_new_york(friday_close: str, sunday_open: str) -> None:
    close, reopen = utc(friday_close), utc(sunday_open)
    assert markethours.is_open(close - 1)
    assert not markethours.is_open(close)
    assert markethours.closure_reason(close) is ClosedReason.WEEKEND
    assert not markethours.is_open(reopen - 1)
    assert markethours.is_open(reopen)
    assert markethours.next_close(close - 1) == close
    assert markethours.next_open(close) == reopen
    assert markethours.next_open(reopen - 1) == reopen


def test_while_open_next_open_is_the_opening_after_the_next_close() -> None:
    wednesday = utc("2018-01-10T12:00")
    assert markethours.next_close(wednesday) == utc("2018-01-12T22:00")
    assert markethours.next_open(wednesday) == utc("2018-01-14T22:00")


def test_while_closed_next_close_is_the_end_of_the_coming_session() -> None:
    assert markethours.next_close(utc("2018-01-13T12:00")) == utc("2018-01-19T22:00")


@given(ANY_TS)
def test_the_weekly_session_is_the_textbook_rule_in_new_york_wall_time(ts: int) -> None:
    assert markethours.in_weekly_session(ts) == (not weekly_closed_oracle(ts))


@given(ANY_TS)
def test_the_emulator_keeps_the_calendars_hours_weekends_and_holidays(ts: int) -> None:
    from actors.broker.emulator.path import hour_info

    assert markethours.is_open(ts) == hour_info(ts // HOUR_NS).open


def test_the_emulator_is_closed_on_christmas_2017_until_monday_1700_new_york_as_the_recorded_hours_are() -> None:
    from actors.broker.emulator.path import hour_info

    # Sunday 24 December 2017 17:00 New York (22:00 UTC) would end a normal weekend.
    assert not hour_info(utc("2017-12-24T22:00") // HOUR_NS).open
    assert not hour_info(utc("2017-12-25T21:00") // HOUR_NS).open
    reopening = hour_info(utc("2017-12-25T22:00") // HOUR_NS)
    assert reopening.open and reopening.after_open
    assert hour_info(utc("2018-01-28T22:00") // HOUR_NS).after_open  # a normal Sunday opening
    assert not hour_info(utc("2018-01-29T22:00") // HOUR_NS).after_open


@given(ANY_TS)
def test_next_open_and_next_close_are_the_next_transitions_after_the_time(ts: int) -> None:
    opening, closing = markethours.next_open(ts), markethours.next_close(ts)
    assert opening > ts
    assert closing > ts
    assert markethours.is_open(opening)
    assert not markethours.is_open(opening - 1)
    assert not markethours.is_open(closing)
    assert markethours.is_open(closing - 1)
    # Nothing changes between now and the first of the two.
    first = min(opening, closing)
    assert markethours.is_open(first - 1) == markethours.is_open(ts)


# --- Holidays --------------------------------------------------------------------------------------


def test_christmas_day_is_an_expected_holiday_closure_that_ends_at_1700_new_york() -> None:
    # 25 December 2017 was a Monday: closed from the Friday close until Monday 17:00 New York.
    sunday_evening = ny("2017-12-24T18:00")
    assert markethours.in_weekly_session(sunday_evening)
    assert not markethours.is_open(sunday_evening)
    assert markethours.closure_reason(sunday_evening) is ClosedReason.HOLIDAY
    assert markethours.closure_reason(ny("2017-12-24T16:59")) is ClosedReason.WEEKEND
    assert markethours.next_open(ny("2017-12-22T17:00")) == ny("2017-12-25T17:00")
    assert markethours.is_open(ny("2017-12-25T17:00"))


def test_new_years_day_is_an_expected_holiday_closure() -> None:
    assert markethours.closure_reason(ny("2018-01-01T09:00")) is ClosedReason.HOLIDAY
    assert markethours.is_open(ny("2018-01-01T17:00"))
    assert markethours.next_close(ny("2017-12-27T12:00")) == ny("2017-12-29T17:00")


def test_a_holiday_on_a_weekday_closes_the_session_early() -> None:
    # 1 January 2019 was a Tuesday: the market closes at 17:00 on Monday 31 December.
    assert markethours.next_close(ny("2018-12-31T09:00")) == ny("2018-12-31T17:00")
    assert markethours.closure_reason(ny("2018-12-31T17:00")) is ClosedReason.HOLIDAY
    assert markethours.next_open(ny("2018-12-31T17:00")) == ny("2019-01-01T17:00")


def test_a_holiday_on_a_weekend_is_just_the_weekend() -> None:
    # 25 December 2021 was a Saturday.
    assert markethours.closure_reason(ny("2021-12-25T09:00")) is ClosedReason.WEEKEND
    assert markethours.is_open(ny("2021-12-26T17:00"))


@pytest.mark.parametrize(
    ("ts", "start"),
    [
        ("2018-01-10T15:00", "2018-01-07T22:00"),  # a Wednesday: the week opened Sunday 17:00 New York
        ("2017-07-05T12:00", "2017-07-02T21:00"),  # the same in summer (EDT)
        ("2018-01-29T10:00", "2018-01-28T22:00"),  # the Monday after a normal weekend
        ("2017-12-23T10:00", "2017-12-22T22:00"),  # the weekend before Christmas began Friday 17:00
        ("2017-12-25T10:00", "2017-12-24T22:00"),  # Christmas (a Monday) began Sunday 17:00
        ("2017-12-25T22:00", "2017-12-25T22:00"),  # ... and ended Monday 17:00 New York
        ("2017-12-26T03:00", "2017-12-25T22:00"),
        ("2018-01-02T01:00", "2018-01-01T22:00"),  # after New Year (a Monday)
        ("2018-12-31T23:00", "2018-12-31T22:00"),  # New Year 2019 (a Tuesday) began Monday 17:00 New York
    ],
)
def test_period_start_is_the_latest_opening_while_open_and_the_start_of_the_closure_while_closed(
    ts: str, start: str
) -> None:
    assert markethours.period_start(utc(ts)) == utc(start)


# --- Market status -------------------------------------------------------------------------------------


def status(
    prev: MarketStatus | None, ts: int, tradeable: bool | None = None, instrument: str = "EUR_USD"
) -> tuple[MarketStatus, bool]:
    return update_market_status(prev, instrument=instrument, ts_ns=ts, tradeable=tradeable)


def test_the_first_heartbeat_midweek_gives_an_open_market_since_the_sunday_open() -> None:
    s, changed = status(None, ny("2018-01-10T09:00"))
    assert changed
    assert s.is_open
    assert s.why is None
    assert s.since_ns == ny("2018-01-07T17:00")
    assert s.next_close_ns == ny("2018-01-12T17:00")
    assert s.next_open_ns is None


def test_the_weekend_closes_the_market_even_with_a_stale_tradeable_flag() -> None:
    s, _ = status(None, ny("2018-01-12T16:59:59"), tradeable=True)
    s, changed = status(s, ny("2018-01-12T17:00:03"))
    assert changed
    assert not s.is_open
    assert s.why is ClosedReason.WEEKEND
    assert s.since_ns == ny("2018-01-12T17:00")
    assert s.next_open_ns == ny("2018-01-14T17:00")
    assert s.next_close_ns is None


def test_fridays_non_tradeable_flag_does_not_keep_the_market_closed_on_sunday_evening() -> None:
    s, _ = status(None, ny("2018-01-12T17:00:01"), tradeable=False)
    assert s.why is ClosedReason.WEEKEND
    s, changed = status(s, ny("2018-01-14T17:00:04"))
    assert changed
    assert s.is_open
    assert s.since_ns == ny("2018-01-14T17:00")


def test_a_non_tradeable_price_midweek_is_a_halt_until_a_tradeable_price() -> None:
    s, _ = status(None, ny("2018-01-10T09:00"), tradeable=True)
    s, changed = status(s, ny("2018-01-10T09:30"), tradeable=False)
    assert changed
    assert (s.is_open, s.why, s.since_ns, s.next_open_ns) == (False, ClosedReason.HALTED, ny("2018-01-10T09:30"), None)
    s, changed = status(s, ny("2018-01-10T09:35"))
    assert not changed
    assert s.why is ClosedReason.HALTED
    s, changed = status(s, ny("2018-01-10T09:40"), tradeable=True)
    assert changed
    assert (s.is_open, s.since_ns) == (True, ny("2018-01-10T09:40"))


def test_an_unchanged_status_keeps_its_since_and_is_not_a_change() -> None:
    s, _ = status(None, ny("2018-01-10T09:00"))
    again, changed = status(s, ny("2018-01-10T10:00"), tradeable=True)
    assert not changed
    assert again.since_ns == s.since_ns
    assert again.tradeable is True


def test_a_listed_holiday_is_closed_until_the_broker_says_tradeable() -> None:
    s, changed = status(None, ny("2017-12-25T09:00"))
    assert changed
    assert (s.is_open, s.why, s.since_ns) == (False, ClosedReason.HOLIDAY, ny("2017-12-24T17:00"))
    assert s.next_open_ns == ny("2017-12-25T17:00")
    s, changed = status(s, ny("2017-12-25T09:05"), tradeable=False)
    assert not changed
    assert s.why is ClosedReason.HOLIDAY
    # The broker is the authority: a tradeable price on a listed holiday opens the market.
    s, changed = status(s, ny("2017-12-25T09:10"), tradeable=True)
    assert changed
    assert s.is_open


def test_the_holiday_follows_the_weekend_as_a_change_of_reason() -> None:
    s, _ = status(None, ny("2017-12-24T16:00"))
    assert s.why is ClosedReason.WEEKEND
    s, changed = status(s, ny("2017-12-24T17:00:02"))
    assert changed
    assert (s.is_open, s.why, s.since_ns) == (False, ClosedReason.HOLIDAY, ny("2017-12-24T17:00"))


def test_an_older_flag_arriving_late_is_ignored() -> None:
    s, _ = status(None, ny("2018-01-10T09:30"), tradeable=False)
    s, changed = status(s, ny("2018-01-10T09:29"), tradeable=True)
    assert not changed
    assert s.why is ClosedReason.HALTED
    assert s.tradeable_ns == ny("2018-01-10T09:30")


def test_a_status_cannot_be_updated_with_another_instruments_observation() -> None:
    s, _ = status(None, ny("2018-01-10T09:00"))
    with pytest.raises(ValueError, match="GBP_USD"):
        status(s, ny("2018-01-10T09:01"), instrument="GBP_USD")


@given(ANY_TS, st.sampled_from([None, True, False]))
def test_a_weekend_is_always_closed_and_closed_markets_say_why(ts: int, tradeable: bool | None) -> None:
    s, _ = status(None, ts, tradeable=tradeable)
    if not markethours.in_weekly_session(ts):
        assert (s.is_open, s.why) == (False, ClosedReason.WEEKEND)
    assert (s.why is None) == s.is_open
    assert s.since_ns <= ts
    assert s.since_ns > ts - 5 * 86400 * NS


def test_trading_date_handles_times_long_before_and_after_dst_changes() -> None:
    # A week of hours straddling the spring-forward weekend: every hour maps to its own trading day.
    start = utc("2018-03-08T00:00")
    labels = {markethours.trading_date(start + h * HOUR_NS) for h in range(24 * 7)}
    assert labels == {date(2018, 3, 8) + timedelta(days=d) for d in range(8)}
