"""Daily loss limit and drawdown zones: boundaries, latches, the 17:00 New York reset across DST."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.core import markethours
from actors.core.config import RiskConfig
from actors.core.errors import ConfigError
from actors.core.zones import ZoneState, ZoneVerdict, resume_after_drawdown_stop, update_zones, zone_of
from supervisor.config import build_section

pytestmark = pytest.mark.unit

NS = 1_000_000_000
HOUR = 3600 * NS
ZONES = ((0.05, 1.0), (0.10, 0.5), (0.15, 0.25))
CONFIG = RiskConfig(daily_loss_limit=0.03, drawdown_zones=ZONES)


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS


def run(navs: list[tuple[int, float]], state: ZoneState | None = None) -> tuple[ZoneState, ZoneVerdict]:
    assert navs
    verdict = None
    for now_ns, nav in navs:
        state, verdict = update_zones(state, nav=nav, now_ns=now_ns, config=CONFIG)
    assert state is not None and verdict is not None
    return state, verdict


# --- Zones ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drawdown", "zone", "multiplier"),
    [
        (0.0, 0, 1.0),
        (0.0499, 0, 1.0),
        (0.05, 1, 0.5),  # at the limit is the next zone
        (0.0999, 1, 0.5),
        (0.10, 2, 0.25),
        (0.1499, 2, 0.25),
        (0.15, 3, 0.0),
        (0.9, 3, 0.0),
    ],
)
def test_zone_boundaries(drawdown, zone, multiplier):
    assert zone_of(drawdown, ZONES) == (zone, multiplier)


def test_the_drawdown_is_measured_from_the_peak_and_picks_the_zone():
    t = utc("2024-03-06T14:00")
    _, verdict = run([(t, 100_000.0), (t + 1, 110_000.0), (t + 2, 110_000.0 * 0.93)])
    assert verdict.zone == 1 and verdict.multiplier == 0.5
    assert verdict.drawdown == pytest.approx(0.07)
    assert not verdict.drawdown_stop and not verdict.daily_loss_hit


def test_beyond_the_last_zone_the_stop_latches_until_an_operator_resumes():
    t = utc("2024-03-06T14:00")
    state, verdict = run([(t, 100_000.0), (t + 1, 84_000.0)])
    assert verdict.drawdown_stop and verdict.zone == 3 and verdict.multiplier == 0.0
    # Recovering does not clear it, nor does a new trading day.
    state, verdict = run([(t + 2, 84_500.0), (t + 48 * HOUR, 84_500.0)], state)
    assert verdict.drawdown_stop and verdict.zone == 3 and verdict.multiplier == 0.0
    # The operator resumes: the peak stays; entries at the last zone's multiplier, no new stop.
    state = resume_after_drawdown_stop(state)
    state, verdict = run([(t + 48 * HOUR + 1, 84_400.0)], state)
    assert not verdict.drawdown_stop and verdict.resumed
    assert verdict.zone == 3 and verdict.multiplier == 0.25 and state.peak_nav == 100_000.0
    assert verdict.drawdown == pytest.approx(0.156)


def test_a_resume_lasts_until_a_new_peak_then_the_zones_apply_afresh():
    t = utc("2024-03-06T14:00")
    state, _ = run([(t, 100_000.0), (t + 1, 80_000.0)])
    state, verdict = run([(t + 2, 80_000.0)], resume_after_drawdown_stop(state))
    assert not verdict.drawdown_stop and verdict.multiplier == 0.25
    state, verdict = run([(t + 3, 95_000.0)], state)  # zone 1 by drawdown, still resumed
    assert verdict.resumed and verdict.multiplier == 0.25
    state, verdict = run([(t + 4, 100_500.0)], state)  # a new peak ends the resume
    assert not verdict.resumed and verdict.zone == 0 and verdict.multiplier == 1.0
    state, verdict = run([(t + 5, 100_500.0 * 0.84)], state)  # and the stop latches again
    assert verdict.drawdown_stop and not verdict.resumed


def test_a_resume_without_a_stop_changes_nothing_and_the_state_round_trips():
    t = utc("2024-03-06T14:00")
    state, _ = run([(t, 100_000.0), (t + 1, 96_000.0)])
    assert resume_after_drawdown_stop(state) is state
    resumed = resume_after_drawdown_stop(run([(t + 2, 80_000.0)], state)[0])
    assert ZoneState.from_dict(resumed.to_dict()) == resumed
    old = {k: v for k, v in resumed.to_dict().items() if k not in ("last_nav", "resumed")}
    assert ZoneState.from_dict(old).resumed is False  # a state saved before resumes were kept


@given(st.lists(st.floats(1_000.0, 1_000_000.0), min_size=1, max_size=30))
def test_the_peak_never_falls_and_the_stop_never_clears_by_itself(navs):
    t = utc("2024-03-06T14:00")
    state: ZoneState | None = None
    stopped = False
    peak = 0.0
    for i, nav in enumerate(navs):
        state, verdict = update_zones(state, nav=nav, now_ns=t + i * 6 * HOUR, config=CONFIG)
        peak = max(peak, nav)
        assert state.peak_nav == peak
        stopped = stopped or (peak - nav) / peak >= 0.15
        assert verdict.drawdown_stop == stopped


# --- Daily loss limit ------------------------------------------------------------------------------


def test_the_daily_loss_limit_counts_from_the_day_start_nav_and_at_the_limit_counts():
    t = utc("2024-03-06T14:00")
    _, verdict = run([(t, 100_000.0), (t + 1, 97_001.0)])
    assert not verdict.daily_loss_hit and verdict.daily_pnl == pytest.approx(-2_999.0)
    _, verdict = run([(t, 100_000.0), (t + 1, 97_000.0)])
    assert verdict.daily_loss_hit


def test_the_daily_loss_latch_holds_for_the_rest_of_the_day_even_if_the_nav_recovers():
    t = utc("2024-03-06T14:00")
    state, verdict = run([(t, 100_000.0), (t + 1, 96_000.0), (t + 2 * HOUR, 101_000.0)])
    assert verdict.daily_loss_hit and state.day_start_nav == 100_000.0


@pytest.mark.parametrize(
    ("before", "rollover"),
    [
        (utc("2024-01-10T21:59"), utc("2024-01-10T22:00")),  # EST: 17:00 New York is 22:00 UTC
        (utc("2024-07-10T20:59"), utc("2024-07-10T21:00")),  # EDT: 21:00 UTC
        (utc("2024-03-10T20:59"), utc("2024-03-10T21:00")),  # the Sunday New York springs forward
        (utc("2024-11-03T21:59"), utc("2024-11-03T22:00")),  # the Sunday New York falls back
    ],
)
def test_the_daily_latch_clears_at_the_next_1700_new_york_across_dst(before, rollover):
    assert markethours.trading_day_start(rollover) == rollover
    state, verdict = run([(before - 2 * HOUR, 100_000.0), (before - HOUR, 90_000.0)])
    assert verdict.daily_loss_hit
    state, verdict = run([(before, 90_500.0)], state)
    assert verdict.daily_loss_hit and not verdict.new_day
    state, verdict = run([(rollover, 90_500.0)], state)
    assert not verdict.daily_loss_hit and verdict.new_day
    assert state.day_start_ns == rollover and state.day_start_nav == 90_500.0
    assert state.day_end_ns == markethours.next_rollover(rollover)


def test_an_observation_from_before_the_trading_day_never_starts_a_new_one():
    t = utc("2024-03-06T23:00")  # after Wednesday's rollover
    state, verdict = run([(t, 100_000.0), (t + 1, 96_000.0)])
    state, verdict = run([(t - 2 * HOUR, 96_000.0)], state)  # an out-of-order, older observation
    assert verdict.daily_loss_hit and not verdict.new_day


def test_a_weekend_gap_counts_against_the_day_that_opens_after_it():
    # Friday 100,000 at 16:45 New York; the next observation is after Sunday's 17:00 open, 95,500
    friday, sunday = utc("2024-02-23T21:45"), utc("2024-02-25T22:15")
    state, _ = run([(friday - HOUR, 100_000.0), (friday, 100_000.0)])
    state, verdict = run([(sunday, 95_500.0)], state)
    assert verdict.new_day and state.day_start_ns == utc("2024-02-25T22:00")
    assert state.day_start_nav == 100_000.0 and verdict.daily_pnl == -4_500.0 and verdict.daily_loss_hit


def test_a_day_start_rebuilt_from_the_broker_wins_over_the_last_observation():
    t = utc("2024-03-06T20:00")  # 15:00 New York
    state, _ = run([(t, 100_000.0)])
    state, verdict = update_zones(state, nav=96_500.0, now_ns=t + 4 * HOUR, config=CONFIG, day_start_nav=99_800.0)
    assert verdict.new_day and state.day_start_nav == 99_800.0
    assert verdict.daily_pnl == pytest.approx(-3_300.0) and verdict.daily_loss_hit
    # within a day it is ignored
    state, verdict = update_zones(state, nav=96_500.0, now_ns=t + 5 * HOUR, config=CONFIG, day_start_nav=1.0)
    assert state.day_start_nav == 99_800.0


def test_the_first_observation_with_a_rebuilt_day_start_counts_the_mornings_losses():
    t = utc("2024-03-07T01:00")
    state, verdict = update_zones(None, nav=96_900.0, now_ns=t, config=CONFIG, day_start_nav=100_000.0)
    assert state.day_start_nav == 100_000.0 and state.peak_nav == 100_000.0
    assert verdict.daily_loss_hit and verdict.drawdown == pytest.approx(0.031)


def test_deposits_and_withdrawals_are_not_profit_or_loss_and_move_the_peak():
    t = utc("2024-03-06T14:00")
    state, _ = run([(t, 100_000.0)])
    # a withdrawal of 10,000: NAV 90,000 is neither a 10 % loss today nor a 10 % drawdown
    state, verdict = update_zones(state, nav=90_000.0, now_ns=t + 1, config=CONFIG, transfer=-10_000.0)
    assert verdict.daily_pnl == 0.0 and not verdict.daily_loss_hit
    assert state.peak_nav == 90_000.0 and verdict.drawdown == 0.0 and verdict.zone == 0
    # a deposit of 20,000 and a loss of 3,300: the loss counts, the deposit does not
    state, verdict = update_zones(state, nav=106_700.0, now_ns=t + 2, config=CONFIG, transfer=20_000.0)
    assert state.day_start_nav == 110_000.0 and verdict.daily_pnl == pytest.approx(-3_300.0)
    assert verdict.daily_loss_hit and state.peak_nav == 110_000.0


def test_a_nav_that_is_not_a_number_is_refused():
    with pytest.raises(ValueError, match="finite"):
        update_zones(None, nav=float("nan"), now_ns=0, config=CONFIG)


# --- Persistence ---------------------------------------------------------------------------------


def test_the_state_round_trips_through_a_dict():
    t = utc("2024-03-06T14:00")
    state, _ = run([(t, 100_000.0), (t + 1, 96_000.0)])
    assert ZoneState.from_dict(state.to_dict()) == state


@pytest.mark.parametrize(
    "change",
    [
        {"peak_nav": "100"},
        {"day_start_ns": 1.5},
        {"daily_loss_hit": 1},
        {"peak_nav": float("inf")},
        {"day_end_ns": 0},
    ],
)
def test_a_malformed_saved_state_is_refused(change):
    t = utc("2024-03-06T14:00")
    raw = run([(t, 100_000.0)])[0].to_dict() | change
    with pytest.raises(ValueError, match="malformed zone state"):
        ZoneState.from_dict(raw)
    raw.pop(next(iter(change)))
    with pytest.raises(ValueError, match="malformed zone state"):
        ZoneState.from_dict(raw)


# --- Configuration -------------------------------------------------------------------------------


def test_drawdown_zones_load_from_toml_lists_as_tuples():
    problems: list[str] = []
    cfg = build_section(RiskConfig, {"drawdown_zones": [[0.03, 1.0], [0.08, 0.3]]}, "risk", problems)
    assert problems == [] and cfg.drawdown_zones == ((0.03, 1.0), (0.08, 0.3))


@pytest.mark.parametrize(
    ("zones", "message"),
    [
        ([], "at least one"),
        ([[0.05, 1.0, 2.0]], r"\[0\]: expected a \[drawdown, multiplier\] pair"),
        ([[0.05]], r"\[0\]: expected a \[drawdown, multiplier\] pair"),
        ([[0.10, 1.0], [0.05, 0.5]], r"\[1\]: drawdowns must rise"),
        ([[0.05, 0.5], [0.10, 1.0]], r"\[1\]: a deeper zone cannot have a larger multiplier"),
        ([[0.0, 1.0]], r"\[0\]: drawdown 0.0 must be above 0"),
        ([[0.05, 0.0]], r"\[0\]: multiplier 0.0 must be above 0"),
        ([[0.05, 2.0]], r"above the maximum"),
        ([0.05, 1.0], r"expected a list"),
    ],
)
def test_bad_drawdown_zones_are_reported_by_dotted_key(zones, message):
    problems: list[str] = []
    build_section(RiskConfig, {"drawdown_zones": zones}, "risk", problems)
    assert problems and all(p.startswith("risk.drawdown_zones") for p in problems)
    assert any(re.search(message, p) for p in problems), problems


def test_a_daily_loss_limit_of_zero_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^risk\.daily_loss_limit:"):
        RiskConfig(daily_loss_limit=0.0)
