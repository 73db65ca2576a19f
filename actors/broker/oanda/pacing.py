"""Request pacing and the one explicit retry policy of the broker layer.

``RateLimiter`` is a token bucket with an injectable clock and sleep, used twice by
``OandaBroker``: REST requests (100/s, OANDA's advice for a persistent connection) and new
connections (2/s). ``Retrier`` retries a call on the error types it names (by default only
``BrokerTemporaryError``) with exponential backoff and full jitter (``actors.core.backoff``, the one
implementation); it is used for reads only, never for order submission.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from actors.core.backoff import backoff_delay_s
from actors.core.errors import BrokerTemporaryError

__all__ = ["RateLimiter", "Retrier", "RetryPolicy"]

P = ParamSpec("P")
T = TypeVar("T")


class RateLimiter:
    """A thread-safe token bucket: at most ``rate_per_s`` acquisitions per second on average.

    Args:
        rate_per_s: refill rate in tokens per second.
        burst: bucket size (default: one second's worth, at least 1).
        clock: monotonic seconds (injectable for tests).
        sleep: blocking sleep (injectable for tests).
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0")
        self.rate_per_s = rate_per_s
        self.burst = max(1.0, rate_per_s if burst is None else burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
            self._updated = now
            self._tokens -= 1.0
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.rate_per_s

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; returns the seconds waited."""
        wait_s = self._reserve()
        if wait_s > 0:
            self._sleep(wait_s)
        return wait_s


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently to retry.

    Attributes:
        attempts: total tries including the first.
        base_delay_s: delay before the second try; doubles each time.
        max_delay_s: cap on a single delay.
        retry_on: exception types worth another try.
    """

    attempts: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 4.0
    retry_on: tuple[type[BaseException], ...] = field(default=(BrokerTemporaryError,))

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter delay after failed try number ``attempt`` (0-based)."""
        return backoff_delay_s(attempt, self.base_delay_s, self.max_delay_s, rng)


class Retrier:
    """Call a function, retrying on ``policy.retry_on`` with backoff; usable as a decorator.

    Args:
        policy: the retry policy.
        sleep: blocking sleep (injectable for tests).
        rng: jitter source.
        on_retry: called with (attempt, error, delay) before each sleep, e.g. to log.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_retry = on_retry

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)``; re-raise the last error once attempts run out."""
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except self.policy.retry_on as e:
                if attempt + 1 >= self.policy.attempts:
                    raise
                delay = self.policy.delay_s(attempt, self._rng)
                if self._on_retry is not None:
                    self._on_retry(attempt, e, delay)
                self._sleep(delay)
                attempt += 1

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.call(fn, *args, **kwargs)

        return wrapper
