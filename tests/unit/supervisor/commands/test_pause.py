"""``ctl pause`` against a fake supervisor."""

from __future__ import annotations

import pytest

from supervisor.ctl.commands import COMMANDS
from tests.fakes import FakeSupervisor

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

PAUSE = COMMANDS["pause"]


def test_pause_sets_the_latch_and_reports_the_change() -> None:
    fake = FakeSupervisor(state="TRADING")

    result = PAUSE.execute(fake, PAUSE.validate({}))

    assert result == {"message": "paused", "changed": True, "state": "PAUSED"}
    assert fake.paused is True
    assert fake.calls == [("pause", ())]


def test_pausing_twice_is_idempotent_and_says_so() -> None:
    fake = FakeSupervisor()
    PAUSE.execute(fake, {})

    result = PAUSE.execute(fake, {})

    assert result["changed"] is False
    assert PAUSE.render(result) == "already paused"
