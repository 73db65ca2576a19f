"""``Child`` (restart, hang, failed-start decisions) and ``HealthPolicy`` (facts -> reasons)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.runtime.messages import BrokerHealth, Heartbeat
from supervisor.child import Child, ChildStatus, Tock
from supervisor.childspec import ChildSpec, Intensity
from supervisor.health import REASONS, HealthPolicy
from supervisor.state import StateMachine

pytestmark = pytest.mark.unit

TIMING = {"heartbeat_interval_s": 1.0, "heartbeat_timeout_s": 5.0, "start_timeout_s": 30.0}


def _child(max_restarts: int = 5, max_start_failures: int = 3) -> Child:
    return Child(
        spec=ChildSpec(role="feed"),
        intensity=Intensity(max_restarts, 60.0, 0.1, 5.0),
        max_start_failures=max_start_failures,
    )


def _beat() -> Heartbeat:
    return Heartbeat(role="feed", pid=1, rss_mb=1.0, queue_depth=0, handled=0)


def test_a_child_that_never_comes_up_fails_after_max_start_failures_however_slowly_it_fails() -> None:
    # Arrange: each start times out after 30 s, so only two fit in any 60 s intensity window.
    child = _child(max_restarts=5, max_start_failures=3)
    now = 0.0
    decisions = []
    for _ in range(3):
        child.spawned(pid=100, now=now)
        now += 31.0
        assert child.tick(now, **TIMING)[0] is Tock.START_TIMEOUT
        failed_start = child.exited(now)
        decisions.append(child.crashed(now, failed_start=failed_start))

    # Assert
    assert decisions[0] == 0.0 and decisions[1] is not None  # restarted twice: intensity alone allows it
    assert decisions[2] is None
    assert child.status is ChildStatus.FAILED


def test_a_child_that_came_up_in_between_resets_its_failed_starts() -> None:
    child = _child(max_start_failures=2)
    child.spawned(pid=1, now=0.0)
    child.crashed(1.0, failed_start=child.exited(1.0))
    child.spawned(pid=2, now=100.0)
    assert child.heartbeat(_beat(), 100.5) is True
    child.crashed(200.0, failed_start=child.exited(200.0))  # crashed after coming up: not a failed start

    assert child.status is ChildStatus.RESTARTING
    assert child.start_failures == 0


@pytest.mark.parametrize(("silent_s", "expected"), [(0.5, Tock.HEALTHY), (3.5, Tock.LATE), (5.5, Tock.HUNG)])
def test_a_running_child_is_healthy_late_or_hung_by_its_silence(silent_s: float, expected: Tock) -> None:
    child = _child()
    child.spawned(pid=1, now=0.0)
    child.heartbeat(_beat(), 1.0)

    assert child.tick(1.0 + silent_s, **TIMING)[0] is expected


def test_an_operator_restart_forgets_failed_starts_and_restarts() -> None:
    child = _child(max_start_failures=1)
    child.spawned(pid=1, now=0.0)
    child.crashed(1.0, failed_start=child.exited(1.0))
    assert child.status is ChildStatus.FAILED

    child.revived()

    assert child.start_failures == 0
    assert child.intensity.recent(2.0) == 0


class _Journal:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, body: dict[str, Any]) -> None:
        self.entries.append((kind, body))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.entries]


def _policy() -> tuple[HealthPolicy, StateMachine, _Journal]:
    sm = StateMachine(cooldown_s=10.0)
    journal = _Journal()
    return HealthPolicy(sm, journal, monotonic=lambda: 0.0, wall_ns=lambda: 0), sm, journal


def test_health_of_a_role_that_is_gone_is_unknown_never_its_last_good_value() -> None:
    # Arrange
    policy, _sm, _journal = _policy()
    policy.broker_report(BrokerHealth(source="stream", connected=True, last_ok_ns=10**18, detail="streaming"))
    policy.broker_report(BrokerHealth(source="rest", connected=True, last_ok_ns=10**18, detail="ok"))
    assert policy.broker_status("emulator", "")["connected"] is True

    # Act: the feed (which reports the stream) is killed
    policy.role_gone("feed")
    status = policy.broker_status("emulator", "")

    # Assert
    assert status["connected"] is None
    assert status["sources"]["stream"]["connected"] is None
    assert status["sources"]["stream"]["detail"] == "unknown: feed is not running"
    assert status["sources"]["rest"]["connected"] is True


def test_a_new_report_from_the_restarted_role_makes_the_source_known_again() -> None:
    policy, _sm, journal = _policy()
    policy.broker_report(BrokerHealth(source="stream", connected=True, detail="streaming"))
    policy.role_gone("feed")

    policy.broker_report(BrokerHealth(source="stream", connected=False, detail="connecting"))

    assert policy.broker_status("emulator", "")["sources"]["stream"] == {
        "connected": False,
        "last_ok_ns": None,
        "detail": "connecting",
        "reconnects": 0,
    }
    assert "broker.down" in journal.kinds()


def test_a_known_down_source_wins_over_an_unknown_one() -> None:
    policy, _sm, _journal = _policy()
    policy.broker_report(BrokerHealth(source="stream", connected=True))
    policy.broker_report(BrokerHealth(source="rest", connected=False, detail="HTTP 503"))
    policy.role_gone("feed")

    assert policy.broker_status("emulator", "")["connected"] is False


def test_the_rest_api_coming_back_asks_for_a_reconciliation_and_clears_after_the_cooldown() -> None:
    policy, sm, journal = _policy()
    assert policy.broker_report(BrokerHealth(source="rest", connected=False, detail="timeout")) is False
    assert [r.code for r in sm.reasons(now_ns=0)] == ["broker_unreachable:rest"]

    assert policy.broker_report(BrokerHealth(source="rest", connected=True)) is True
    assert journal.kinds() == ["reason.raised", "broker.down", "broker.up"]


@pytest.mark.parametrize("code", sorted(REASONS))
def test_every_reason_code_says_whether_it_is_latched(code: str) -> None:
    policy, sm, _journal = _policy()
    policy.fault(f"{code}:x", "detail")

    (reason,) = sm.reasons(0)
    assert reason.latched is REASONS[code].latched


@pytest.mark.parametrize("code", sorted(REASONS))
def test_the_runbook_tells_the_operator_what_to_do_about_every_reason_code(code: str) -> None:
    runbook = (Path(__file__).resolve().parents[3] / "ops" / "RUNBOOK.md").read_text()
    rows = [line for line in runbook.splitlines() if line.startswith("| `")]

    assert any(f"`{code}`" in row or f"`{code}:" in row for row in rows), f"no RUNBOOK row for {code}"


# --- one no-trade path: every role's request is a reason -------------------------------------


@pytest.mark.parametrize(
    ("role", "code", "latched"),
    [
        ("execution", "order_unresolved:EUR_USD", True),
        ("execution", "broker_fatal", True),
        ("reconciler", "another_host", True),
        ("reconciler", "unprotected:7", False),
        ("execution", "unprotected:7", False),
        ("watchdog", "bar_overdue:EUR_USD", False),
    ],
)
def test_a_no_trade_request_of_any_role_becomes_a_reason_as_the_table_says(role: str, code: str, latched: bool) -> None:
    alerts: list[tuple[str, str]] = []
    sm, journal = StateMachine(cooldown_s=10.0), _Journal()
    policy = HealthPolicy(
        sm, journal, monotonic=lambda: 0.0, wall_ns=lambda: 0, alert=lambda s, c, d: alerts.append((s, c))
    )

    assert policy.requested(role, code, "detail") is True

    (reason,) = sm.reasons(0)
    assert (reason.code, reason.latched) == (code, latched)
    assert alerts == [("critical" if latched else "warning", code)]  # the reason is alerted, by the supervisor


def test_a_request_from_a_role_the_table_does_not_name_is_honoured_latched_and_journaled() -> None:
    policy, sm, journal = _policy()

    policy.requested("feed", "another_host", "odd")

    assert sm.is_latched("another_host")
    assert "reason.unexpected_raiser" in journal.kinds()


def test_a_role_clears_only_a_transient_cause_it_may_raise_itself() -> None:
    policy, sm, _journal = _policy()
    policy.fault("role_down:feed", "down")
    policy.requested("reconciler", "unprotected:7", "naked")
    policy.requested("execution", "order_unresolved:EUR_USD", "lost")

    taken = [
        policy.healthy_from("execution", "role_down:feed"),  # the supervisor's own reason
        policy.healthy_from("watchdog", "unprotected:7"),  # not the watchdog's
        policy.healthy_from("execution", "order_unresolved:EUR_USD"),  # latched: only ctl resume
        policy.healthy_from("execution", "unprotected:7"),  # execution may raise it: taken
    ]

    assert taken == [False, False, False, True]
    assert sm.expire(10.0) == ["unprotected:7"]


def test_a_transient_reason_raised_again_with_latch_becomes_latched_and_is_alerted_critical() -> None:
    alerts: list[tuple[str, str]] = []
    sm, journal = StateMachine(cooldown_s=10.0), _Journal()
    policy = HealthPolicy(
        sm, journal, monotonic=lambda: 0.0, wall_ns=lambda: 0, alert=lambda s, c, d: alerts.append((s, c))
    )
    policy.requested("reconciler", "unprotected:7", "naked")

    policy.requested("execution", "unprotected:7", "and the close failed", latch=True)

    assert sm.is_latched("unprotected:7")
    assert alerts == [("warning", "unprotected:7"), ("critical", "unprotected:7")]
    assert sm.resume() == ["unprotected:7"]


def test_the_watchdogs_codes_are_the_ones_the_table_names_it_for() -> None:
    from actors.roles.watchdog.checks import WATCHDOG_CODES
    from supervisor.health import WATCHDOG

    assert {code for code, info in REASONS.items() if WATCHDOG in info.raised_by} == WATCHDOG_CODES


def _account(**fields: Any) -> Any:
    from actors.runtime.messages import AccountSnapshot

    base: dict[str, Any] = {
        "currency": "USD", "balance": "100000.0000", "nav": "96500.0000", "unrealized_pl": "-3500.0000",
        "margin_used": "0", "open_trades": 1, "pending_orders": 2, "last_transaction_id": "9", "ts": 1,
        "day_start_nav": "100000.0000", "daily_pnl": "-3500.0000", "peak_nav": "100000.0000",
    }  # fmt: skip
    return AccountSnapshot(**{**base, **fields})


def test_a_resume_cannot_lift_the_daily_loss_limit_and_says_so_in_the_reason() -> None:
    sm, journal = StateMachine(cooldown_s=10.0), _Journal()
    cleared_codes: list[str] = []
    policy = HealthPolicy(sm, journal, monotonic=lambda: 0.0, wall_ns=lambda: 0, cleared=cleared_codes.append)
    policy.account(_account(daily_loss_hit=True))

    cleared = sm.resume(keep=lambda code: not REASONS[code.partition(":")[0]].resumable)

    assert cleared == [] and sm.is_latched("daily_loss_limit") and cleared_codes == []
    (reason,) = sm.reasons(0)
    assert "next trading day" in reason.detail and "ctl resume` cannot lift it" in reason.detail
    # the next trading day lifts it (and only then a recovery)
    policy.account(_account(daily_pnl="0.0000", day_start_nav="96500.0000"))
    assert not sm.reasons(0) and cleared_codes == ["daily_loss_limit"]


def test_after_a_drawdown_resume_a_read_from_before_it_does_not_raise_the_stop_again() -> None:
    sm, journal = StateMachine(cooldown_s=10.0), _Journal()
    policy = HealthPolicy(sm, journal, monotonic=lambda: 0.0, wall_ns=lambda: 0)
    stopped = _account(nav="80000.0000", drawdown=0.2, zone=3, multiplier=0.0, drawdown_stop=True)
    policy.account(stopped)
    policy.cleared_by_operator(sm.resume())

    policy.account(stopped)  # read before the reconciler took the resume
    assert not sm.reasons(0)
    policy.account(_account(nav="80000.0000", drawdown=0.2, zone=3, multiplier=0.25, drawdown_resumed=True))
    policy.account(stopped)  # a new stop after the resume (after a new peak) raises it again
    assert sm.is_latched("drawdown_stop")
