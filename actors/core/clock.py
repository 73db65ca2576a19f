"""The injectable clock: wall time and monotonic time, read through one object.

Roles, the supervisor and the pure modules they call read time only through a ``Clock``, so a
test can move time by hand (``ManualClock``) and a replay can drive market time without
touching the code that reads it. ``SystemClock`` is the real one: ``time.time_ns()`` for UTC
wall time in integer nanoseconds and ``time.monotonic()`` for durations and deadlines (a step of
the wall clock never stretches a deadline or a permit).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Where time comes from."""

    def time_ns(self) -> int:
        """UTC wall time in integer nanoseconds."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for durations and deadlines)."""


class SystemClock:
    """The machine's clocks."""

    def time_ns(self) -> int:
        """``time.time_ns()``."""
        return time.time_ns()

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told to (tests, deterministic replays).

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
