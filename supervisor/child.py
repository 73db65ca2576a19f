"""``Child``: the supervisor's controller of one child process, and its status vocabulary.

One ``Child`` per role. It knows the process (pid, control-channel identity, first and last
heartbeat), its restart bookkeeping (OTP intensity, consecutive failed starts, the backoff
deadline) and why it is being killed or stopped, and it answers the supervisor's two questions
on each tick: is a restart due, and is the process hung, late or healthy? Control flow runs on
``ChildStatus`` and ``KillCause`` enums, never on strings. Pure: no processes, no sockets; the
monotonic time is passed in.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass

from actors.runtime.exitcodes import MEANINGS
from actors.runtime.messages import Heartbeat
from supervisor.childspec import ChildSpec, Intensity, SupervisorConfig

__all__ = ["Child", "ChildStatus", "KillCause", "Tock", "child_status", "describe_exit", "make_children"]

LATE_HEARTBEATS = 3  # heartbeat intervals of silence before a role counts as unhealthy


class ChildStatus(enum.StrEnum):
    """Where a child is in its life (shown as ``status`` in ``ctl status``)."""

    STARTING = "starting"  # spawned, no heartbeat yet
    RUNNING = "running"  # heartbeating
    RESTARTING = "restarting"  # crashed; waiting for its backoff to end
    FAILED = "failed"  # past its restart intensity: stays down until `ctl restart`
    STOPPING = "stopping"  # asked to stop (shutdown or ctl restart)
    STOPPED = "stopped"  # not running, on purpose


ALIVE = frozenset({ChildStatus.STARTING, ChildStatus.RUNNING, ChildStatus.STOPPING})


class KillCause(enum.StrEnum):
    """Why the supervisor sent SIGKILL."""

    HUNG = "hung"  # running, but no heartbeat for heartbeat_timeout_s
    START_TIMEOUT = "start_timeout"  # no first heartbeat within start_timeout_s
    SHUTDOWN_DEADLINE = "shutdown_deadline"  # missed its shutdown deadline


class Tock(enum.Enum):
    """What a tick found out about a child."""

    NOTHING = enum.auto()
    RESTART_DUE = enum.auto()
    HUNG = enum.auto()
    START_TIMEOUT = enum.auto()
    LATE = enum.auto()
    HEALTHY = enum.auto()
    SHUTDOWN_DEADLINE = enum.auto()


def describe_exit(code: int | None) -> str:
    """A one-line cause for an exit code (negative: killed by a signal; None: unknown)."""
    if code is None:
        return "exited with an unknown status (its forkserver died first)"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    meaning = MEANINGS.get(code)
    return f"exited with status {code}" + (f" ({meaning})" if meaning and code else "")


@dataclass
class Child:
    """What the supervisor knows about one role, and the rules it applies to it."""

    spec: ChildSpec
    intensity: Intensity
    max_start_failures: int = 3
    status: ChildStatus = ChildStatus.STOPPED
    pid: int | None = None
    identity: bytes = b""
    started_at: float = 0.0
    last_heartbeat_at: float | None = None
    last_heartbeat: Heartbeat | None = None
    restarts: int = 0
    start_failures: int = 0  # consecutive starts that never heartbeated
    restart_at: float | None = None
    kill_cause: KillCause | None = None
    kill_detail: str = ""
    stop_deadline: float | None = None
    exited_at: float | None = None
    restart_after_stop: bool = False
    shutdown_outcome: str = ""

    @property
    def role(self) -> str:
        """The role's name."""
        return self.spec.role

    @property
    def alive(self) -> bool:
        """True while a process of this role exists (starting, running or stopping)."""
        return self.pid is not None and self.status in ALIVE

    def spawned(self, pid: int, now: float) -> None:
        """A new process of this role was started."""
        self.status = ChildStatus.STARTING
        self.pid = pid
        self.identity = f"{self.role}/{pid}".encode()
        self.started_at = now
        self.last_heartbeat_at = None
        self.last_heartbeat = None
        self.kill_cause = None
        self.kill_detail = ""
        self.stop_deadline = None
        self.restart_at = None
        self.restart_after_stop = False
        self.shutdown_outcome = ""

    def heartbeat(self, beat: Heartbeat, now: float) -> bool:
        """Record a heartbeat; True when it is the first one (the role just came up)."""
        self.last_heartbeat_at = now
        self.last_heartbeat = beat
        if self.status is ChildStatus.STARTING:
            self.status = ChildStatus.RUNNING
            self.start_failures = 0
            return True
        return False

    def exited(self, now: float) -> bool:
        """The process is gone; returns True when it never heartbeated (a failed start)."""
        failed_start = self.status is ChildStatus.STARTING
        self.pid = None
        self.exited_at = now
        return failed_start

    def crashed(self, now: float, *, failed_start: bool) -> float | None:
        """Decide the restart after a crash: the delay, or None when the role must stay down
        (past its OTP intensity, or ``max_start_failures`` starts in a row that never came up)."""
        if failed_start:
            self.start_failures += 1
        delay = self.intensity.record(now)
        if delay is None or self.start_failures >= self.max_start_failures:
            self.status = ChildStatus.FAILED
            return None
        self.status = ChildStatus.RESTARTING
        self.restart_at = now + delay
        self.restarts += 1
        return delay

    def kill(self, cause: KillCause, detail: str) -> None:
        """Record why the supervisor is about to SIGKILL the process."""
        self.kill_cause = cause
        self.kill_detail = detail
        if cause is KillCause.SHUTDOWN_DEADLINE:
            self.shutdown_outcome = "killed after missing its shutdown deadline"

    def stop_requested(self, now: float) -> None:
        """The supervisor asked the process to stop (graceful, with a deadline)."""
        self.status = ChildStatus.STOPPING
        self.stop_deadline = now + self.spec.shutdown_timeout_s

    def revived(self) -> None:
        """An operator restart: forget past restarts and failed starts."""
        self.intensity.reset()
        self.start_failures = 0

    def tick(
        self, now: float, *, heartbeat_interval_s: float, heartbeat_timeout_s: float, start_timeout_s: float
    ) -> tuple[Tock, str]:
        """What is due for this child at ``now``, and the one-line cause for the journal."""
        if self.status is ChildStatus.RESTARTING:
            due = self.restart_at is not None and self.restart_at <= now
            return (Tock.RESTART_DUE, "") if due else (Tock.NOTHING, "")
        if self.pid is None or self.kill_cause is not None:
            return Tock.NOTHING, ""
        silent = self.silent_s(now)
        if self.status is ChildStatus.STARTING:
            if silent > start_timeout_s:
                return Tock.START_TIMEOUT, f"no first heartbeat within {start_timeout_s:g}s"
            return Tock.NOTHING, ""
        if self.status is ChildStatus.RUNNING:
            if silent > heartbeat_timeout_s:
                return Tock.HUNG, f"hung: no heartbeat for {silent:.1f}s"
            if silent > LATE_HEARTBEATS * heartbeat_interval_s:
                return Tock.LATE, f"{self.role} heartbeat late ({silent:.1f}s)"
            return Tock.HEALTHY, ""
        if self.status is ChildStatus.STOPPING and self.stop_deadline is not None and now > self.stop_deadline:
            return Tock.SHUTDOWN_DEADLINE, f"missed its shutdown deadline of {self.spec.shutdown_timeout_s:g}s"
        return Tock.NOTHING, ""

    def grace(self, now: float) -> None:
        """The supervisor itself did not run for a while: start this child's silence over."""
        if self.last_heartbeat_at is not None:
            self.last_heartbeat_at = now
        elif self.status is ChildStatus.STARTING:
            self.started_at = now

    def failed_why(self) -> str:
        """Why a FAILED child stays down, in words."""
        if self.start_failures >= self.max_start_failures:
            return f"failed to start {self.start_failures} times in a row"
        return f"restarted {self.intensity.max_restarts} times within {self.intensity.period_s:g}s"

    def silent_s(self, now: float) -> float:
        """Seconds since the last heartbeat (or the start)."""
        return now - (self.last_heartbeat_at or self.started_at)


