"""``ctl restart ROLE``: argument checks on both sides, and execution against a fake."""

from __future__ import annotations

from typing import Any

import pytest

from actors.runtime.registry import role_names
from supervisor.ctl.commands import COMMANDS
from supervisor.ctl.commands.errors import BAD_ARGUMENTS, REFUSED, CommandError
from tests.fakes import FakeSupervisor

ROLES = role_names(with_emulator=False)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

RESTART = COMMANDS["restart"]


@pytest.mark.parametrize("role", ROLES)
def test_every_known_role_is_accepted(role: str) -> None:
    assert RESTART.validate({"role": role}) == {"role": role}


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"role": "nobody"},
        {"role": "FEED"},
        {"role": None},
        {"role": 3},
        {"role": ["feed"]},
        {"role": {"feed": 1}},
        {"role": "feed", "force": True},
        {"roles": "feed"},
    ],
    ids=["missing", "unknown", "wrong-case", "null", "int", "list", "object", "extra-key", "misspelt-key"],
)
def test_anything_but_exactly_one_known_role_is_refused_as_bad_arguments(args: dict[str, Any]) -> None:
    with pytest.raises(CommandError) as info:
        RESTART.validate(args)

    assert info.value.code == BAD_ARGUMENTS
    for role in ROLES:
        assert role in info.value.reason


def test_restart_asks_the_supervisor_to_restart_that_role() -> None:
    fake = FakeSupervisor()

    result = RESTART.execute(fake, RESTART.validate({"role": "model"}))

    assert fake.calls == [("restart_role", ("model",))]
    assert result["pid"] == 4242
    assert RESTART.render(result) == "model is stopping and will be started again"


def test_restart_while_shutting_down_is_refused() -> None:
    fake = FakeSupervisor()
    fake.shutdown("test")

    with pytest.raises(CommandError) as info:
        RESTART.execute(fake, {"role": "feed"})

    assert info.value.code == REFUSED


def test_the_client_parses_one_role_from_argv() -> None:
    assert RESTART.parse(["execution"]) == {"role": "execution"}


@pytest.mark.parametrize("argv", [[], ["nobody"], ["feed", "risk"]], ids=["none", "unknown", "two"])
def test_the_client_refuses_a_missing_unknown_or_second_role(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        RESTART.parse(argv)

    assert info.value.code == 2
    assert "tradehost ctl restart" in capsys.readouterr().err
