"""Child specifications and restart intensity, in Erlang/OTP's words.

``SupervisorConfig`` holds the supervisor's keys (``[supervisor]`` in the TOML). ``ChildSpec``
says how one role is started and stopped (``child_specs`` derives them from the role registry,
``actors.roles``, in start order), ``Intensity`` decides whether a crashed child may be
restarted (at most ``max_restarts`` in ``period_s``) and after what backoff: the first restart
of a quiet period is immediate, repeated ones back off exponentially. This module is pure: no
processes, no sockets, and the clock is passed in.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from actors.runtime import registry


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorConfig:
    """The ``[supervisor]`` section."""

    heartbeat_interval_s: float = field(
        default=1.0, metadata={"doc": "How often each role sends a heartbeat.", "min": 0.05, "max": 10.0}
    )
    heartbeat_timeout_s: float = field(
        default=5.0,
        metadata={"doc": "A role silent this long is hung: it is killed and restarted.", "min": 0.2, "max": 600.0},
    )
    start_timeout_s: float = field(
        default=30.0,
        metadata={
            "doc": "A new role process must send its first heartbeat within this time.",
            "min": 1.0,
            "max": 600.0,
        },
    )
    max_start_failures: int = field(
        default=3,
        metadata={
            "doc": "A role whose start fails this many times in a row (no first heartbeat) stays down.",
            "min": 1,
            "max": 100,
        },
    )
    max_restarts: int = field(
        default=5,
        metadata={"doc": "Restart intensity: at most this many restarts of a role ...", "min": 0, "max": 1000},
    )
    restart_period_s: float = field(
        default=60.0,
        metadata={"doc": "... within this many seconds; past it the role stays down.", "min": 0.1, "max": 86400.0},
    )
    backoff_initial_s: float = field(
        default=0.1,
        metadata={
            "doc": "Delay before the second restart inside a period; doubles each time.",
            "min": 0.0,
            "max": 600.0,
        },
    )
    backoff_max_s: float = field(
        default=5.0, metadata={"doc": "Upper bound of the restart backoff.", "min": 0.0, "max": 600.0}
    )
    cooldown_s: float = field(
        default=10.0,
        metadata={
            "doc": "A transient no-trade reason clears after its cause was healthy this long.",
            "min": 0.0,
            "max": 86400.0,
        },
    )
    shutdown_timeout_s: float = field(
        default=3.0,
        metadata={"doc": "Deadline for each role's shutdown hook; then it is killed.", "min": 0.1, "max": 300.0},
    )
    state_interval_s: float = field(
        default=1.0,
        metadata={"doc": "How often sys.state is published even without a change.", "min": 0.05, "max": 10.0},
    )
    shutdown_protection_s: float = field(
        default=15.0,
        metadata={
            "doc": "At shutdown the execution role retries the SL/TP check of open trades this long "
            "(its shutdown deadline is shutdown_timeout_s plus this); unverified trades: exit 4.",
            "min": 0.5,
            "max": 600.0,
        },
    )
    permit_ttl_s: float = field(
        default=3.0,
        metadata={"doc": "A TRADING permit expires this long after it was published.", "min": 0.1, "max": 30.0},
    )


class RestartPolicy(enum.StrEnum):
    """OTP restart values: ``permanent`` children are always restarted."""

    PERMANENT = "permanent"
    TEMPORARY = "temporary"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """How the supervisor starts, watches and stops one role.

    Attributes:
        role: the role's name.
        restart: OTP restart value.
        shutdown_timeout_s: the role's shutdown deadline.
        others_wait: the roles after this one start only once it has heartbeated (the emulator:
            its server listens by then).
        protection_s: how long the role's shutdown hook retries the SL/TP check of open trades
            (included in ``shutdown_timeout_s``; 0 for roles that do not check).
    """

    role: str
    restart: RestartPolicy = RestartPolicy.PERMANENT
    shutdown_timeout_s: float = 3.0
    others_wait: bool = False
    protection_s: float = 0.0


def child_specs(sup: SupervisorConfig, *, with_emulator: bool) -> tuple[ChildSpec, ...]:
    """The tree's children in start order, from the role registry."""
    out = []
    for name in registry.role_names(with_emulator=with_emulator):
        role = registry.spec(name)
        protection_s = sup.shutdown_protection_s if role.verifies_protection else 0.0
        out.append(
            ChildSpec(
                role=name,
                shutdown_timeout_s=sup.shutdown_timeout_s + protection_s,
                others_wait=role.others_wait,
                protection_s=protection_s,
            )
        )
    return tuple(out)


class Intensity:
    """OTP restart intensity with exponential backoff.

    Args:
        max_restarts: restarts allowed inside one period.
        period_s: the sliding window.
        backoff_initial_s: delay of the second restart inside a window.
        backoff_max_s: cap of the delay.
    """

    def __init__(self, max_restarts: int, period_s: float, backoff_initial_s: float, backoff_max_s: float) -> None:
        self.max_restarts = max_restarts
        self.period_s = period_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._restarts: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._restarts and now - self._restarts[0] > self.period_s:
            self._restarts.popleft()

    def record(self, now: float) -> float | None:
        """Record a crash at ``now``; return the delay before restarting, or None if exceeded."""
        self._trim(now)
        if len(self._restarts) >= self.max_restarts:
            return None
        recent = len(self._restarts)
        self._restarts.append(now)
        if recent == 0:
            return 0.0
        delay: float = self.backoff_initial_s * 2.0 ** (recent - 1)
        return min(self.backoff_max_s, delay)

    def recent(self, now: float) -> int:
        """How many restarts lie inside the current window."""
        self._trim(now)
        return len(self._restarts)

    def reset(self) -> None:
        """Forget past restarts (an operator restarted the role by hand)."""
        self._restarts.clear()
