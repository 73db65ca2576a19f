"""The command line: bad configs are refused with the dotted key and exit 2; help explains."""

from __future__ import annotations

import pytest

from tests.helpers import run_cli, short_tmp_dir

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[supervisor]\nmax_restart = 3\n", "supervisor.max_restart: unknown key"),
        ('[supervisor]\nmax_restarts = "three"\n', "supervisor.max_restarts: expected an integer"),
        ("[supervisor]\nheartbeat_timeout_s = -1\n", "supervisor.heartbeat_timeout_s: -1.0 is below the minimum"),
        ('[host]\nmode = "yolo"\n', "host.mode: 'yolo' is not one of"),
        ("[nonsense]\nx = 1\n", "nonsense: unknown key"),
        ("[host\n", "not valid TOML"),
    ],
)
def test_a_bad_config_is_refused_with_the_dotted_key_and_exit_2(toml: str, expected: str) -> None:
    conf = short_tmp_dir() / "bad.toml"
    conf.write_text(toml)
    res = run_cli("run", "-c", str(conf), "--set", f'host.run_dir="{conf.parent / "run"}"')
    assert res.returncode == 2
    assert expected in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (conf.parent / "run").exists()  # refused before touching anything


def test_a_bad_set_override_is_refused_with_exit_2() -> None:
    res = run_cli("run", "--set", "supervisor.cooldown_s=soon")
    assert res.returncode == 2
    assert "supervisor.cooldown_s: expected a number" in res.stderr


def test_a_missing_config_file_is_refused_with_exit_2() -> None:
    res = run_cli("run", "-c", "/nonexistent/tradehost.toml")
    assert res.returncode == 2
    assert "no such file" in res.stderr


def test_help_explains_the_commands_and_exit_codes() -> None:
    res = run_cli("ctl", "--help")
    assert res.returncode == 0
    for word in ("status", "pause", "resume", "shutdown", "restart ROLE", "exit codes"):
        assert word in res.stdout
    assert run_cli("--help").returncode == 0
    assert run_cli().returncode == 2
