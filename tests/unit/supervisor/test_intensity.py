"""Restart intensity: immediate first restart, capped exponential backoff, sliding window, reset."""

from __future__ import annotations

import pytest

from supervisor.childspec import ChildSpec, Intensity, RestartPolicy, SupervisorConfig, child_specs

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


def _intensity(max_restarts: int = 5, period_s: float = 60.0, initial_s: float = 0.1, cap_s: float = 5.0) -> Intensity:
    return Intensity(max_restarts=max_restarts, period_s=period_s, backoff_initial_s=initial_s, backoff_max_s=cap_s)


def test_the_first_restart_of_a_quiet_period_is_immediate() -> None:
    assert _intensity().record(now=100.0) == 0.0


def test_repeated_restarts_back_off_exponentially_from_the_initial_delay() -> None:
    intensity = _intensity(max_restarts=10, initial_s=0.1, cap_s=100.0)

    delays = [intensity.record(now=float(i)) for i in range(5)]

    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.8])


def test_the_backoff_never_exceeds_its_cap() -> None:
    intensity = _intensity(max_restarts=20, initial_s=1.0, cap_s=5.0)

    delays = [intensity.record(now=float(i)) for i in range(8)]

    assert delays == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]


def test_more_than_max_restarts_within_the_period_is_refused() -> None:
    intensity = _intensity(max_restarts=3, period_s=60.0)

    delays = [intensity.record(now=float(i)) for i in range(3)]
    exceeded = intensity.record(now=3.0)

    assert None not in delays
    assert exceeded is None
    assert intensity.recent(now=3.0) == 3


def test_a_refused_restart_is_not_counted() -> None:
    intensity = _intensity(max_restarts=1, period_s=10.0)
    intensity.record(now=0.0)

    assert intensity.record(now=1.0) is None
    assert intensity.record(now=2.0) is None
    assert intensity.recent(now=2.0) == 1
    assert intensity.record(now=10.5) == 0.0


def test_zero_max_restarts_refuses_the_very_first_restart() -> None:
    assert _intensity(max_restarts=0).record(now=0.0) is None


def test_restarts_older_than_the_period_slide_out_of_the_window() -> None:
    # Arrange
    intensity = _intensity(max_restarts=2, period_s=10.0)
    intensity.record(now=0.0)
    intensity.record(now=5.0)

    # Act / Assert: at exactly the period the first one still counts
    assert intensity.recent(now=10.0) == 2
    assert intensity.record(now=10.0) is None
    # Just after, the first one has slid out: one slot is free, with backoff since one remains
    assert intensity.recent(now=10.01) == 1
    assert intensity.record(now=10.01) == pytest.approx(0.1)


def test_after_a_whole_quiet_period_the_next_restart_is_immediate_again() -> None:
    intensity = _intensity(max_restarts=3, period_s=10.0)
    for t in (0.0, 1.0, 2.0):
        intensity.record(now=t)

    assert intensity.record(now=12.5) == 0.0
    assert intensity.recent(now=12.5) == 1


def test_reset_forgets_past_restarts() -> None:
    intensity = _intensity(max_restarts=2, period_s=60.0)
    intensity.record(now=0.0)
    intensity.record(now=1.0)
    assert intensity.record(now=2.0) is None

    intensity.reset()

    assert intensity.recent(now=2.0) == 0
    assert intensity.record(now=2.0) == 0.0


def test_child_specs_default_to_permanent_and_come_from_the_registry_in_start_order() -> None:
    spec = ChildSpec(role="feed")
    sup = SupervisorConfig(shutdown_timeout_s=7.0, shutdown_protection_s=15.0)

    with_emulator = child_specs(sup, with_emulator=True)
    without = child_specs(sup, with_emulator=False)

    assert spec.restart is RestartPolicy.PERMANENT
    assert [s.role for s in without] == ["watchdog", "reconciler", "feed", "model", "risk", "execution"]
    assert [s.role for s in with_emulator] == ["emulator", *[s.role for s in without]]
    # The execution role checks every open trade's SL/TP at shutdown: its deadline covers that too.
    assert {s.role: (s.shutdown_timeout_s, s.protection_s) for s in with_emulator if s.protection_s} == {
        "execution": (22.0, 15.0)
    }
    assert all(s.shutdown_timeout_s == 7.0 for s in with_emulator if s.role != "execution")
    assert [s.role for s in with_emulator if s.others_wait] == ["emulator"]


def test_supervisor_config_defaults_keep_timeout_above_interval() -> None:
    cfg = SupervisorConfig()

    assert cfg.heartbeat_timeout_s > cfg.heartbeat_interval_s
    assert cfg.permit_ttl_s > cfg.state_interval_s
    assert cfg.backoff_max_s >= cfg.backoff_initial_s
