"""The ctl command registry and the ``Command`` base class."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.ctl.commands import COMMANDS, Command
from supervisor.ctl.commands.errors import BAD_ARGUMENTS, CommandError
from tests.fakes import FakeSupervisor

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


def test_the_registry_holds_every_command_under_its_own_name() -> None:
    assert sorted(COMMANDS) == ["flatten", "pause", "reconcile", "restart", "resume", "shutdown", "status"]

    for name, command in COMMANDS.items():
        assert command.name == name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_one_line_help(name: str) -> None:
    text = COMMANDS[name].help()

    assert text
    assert "\n" not in text


@pytest.mark.parametrize("name", ["status", "pause", "resume", "shutdown"])
@pytest.mark.parametrize("args", [{"x": 1}, {"role": "feed"}, {"": None}])
def test_commands_without_arguments_refuse_any_argument(name: str, args: dict[str, Any]) -> None:
    with pytest.raises(CommandError) as info:
        COMMANDS[name].validate(args)

    assert info.value.code == BAD_ARGUMENTS
    assert name in info.value.reason


@pytest.mark.parametrize("name", ["status", "pause", "resume", "shutdown"])
def test_commands_without_arguments_accept_none_and_parse_an_empty_argv(name: str) -> None:
    assert COMMANDS[name].validate({}) == {}
    assert COMMANDS[name].parse([]) == {}


@pytest.mark.parametrize("name", ["pause", "resume", "shutdown"])
def test_unexpected_client_arguments_end_in_a_usage_error(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        COMMANDS[name].parse(["surprise"])

    assert info.value.code == 2
    assert f"tradehost ctl {name}" in capsys.readouterr().err


def test_the_base_command_has_no_execute() -> None:
    with pytest.raises(NotImplementedError):
        Command().execute(FakeSupervisor(), {})


def test_the_default_render_shows_the_message_or_ok() -> None:
    assert Command().render({"message": "done"}) == "done"
    assert Command().render({}) == "ok"
