"""The control vocabulary: what a role and the supervisor tell each other about the tree's life.

Heartbeats, the stop command and its answer, a reconciliation done, a role's request to stop
trading (or its word that the cause is healthy again) or to restart another role, the alerts a
human must hear about, the operator's ``ctl reconcile``, and the scaffold roles' free-form event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from actors.runtime.messages.body import Body


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(Body):
    """A child is alive: sent every second by its actor (so a hung actor stops sending)."""

    TYPE: ClassVar[str] = "Heartbeat"
    role: str
    pid: int
    rss_mb: float
    queue_depth: int
    handled: int
    last_handled: str | None = None
    decode_errors: int = 0
    gaps: int = 0
    dropped: int = 0
    handler_errors: int = 0
    gc_full: int = 0  # full garbage collections since the process started (host.gc_interval_s)
    gc_max_ms: float = 0.0  # the longest of them (ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciliationCompleted(Body):
    """The reconciler has brought local state in line with the broker (or has nothing to do)."""

    TYPE: ClassVar[str] = "ReconciliationCompleted"
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRole(Body):
    """Command to a child: run your shutdown hook within ``deadline_s`` and exit 0."""

    TYPE: ClassVar[str] = "StopRole"
    deadline_s: float
    reason: str = ""
    protection_s: float = 0.0  # the execution role: how long it retries the SL/TP check of open trades


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleStopping(Body):
    """A child has run its shutdown hook and is about to exit."""

    TYPE: ClassVar[str] = "RoleStopping"
    role: str
    clean: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRaised(Body):
    """Something a human must hear about (the watchdog mails it)."""

    TYPE: ClassVar[str] = "AlertRaised"
    severity: str
    code: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertCleared(Body):
    """The cause of an earlier ``AlertRaised`` is healthy again (the watchdog mails a recovery)."""

    TYPE: ClassVar[str] = "AlertCleared"
    code: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class NoTradeRequested(Body):
    """A role asks the supervisor to stop trading for ``code`` (a reason code of
    ``supervisor.health.REASONS``: the table says who may raise it and whether it latches);
    ``latch`` latches a code that is otherwise transient (an unprotected trade that could not even
    be closed)."""

    TYPE: ClassVar[str] = "NoTradeRequested"
    code: str
    detail: str
    latch: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CauseHealthy(Body):
    """A role reports that the cause of a transient reason it may raise is healthy again."""

    TYPE: ClassVar[str] = "CauseHealthy"
    code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartRequested(Body):
    """The watchdog asks the supervisor to restart a role (e.g. over its memory limit)."""

    TYPE: ClassVar[str] = "RestartRequested"
    role: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileNow(Body):
    """Command to the reconciler: a full reconciliation now (``ctl reconcile``)."""

    TYPE: ClassVar[str] = "ReconcileNow"
    why: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleEvent(Body):
    """A free-form event (a kind and a dict). No role sends one: it is the vocabulary's one body
    with a dict field, which the message tests and the bus benchmark use."""

    TYPE: ClassVar[str] = "RoleEvent"
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)
