"""``Worker``: a background thread of a role that does blocking I/O (HTTP, streams).

The actor must stay responsive (it sends the heartbeats), so blocking broker calls run on a
worker thread that hands results back with ``tell()``. The worker sleeps with ``wait()`` on its
stop event, so shutdown interrupts a backoff at once. Reconnect delays grow exponentially with
full jitter, reset after a success.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff with full jitter.

    Args:
        initial_s: the first delay's upper bound.
        max_s: the cap.
        rng: random source (seeded in tests).
    """

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The delay after one more failure."""
        self.failures += 1
        bound = min(self.max_s, self.initial_s * 2 ** (self.failures - 1))
        return self._rng.uniform(bound / 2, bound)

    def reset(self) -> None:
        """A success: start over."""
        self.failures = 0


class Worker:
    """Runs ``body(stop_event)`` on a daemon thread; ``body`` returns when the event is set."""

    def __init__(self, name: str, body: Callable[[threading.Event], None]) -> None:
        self.stop_event = threading.Event()
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

    def _run(self) -> None:
        try:
            self._body(self.stop_event)
        except Exception:  # reported through alive(): the role's heartbeat check fails
            log.exception("worker %s died", self._thread.name)
