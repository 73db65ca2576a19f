"""The system state machine: derived state, reasons, cool-down, latches, pause and shutdown."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from actors.core.errors import InvariantViolation
from actors.runtime.messages import SystemState
from supervisor.state import PAUSE_CODE, TRANSITIONS, Phase, StateMachine

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

S = SystemState
COOLDOWN_S = 10.0


def _ready_machine(now_s: float = 0.0) -> StateMachine:
    """A machine that has started and reconciled, settled to TRADING."""
    sm = StateMachine(cooldown_s=COOLDOWN_S)
    sm.children_up()
    assert sm.settle() is S.RECONCILING
    sm.reconciled()
    assert sm.settle() is S.TRADING
    return sm


def _raise(sm: StateMachine, code: str, *, latched: bool, now_s: float = 0.0) -> bool:
    return sm.raise_reason(code, f"{code} detail", latched=latched, now_s=now_s, now_ns=int(now_s * 1e9))


def _codes(sm: StateMachine) -> list[str]:
    return [r.code for r in sm.reasons(now_ns=0)]


# --- start-up -----------------------------------------------------------------------------------


def test_a_new_machine_is_starting_with_no_reasons() -> None:
    sm = StateMachine(cooldown_s=COOLDOWN_S)

    assert sm.state is S.STARTING
    assert sm.settle() is None
    assert sm.reasons(now_ns=0) == ()


def test_start_up_goes_through_reconciling_to_trading() -> None:
    sm = StateMachine(cooldown_s=COOLDOWN_S)

    sm.children_up()
    first = sm.settle()
    sm.reconciled()
    second = sm.settle()

    assert (first, second) == (S.RECONCILING, S.TRADING)
    assert sm.settle() is None


def test_a_transient_reason_before_start_up_completes_keeps_the_start_up_phase() -> None:
    sm = StateMachine(cooldown_s=COOLDOWN_S)
    _raise(sm, "role_down:feed", latched=False)

    assert sm.settle() is None
    assert sm.state is S.STARTING


def test_a_latched_reason_before_start_up_completes_means_no_trade() -> None:
    sm = StateMachine(cooldown_s=COOLDOWN_S)
    _raise(sm, "reconciliation_mismatch", latched=True)

    assert sm.settle() is S.NO_TRADE
    sm.children_up()
    assert sm.settle() is None
    sm.reconciled()
    assert sm.settle() is None
    assert sm.state is S.NO_TRADE


def test_a_saved_pause_at_start_lands_in_paused_after_reconciliation() -> None:
    sm = StateMachine(cooldown_s=COOLDOWN_S)
    sm.pause()

    sm.children_up()
    assert sm.settle() is S.RECONCILING
    sm.reconciled()
    assert sm.settle() is S.PAUSED


# --- reasons and cool-down -------------------------------------------------------------------------


def test_any_reason_after_start_up_means_no_trade() -> None:
    sm = _ready_machine()

    assert _raise(sm, "role_down:feed", latched=False) is True

    assert sm.settle() is S.NO_TRADE
    assert _codes(sm) == ["role_down:feed"]


def test_raising_the_same_reason_twice_is_not_new_and_updates_its_detail() -> None:
    sm = _ready_machine()
    _raise(sm, "role_down:feed", latched=False)

    again = sm.raise_reason("role_down:feed", "exit 9", latched=False, now_s=1.0, now_ns=1)

    assert again is False
    assert [(r.code, r.detail) for r in sm.reasons(now_ns=0)] == [("role_down:feed", "exit 9")]


def test_a_transient_reason_clears_only_after_its_cause_was_healthy_for_the_cooldown() -> None:
    # Arrange
    sm = _ready_machine()
    _raise(sm, "role_down:feed", latched=False, now_s=100.0)
    sm.settle()
    sm.cause_healthy("role_down:feed", now_s=105.0)

    # Act / Assert
    assert sm.expire(now_s=105.0 + COOLDOWN_S - 0.001) == []
    assert sm.settle() is None
    assert sm.expire(now_s=105.0 + COOLDOWN_S) == ["role_down:feed"]
    assert sm.settle() is S.TRADING


def test_a_transient_reason_never_clears_while_its_cause_is_unhealthy() -> None:
    sm = _ready_machine()
    _raise(sm, "role_down:feed", latched=False, now_s=0.0)

    assert sm.expire(now_s=10_000.0) == []
    assert _codes(sm) == ["role_down:feed"]


def test_a_relapse_during_the_cooldown_restarts_it() -> None:
    # Arrange
    sm = _ready_machine()
    _raise(sm, "role_down:feed", latched=False, now_s=0.0)
    sm.cause_healthy("role_down:feed", now_s=1.0)

    # Act: the cause fails again, then is healthy again later
    _raise(sm, "role_down:feed", latched=False, now_s=5.0)
    sm.cause_healthy("role_down:feed", now_s=8.0)

    # Assert
    assert sm.expire(now_s=1.0 + COOLDOWN_S) == []
    assert sm.expire(now_s=8.0 + COOLDOWN_S) == ["role_down:feed"]


def test_repeated_healthy_reports_do_not_move_the_start_of_the_cooldown() -> None:
    sm = _ready_machine()
    _raise(sm, "role_down:feed", latched=False)
    sm.cause_healthy("role_down:feed", now_s=1.0)
    sm.cause_healthy("role_down:feed", now_s=9.0)

    assert sm.expire(now_s=1.0 + COOLDOWN_S) == ["role_down:feed"]


def test_healthy_reports_for_an_unknown_reason_are_ignored() -> None:
    sm = _ready_machine()

    sm.cause_healthy("role_down:nobody", now_s=0.0)

    assert sm.expire(now_s=1000.0) == []
    assert sm.state is S.TRADING


def test_a_latched_reason_never_clears_by_cooldown_only_by_resume() -> None:
    # Arrange
    sm = _ready_machine()
    _raise(sm, "intensity_exceeded:feed", latched=True, now_s=0.0)
    sm.settle()

    # Act
    sm.cause_healthy("intensity_exceeded:feed", now_s=1.0)
    expired = sm.expire(now_s=1_000_000.0)

    # Assert
    assert expired == []
    assert sm.settle() is None
    assert sm.state is S.NO_TRADE
    assert sm.resume() == ["intensity_exceeded:feed"]
    assert sm.settle() is S.TRADING


def test_a_transient_reason_raised_again_as_latched_becomes_latched() -> None:
    sm = _ready_machine()
    _raise(sm, "journal_unwritable", latched=False)
    _raise(sm, "journal_unwritable", latched=True)

    sm.cause_healthy("journal_unwritable", now_s=0.0)

    assert sm.expire(now_s=1_000.0) == []
    assert [r.latched for r in sm.reasons(now_ns=0)] == [True]


def test_a_latched_reason_raised_again_as_transient_stays_latched() -> None:
    sm = _ready_machine()
    _raise(sm, "x", latched=True)
    _raise(sm, "x", latched=False)

    assert [r.latched for r in sm.reasons(now_ns=0)] == [True]


def test_resume_clears_latched_reasons_but_keeps_transient_ones() -> None:
    sm = _ready_machine()
    _raise(sm, "role_down:feed", latched=False, now_s=1.0)
    _raise(sm, "reconciliation_mismatch", latched=True, now_s=2.0)
    sm.settle()

    cleared = sm.resume()

    assert cleared == ["reconciliation_mismatch"]
    assert _codes(sm) == ["role_down:feed"]
    assert sm.settle() is None
    assert sm.state is S.NO_TRADE


def test_reasons_are_listed_oldest_first_with_their_since_time() -> None:
    sm = _ready_machine()
    sm.raise_reason("b", "second", latched=False, now_s=2.0, now_ns=2_000)
    sm.raise_reason("a", "first", latched=True, now_s=1.0, now_ns=1_000)

    reasons = sm.reasons(now_ns=5_000)

    assert [(r.code, r.since_ns, r.latched) for r in reasons] == [("a", 1_000, True), ("b", 2_000, False)]


# --- pause -----------------------------------------------------------------------------------------


def test_pause_moves_trading_to_paused_and_resume_moves_it_back() -> None:
    sm = _ready_machine()

    assert sm.pause() is True
    assert sm.settle() is S.PAUSED
    assert _codes(sm) == [PAUSE_CODE]

    assert sm.resume() == [PAUSE_CODE]
    assert sm.settle() is S.TRADING
    assert sm.reasons(now_ns=0) == ()


def test_pausing_twice_reports_no_change() -> None:
    sm = _ready_machine()
    sm.pause()

    assert sm.pause() is False
    assert sm.paused is True


def test_resume_with_nothing_to_clear_returns_an_empty_list() -> None:
    sm = _ready_machine()

    assert sm.resume() == []
    assert sm.settle() is None


def test_a_paused_system_with_another_reason_is_no_trade_with_the_pause_among_its_reasons() -> None:
    sm = _ready_machine()
    sm.pause()
    sm.settle()
    _raise(sm, "role_down:feed", latched=False)

    assert sm.settle() is S.NO_TRADE
    assert _codes(sm) == ["role_down:feed", PAUSE_CODE]

    sm.cause_healthy("role_down:feed", now_s=0.0)
    sm.expire(now_s=COOLDOWN_S)

    assert sm.settle() is S.PAUSED


def test_the_pause_reason_is_latched_and_stamped_with_the_time_asked() -> None:
    sm = _ready_machine()
    sm.pause()

    (reason,) = sm.reasons(now_ns=123)

    assert (reason.code, reason.latched, reason.since_ns) == (PAUSE_CODE, True, 123)


def test_the_pause_does_not_survive_resume_even_when_another_reason_remains() -> None:
    sm = _ready_machine()
    sm.pause()
    _raise(sm, "role_down:feed", latched=False)

    sm.resume()

    assert sm.paused is False
    assert PAUSE_CODE not in _codes(sm)


# --- transitions and shutdown ----------------------------------------------------------------------

_ILLEGAL = [(src, dst) for src in S for dst in S if dst not in TRANSITIONS[src] and dst is not src]


@pytest.mark.parametrize(("source", "target"), _ILLEGAL, ids=[f"{a}->{b}" for a, b in _ILLEGAL])
def test_an_illegal_transition_raises_an_invariant_violation(source: SystemState, target: SystemState) -> None:
    sm = StateMachine(cooldown_s=COOLDOWN_S)
    sm.state = source

    with pytest.raises(InvariantViolation, match="illegal state transition"):
        sm._go(target)
    assert sm.state is source


def test_stopped_without_shutting_down_first_is_illegal() -> None:
    sm = _ready_machine()

    with pytest.raises(InvariantViolation):
        sm.stopped()
    assert sm.state is S.TRADING


@pytest.mark.parametrize("paused", [False, True])
@pytest.mark.parametrize("with_reason", [False, True])
def test_shutdown_from_any_running_state_goes_to_shutting_down_then_stopped(paused: bool, with_reason: bool) -> None:
    # Arrange
    sm = _ready_machine()
    if paused:
        sm.pause()
    if with_reason:
        _raise(sm, "role_down:feed", latched=True)
    sm.settle()

    # Act
    began = sm.begin_shutdown()

    # Assert
    assert began is True
    assert sm.state is S.SHUTTING_DOWN
    assert sm.settle() is None
    assert sm.desired() is S.SHUTTING_DOWN
    sm.stopped()
    assert sm.state is S.STOPPED
    assert sm.settle() is None


def test_shutdown_while_starting_is_allowed() -> None:
    sm = StateMachine(cooldown_s=COOLDOWN_S)

    assert sm.begin_shutdown() is True
    assert sm.state is S.SHUTTING_DOWN


def test_shutdown_is_idempotent() -> None:
    sm = _ready_machine()
    sm.begin_shutdown()

    assert sm.begin_shutdown() is False
    sm.stopped()
    assert sm.begin_shutdown() is False
    assert sm.state is S.STOPPED


def test_reasons_and_resume_during_shutdown_do_not_leave_shutting_down() -> None:
    sm = _ready_machine()
    sm.begin_shutdown()

    _raise(sm, "role_down:feed", latched=True)
    sm.resume()

    assert sm.settle() is None
    assert sm.state is S.SHUTTING_DOWN


# --- property: the operations the supervisor performs never break the invariants -------------------


class SupervisorDrivenMachine(RuleBasedStateMachine):
    """Drive the machine the way ``supervisor.tree`` does, settling after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.sm = StateMachine(cooldown_s=COOLDOWN_S)
        self.now_s = 0.0

    def _settle(self) -> None:
        self.sm.settle()

    @rule(code=st.sampled_from(["role_down:feed", "role_down:risk", "hung:model"]))
    def transient_reason(self, code: str) -> None:
        _raise(self.sm, code, latched=False, now_s=self.now_s)
        self._settle()

    @rule(code=st.sampled_from(["reconciliation_mismatch", "intensity_exceeded:feed", "role_down:feed"]))
    def latched_reason(self, code: str) -> None:
        _raise(self.sm, code, latched=True, now_s=self.now_s)
        self._settle()

    @rule(code=st.sampled_from(["role_down:feed", "role_down:risk", "hung:model"]))
    def cause_healthy(self, code: str) -> None:
        self.sm.cause_healthy(code, self.now_s)
        self._settle()

    @rule(seconds=st.floats(min_value=0.0, max_value=2 * COOLDOWN_S))
    def time_passes(self, seconds: float) -> None:
        self.now_s += seconds
        self.sm.expire(self.now_s)
        self._settle()

    @rule()
    def pause(self) -> None:
        self.sm.pause()
        self._settle()

    @rule()
    def resume(self) -> None:
        self.sm.resume()
        self._settle()

    @rule()
    def all_roles_up(self) -> None:
        if self.sm.phase is not Phase.READY:
            self.sm.children_up()
        self._settle()

    @rule()
    def reconciled(self) -> None:
        self.sm.reconciled()
        self._settle()

    @rule()
    def shutdown(self) -> None:
        self.sm.begin_shutdown()

    @invariant()
    def never_trading_while_paused_or_with_a_reason(self) -> None:
        if self.sm.state is S.TRADING:
            assert not self.sm.paused
            assert self.sm.reasons(now_ns=0) == ()

    @invariant()
    def a_paused_ready_system_is_paused_or_no_trade_with_the_pause_listed(self) -> None:
        if self.sm.paused and self.sm.phase is Phase.READY and self.sm.state not in (S.SHUTTING_DOWN, S.STOPPED):
            assert self.sm.state in (S.PAUSED, S.NO_TRADE)
            assert PAUSE_CODE in _codes(self.sm)

    @invariant()
    def the_state_is_always_the_desired_one(self) -> None:
        assert self.sm.state is self.sm.desired()


SupervisorDrivenMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
test_the_supervisor_never_drives_the_machine_into_a_broken_state = SupervisorDrivenMachine.TestCase
