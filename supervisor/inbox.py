"""What the ``Supervisor`` actor receives, and the two seams it is built with.

Everything reaches the supervisor by ``tell()``: these small frozen classes from the root's
socket thread (``Tick``, ``FromChild``, ``CtlCall``, ``RunDirLost``), the child watcher
(``ChildExited``), the signal handlers (``ShutdownRequested``) and ``run_host`` (``Start``).
``Sender`` and ``Spawner`` are the root's socket thread and process spawner as the supervisor
sees them; ``HostExit`` is how it tells the root it is done and with which exit code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from actors.runtime.messages import Envelope
from supervisor.ctl.server import CtlRequest


class Sender(Protocol):
    """The root's socket thread as the supervisor uses it."""

    def send(self, name: str, frames: list[bytes]) -> None:
        """Queue frames for a socket."""


Spawner = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class Start:
    """Spawn every role in order."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Periodic timer from the root's socket thread."""


@dataclass(frozen=True, slots=True)
class ChildExited:
    """A role process has exited (``exitcode`` None: unknown, its forkserver died first)."""

    role: str
    pid: int
    exitcode: int | None


@dataclass(frozen=True, slots=True)
class FromChild:
    """A control-channel message from a role process."""

    identity: bytes
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class CtlCall:
    """A checked ctl request."""

    request: CtlRequest


@dataclass(frozen=True, slots=True)
class RunDirLost:
    """The run directory, its lock, journal or a socket is gone or replaced (``still_ours``: the
    directory and its lock are intact, so writing ``state.json`` there is still safe)."""

    detail: str
    still_ours: bool


@dataclass(frozen=True, slots=True)
class ShutdownRequested:
    """SIGTERM, SIGINT or ctl shutdown."""

    trigger: str


class HostExit:
    """How the supervisor tells the root that the tree is down, and with which exit code."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.code = 0

    def finish(self, code: int) -> None:
        """The tree is down; the root exits with ``code``."""
        self.code = code
        self._event.set()

    def wait(self, timeout_s: float) -> bool:
        """True once ``finish`` was called."""
        return self._event.wait(timeout_s)
