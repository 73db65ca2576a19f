"""Fakes that record what they receive, for unit tests (STYLE "Tests": unit tests use fakes).

- ``FakeSupervisor`` implements ``supervisor.commands.base.Controllable``: the ctl commands and
  ``supervisor.control.dispatch`` run against it without a process tree.
- ``RecordingRuntime`` implements ``actors.base.RoleRuntime``: a ``RoleActor`` started with it
  publishes, reports, journals and asks to exit into plain lists.
"""

from __future__ import annotations

import threading
from typing import Any

from actors.messages import Body
from supervisor.commands.errors import REFUSED, CommandError


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

    def restart_role(self, role: str) -> dict[str, Any]:
        """Pretend to restart ``role``; refused while shutting down."""
        self._enter("restart_role", role)
        if self.shutting_down:
            raise CommandError(REFUSED, f"refused: restart {role} while shutting down")
        return {"message": f"{role} is stopping and will be started again", "pid": 4242}


class RecordingRuntime:
    """A ``RoleRuntime`` that records what the actor sends, journals and asks for."""

    def __init__(self, role: str = "feed", *, pid: int = 4242) -> None:
        self.role = role
        self.pid = pid
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

    def heartbeat_fields(self) -> dict[str, Any]:
        """Fixed heartbeat fields."""
        return {"pid": self.pid, "rss_mb": 12.5, "decode_errors": self.decode_errors, "gaps": self.gaps}

    def request_exit(self, code: int) -> None:
        """Record the exit request."""
        with self._lock:
            self.exit_codes.append(code)
