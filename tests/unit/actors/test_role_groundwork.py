"""The groundwork every role stands on: typed config, worker liveness, the clock, the registry."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pykka
import pytest

from actors.core.config import FeedConfig
from actors.core.errors import ConfigError
from actors.roles.feed import FeedActor
from actors.runtime import registry
from actors.runtime.actor import HeartbeatDue, Inbound, Permit, RoleActor
from actors.runtime.exitcodes import EXIT_ACTOR_FAILED
from actors.runtime.messages import Heartbeat, SystemState, SystemStateChanged, make_envelope
from tests.fakes import ManualClock, RecordingRuntime
from tests.helpers import poll_until

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

ASK_TIMEOUT_S = 5.0


class WorkerRole(RoleActor[None, Any]):
    """A role with one worker whose body the test chooses."""

    ROLE: ClassVar[str] = "risk"

    def __init__(self, runtime: RecordingRuntime, body: object) -> None:
        super().__init__(runtime)
        self.body = body

    def on_start(self) -> None:
        self.worker = self.start_worker("loop", self.body)  # type: ignore[arg-type]

    def stop_worker(self) -> bool:
        return self.worker.stop(2.0)

    def worker_alive(self) -> bool:
        return self.worker.alive()

    def allows(self) -> bool:
        return self.permit.allows_entry()


@pytest.fixture
def runtime() -> RecordingRuntime:
    return RecordingRuntime(role="risk")


def _started(runtime: RecordingRuntime, body: object) -> pykka.ActorRef[WorkerRole]:
    return WorkerRole.start(runtime, body)


@pytest.fixture
def stopper() -> Iterator[list[pykka.ActorRef[WorkerRole]]]:
    refs: list[pykka.ActorRef[WorkerRole]] = []
    yield refs
    for ref in refs:
        with contextlib.suppress(pykka.ActorDeadError):
            ref.stop(block=True, timeout=ASK_TIMEOUT_S)


def _beat_until_aborted(ref: pykka.ActorRef[WorkerRole], runtime: RecordingRuntime) -> list[tuple[int, str]]:
    # The socket thread tells (never asks) heartbeat ticks; a failure in a told message ends the role.
    poll_until(lambda: not ref.proxy().worker_alive().get(timeout=ASK_TIMEOUT_S), timeout_s=5, what="worker gone")
    ref.tell(HeartbeatDue())
    return poll_until(lambda: list(runtime.aborted), timeout_s=5, what="role aborted")


def test_a_worker_that_dies_fails_its_role_at_the_next_heartbeat(runtime: RecordingRuntime, stopper: list) -> None:
    # Arrange: a worker that dies as the reconciler's did on a bare int() of a malformed field.
    died = threading.Event()

    def body(stop: threading.Event) -> None:
        died.set()
        raise ValueError("invalid literal for int() with base 10: 'x'")

    ref = _started(runtime, body)
    stopper.append(ref)
    assert died.wait(5.0)

    # Act
    aborted = _beat_until_aborted(ref, runtime)

    # Assert: the role is reported broken (the real runtime ends the process; the supervisor restarts it)
    ((code, reason),) = aborted
    assert code == EXIT_ACTOR_FAILED
    assert "worker risk-loop died: ValueError" in reason
    assert not [b for b in runtime.sent if isinstance(b, Heartbeat)]  # no "healthy" heartbeat after it


def test_a_worker_whose_body_returns_on_its_own_also_fails_the_role(runtime: RecordingRuntime, stopper: list) -> None:
    returned = threading.Event()

    def body(stop: threading.Event) -> None:
        returned.set()

    ref = _started(runtime, body)
    stopper.append(ref)
    assert returned.wait(5.0)

    assert [reason for _, reason in _beat_until_aborted(ref, runtime)] == [
        "RuntimeError: worker risk-loop ended on its own"
    ]


def test_a_live_worker_and_a_worker_stopped_on_purpose_keep_the_role_healthy(
    runtime: RecordingRuntime, stopper: list
) -> None:
    ref = _started(runtime, lambda stop: stop.wait())
    stopper.append(ref)

    ref.ask(HeartbeatDue(), timeout=ASK_TIMEOUT_S)
    assert ref.proxy().stop_worker().get(timeout=ASK_TIMEOUT_S) is True
    ref.ask(HeartbeatDue(), timeout=ASK_TIMEOUT_S)

    assert runtime.aborted == []
    assert len([b for b in runtime.sent if isinstance(b, Heartbeat)]) == 2


def test_the_worker_dies_fault_hook_kills_the_first_worker_for_real(stopper: list) -> None:
    runtime = RecordingRuntime(role="risk", faults=("worker_dies",))
    ref = _started(runtime, lambda stop: stop.wait())
    stopper.append(ref)

    aborted = _beat_until_aborted(ref, runtime)

    assert "injected fault: worker_dies" in aborted[0][1]


def test_a_role_refuses_to_start_without_its_config_instead_of_using_defaults() -> None:
    with pytest.raises(ConfigError, match="feed: started without its FeedConfig"):
        FeedActor.start(RecordingRuntime(role="feed", role_config=None))


def test_a_role_without_a_config_section_refuses_one_it_was_not_meant_to_get() -> None:
    with pytest.raises(ConfigError, match="takes none"):
        WorkerRole.start(RecordingRuntime(role="risk", role_config=FeedConfig()), lambda stop: None)


def test_the_permit_reads_the_roles_injected_clock(stopper: list) -> None:
    # Arrange
    clock = ManualClock(wall_ns=10**18, mono_s=50.0)
    runtime = RecordingRuntime(role="risk", clock=clock)
    ref = _started(runtime, lambda stop: stop.wait())
    stopper.append(ref)
    state = SystemStateChanged(state=SystemState.TRADING, expires_ns=10**18 + 3 * 10**9, ttl_s=3.0)

    # Act
    ref.tell(Inbound(make_envelope(state, src="supervisor")))
    allows_now = ref.proxy().allows().get(timeout=ASK_TIMEOUT_S)
    clock.advance(2.9)
    allows_later = ref.proxy().allows().get(timeout=ASK_TIMEOUT_S)
    clock.advance(0.2)
    allows_expired = ref.proxy().allows().get(timeout=ASK_TIMEOUT_S)

    # Assert
    assert (allows_now, allows_later, allows_expired) == (True, True, False)


def test_a_wall_clock_step_back_does_not_extend_a_permit() -> None:
    clock = ManualClock(wall_ns=10**18, mono_s=50.0)
    permit = Permit(clock)
    permit.update(
        SystemStateChanged(state=SystemState.TRADING, expires_ns=10**18 + 3 * 10**9, ttl_s=3.0), src="supervisor"
    )
    clock.advance(3.5)
    clock.step_wall(-10.0)  # NTP steps the wall clock back

    assert permit.allows_entry() is False


def test_the_registry_lists_every_child_in_start_order_with_its_section() -> None:
    assert registry.role_names(with_emulator=True) == (
        "emulator",
        "watchdog",
        "reconciler",
        "feed",
        "model",
        "risk",
        "execution",
    )
    assert registry.role_names(with_emulator=False)[0] == "watchdog"
    assert registry.role_sections() == ("watchdog", "reconciler", "feed", "model", "risk", "execution")
    for spec in registry.ROLES:
        cls = registry.actor_class(spec.name)
        assert spec.name == cls.ROLE
        assert (cls.CONFIG is None) == (spec.section is None), spec.name
