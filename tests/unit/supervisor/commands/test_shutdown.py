"""``ctl shutdown`` against a fake supervisor."""

from __future__ import annotations

import pytest

from supervisor.ctl.commands import COMMANDS
from tests.fakes import FakeSupervisor

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

SHUTDOWN = COMMANDS["shutdown"]


def test_shutdown_begins_a_graceful_shutdown_triggered_by_ctl() -> None:
    fake = FakeSupervisor()

    result = SHUTDOWN.execute(fake, SHUTDOWN.validate({}))

    assert result == {"message": "shutting down", "state": "SHUTTING_DOWN"}
    assert fake.calls == [("shutdown", ("ctl shutdown",))]


def test_a_second_shutdown_is_harmless() -> None:
    fake = FakeSupervisor()
    SHUTDOWN.execute(fake, {})

    result = SHUTDOWN.execute(fake, {})

    assert SHUTDOWN.render(result) == "already shutting down"
    assert fake.state == "SHUTTING_DOWN"
