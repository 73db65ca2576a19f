"""Fakes that record what they receive, for unit tests (STYLE "Tests": unit tests use fakes).

- ``FakeSupervisor`` implements ``supervisor.ctl.commands.base.Controllable``: the ctl commands and
  ``supervisor.ctl.server.dispatch`` run against it without a process tree.
- ``ManualClock`` implements ``actors.core.clock.Clock``: time moves only when a test moves it.
- ``permit_of(allow)``: a real ``actors.runtime.actor.Permit`` that grants entry, or not.
- ``RecordingRuntime`` implements ``actors.runtime.actor.RoleRuntime``: a ``RoleActor`` started with it
  publishes, reports, journals and asks to exit into plain lists.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from actors.broker import Broker
from actors.runtime.messages import Body
from supervisor.ctl.commands.errors import REFUSED, CommandError


def permit_of(allow: bool) -> Any:
    """A ``Permit`` holding an unexpiring TRADING state (``allow``) or none at all."""
    from actors.runtime.actor import Permit
    from actors.runtime.messages import SystemState, SystemStateChanged

    permit = Permit()
    if allow:
        permit.update(SystemStateChanged(state=SystemState.TRADING, expires_ns=10**30, reasons=(), ttl_s=1e9),
                      src=Permit.SOURCE)  # fmt: skip
    return permit


class ManualClock:
    """A clock that moves only when told to (an ``actors.core.clock.Clock``).

    Args:
        wall_ns: the starting UTC wall time in nanoseconds.
        mono_s: the starting monotonic reading.
    """

    def __init__(self, wall_ns: int = 1_700_000_000 * 10**9, mono_s: float = 1000.0) -> None:
        self._lock = threading.Lock()
        self._wall_ns = wall_ns
        self._mono_s = mono_s

    def time_ns(self) -> int:
        """The current manual wall time."""
        with self._lock:
            return self._wall_ns

    def monotonic(self) -> float:
        """The current manual monotonic reading."""
        with self._lock:
            return self._mono_s

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError("a clock never goes backwards")
        with self._lock:
            self._mono_s += seconds
            self._wall_ns += round(seconds * 1e9)

    def step_wall(self, seconds: float) -> None:
        """Step only the wall clock (as NTP may): monotonic deadlines must not move."""
        with self._lock:
            self._wall_ns += round(seconds * 1e9)


class FakeSupervisor:
    """A ``Controllable`` that keeps a pause latch and a state, and records every call.

    Args:
        state: the state it reports before any command.
        status_doc: what ``status()`` returns (a minimal document by default).

    ``fail_with[name] = exc`` makes the method ``name`` raise ``exc`` instead.
    """

    def __init__(self, *, state: str = "TRADING", status_doc: dict[str, Any] | None = None) -> None:
        self.state = state
        self.paused = False
        self.shutting_down = False
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail_with: dict[str, BaseException] = {}
        self.status_doc = status_doc

    def _enter(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        error = self.fail_with.get(name)
        if error is not None:
            raise error

    def status(self) -> dict[str, Any]:
        """The status document."""
        self._enter("status")
        if self.status_doc is not None:
            return self.status_doc
        return {
            "state": self.state,
            "reasons": [],
            "paused": self.paused,
            "mode": "shadow",
            "pid": 1,
            "uptime_s": 0.0,
            "actors": {},
            "broker": {"connected": None, "last_ok": None},
            "positions": None,
            "daily_pnl": None,
            "dd_zone": None,
        }

    def pause(self) -> dict[str, Any]:
        """Set the pause latch."""
        self._enter("pause")
        changed = not self.paused
        self.paused = True
        if self.state == "TRADING":
            self.state = "PAUSED"
        return {"message": "paused" if changed else "already paused", "changed": changed, "state": self.state}

    def resume(self) -> dict[str, Any]:
        """Clear the pause latch."""
        self._enter("resume")
        cleared = ["operator_pause"] if self.paused else []
        self.paused = False
        if self.state == "PAUSED":
            self.state = "TRADING"
        return {"message": "resumed" if cleared else "nothing to resume", "cleared": cleared, "state": self.state}

    def shutdown(self, trigger: str) -> dict[str, Any]:
        """Begin shutting down (idempotent)."""
        self._enter("shutdown", trigger)
        if self.shutting_down:
            return {"message": "already shutting down", "state": self.state}
        self.shutting_down = True
        self.state = "SHUTTING_DOWN"
        return {"message": "shutting down", "state": self.state}

    def reconcile(self) -> dict[str, Any]:
        """Pretend to reconcile; refused while shutting down."""
        self._enter("reconcile")
        if self.shutting_down:
            raise CommandError(REFUSED, "refused: reconcile while shutting down")
        return {"message": "reconciling now", "state": "RECONCILING"}

    def flatten(self, confirmed: bool) -> dict[str, Any]:
        """Refuse without confirmation; else pause."""
        self._enter("flatten", confirmed)
        if not confirmed:
            raise CommandError(REFUSED, "would close 0 open trades; run `tradehost ctl flatten --yes`")
        self.paused = True
        return {"message": "closing 0 open trades; paused", "trades": [], "state": "PAUSED"}

    def restart_role(self, role: str) -> dict[str, Any]:
        """Pretend to restart ``role``; refused while shutting down."""
        self._enter("restart_role", role)
        if self.shutting_down:
            raise CommandError(REFUSED, f"refused: restart {role} while shutting down")
        return {"message": f"{role} is stopping and will be started again", "pid": 4242}


class RecordingRuntime:
    """A ``RoleRuntime`` that records what the actor sends, journals and asks for.

    Args:
        role: the role's name.
        pid: what heartbeats report.
        role_config: the config object the actor gets (its ``CONFIG`` class decides what fits).
        broker: what ``open_broker`` returns (an ``InMemoryBroker`` usually); None: no broker.
        clock: the clock the actor reads (a ``ManualClock`` by default).
        faults: fault names ``injected()`` answers True for.
    """

    def __init__(
        self,
        role: str = "feed",
        *,
        pid: int = 4242,
        role_config: object = None,
        broker: Broker | None = None,
        clock: Any = None,
        mode: str = "shadow",
        faults: tuple[str, ...] = (),
        shared: dict[str, object] | None = None,
    ) -> None:
        self.role = role
        self.shared_config = shared or {}
        self.root_pid = 1
        self.host_id = "testhost"
        self.journal_db: Any = None  # give a real actors.runtime.journal.Journal where a test reads it
        self.pid = pid
        self.mode = mode
        self.role_config = role_config
        self.clock = clock if clock is not None else ManualClock()
        self.broker = broker
        self.faults = faults
        self.aborted: list[tuple[int, str]] = []
        self.outcome_hooks: list[Callable[[bool, str], None] | None] = []
        self._lock = threading.Lock()
        self.published: list[tuple[str, Body, str | None]] = []
        self.sent: list[Body] = []
        self.journaled: list[tuple[str, dict[str, Any], str | None]] = []
        self.exit_codes: list[int] = []
        self.decode_errors = 0
        self.gaps = 0

    def publish(self, topic: str, body: Body, *, corr: str | None = None) -> None:
        """Record a publish."""
        with self._lock:
            self.published.append((topic, body, corr))

    def to_supervisor(self, body: Body) -> None:
        """Record a message to the supervisor."""
        with self._lock:
            self.sent.append(body)

    def journal(self, kind: str, body: dict[str, Any], *, corr: str | None = None) -> None:
        """Record a journal entry."""
        with self._lock:
            self.journaled.append((kind, body, corr))

    def journal_many(self, rows: list[tuple[str, dict[str, Any], str | None, int]]) -> None:
        """Record several journal entries."""
        with self._lock:
            self.journaled.extend((kind, body, corr) for kind, body, corr, _ts in rows)

    def heartbeat_fields(self) -> dict[str, Any]:
        """Fixed heartbeat fields."""
        return {"pid": self.pid, "rss_mb": 12.5, "decode_errors": self.decode_errors, "gaps": self.gaps}

    def request_exit(self, code: int) -> None:
        """Record the exit request."""
        with self._lock:
            self.exit_codes.append(code)

    def abort(self, code: int, reason: str) -> None:
        """Record that the actor failed (a real runtime ends the process here)."""
        with self._lock:
            self.aborted.append((code, reason))

    def injected(self, fault: str) -> bool:
        """True for the faults this runtime was built with."""
        return fault in self.faults

    def open_broker(
        self, *, on_request_outcome: Callable[[bool, str], None] | None = None, slippage_pips: float = 0.0
    ) -> Broker:
        """The broker given at construction."""
        if self.broker is None:
            raise RuntimeError("RecordingRuntime has no broker")
        self.outcome_hooks.append(on_request_outcome)
        return self.broker
