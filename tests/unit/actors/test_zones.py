"""Daily loss limit and drawdown zones: boundaries, latches, the 17:00 New York reset across DST."""

from __future__ import annotations

import dataclasses
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
    state, verdict = run([(t + 2, 99_000.0), (t + 48 * HOUR, 99_500.0)], state)
    assert verdict.drawdown_stop and verdict.zone == 3 and verdict.multiplier == 0.0
    # The operator resumes: the peak moves to the NAV, trading goes on in zone 0.
    state = resume_after_drawdown_stop(state, nav=99_500.0)
    state, verdict = run([(t + 48 * HOUR + 1, 99_400.0)], state)
    assert not verdict.drawdown_stop and verdict.zone == 0 and state.peak_nav == 99_500.0


def test_resuming_without_moving_the_peak_would_relatch_at_once():
    t = utc("2024-03-06T14:00")
    state, _ = run([(t, 100_000.0), (t + 1, 80_000.0)])
    naive = dataclasses.replace(state, drawdown_stop=False)
    _, verdict = run([(t + 2, 80_000.0)], naive)
    assert verdict.drawdown_stop
    _, verdict = run([(t + 2, 80_000.0)], resume_after_drawdown_stop(state, nav=80_000.0))
    assert not verdict.drawdown_stop


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
