"""The one backoff rule: exponential ceiling, full jitter, reset after success."""

from __future__ import annotations

import random

import pytest

from actors.core.backoff import Backoff, backoff_delay_s

pytestmark = pytest.mark.unit


def test_delays_lie_between_zero_and_a_doubling_ceiling_capped_at_the_maximum() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 10.0), (500, 10.0)]:
        delays = [backoff_delay_s(attempt, 0.5, 10.0, rng) for _ in range(2000)]
        assert min(delays) >= 0.0
        assert max(delays) <= ceiling
        # Full jitter spreads over the whole range, not only its upper half.
        assert min(delays) < ceiling * 0.1
        assert max(delays) > ceiling * 0.9


def test_a_backoff_grows_with_failures_and_starts_over_after_a_success() -> None:
    backoff = Backoff(1.0, 8.0, rng=random.Random(3))
    ceilings = []
    for _ in range(5):
        backoff.next_delay()
        ceilings.append(min(8.0, 1.0 * 2 ** (backoff.failures - 1)))
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 8.0]
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() <= 1.0