def make_children(specs: tuple[ChildSpec, ...], sup: SupervisorConfig) -> dict[str, Child]:
    """One ``Child`` per spec, in start order, with the supervisor's limits."""
    return {
        spec.role: Child(
            spec=spec,
            intensity=Intensity(sup.max_restarts, sup.restart_period_s, sup.backoff_initial_s, sup.backoff_max_s),
            max_start_failures=sup.max_start_failures,
        )
        for spec in specs
    }


def child_status(child: Child, now: float) -> dict[str, object]:
    """One role's entry in the status document (``actors`` in ``ctl status --json``)."""
    hb = child.last_heartbeat
    return {
        "pid": child.pid,
        "alive": child.alive,
        "status": child.status.value,
        "restarts": child.restarts,
        "heartbeat_age_s": round(now - child.last_heartbeat_at, 3) if child.last_heartbeat_at else None,
        "rss_mb": hb.rss_mb if hb else None,
        "queue_depth": hb.queue_depth if hb else None,
        "handled": hb.handled if hb else None,
        "decode_errors": hb.decode_errors if hb else None,
        "gaps": hb.gaps if hb else None,
        "dropped": hb.dropped if hb else None,
        "handler_errors": hb.handler_errors if hb else None,
        "gc_full": hb.gc_full if hb else None,
        "gc_max_ms": hb.gc_max_ms if hb else None,
        "uptime_s": round(now - child.started_at, 1) if child.pid is not None else None,
    }
