"""``Worker``: a background thread of a role that does blocking I/O (HTTP, streams, servers).

The actor must stay responsive (it sends the heartbeats), so blocking broker calls run on a
worker thread that hands results back with ``tell()``. The worker sleeps with ``wait()`` on its
stop event, so shutdown interrupts a backoff at once. A role starts its workers through
``RoleActor.start_worker``, which checks every one of them on each heartbeat: a worker that has
ended without being asked to (an exception, or its body returned) fails the role, and the
supervisor restarts it. A worker never reports "healthy" for a thread that is gone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Worker:
    """Runs ``body(stop_event)`` on a daemon thread; ``body`` returns when the event is set.

    Args:
        name: the thread's name (shown in logs and in the failure reason).
        body: the loop; it must return soon after the stop event is set.
    """

    def __init__(self, name: str, body: Callable[[threading.Event], None]) -> None:
        self.name = name
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._body = body
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout_s: float) -> bool:
        """Ask the body to finish and wait up to ``timeout_s``; True if it did."""
        self.stop_event.set()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def dead(self) -> str | None:
        """Why the worker ended without being asked to, or None while it runs or was stopped."""
        if self._thread.is_alive() or self.stop_event.is_set() or not self._thread.ident:
            return None
        if self.error is not None:
            return f"worker {self.name} died: {type(self.error).__name__}: {self.error}"
        return f"worker {self.name} ended on its own"

    def _run(self) -> None:
        try:
            self._body(self.stop_event)
        except Exception as e:  # reported through dead(): the role's heartbeat check fails the role
            self.error = e
            log.exception("worker %s died", self.name)
