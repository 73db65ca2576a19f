"""The decision gate: direction from P(up), every skip reason, their order, and the calendar rules."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core import markethours
from actors.core.config import RiskConfig
from actors.core.domain import Direction, Instrument, Position, Quote, Signal, SkipReason
from actors.core.errors import ConfigError
from actors.core.gate import check_entry
from supervisor.config import build_section
from tests.markettime import near_rollover_oracle

pytestmark = pytest.mark.unit

NS = 1_000_000_000
EUR_USD = Instrument(
    name="EUR_USD", type="CURRENCY", display_precision=5, pip_location=-4, trade_units_precision=0,
    minimum_trade_size=Decimal(1), maximum_order_units=Decimal(100_000_000), margin_rate=Decimal("0.0333"),
)  # fmt: skip
USD_JPY = dataclasses.replace(EUR_USD, name="USD_JPY", display_precision=3, pip_location=-2)


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS


# Wednesday 2024-03-06 14:00 UTC: open, 8 h from the rollover, 2 days from the weekly close.
NOW = utc("2024-03-06T14:00")
QUOTE = Quote(bid=1.08500, ask=1.08510, tradeable=True)
CONFIG = RiskConfig(
    min_probability=0.6, max_open_positions=2, max_spread_pips=2.0, max_exposure_per_currency=10.0,
    no_entry_before_weekly_close_s=1800.0, rollover_window_s=900.0, cooldown_after_loss_s=3600.0,
)  # fmt: skip


def decide(p_up: float = 0.7, **overrides: Any) -> SkipReason | Direction:
    args: dict[str, Any] = {
        "quote": QUOTE,
        "instrument": EUR_USD,
        "book": {},
        "exposure": {},
        "nav": 100_000.0,
        "home_currency": "USD",
        "now_ns": NOW,
        "last_loss_close_ns": {},
        "config": CONFIG,
    }
    name = overrides.pop("name", "EUR_USD")
    args.update(overrides)
    quote = args.pop("quote")
    signal = Signal(instrument=name, bar_ts_ns=NOW - 900 * NS, p_up=p_up, model_version="m1")
    decision = check_entry(signal, quote, **args)
    assert (decision.direction is None) != (decision.reason is None)
    assert decision.ok == (decision.direction is not None)
    result = decision.direction or decision.reason
    assert result is not None
    return result


def position(name: str = "GBP_USD", direction: Direction = Direction.LONG) -> Position:
    return Position(instrument=name, direction=direction, units=1000.0, entry_price=1.2)


# --- Direction and threshold -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p_up", "expected"),
    [
        (0.6, Direction.LONG),  # at the threshold counts
        (0.99, Direction.LONG),
        (0.4, Direction.SHORT),  # 1 - 0.6, at the threshold
        (0.01, Direction.SHORT),
        (0.59, SkipReason.BELOW_THRESHOLD),
        (0.41, SkipReason.BELOW_THRESHOLD),
        (0.5, SkipReason.BELOW_THRESHOLD),
    ],
)
def test_the_direction_follows_p_up_symmetrically_around_the_threshold(p_up, expected):
    assert decide(p_up) == expected


@pytest.mark.parametrize("p_up", [float("nan"), float("inf"), -0.1, 1.5])
def test_a_probability_that_is_not_one_is_an_invalid_signal(p_up):
    assert decide(p_up) is SkipReason.INVALID_SIGNAL


# --- Every skip reason -------------------------------------------------------------------------


def test_the_weekend_is_market_closed():
    assert decide(now_ns=utc("2024-03-09T12:00")) is SkipReason.MARKET_CLOSED  # Saturday


def test_an_expected_holiday_is_market_closed():
    assert decide(now_ns=utc("2024-12-25T12:00")) is SkipReason.MARKET_CLOSED


@pytest.mark.parametrize(
    "quote",
    [
        None,
        Quote(bid=1.085, ask=1.0851, tradeable=False),
        Quote(bid=0.0, ask=1.0851, tradeable=True),
        Quote(bid=1.0852, ask=1.0851, tradeable=True),  # crossed
        Quote(bid=float("nan"), ask=1.0851, tradeable=True),
    ],
)
def test_no_usable_quote_is_not_tradeable(quote):
    assert decide(quote=quote) is SkipReason.NOT_TRADEABLE


def test_the_last_half_hour_before_the_weekly_close_is_refused():
    close = utc("2024-03-08T22:00")  # Friday 17:00 New York (EST)
    assert decide(now_ns=close - 1800 * NS) is SkipReason.WEEKLY_CLOSE
    assert decide(now_ns=close - 1 * NS) is SkipReason.WEEKLY_CLOSE
    assert decide(now_ns=close - 1801 * NS) is Direction.LONG


def test_the_close_before_an_expected_holiday_counts_as_a_close():
    close = utc("2024-12-24T22:00")  # 17:00 New York on 24 December: Christmas is closed
    assert decide(now_ns=close - 600 * NS) is SkipReason.WEEKLY_CLOSE


def test_entries_are_refused_either_side_of_the_rollover_in_winter_and_summer():
    for rollover in (utc("2024-03-06T22:00"), utc("2024-07-10T21:00")):  # EST, EDT
        assert decide(now_ns=rollover - 900 * NS) is SkipReason.ROLLOVER
        assert decide(now_ns=rollover) is SkipReason.ROLLOVER
        assert decide(now_ns=rollover + 900 * NS) is SkipReason.ROLLOVER
        assert decide(now_ns=rollover - 901 * NS) is Direction.LONG
        assert decide(now_ns=rollover + 901 * NS) is Direction.LONG


def test_one_position_per_instrument():
    assert decide(book={"EUR_USD": position("EUR_USD")}) is SkipReason.POSITION_OPEN


def test_no_more_than_max_open_positions():
    book = {"GBP_USD": position("GBP_USD"), "USD_JPY": position("USD_JPY")}
    assert decide(book=book) is SkipReason.MAX_OPEN_POSITIONS
    assert decide(book={"GBP_USD": position("GBP_USD")}) is Direction.LONG


def test_a_losing_trade_cools_its_instrument_down():
    assert decide(last_loss_close_ns={"EUR_USD": NOW - 3599 * NS}) is SkipReason.COOLDOWN
    assert decide(last_loss_close_ns={"EUR_USD": NOW - 3600 * NS}) is Direction.LONG
    assert decide(last_loss_close_ns={"GBP_USD": NOW}) is Direction.LONG


def test_a_spread_wider_than_the_limit_in_pips_is_refused():
    assert decide(quote=Quote(bid=1.08500, ask=1.08521, tradeable=True)) is SkipReason.SPREAD_TOO_WIDE
    assert decide(quote=Quote(bid=1.08500, ask=1.08519, tradeable=True)) is Direction.LONG
    # A JPY pip is 0.01: 2.1 pips
    jpy = Quote(bid=150.000, ask=150.021, tradeable=True)
    assert decide(name="USD_JPY", instrument=USD_JPY, quote=jpy) is SkipReason.SPREAD_TOO_WIDE


def test_exposure_at_the_limit_refuses_more_in_the_same_direction_only():
    limit = 10.0 * 100_000.0
    long_eur = {"EUR": limit, "USD": -limit}
    assert decide(0.7, exposure=long_eur) is SkipReason.MAX_EXPOSURE
    assert decide(0.3, exposure=long_eur) is Direction.SHORT  # reduces EUR
    assert decide(0.7, exposure={"EUR": limit * 0.99}) is Direction.LONG
    # Short the quote side: a short EUR_USD is long USD, which is the home currency: never limited.
    assert decide(0.3, exposure={"USD": 5 * limit}) is Direction.SHORT
    # USD_JPY long is short JPY.
    jpy = Quote(bid=150.000, ask=150.010, tradeable=True)
    assert decide(0.7, name="USD_JPY", instrument=USD_JPY, quote=jpy, exposure={"JPY": -limit}) is (
        SkipReason.MAX_EXPOSURE
    )


def test_an_exposure_that_could_not_be_valued_refuses_new_exposure():
    assert decide(0.7, exposure={"EUR": float("nan")}) is SkipReason.MAX_EXPOSURE
    assert decide(0.3, exposure={"EUR": float("nan")}) is SkipReason.MAX_EXPOSURE


def test_the_first_failing_check_is_the_reason_in_the_documented_order():
    # Every check fails at once; removing the failures one by one walks down the order.
    saturday_rollover_ish = utc("2024-03-09T12:00")
    failing: dict[str, Any] = {
        "now_ns": saturday_rollover_ish,
        "quote": Quote(bid=1.085, ask=1.09, tradeable=False),
        "book": {"EUR_USD": position("EUR_USD"), "GBP_USD": position(), "AUD_USD": position("AUD_USD")},
        "last_loss_close_ns": {"EUR_USD": NOW},
        "exposure": {"EUR": 1e12},
    }
    assert decide(0.5, **failing) is SkipReason.BELOW_THRESHOLD
    assert decide(0.7, **failing) is SkipReason.MARKET_CLOSED
    failing["now_ns"] = utc("2024-03-08T21:59")  # open, but a minute before the weekly close
    assert decide(0.7, **failing) is SkipReason.NOT_TRADEABLE
    failing["quote"] = Quote(bid=1.085, ask=1.09, tradeable=True)
    assert decide(0.7, **failing) is SkipReason.WEEKLY_CLOSE
    failing["now_ns"] = utc("2024-03-06T22:05")
    assert decide(0.7, **failing) is SkipReason.ROLLOVER
    failing["now_ns"] = NOW
    assert decide(0.7, **failing) is SkipReason.POSITION_OPEN
    del failing["book"]["EUR_USD"]
    assert decide(0.7, **failing) is SkipReason.MAX_OPEN_POSITIONS
    del failing["book"]["AUD_USD"]
    assert decide(0.7, **failing) is SkipReason.COOLDOWN
    failing["last_loss_close_ns"] = {}
    assert decide(0.7, **failing) is SkipReason.SPREAD_TOO_WIDE
    failing["quote"] = QUOTE
    assert decide(0.7, **failing) is SkipReason.MAX_EXPOSURE
    failing["exposure"] = {}
    assert decide(0.7, **failing) is Direction.LONG


# --- The hourly calendar cache agrees with the calendar -------------------------------------------

ANY_TS = st.integers(utc("2016-01-01T00:00"), utc("2030-01-01T00:00"))


@settings(max_examples=300, deadline=None)
@given(ts=ANY_TS, window_s=st.sampled_from([0.0, 1.0, 900.0, 3600.0, 7200.0]))
def test_market_hours_and_the_rollover_window_agree_with_the_calendar(ts, window_s):
    config = dataclasses.replace(CONFIG, rollover_window_s=window_s, no_entry_before_weekly_close_s=0.0)
    result = decide(now_ns=ts, config=config)
    if not markethours.is_open(ts):
        assert result is SkipReason.MARKET_CLOSED
    elif near_rollover_oracle(ts, window_s=window_s):
        assert result is SkipReason.ROLLOVER
    else:
        assert result is Direction.LONG


@settings(max_examples=300, deadline=None)
@given(ts=ANY_TS, window_s=st.sampled_from([60.0, 1800.0, 7200.0, 86_400.0]))
def test_the_weekly_close_window_agrees_with_the_calendar(ts, window_s):
    config = dataclasses.replace(CONFIG, rollover_window_s=0.0, no_entry_before_weekly_close_s=window_s)
    result = decide(now_ns=ts, config=config)
    if not markethours.is_open(ts):
        assert result is SkipReason.MARKET_CLOSED
    elif (markethours.next_close(ts) - ts) / NS <= window_s:
        assert result is SkipReason.WEEKLY_CLOSE
    elif near_rollover_oracle(ts, window_s=0.0):
        assert result is SkipReason.ROLLOVER
    else:
        assert result is Direction.LONG


# --- Small helpers and the config ----------------------------------------------------------------


def test_the_risk_section_loads_and_reports_bad_values_by_dotted_key():
    problems: list[str] = []
    cfg = build_section(RiskConfig, {"min_probability": 0.55, "max_open_positions": 5}, "risk", problems)
    assert problems == [] and cfg.min_probability == 0.55 and cfg.max_open_positions == 5
    problems = []
    build_section(RiskConfig, {"min_probability": 0.5, "strategy": "a b", "max_units": 0.5}, "risk", problems)
    assert any(p.startswith("risk.min_probability:") for p in problems)
    assert any(p.startswith("risk.strategy:") for p in problems)
    assert any(p.startswith("risk.max_units:") for p in problems)


def test_min_units_above_max_units_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^risk\.min_units:"):
        RiskConfig(min_units=10.0, max_units=5.0)
