"""The watchdog's pure checks: thresholds, the growth slope, verdict changes and what they ask for,
and market hours (no bar is overdue while the market is closed)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.core import markethours
from actors.core.config import WatchdogConfig
from actors.core.errors import ConfigError
from actors.roles.watchdog.checks import (
    ROOT,
    SUPERVISOR_SILENT,
    ClearOwnAlert,
    HeartbeatCheck,
    Judge,
    RaiseOwnAlert,
    Reading,
    ReportHealthy,
    RequestNoTrade,
    RestartRole,
    SupervisorCheck,
    Verdict,
    unjudged,
)
from actors.roles.watchdog.memory import MemoryCheck, growth_mb_per_h
from actors.roles.watchdog.progress import (
    AccountCheck,
    BarCheck,
    ClockSkewCheck,
    ConnectionCheck,
    DecisionCheck,
    disk_reading,
)
from tests.markettime import NS, ny, utc

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

WEDNESDAY = utc("2024-03-06T14:00")  # New York morning: every market open
SATURDAY = utc("2024-03-09T12:00")
M15 = 900.0
HOUR_NS = 3600 * NS


def _reading(verdict: Verdict, code: str | None = "disk_low") -> Reading:
    return Reading(name="disk", value="v", limit="l", verdict=verdict, detail="d", code=code)


def _by_name(readings: list[Reading]) -> dict[str, Reading]:
    return {r.name: r for r in readings}


# --- Judge ---------------------------------------------------------------------------------------


def test_a_new_breach_asks_for_its_reason_once_and_a_recovery_reports_the_cause_healthy() -> None:
    judge = Judge()

    first = judge.judge([_reading(Verdict.BREACH)], 0.0, None)
    again = judge.judge([_reading(Verdict.BREACH)], 0.5, None)
    healed = judge.judge([_reading(Verdict.OK)], 1.0, None)

    assert first == [RequestNoTrade(code="disk_low", detail="d")]
    assert again == []
    assert healed == [ReportHealthy(code="disk_low")]


def test_an_unknown_verdict_after_a_breach_keeps_the_reason_and_asks_nothing() -> None:
    judge = Judge()
    judge.judge([_reading(Verdict.BREACH)], 0.0, None)

    assert judge.judge([_reading(Verdict.UNKNOWN)], 1.0, {"disk_low": False}) == []
    assert judge.judge([_reading(Verdict.OK)], 2.0, {"disk_low": False}) == [ReportHealthy(code="disk_low")]


def test_a_breach_the_supervisor_does_not_show_is_asked_for_again_but_not_more_often_than_resend_s() -> None:
    judge = Judge(resend_s=3.0)
    judge.judge([_reading(Verdict.BREACH)], 0.0, {})

    soon = judge.judge([_reading(Verdict.BREACH)], 1.0, {})
    later = judge.judge([_reading(Verdict.BREACH)], 3.5, {})
    shown = judge.judge([_reading(Verdict.BREACH)], 10.0, {"disk_low": False})

    assert soon == []
    assert later == [RequestNoTrade(code="disk_low", detail="d")]
    assert shown == []


def test_a_transient_reason_left_over_from_an_earlier_watchdog_is_reported_healthy_once_the_check_is_ok() -> None:
    # A fresh watchdog has never seen the breach; the reason is still in sys.state.
    judge = Judge()

    assert judge.judge([_reading(Verdict.OK)], 0.0, {"disk_low": False}) == [ReportHealthy(code="disk_low")]
    assert judge.judge([_reading(Verdict.OK)], 1.0, {"disk_low": False}) == []  # throttled


def test_a_latched_reason_is_never_reported_healthy() -> None:
    judge = Judge()
    code = "memory_limit:risk"

    actions = judge.judge([_reading(Verdict.OK, code=code)], 0.0, {code: True})

    assert actions == []


def test_a_transient_watchdog_reason_no_check_claims_any_more_is_reported_healthy_and_others_are_left_alone() -> None:
    judge = Judge()
    reasons = {"bar_overdue:AUD_USD": False, "role_down:feed": False, "memory_growth:old": True}

    actions = judge.judge([_reading(Verdict.OK)], 0.0, reasons)

    assert actions == [ReportHealthy(code="bar_overdue:AUD_USD")]


def test_a_memory_breach_asks_for_a_restart_and_an_own_alert_is_raised_and_cleared_without_a_reason() -> None:
    judge = Judge()
    memory = Reading(
        name="memory_rss:risk", value="v", limit="l", verdict=Verdict.BREACH, detail="d",
        code="memory_limit:risk", restart="risk",
    )  # fmt: skip
    silent = Reading(name="supervisor", value="v", limit="l", verdict=Verdict.BREACH, detail="x", own_alert="sv")

    raised = judge.judge([memory, silent], 0.0, None)
    cleared = judge.judge([memory, replace(silent, verdict=Verdict.OK, detail="y")], 1.0, None)

    assert raised == [
        RequestNoTrade(code="memory_limit:risk", detail="d"),
        RestartRole(role="risk", reason="d"),
        RaiseOwnAlert(code="sv", severity="critical", detail="x"),
    ]
    assert cleared == [ClearOwnAlert(code="sv", detail="y")]


def test_a_breach_after_an_unknown_gap_is_a_new_breach_and_restarts_the_new_process_again() -> None:
    judge = Judge()
    over = Reading(
        name="memory_rss:risk", value="v", limit="l", verdict=Verdict.BREACH, detail="d",
        code="memory_limit:risk", restart="risk",
    )  # fmt: skip
    gone = replace(over, verdict=Verdict.UNKNOWN)

    first = judge.judge([over], 0.0, None)
    judge.judge([gone], 1.0, None)
    second = judge.judge([over], 2.0, None)

    assert RestartRole(role="risk", reason="d") in first
    assert RestartRole(role="risk", reason="d") in second


def test_unjudged_readings_are_unknown_with_the_reason_and_never_act() -> None:
    judge = Judge()

    readings = unjudged([_reading(Verdict.BREACH)], "bus silent")

    assert [(r.verdict, r.detail) for r in readings] == [(Verdict.UNKNOWN, "bus silent")]
    assert judge.judge(readings, 0.0, {}) == []


# --- Heartbeats and the supervisor ---------------------------------------------------------------


def test_a_role_silent_longer_than_the_limit_breaches_heartbeat_missing_and_a_heartbeat_heals_it() -> None:
    check = HeartbeatCheck(["feed", "risk"], silence_s=5.0, now_s=0.0)
    check.heard("feed", 101, 1.0)
    check.heard("risk", 102, 1.0)
    check.heard("risk", 102, 6.0)

    at_7 = _by_name(check.readings(7.0))
    check.heard("feed", 103, 7.5)
    at_8 = _by_name(check.readings(8.0))

    assert at_7["heartbeat:feed"].verdict is Verdict.BREACH
    assert at_7["heartbeat:feed"].code == "heartbeat_missing:feed"
    assert "for 6 s" in at_7["heartbeat:feed"].detail
    assert at_7["heartbeat:risk"].verdict is Verdict.OK
    assert at_8["heartbeat:feed"].verdict is Verdict.OK
    assert check.pids() == {"feed": 103, "risk": 102}


def test_a_role_never_heard_counts_from_the_start_and_unwatched_roles_are_ignored() -> None:
    check = HeartbeatCheck(["model"], silence_s=5.0, now_s=10.0)
    check.heard("watchdog", 1, 11.0)

    assert _by_name(check.readings(14.0))["heartbeat:model"].verdict is Verdict.OK
    late = _by_name(check.readings(16.0))["heartbeat:model"]
    assert late.verdict is Verdict.BREACH and "since the watchdog started" in late.detail
    assert check.pids() == {}


def test_grace_starts_every_silence_over() -> None:
    check = HeartbeatCheck(["feed"], silence_s=5.0, now_s=0.0)
    check.heard("feed", 1, 1.0)

    check.grace(20.0)

    assert _by_name(check.readings(24.0))["heartbeat:feed"].verdict is Verdict.OK
    assert _by_name(check.readings(26.0))["heartbeat:feed"].verdict is Verdict.BREACH


def test_a_silent_supervisor_is_an_own_alert_and_the_bus_counts_as_alive_only_while_sys_state_is_fresh() -> None:
    check = SupervisorCheck(silence_s=10.0, now_s=0.0)
    assert not check.bus_alive(0.5)  # nothing heard yet
    check.heard(1.0, ttl_s=3.0)

    assert check.bus_alive(3.9)
    assert not check.bus_alive(4.1)
    assert check.reading(10.0).verdict is Verdict.OK
    silent = check.reading(11.5)
    assert silent.verdict is Verdict.BREACH
    assert (silent.own_alert, silent.code) == (SUPERVISOR_SILENT, None)
    assert "no sys.state from the supervisor for 10 s" in silent.detail


# --- Memory --------------------------------------------------------------------------------------


def test_the_growth_slope_of_a_straight_line_is_its_slope_in_mb_per_hour() -> None:
    samples = [(t, 100.0 + 0.01 * t) for t in range(0, 600, 10)]

    assert growth_mb_per_h(samples) == pytest.approx(36.0)


@given(
    slope=st.floats(-1.0, 1.0, allow_nan=False),
    start=st.floats(0.0, 1e6, allow_nan=False),
    base=st.floats(0.0, 1e5, allow_nan=False),
)
def test_the_growth_slope_recovers_any_linear_trend(slope: float, start: float, base: float) -> None:
    samples = [(start + t, base + slope * t) for t in range(0, 300, 10)]

    assert growth_mb_per_h(samples) == pytest.approx(slope * 3600.0, abs=1e-3)


def test_the_growth_slope_needs_two_distinct_times() -> None:
    assert growth_mb_per_h([]) is None
    assert growth_mb_per_h([(1.0, 5.0)]) is None
    assert growth_mb_per_h([(1.0, 5.0), (1.0, 9.0)]) is None


def test_rss_over_the_limit_breaches_memory_limit_and_restarts_the_role_but_never_the_root() -> None:
    check = MemoryCheck(rss_limit_mb=300.0, max_growth_mb_per_h=50.0, growth_window_s=600.0)
    check.rss("risk", 11, 301.0)
    check.rss(ROOT, 10, 500.0)
    check.rss("feed", 12, 299.0)

    readings = _by_name(check.readings(0.0))

    risk, root, feed = readings["memory_rss:risk"], readings["memory_rss:root"], readings["memory_rss:feed"]
    assert (risk.verdict, risk.code, risk.restart) == (Verdict.BREACH, "memory_limit:risk", "risk")
    assert (root.verdict, root.code, root.restart) == (Verdict.BREACH, "memory_limit:root", None)
    assert "not restarted" in root.detail
    assert feed.verdict is Verdict.OK


def test_growth_is_judged_only_once_the_samples_cover_the_window_and_a_leak_breaches() -> None:
    check = MemoryCheck(rss_limit_mb=4096.0, max_growth_mb_per_h=50.0, growth_window_s=600.0)
    for t in range(0, 600, 10):
        check.uss("model", 7, 100.0 + t * 0.05, float(t))  # 180 MB/h

    early = _by_name(check.readings(590.0))["memory_growth:model"]
    check.uss("model", 7, 130.0, 600.0)
    judged = _by_name(check.readings(600.0))["memory_growth:model"]

    assert early.verdict is Verdict.UNKNOWN
    assert judged.verdict is Verdict.BREACH
    assert judged.code == "memory_growth:model"
    assert judged.value == "180.0 MB/h"


def test_a_warm_up_step_after_start_is_not_a_leak() -> None:
    check = MemoryCheck(rss_limit_mb=4096.0, max_growth_mb_per_h=50.0, growth_window_s=1800.0)
    for t in range(0, 1810, 10):
        check.uss("model", 7, 60.0 if t < 20 else 160.0, float(t))  # +100 MB in the first 20 s, then flat

    assert _by_name(check.readings(1800.0))["memory_growth:model"].verdict is Verdict.OK


def test_a_new_pid_starts_the_samples_over_and_a_gone_process_is_unknown() -> None:
    check = MemoryCheck(rss_limit_mb=300.0, max_growth_mb_per_h=50.0, growth_window_s=100.0)
    for t in range(0, 110, 10):
        check.uss("risk", 1, 50.0 + t, float(t))
    assert _by_name(check.readings(100.0))["memory_growth:risk"].verdict is Verdict.BREACH

    check.uss("risk", 2, 50.0, 110.0)
    check.rss("risk", 2, 60.0)
    restarted = _by_name(check.readings(110.0))
    check.gone("risk")
    gone = _by_name(check.readings(111.0))

    assert restarted["memory_growth:risk"].verdict is Verdict.UNKNOWN
    assert restarted["memory_rss:risk"].verdict is Verdict.OK
    assert gone["memory_rss:risk"].verdict is Verdict.UNKNOWN
    assert gone["memory_growth:risk"].verdict is Verdict.UNKNOWN


def test_the_watchdog_config_refuses_too_few_samples_per_window() -> None:
    with pytest.raises(ConfigError, match="memory_sample_s"):
        WatchdogConfig(growth_window_s=60.0, memory_sample_s=30.0)


# --- Connections ---------------------------------------------------------------------------------


def test_a_stream_down_longer_than_the_limit_breaches_stream_silent_and_reconnecting_heals_it() -> None:
    check = ConnectionCheck(down_alert_s=30.0)
    assert _by_name(check.readings(0.0))["stream"].verdict is Verdict.UNKNOWN
    check.health("stream", connected=False, detail="stale", now_s=10.0)
    check.health("stream", connected=False, detail="reconnecting", now_s=20.0)  # still the same outage

    short = _by_name(check.readings(39.0))["stream"]
    long = _by_name(check.readings(41.0))["stream"]
    check.health("stream", connected=True, detail="streaming", now_s=42.0)
    back = _by_name(check.readings(42.0))["stream"]

    assert (short.verdict, short.value) == (Verdict.OK, "down 29 s")
    assert (long.verdict, long.code) == (Verdict.BREACH, "stream_silent")
    assert "reconnecting" in long.detail
    assert back.verdict is Verdict.OK


def test_the_rest_api_is_shown_but_asks_for_no_reason_of_its_own() -> None:
    check = ConnectionCheck(down_alert_s=5.0)
    check.health("rest", connected=False, detail="503", now_s=0.0)
    check.health("other", connected=False, detail="?", now_s=0.0)

    rest = _by_name(check.readings(10.0))["rest"]

    assert (rest.verdict, rest.code) == (Verdict.BREACH, None)
    assert Judge().judge([rest], 10.0, {}) == []


# --- Bars and market hours -----------------------------------------------------------------------


def _bars(speed: float = 1.0, grace_s: float = 60.0, wall_floor_s: float = 0.0) -> BarCheck:
    return BarCheck(["EUR_USD", "GBP_USD"], granularity="M15", speed=speed, grace_s=grace_s, wall_floor_s=wall_floor_s)


def test_no_bar_is_expected_before_market_time_is_known() -> None:
    readings = _bars().readings(1000.0)

    assert {r.verdict for r in readings} == {Verdict.UNKNOWN}


def test_an_open_market_without_a_bar_within_granularity_plus_grace_breaches_bar_overdue() -> None:
    check = _bars()
    check.price("EUR_USD", WEDNESDAY, True, 0.0)
    check.price("GBP_USD", WEDNESDAY, True, 0.0)
    check.readings(0.0)  # the market is seen open at 0
    check.bar("GBP_USD", WEDNESDAY, 900.0)  # the 14:00 bar, closed at 14:15

    readings = _by_name(check.readings(961.0))

    eur, gbp = readings["bar:EUR_USD"], readings["bar:GBP_USD"]
    assert (eur.verdict, eur.code, eur.limit, eur.value) == (Verdict.BREACH, "bar_overdue:EUR_USD", "960 s", "961 s")
    assert "no M15 bar of EUR_USD for 16 min of market time while its market is open" in eur.detail
    assert "watchdog.bar_grace_s = 60 s" in eur.detail
    assert (gbp.verdict, gbp.value) == (Verdict.OK, "61 s")  # counted from the end of its last bar


def test_an_accelerated_emulator_counts_market_time_with_a_floor_for_the_hosts_wall_time() -> None:
    # 300x, M15: a bar every 3 wall seconds; the grace is 300 x 12 s = 3600 market seconds, not 60.
    check = _bars(speed=300.0, grace_s=60.0, wall_floor_s=12.0)
    check.price("EUR_USD", WEDNESDAY, True, 0.0)
    check.readings(0.0)

    assert _by_name(check.readings(14.9))["bar:EUR_USD"].verdict is Verdict.OK
    late = _by_name(check.readings(15.1))["bar:EUR_USD"]
    assert (late.verdict, late.limit) == (Verdict.BREACH, "4500 s")
    assert "3600 s, the host's 12 s of wall time at 300x" in late.detail
    assert check.market_now_ns(13.0) == WEDNESDAY + 13 * 300 * NS


def test_a_real_broker_keeps_the_grace_when_the_floor_is_shorter() -> None:
    check = _bars(speed=1.0, grace_s=60.0, wall_floor_s=20.0)
    assert check.limit_s == 960.0


def test_at_14400x_a_feed_without_bars_breaches_within_the_market_week_and_is_not_reset_by_weekends() -> None:
    # Prices every wall second (4 market hours); bars until Monday 2018-01-08 01:00 UTC, then none.
    # A wait in wall seconds started over at every reopening (a week is 42 s) and never fired.
    check = BarCheck(["EUR_USD"], granularity="H1", speed=14400.0, grace_s=60.0, wall_floor_s=11.0)
    monday = utc("2018-01-08T00:00")
    check.bar("EUR_USD", monday, 0.0)
    first_breach = None
    for wall_s in range(120):
        market_ns = monday + wall_s * 14400 * NS
        check.price("EUR_USD", market_ns, markethours.is_open(market_ns), float(wall_s))
        if _by_name(check.readings(float(wall_s)))["bar:EUR_USD"].verdict is Verdict.BREACH:
            first_breach = market_ns
            break

    # Due 1 h + 14400 x 11 s = 45 h after the last bar's end (Monday 01:00): Tuesday 22:00.
    assert first_breach is not None
    assert utc("2018-01-09T22:00") < first_breach <= utc("2018-01-09T22:00") + 4 * HOUR_NS


def test_no_bar_is_overdue_over_a_weekend_however_long_it_is_silent() -> None:
    check = _bars()
    check.price("EUR_USD", SATURDAY, False, 0.0)

    readings = [r for t in range(0, 28 * 3600, 600) for r in check.readings(float(t))]  # to Sunday noon, New York

    assert all(r.verdict is Verdict.OK for r in readings)
    assert readings[0].value == "closed (weekend)"


def test_the_market_closing_on_friday_evening_stops_the_wait_while_prices_are_silent() -> None:
    # The last price comes at 16:59 New York; market time runs on from it without prices.
    check = _bars()
    check.price("EUR_USD", ny("2024-03-08T16:59"), True, 0.0)
    check.readings(0.0)
    check.bar("EUR_USD", ny("2024-03-08T16:45"), 0.0)

    after_close = _by_name(check.readings(3600.0))["bar:EUR_USD"]

    assert (after_close.verdict, after_close.value) == (Verdict.OK, "closed (weekend)")


def test_a_halt_is_closed_and_the_wait_starts_over_when_trading_resumes() -> None:
    check = _bars()
    check.price("EUR_USD", WEDNESDAY, True, 0.0)
    check.readings(0.0)
    check.price("EUR_USD", WEDNESDAY + 100 * NS, False, 100.0)  # halted

    halted = _by_name(check.readings(2000.0))["bar:EUR_USD"]
    check.price("EUR_USD", WEDNESDAY + 2100 * NS, True, 2100.0)
    resumed = _by_name(check.readings(2100.0))["bar:EUR_USD"]
    late = _by_name(check.readings(3061.0))["bar:EUR_USD"]

    assert (halted.verdict, halted.value) == (Verdict.OK, "closed (halted)")
    assert (resumed.verdict, resumed.value) == (Verdict.OK, "0 s")
    assert late.verdict is Verdict.BREACH


def test_sunday_evening_opening_starts_the_wait_at_the_open_not_at_the_last_bar_of_friday() -> None:
    # No reading during the weekend: market time jumps from Friday's last price to Sunday evening.
    check = _bars()
    check.price("EUR_USD", ny("2024-03-08T16:50"), True, 0.0)
    check.readings(0.0)
    check.bar("EUR_USD", ny("2024-03-08T16:45"), 0.0)
    opening_s = (ny("2024-03-10T17:00") - ny("2024-03-08T16:50")) / NS

    just_open = _by_name(check.readings(opening_s + 500.0))["bar:EUR_USD"]
    overdue = _by_name(check.readings(opening_s + 1500.0))["bar:EUR_USD"]

    assert (just_open.verdict, just_open.value) == (Verdict.OK, "500 s")  # since the open at 17:00
    assert overdue.verdict is Verdict.BREACH


def test_christmas_2017_is_silence_and_the_wait_starts_at_monday_1700_new_york() -> None:
    # The last bar of Friday 22 December (16:45 New York); no price until Monday 17:00.
    check = _bars()
    friday = ny("2017-12-22T16:59")
    check.price("EUR_USD", friday, True, 0.0)
    check.readings(0.0)
    check.bar("EUR_USD", ny("2017-12-22T16:45"), 0.0)

    def at(when: int) -> Reading:
        return _by_name(check.readings((when - friday) / NS))["bar:EUR_USD"]

    sunday_evening = at(ny("2017-12-24T18:00"))  # a normal Sunday would be open
    monday_noon = at(ny("2017-12-25T12:00"))
    reopened = at(ny("2017-12-25T17:10"))
    overdue = at(ny("2017-12-25T17:16:01"))

    assert (sunday_evening.verdict, sunday_evening.value) == (Verdict.OK, "closed (holiday)")
    assert (monday_noon.verdict, monday_noon.value) == (Verdict.OK, "closed (holiday)")
    assert (reopened.verdict, reopened.value) == (Verdict.OK, "600 s")
    assert (overdue.verdict, overdue.value) == (Verdict.BREACH, "961 s")


def test_a_broker_that_trades_on_a_listed_holiday_is_waited_for_from_its_first_tradeable_price() -> None:
    check = _bars()
    check.price("EUR_USD", ny("2017-12-22T16:59"), True, 0.0)
    check.readings(0.0)
    check.readings(86400.0)  # Saturday: closed
    first = ny("2017-12-24T17:05")
    wall_s = (first - ny("2017-12-22T16:59")) / NS
    check.price("EUR_USD", first, True, wall_s)

    waiting = _by_name(check.readings(wall_s + 900.0))["bar:EUR_USD"]
    overdue = _by_name(check.readings(wall_s + 961.0))["bar:EUR_USD"]

    assert (waiting.verdict, waiting.value) == (Verdict.OK, "900 s")
    assert overdue.verdict is Verdict.BREACH


def test_bar_grace_restarts_the_wait() -> None:
    check = _bars()
    check.price("EUR_USD", WEDNESDAY, True, 0.0)
    check.readings(0.0)

    check.grace(900.0)

    assert _by_name(check.readings(1800.0))["bar:EUR_USD"].verdict is Verdict.OK


# --- Disk and clock ------------------------------------------------------------------------------


def test_free_disk_below_the_minimum_breaches_disk_low_and_an_unreadable_disk_is_unknown() -> None:
    low = disk_reading(99.0, min_free_mb=100.0, path="/var/th")
    fine = disk_reading(100.0, min_free_mb=100.0, path="/var/th")
    unreadable = disk_reading(None, min_free_mb=100.0, path="/var/th")

    assert (low.verdict, low.code) == (Verdict.BREACH, "disk_low")
    assert "99 MB free on the disk of /var/th" in low.detail
    assert fine.verdict is Verdict.OK
    assert unreadable.verdict is Verdict.UNKNOWN


def _feed(check: ClockSkewCheck, offsets_s: list[float], *, start: int = WEDNESDAY, tradeable: bool = True) -> None:
    # One fresh price a second (after a first one that only sets the instrument's last time).
    check.price("EUR_USD", start - NS, start - NS, tradeable=True, now_s=-1.0)
    for i, offset_s in enumerate(offsets_s):
        broker = start + i * NS
        check.price("EUR_USD", broker, broker + round(offset_s * NS), tradeable=tradeable, now_s=float(i))


def test_a_clock_ahead_of_the_broker_breaches_clock_skew_using_the_least_delayed_price() -> None:
    check = ClockSkewCheck(max_skew_s=2.0)
    _feed(check, [2.5 + latency_s for latency_s in (0.9, 0.3, 5.0, 0.4, 0.2, 1.1)])

    reading = check.reading(6.0)

    assert (reading.verdict, reading.value, reading.code) == (Verdict.BREACH, "+2.70 s", "clock_skew")
    assert "2.70 s ahead of the broker" in reading.detail


def test_a_clock_behind_the_broker_breaches_and_a_small_skew_is_fine() -> None:
    behind, fine = ClockSkewCheck(max_skew_s=2.0), ClockSkewCheck(max_skew_s=2.0)
    _feed(behind, [-3.0] * 6)
    _feed(fine, [0.1] * 6)

    assert behind.reading(6.0).verdict is Verdict.BREACH
    assert "behind" in behind.reading(6.0).detail
    assert fine.reading(6.0).verdict is Verdict.OK


def test_clock_skew_is_unknown_once_the_prices_leave_the_window_and_off_when_switched_off() -> None:
    few, off = ClockSkewCheck(max_skew_s=2.0), ClockSkewCheck(max_skew_s=2.0, off="emulator at 300x")
    _feed(few, [10.0] * 10)
    _feed(off, [10.0] * 10)

    assert few.reading(9.0).verdict is Verdict.BREACH
    assert few.reading(70.0).verdict is Verdict.UNKNOWN  # the old prices left the window
    assert (off.reading(9.0).verdict, off.reading(9.0).detail) == (Verdict.UNKNOWN, "off: emulator at 300x")


def test_old_snapshot_prices_after_reconnects_and_prices_of_a_closed_market_never_count_as_skew() -> None:
    # A weekend: every reconnect starts with a snapshot of Friday's last prices; the closed market
    # sends non-tradeable prices.
    check = ClockSkewCheck(max_skew_s=2.0)
    friday_close = WEDNESDAY + 2 * 86400 * NS
    for n in range(10):
        check.reconnected()
        for instrument in ("EUR_USD", "GBP_USD", "USD_JPY"):
            check.price(instrument, friday_close, friday_close + 3600 * NS, tradeable=False, now_s=float(n))
    _feed(check, [3600.0] * 10, start=friday_close + NS, tradeable=False)

    reading = check.reading(10.0)

    assert reading.verdict is Verdict.UNKNOWN
    assert reading.detail.startswith("0 prices")


def test_the_first_price_after_a_reconnect_is_a_snapshot_and_does_not_count() -> None:
    check = ClockSkewCheck(max_skew_s=2.0)
    _feed(check, [0.1] * 6)
    check.reconnected()
    old = WEDNESDAY + 100 * NS  # the snapshot: a price a minute older than its arrival
    check.price("EUR_USD", old, old + 60 * NS, tradeable=True, now_s=7.0)

    assert check.reading(8.0).value == "+0.10 s"


# --- Decisions and account reads -----------------------------------------------------------------


def test_a_published_bar_without_a_decision_past_the_deadline_is_overdue_until_one_comes() -> None:
    check = DecisionCheck(["EUR_USD", "USD_JPY"], deadline_s=30.0)
    check.closed(WEDNESDAY, ["EUR_USD", "USD_JPY"], now_s=100.0)
    check.outcome("USD_JPY", WEDNESDAY, now_s=100.2)  # risk.skip

    waiting = _by_name(check.readings(now_s=129.0))
    late = _by_name(check.readings(now_s=131.0))
    check.outcome("EUR_USD", WEDNESDAY, now_s=132.0)  # risk.intent, late
    decided = _by_name(check.readings(now_s=133.0))

    assert waiting["decision:EUR_USD"].verdict is Verdict.OK
    assert late["decision:EUR_USD"].verdict is Verdict.BREACH
    assert late["decision:EUR_USD"].code == "decision_overdue:EUR_USD"
    assert "2024-03-06 14:00:00 UTC" in late["decision:EUR_USD"].detail
    assert late["decision:USD_JPY"].verdict is Verdict.OK
    assert decided["decision:EUR_USD"].verdict is Verdict.OK


def test_the_oldest_undecided_bar_counts_and_a_later_decision_clears_it() -> None:
    check = DecisionCheck(["EUR_USD"], deadline_s=30.0)
    check.closed(WEDNESDAY, ["EUR_USD"], now_s=0.0)
    check.closed(WEDNESDAY + 900 * NS, ["EUR_USD"], now_s=20.0)  # the next close, still nothing

    overdue = check.readings(now_s=31.0)[0]
    check.outcome("EUR_USD", WEDNESDAY - 900 * NS, now_s=32.0)  # an older bar's decision: not this one
    still = check.readings(now_s=33.0)[0]
    check.outcome("EUR_USD", WEDNESDAY + 900 * NS, now_s=34.0)

    assert overdue.verdict is Verdict.BREACH and still.verdict is Verdict.BREACH
    assert check.readings(now_s=35.0)[0].verdict is Verdict.OK


def test_bars_not_published_and_unknown_instruments_wait_for_nothing() -> None:
    check = DecisionCheck(["EUR_USD"], deadline_s=5.0)
    check.closed(WEDNESDAY, ["GBP_USD"], now_s=0.0)

    assert check.readings(now_s=60.0)[0].verdict is Verdict.OK


def test_a_restart_of_a_decider_or_a_stalled_watchdog_starts_the_wait_over() -> None:
    check = DecisionCheck(["EUR_USD"], deadline_s=10.0)
    check.closed(WEDNESDAY, ["EUR_USD"], now_s=0.0)
    check.grace(now_s=8.0)
    after_grace = check.readings(now_s=15.0)[0]
    check.forget()

    assert after_grace.verdict is Verdict.OK and "waits" in after_grace.detail
    assert check.readings(now_s=100.0)[0].verdict is Verdict.OK


def test_the_account_must_be_read_within_its_max_age() -> None:
    check = AccountCheck(max_age_s=60.0, now_s=0.0)
    before_first = check.reading(now_s=59.0)
    never = check.reading(now_s=61.0)
    check.read(now_s=62.0)
    fresh = check.reading(now_s=100.0)
    stale = check.reading(now_s=123.0)

    assert before_first.verdict is Verdict.OK and "no account read yet" in before_first.detail
    assert never.verdict is Verdict.BREACH and never.code == "account_stale"
    assert fresh.verdict is Verdict.OK
    assert stale.verdict is Verdict.BREACH and "61 s" in stale.detail


def test_a_role_is_blamed_only_for_silence_while_the_bus_was_heard() -> None:
    # The bus stopped at 10 s (the last sys.state); the roles' heartbeats stopped with it at 9.9 s.
    check = HeartbeatCheck(["feed"], silence_s=3.0, now_s=0.0)
    check.heard("feed", 42, now_s=9.9)

    bus_gone = check.readings(now_s=14.0, bus_heard_s=10.0)[0]
    really_silent = check.readings(now_s=14.0, bus_heard_s=14.0)[0]

    assert bus_gone.verdict is Verdict.OK
    assert really_silent.verdict is Verdict.BREACH


def test_the_embedded_emulators_growth_by_design_is_shown_not_judged_but_its_rss_limit_holds() -> None:
    # The test broker keeps every transaction: at 3600x its USS grew ~170 MB/h in the soak and
    # latched memory_growth:emulator (NO_TRADE) after the first 30-minute window.
    check = MemoryCheck(
        rss_limit_mb=300.0, max_growth_mb_per_h=50.0, growth_window_s=600.0, growth_by_design=frozenset({"emulator"})
    )
    for t in range(0, 610, 10):
        check.uss("emulator", 5, 20.0 + t * 0.05, float(t))  # 180 MB/h
        check.uss("risk", 6, 20.0 + t * 0.05, float(t))
    check.rss("emulator", 5, 301.0)

    readings = _by_name(check.readings(600.0))

    emulator = readings["memory_growth:emulator"]
    assert (emulator.verdict, emulator.value) == (Verdict.OK, "180.0 MB/h")
    assert "by design" in emulator.detail
    assert readings["memory_growth:risk"].verdict is Verdict.BREACH  # any other process still breaches
    rss = readings["memory_rss:emulator"]
    assert (rss.verdict, rss.restart) == (Verdict.BREACH, "emulator")
