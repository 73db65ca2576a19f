"""Shared fixtures: a real host in a short temporary run directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Host, ensure_test_model, running_host


def pytest_sessionstart(session: pytest.Session) -> None:
    """Every test host runs with a real model; build it once (a few seconds) if it is missing."""
    ensure_test_model()


# Timings that keep fault tests quick but leave a loaded 2-core machine plenty of slack.
FAST = [
    "supervisor.heartbeat_interval_s=0.2",
    "supervisor.heartbeat_timeout_s=2.0",
    "supervisor.cooldown_s=1.0",
    "supervisor.max_restarts=5",
    "supervisor.restart_period_s=30.0",
    "supervisor.backoff_initial_s=0.05",
    "supervisor.backoff_max_s=0.5",
]


@pytest.fixture
def host() -> Iterator[Host]:
    """A running host with fast timings, in TRADING."""
    with running_host(FAST) as h:
        yield h
