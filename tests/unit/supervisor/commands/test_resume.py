"""``ctl resume`` against a fake supervisor."""

from __future__ import annotations

import pytest

from supervisor.ctl.commands import COMMANDS
from supervisor.ctl.commands.errors import REFUSED, CommandError
from tests.fakes import FakeSupervisor

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

RESUME = COMMANDS["resume"]


def test_resume_clears_the_pause_and_reports_what_it_cleared() -> None:
    fake = FakeSupervisor()
    fake.pause()

    result = RESUME.execute(fake, RESUME.validate({}))

    assert result == {"message": "resumed", "cleared": ["operator_pause"], "state": "TRADING"}
    assert fake.paused is False


def test_resume_with_nothing_latched_clears_nothing() -> None:
    result = RESUME.execute(FakeSupervisor(), {})

    assert result["cleared"] == []
    assert RESUME.render(result) == "nothing to resume"


def test_a_refusal_by_the_supervisor_reaches_the_caller_with_its_code() -> None:
    fake = FakeSupervisor()
    fake.fail_with["resume"] = CommandError(REFUSED, "refused: feed is down")

    with pytest.raises(CommandError) as info:
        RESUME.execute(fake, {})

    assert (info.value.code, info.value.reason) == (REFUSED, "refused: feed is down")
