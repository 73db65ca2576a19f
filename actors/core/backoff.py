"""Exponential backoff with full jitter: the one implementation every retry loop uses.

``backoff_delay_s`` is the pure rule: after failure number ``attempt`` (0-based) wait a uniformly
random time in ``[0, min(max_s, initial_s * 2**attempt)]`` ("full jitter", AWS architecture blog:
it spreads a crowd of reconnecting clients best). ``Backoff`` keeps the failure count for a loop
that reconnects (the feed's stream, the reconciler's reads) and is reset after a success; the
broker layer's read ``Retrier`` (``actors.broker.oanda.pacing``) calls the same function.
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "backoff_delay_s"]


def backoff_delay_s(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """The full-jitter delay after failure number ``attempt`` (0-based).

    Args:
        attempt: failures so far minus one (0 for the first failure).
        initial_s: the upper bound of the first delay.
        max_s: the cap of the upper bound.
        rng: the random source (seeded in tests).

    Returns:
        A delay in ``[0, min(max_s, initial_s * 2**attempt)]``.
    """
    ceiling = min(max_s, initial_s * 2.0 ** min(attempt, 64))
    return rng.uniform(0.0, ceiling)


class Backoff:
    """Failure counter of a retry loop, with full-jitter delays.

    Args:
        initial_s: the first delay's upper bound.
        max_s: the cap of the upper bound.
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
        return backoff_delay_s(self.failures - 1, self.initial_s, self.max_s, self._rng)

    def reset(self) -> None:
        """A success: start over."""
        self.failures = 0
