"""The system state machine and the no-trade reasons; the supervisor alone drives it.

States (DESIGN §3): ``STARTING → RECONCILING → TRADING ⇄ PAUSED``, any state → ``NO_TRADE``,
then ``SHUTTING_DOWN → STOPPED``. The state is *derived* from the reasons, the pause latch and
the ``Phase``, which the machine owns: ``WAITING_FOR_CHILDREN`` until every child is up
(``children_up``), ``RECONCILING`` until the reconciler reports (``reconciled``), then ``READY``;
``require_reconciliation`` goes back to ``RECONCILING`` (after a reconciler or emulator restart,
or when the REST API is back). Until ``READY`` the state is ``STARTING``/``RECONCILING``
(``NO_TRADE`` if a latched reason is present); after that it is ``NO_TRADE`` while any reason
other than the operator's pause is present, else ``PAUSED`` while the pause latch is set, else
``TRADING``. Transient reasons clear by themselves once their cause has
been healthy for ``cooldown_s``; latched reasons and the pause clear only with ``resume``.
Illegal transitions raise ``InvariantViolation``. Pure: the clock is passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from actors.core.errors import InvariantViolation
from actors.runtime.messages import Reason, SystemState

S = SystemState

TRANSITIONS: dict[SystemState, frozenset[SystemState]] = {
    S.STARTING: frozenset({S.RECONCILING, S.NO_TRADE, S.SHUTTING_DOWN}),
    S.RECONCILING: frozenset({S.TRADING, S.PAUSED, S.NO_TRADE, S.STARTING, S.SHUTTING_DOWN}),
    S.TRADING: frozenset({S.PAUSED, S.NO_TRADE, S.RECONCILING, S.SHUTTING_DOWN}),
    S.PAUSED: frozenset({S.TRADING, S.NO_TRADE, S.RECONCILING, S.SHUTTING_DOWN}),
    S.NO_TRADE: frozenset({S.TRADING, S.PAUSED, S.STARTING, S.RECONCILING, S.SHUTTING_DOWN}),
    S.SHUTTING_DOWN: frozenset({S.STOPPED}),
    S.STOPPED: frozenset(),
}

PAUSE_CODE = "operator_pause"


class Phase(enum.Enum):
    """Where the start-up and reconciliation cycle stands."""

    WAITING_FOR_CHILDREN = enum.auto()
    RECONCILING = enum.auto()
    READY = enum.auto()


@dataclass
class _ReasonState:
    code: str
    detail: str
    latched: bool
    since_s: float
    since_ns: int
    healthy_since_s: float | None = None


class StateMachine:
    """System state, reasons and the pause latch.

    Args:
        cooldown_s: how long a transient cause must stay healthy before its reason clears.
    """

    def __init__(self, cooldown_s: float) -> None:
        self.cooldown_s = cooldown_s
        self.state = S.STARTING
        self.paused = False
        self.phase = Phase.WAITING_FOR_CHILDREN
        self._reasons: dict[str, _ReasonState] = {}

    # --- reasons ---

    def raise_reason(self, code: str, detail: str, *, latched: bool, now_s: float, now_ns: int) -> bool:
        """Add a reason (or mark its cause unhealthy again). Returns True if it is new."""
        current = self._reasons.get(code)
        if current is not None:
            current.healthy_since_s = None
            current.detail = detail
            current.latched = current.latched or latched
            return False
        self._reasons[code] = _ReasonState(code, detail, latched, now_s, now_ns)
        return True

    def cause_healthy(self, code: str, now_s: float) -> None:
        """The cause of a transient reason is healthy again; its cool-down starts now."""
        current = self._reasons.get(code)
        if current is not None and not current.latched and current.healthy_since_s is None:
            current.healthy_since_s = now_s

    def expire(self, now_s: float) -> list[str]:
        """Drop transient reasons whose cause has been healthy for the cool-down."""
        cleared = [
            r.code
            for r in self._reasons.values()
            if not r.latched and r.healthy_since_s is not None and now_s - r.healthy_since_s >= self.cooldown_s
        ]
        for code in cleared:
            del self._reasons[code]
        return cleared

    def clear(self, code: str) -> bool:
        """Drop one reason whatever its kind (a latch whose own rule lifts it, e.g. the daily loss
        limit at the next trading day); returns True if it was there."""
        return self._reasons.pop(code, None) is not None

    def is_latched(self, code: str) -> bool:
        """True if ``code`` is present and latched."""
        current = self._reasons.get(code)
        return current is not None and current.latched

    def reasons(self, now_ns: int) -> tuple[Reason, ...]:
        """The current reasons as messages, the operator pause included while it matters."""
        out = [
            Reason(code=r.code, detail=r.detail, latched=r.latched, since_ns=r.since_ns)
            for r in sorted(self._reasons.values(), key=lambda r: r.since_s)
        ]
        if self.paused:
            out.append(Reason(code=PAUSE_CODE, detail="paused by operator (ctl pause)", latched=True, since_ns=now_ns))
        return tuple(out)

    # --- phase ---

    def children_up(self) -> None:
        """Every child has heartbeated: at start, reconciliation comes next."""
        if self.phase is Phase.WAITING_FOR_CHILDREN:
            self.phase = Phase.RECONCILING

    def require_reconciliation(self) -> bool:
        """Local state may no longer match the broker: reconcile before trading again.

        Returns False when nothing changes (the start-up is not through, or a reconciliation is
        already pending).
        """
        if self.phase is not Phase.READY:
            return False
        self.phase = Phase.RECONCILING
        return True

    def reconciled(self) -> None:
        """The reconciler reported completion."""
        if self.phase is Phase.RECONCILING:
            self.phase = Phase.READY

    # --- operator latches ---

    def pause(self) -> bool:
        """Set the operator pause; returns False if it was already set."""
        was = self.paused
        self.paused = True
        return not was

    def resume(self, keep: Callable[[str], bool] = lambda code: False) -> list[str]:
        """Clear the pause and every latched reason but those ``keep`` names (a latch only its own
        rule lifts, e.g. the daily loss limit); returns what was cleared."""
        cleared = [code for code, r in self._reasons.items() if r.latched and not keep(code)]
        for code in cleared:
            del self._reasons[code]
        if self.paused:
            cleared.append(PAUSE_CODE)
        self.paused = False
        return cleared

    # --- state ---

    def desired(self) -> SystemState:
        """The state the reasons, latches and phase call for."""
        if self.state in (S.SHUTTING_DOWN, S.STOPPED):
            return self.state
        latched = any(r.latched for r in self._reasons.values())
        if self.phase is not Phase.READY:
            if latched:
                return S.NO_TRADE
            return S.RECONCILING if self.phase is Phase.RECONCILING else S.STARTING
        if self._reasons:
            return S.NO_TRADE
        return S.PAUSED if self.paused else S.TRADING

    def settle(self) -> SystemState | None:
        """Move to the desired state; returns the new state, or None if nothing changed."""
        target = self.desired()
        if target == self.state:
            return None
        self._go(target)
        return target

    def begin_shutdown(self) -> bool:
        """Enter SHUTTING_DOWN; returns False if already shutting down or stopped."""
        if self.state in (S.SHUTTING_DOWN, S.STOPPED):
            return False
        self._go(S.SHUTTING_DOWN)
        return True

    def stopped(self) -> None:
        """The tree is down."""
        self._go(S.STOPPED)

    def _go(self, target: SystemState) -> None:
        if target not in TRANSITIONS[self.state]:
            raise InvariantViolation(f"illegal state transition {self.state} -> {target}")
        self.state = target
