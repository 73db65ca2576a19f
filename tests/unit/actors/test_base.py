"""``Permit`` and ``RoleActor`` dispatch, driven through a ``RecordingRuntime``.

Actors are used the way pykka recommends: start, tell, block on an ask, assert, stop. Nothing
here makes the actor fail, since ``RoleActor.on_failure`` ends the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pykka
import pytest

from actors.runtime.actor import HeartbeatDue, Inbound, Permit, RoleActor, StopRequested
from actors.runtime.messages import (
    TOPIC_HEARTBEAT,
    AlertRaised,
    Envelope,
    Heartbeat,
    Reason,
    RoleStopping,
    SystemState,
    SystemStateChanged,
    make_envelope,
)
from tests.fakes import RecordingRuntime

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

ASK_TIMEOUT_S = 5.0


def _state(
    state: SystemState, expires_ns: int = 10**30, reasons: tuple[Reason, ...] = (), ttl_s: float = 1e9
) -> SystemStateChanged:
    return SystemStateChanged(state=state, expires_ns=expires_ns, reasons=reasons, ttl_s=ttl_s)


# --- Permit -----------------------------------------------------------------------------------


def test_a_fresh_permit_allows_no_entry() -> None:
    assert Permit().allows_entry(now_ns=0) is False


@pytest.mark.parametrize("state", [s for s in SystemState if s is not SystemState.TRADING])
def test_only_a_trading_state_allows_entry(state: SystemState) -> None:
    permit = Permit()
    permit.update(_state(state, expires_ns=1_000), src="supervisor")

    assert permit.allows_entry(now_ns=10) is False


def test_an_unexpired_trading_state_allows_entry() -> None:
    permit = Permit()
    permit.update(_state(SystemState.TRADING, expires_ns=1_000), src="supervisor")

    assert permit.allows_entry(now_ns=999) is True


@pytest.mark.parametrize("now_ns", [1_000, 1_001, 10**20])
def test_a_trading_state_stops_allowing_entry_once_it_expires(now_ns: int) -> None:
    permit = Permit()
    permit.update(_state(SystemState.TRADING, expires_ns=1_000), src="supervisor")

    assert permit.allows_entry(now_ns=now_ns) is False


def test_a_later_non_trading_state_revokes_the_permit_at_once() -> None:
    permit = Permit()
    permit.update(_state(SystemState.TRADING, expires_ns=1_000), src="supervisor")
    reason = Reason(code="operator_pause", detail="paused", latched=True, since_ns=1)

    permit.update(_state(SystemState.PAUSED, expires_ns=1_000, reasons=(reason,)), src="supervisor")

    assert permit.allows_entry(now_ns=10) is False
    assert permit.reasons == (reason,)


def test_the_permit_uses_the_wall_clock_when_no_time_is_given() -> None:
    permit = Permit()
    permit.update(_state(SystemState.TRADING, expires_ns=10**30), src="supervisor")
    assert permit.allows_entry() is True

    permit.update(_state(SystemState.TRADING, expires_ns=1), src="supervisor")
    assert permit.allows_entry() is False


def test_a_state_from_anyone_but_the_supervisor_grants_nothing() -> None:
    permit = Permit()

    assert permit.update(_state(SystemState.TRADING), src="risk") is False
    assert permit.allows_entry() is False


def test_the_permit_also_expires_on_the_roles_own_monotonic_clock() -> None:
    permit = Permit()
    permit.update(_state(SystemState.TRADING, ttl_s=3.0), src="supervisor", received_mono=100.0)

    assert permit.allows_entry(now_mono=102.9) is True
    assert permit.allows_entry(now_mono=103.0) is False  # a wall-clock step back cannot extend it


# --- RoleActor --------------------------------------------------------------------------------


class ProbeActor(RoleActor):
    """A role that records its hooks and can report what it holds."""

    ROLE: ClassVar[str] = "feed"

    def __init__(self, runtime: RecordingRuntime, *, hook_error: Exception | None = None) -> None:
        super().__init__(runtime)
        self.transitions: list[tuple[SystemState | None, SystemState]] = []
        self.shutdown_deadlines: list[float] = []
        self.hook_error = hook_error

    def on_state_changed(self, previous: SystemState | None, current: SystemState) -> None:
        self.transitions.append((previous, current))

    def on_shutdown(self, deadline_s: float) -> str:
        self.shutdown_deadlines.append(deadline_s)
        if self.hook_error is not None:
            raise self.hook_error
        return "flushed 3 bars"

    def snapshot(self) -> dict[str, Any]:
        return {
            "handled": self.handled,
            "last_handled": self.last_handled,
            "transitions": list(self.transitions),
            "shutdown_deadlines": list(self.shutdown_deadlines),
            "allows_entry_now": self.permit.allows_entry(),
            "permit_state": self.permit.state,
        }


@pytest.fixture
def runtime() -> RecordingRuntime:
    return RecordingRuntime(role="feed", pid=777)


@pytest.fixture
def actor(runtime: RecordingRuntime) -> Iterator[pykka.ActorRef[ProbeActor]]:
    ref = ProbeActor.start(runtime)
    yield ref
    ref.stop(block=True, timeout=ASK_TIMEOUT_S)


def _snapshot(ref: pykka.ActorRef[ProbeActor]) -> dict[str, Any]:
    # The proxy call queues behind earlier tells, so it also waits for them.
    result: dict[str, Any] = ref.proxy().snapshot().get(timeout=ASK_TIMEOUT_S)
    return result


def _inbound(body: Any, src: str = "supervisor") -> Inbound:
    return Inbound(make_envelope(body, src=src, seq=1))


def test_a_bus_message_is_counted_and_journaled_with_its_id_as_correlation(
    actor: pykka.ActorRef[ProbeActor], runtime: RecordingRuntime
) -> None:
    # Arrange
    message = _inbound(AlertRaised(severity="warning", code="x", detail="y"), src="risk")
    env: Envelope = message.envelope

    # Act
    actor.tell(message)
    seen = _snapshot(actor)

    # Assert
    assert seen["handled"] == 1
    assert seen["last_handled"] == "AlertRaised"
    assert runtime.journaled == [("feed.received", {"type": "AlertRaised", "src": "risk"}, env.id)]


def test_a_state_message_updates_the_permit_without_counting_as_handled(
    actor: pykka.ActorRef[ProbeActor], runtime: RecordingRuntime
) -> None:
    actor.tell(_inbound(_state(SystemState.TRADING)))
    seen = _snapshot(actor)

    assert seen["handled"] == 0
    assert seen["permit_state"] is SystemState.TRADING
    assert seen["allows_entry_now"] is True
    assert runtime.journaled == []


def test_on_state_changed_fires_only_when_the_state_changes(actor: pykka.ActorRef[ProbeActor]) -> None:
    # Arrange
    states = [
        SystemState.STARTING,
        SystemState.STARTING,
        SystemState.TRADING,
        SystemState.TRADING,
        SystemState.NO_TRADE,
        SystemState.TRADING,
    ]

    # Act
    for state in states:
        actor.tell(_inbound(_state(state)))
    seen = _snapshot(actor)

    # Assert
    assert seen["transitions"] == [
        (None, SystemState.STARTING),
        (SystemState.STARTING, SystemState.TRADING),
        (SystemState.TRADING, SystemState.NO_TRADE),
        (SystemState.NO_TRADE, SystemState.TRADING),
    ]


def test_an_expired_trading_state_does_not_allow_entry(actor: pykka.ActorRef[ProbeActor]) -> None:
    actor.tell(_inbound(_state(SystemState.TRADING, expires_ns=1)))

    assert _snapshot(actor)["allows_entry_now"] is False


def test_a_heartbeat_tick_reports_to_the_supervisor_and_publishes_on_the_role_topic(
    actor: pykka.ActorRef[ProbeActor], runtime: RecordingRuntime
) -> None:
    # Arrange
    runtime.decode_errors, runtime.gaps = 2, 5
    actor.tell(_inbound(AlertRaised(severity="info", code="a", detail="b")))

    # Act
    actor.ask(HeartbeatDue(), timeout=ASK_TIMEOUT_S)

    # Assert
    expected = Heartbeat(
        role="feed", pid=777, rss_mb=12.5, queue_depth=0, handled=1, last_handled="AlertRaised", decode_errors=2, gaps=5
    )
    assert runtime.sent == [expected]
    assert runtime.published == [(TOPIC_HEARTBEAT + "feed", expected, None)]


def test_a_stop_request_runs_the_hook_reports_clean_and_asks_to_exit_zero(
    actor: pykka.ActorRef[ProbeActor], runtime: RecordingRuntime
) -> None:
    # Act
    actor.ask(StopRequested(deadline_s=2.5, reason="ctl restart"), timeout=ASK_TIMEOUT_S)
    seen = _snapshot(actor)

    # Assert
    assert seen["shutdown_deadlines"] == [2.5]
    assert runtime.sent == [RoleStopping(role="feed", clean=True, detail="flushed 3 bars")]
    assert runtime.exit_codes == [0]
    ((kind, body, _corr),) = runtime.journaled
    assert kind == "role.stopped"
    assert body["clean"] is True
    assert body["summary"] == "flushed 3 bars"
    assert body["reason"] == "ctl restart"
    assert body["role"] == "feed"
    assert isinstance(body["elapsed_ms"], int)
    assert body["elapsed_ms"] >= 0


def test_a_failing_shutdown_hook_is_reported_unclean_and_asks_to_exit_one(runtime: RecordingRuntime) -> None:
    # Arrange
    ref = ProbeActor.start(runtime, hook_error=RuntimeError("disk full"))
    try:
        # Act
        ref.ask(StopRequested(deadline_s=1.0, reason="SIGTERM"), timeout=ASK_TIMEOUT_S)
    finally:
        ref.stop(block=True, timeout=ASK_TIMEOUT_S)

    # Assert
    assert runtime.sent == [RoleStopping(role="feed", clean=False, detail="shutdown hook failed: disk full")]
    assert runtime.exit_codes == [1]
    assert runtime.journaled[0][1]["clean"] is False


def test_unknown_messages_are_ignored(actor: pykka.ActorRef[ProbeActor], runtime: RecordingRuntime) -> None:
    answer = actor.ask("something else", timeout=ASK_TIMEOUT_S)

    assert answer is None
    assert (runtime.sent, runtime.published, runtime.journaled, runtime.exit_codes) == ([], [], [], [])
    assert _snapshot(actor)["handled"] == 0


def test_the_default_shutdown_hook_has_nothing_to_flush(runtime: RecordingRuntime) -> None:
    class PlainActor(RoleActor):
        ROLE: ClassVar[str] = "risk"

    ref = PlainActor.start(runtime)
    try:
        ref.ask(StopRequested(deadline_s=1.0, reason="x"), timeout=ASK_TIMEOUT_S)
    finally:
        ref.stop(block=True, timeout=ASK_TIMEOUT_S)

    assert runtime.sent == [RoleStopping(role="risk", clean=True, detail="nothing to flush")]
