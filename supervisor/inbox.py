"""What the ``Supervisor`` actor receives, and the two seams it is built with.

Everything reaches the supervisor by ``tell()``: these small frozen classes from the root's
socket thread (``Tick``, ``FromChild``, ``CtlCall``), the child watcher (``ChildExited``), the
signal handlers (``ShutdownRequested``) and ``run_host`` (``Start``). ``Sender`` and ``Spawner``
are the root's socket thread and process spawner as the supervisor sees them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from actors.messages import Envelope
from supervisor.control import CtlRequest


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
    """A role process has exited."""

    role: str
    pid: int
    exitcode: int


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
class ShutdownRequested:
    """SIGTERM, SIGINT or ctl shutdown."""

    trigger: str
