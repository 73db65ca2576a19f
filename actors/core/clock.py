"""The injectable clock: wall time and monotonic time, read through one object.

Roles, the supervisor and the pure modules they call read time only through a ``Clock``, so a
test can move time by hand (``tests.fakes.ManualClock``) without touching the code that reads it.
``SystemClock`` is the real one: ``time.time_ns()`` for UTC wall time in integer nanoseconds and
``time.monotonic()`` for durations and deadlines (a step of the wall clock never stretches a
deadline or a permit).
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


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
