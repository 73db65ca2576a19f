"""The emulator's options: defined once (EmulatorConfig), validated at start, the key or flag named.

The same checks guard ``[broker.emulator]`` (the config loader: ConfigError, exit 2 of
``tradehost run``) and the standalone ``tradehost emulator`` command line (one line per problem,
exit 2).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from actors.broker.config import (
    DEV_ACCOUNT_ID,
    DEV_TOKEN,
    EmulatorConfig,
    EmulatorOptionsError,
    emulator_base_url,
    is_loopback,
    load_credentials,
)
from actors.broker.emulator.app import CLI_OPTIONS, EmulatorOptions, options_from_config
from actors.broker.emulator.cli import build_parser, flag_of, main, options_from_args
from actors.core.errors import ConfigError
from supervisor.config import load_config

pytestmark = pytest.mark.unit


def _problems(*overrides: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(None, list(overrides), environ={})
    return e.value.problems


def _candles(tmp_path: Path, name: str = "EUR_USD_M1.csv") -> Path:
    path = tmp_path / name
    path.write_text("time,open,high,low,close\n1709712000,1.1,1.2,1.0,1.15\n1709712060,1.15,1.2,1.1,1.12\n")
    return path


BAD_KEYS = [
    ("port=70000", "broker.emulator.port: 70000 is not a TCP port (0-65535)"),
    ("port=-5", "broker.emulator.port: -5 is not a TCP port"),
    ("balance='abc'", "broker.emulator.balance: 'abc' is not a decimal number"),
    ("balance='NaN'", "broker.emulator.balance: 'NaN' is not a balance"),
    ("balance='-1'", "broker.emulator.balance: '-1' is not a balance"),
    ("balance='0'", "broker.emulator.balance: '0' is not a balance"),
    ("balance='1e999999'", "broker.emulator.balance: '1e999999' is not a balance"),
    ("speed=-1", "broker.emulator.speed: -1.0 is not a speed"),
    ("speed=0", "broker.emulator.speed: 0.0 is not a speed"),
    ("speed=1e9", "broker.emulator.speed: 1000000000.0 is not a speed"),
    ("start='yesterday'", "broker.emulator.start: 'yesterday' is not a time"),
    ("start='1e999999999'", "broker.emulator.start: '1e999999999' is out of range"),
    ("start='1900-01-01T00:00:00Z'", "broker.emulator.start: '1900-01-01T00:00:00Z' is outside"),
    ("instruments=[]", "broker.emulator.instruments: must name at least one instrument"),
    ("instruments=['EUR_USD','EUR_USD']", "broker.emulator.instruments: EUR_USD listed more than once"),
    ("instruments=['FOO_BAR']", "broker.emulator.instruments: unknown instruments FOO_BAR"),
    ("heartbeat_s=0", "broker.emulator.heartbeat_s: 0.0 is not a heartbeat interval"),
    ("heartbeat_s=100000", "broker.emulator.heartbeat_s: 100000.0 is not a heartbeat interval"),
    ("seed=1.5", "broker.emulator.seed: expected an integer"),
    ("seed=18446744073709551616", "broker.emulator.seed: 18446744073709551616 is not a 64-bit integer"),
    ("host='0.0.0.0'", "broker.emulator.host: '0.0.0.0' is not a loopback address"),
    ("host='192.168.1.5'", "broker.emulator.host: '192.168.1.5' is not a loopback address"),
    ("host=''", "broker.emulator.host: '' is not a loopback address"),
    ("data=['EUR_USD=/no/such.csv']", "broker.emulator.data: 'EUR_USD=/no/such.csv': /no/such.csv is not a file"),
    ("data=['FOO=/etc/hostname']", "broker.emulator.data: FOO=/etc/hostname: 'FOO' is not an instrument name"),
    ("data=['XAG_JPY=/etc/hostname']", "broker.emulator.data: 'XAG_JPY=/etc/hostname': unknown instrument 'XAG_JPY'"),
    ("data=['candles.csv']", "broker.emulator.data: candles.csv: name the instrument as INSTRUMENT=PATH"),
    ("data=['EUR_USD=']", "broker.emulator.data: EUR_USD=: no path after '='"),
]  # fmt: skip


@pytest.mark.parametrize(("override", "expected"), BAD_KEYS)
def test_a_bad_emulator_key_is_refused_at_start_with_the_key_named(override: str, expected: str) -> None:
    problems = _problems(f"broker.emulator.{override}")
    assert any(p.startswith(expected) for p in problems), problems
    assert all(p.startswith("broker.emulator.") for p in problems), problems


def test_the_issue_example_names_the_port() -> None:
    assert _problems("broker.emulator.port=70000") == ["broker.emulator.port: 70000 is not a TCP port (0-65535)"]


def test_every_bad_key_is_reported_at_once() -> None:
    problems = _problems("broker.emulator.port=70000", "broker.emulator.balance='abc'", "broker.emulator.speed=-1")
    assert [p.split(":")[0] for p in problems] == [
        "broker.emulator.port",
        "broker.emulator.speed",
        "broker.emulator.balance",
    ]


def test_admin_api_reason_is_given_for_a_non_loopback_host() -> None:
    (problem,) = _problems("broker.emulator.host='0.0.0.0'")
    assert "admin API has no authentication" in problem


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "localhost", "::1"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    assert is_loopback(host)
    assert load_config(None, [f"broker.emulator.host='{host}'"], environ={}).broker.emulator.host == host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.com", "::ffff:10.0.0.1", "127.0.0.1 "])
def test_anything_else_is_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_an_ipv6_emulator_url_is_bracketed() -> None:
    assert emulator_base_url(EmulatorConfig(host="::1", port=8080)) == "http://[::1]:8080"


def test_valid_keys_including_data_load(tmp_path: Path) -> None:
    eur, gbp = _candles(tmp_path), _candles(tmp_path, "GBP_USD_H1.csv")
    overrides = [
        "broker.emulator.port=65535",
        "broker.emulator.speed=60",
        "broker.emulator.start='2024-03-06T14:00:00Z'",
        "broker.emulator.balance='2500.50'",
        f"broker.emulator.data=['EUR_USD={eur}', '{gbp}']",
    ]
    emulator = load_config(None, overrides, environ={}).broker.emulator
    assert (emulator.port, emulator.speed, emulator.balance) == (65535, 60.0, "2500.50")
    assert emulator.data == (f"EUR_USD={eur}", str(gbp))


def test_epoch_seconds_are_a_valid_start() -> None:
    assert load_config(None, ["broker.emulator.start='1709733600'"], environ={}).broker.emulator.start == "1709733600"


def test_an_unreadable_data_file_is_refused(tmp_path: Path) -> None:
    path = _candles(tmp_path)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user who reads any file (root)")
        (problem,) = _problems(f"broker.emulator.data=['EUR_USD={path}']")
        assert problem.endswith("is not readable")
    finally:
        path.chmod(0o600)


def test_a_data_file_for_an_instrument_that_is_not_emulated_is_refused(tmp_path: Path) -> None:
    path = _candles(tmp_path)
    (problem,) = _problems(f"broker.emulator.data=['XAU_USD={path}']")
    assert "XAU_USD is not one of the emulated instruments" in problem


def test_two_files_for_one_instrument_are_refused(tmp_path: Path) -> None:
    path = _candles(tmp_path)
    (problem,) = _problems(f"broker.emulator.data=['EUR_USD={path}', '{path}']")
    assert "a second file for EUR_USD" in problem


# --- one definition ---------------------------------------------------------------------------


def test_every_option_has_its_doc_and_check_in_one_place() -> None:
    for f in dataclasses.fields(EmulatorOptions):
        assert f.metadata.get("doc"), f.name
        assert callable(f.metadata.get("check")), f.name


def test_emulator_options_derive_the_config_fields_with_the_same_defaults() -> None:
    config_fields = {f.name: f for f in dataclasses.fields(EmulatorConfig)}
    option_fields = {f.name: f for f in dataclasses.fields(EmulatorOptions)}
    for name, f in config_fields.items():
        assert option_fields[name].default == f.default
        assert option_fields[name].metadata is f.metadata or option_fields[name].metadata == f.metadata
    assert set(option_fields) - set(config_fields) == {
        "token", "account_id", "history_days", "stream_throttle_s", "stream_poll_s", "engine_period_s",
    }  # fmt: skip


def test_options_from_config_passes_every_option_through_including_data(tmp_path: Path) -> None:
    path = _candles(tmp_path)
    config = EmulatorConfig(seed=9, speed=60.0, data=(f"EUR_USD={path}",), balance="5000", port=1234)
    options = options_from_config(config, load_credentials({}, kind="emulator"))
    for f in dataclasses.fields(EmulatorConfig):
        assert getattr(options, f.name) == getattr(config, f.name), f.name
    assert (options.token, options.account_id) == (DEV_TOKEN, DEV_ACCOUNT_ID)


def test_emulator_options_run_the_same_checks() -> None:
    with pytest.raises(EmulatorOptionsError) as e:
        EmulatorOptions(port=70000, stream_poll_s=-1.0, token="")
    assert {name for name, _ in e.value.by_field} == {"port", "stream_poll_s", "token"}


def test_the_cli_offers_every_config_option_and_keeps_the_old_flags() -> None:
    help_text = build_parser().format_help()
    for flag in ("--host", "--port", "--port-file", "--token", "--account", "--seed", "--speed",
                 "--instruments", "--data", "--start", "--balance", "--heartbeat"):  # fmt: skip
        assert flag in help_text
    for f in dataclasses.fields(EmulatorConfig):
        assert f.name in CLI_OPTIONS
        assert flag_of(f.name) in help_text
    # The help is the field's doc, not a second text.
    assert EmulatorConfig.__dataclass_fields__["heartbeat_s"].metadata["doc"].split(";")[0] in " ".join(
        help_text.split()
    )


def test_cli_arguments_become_options() -> None:
    args = build_parser().parse_args(
        ["--port", "0", "--seed", "7", "--speed", "60", "--instruments", "EUR_USD, USD_JPY", "--heartbeat", "0.5",
         "--start", "2024-03-06T14:00:00Z", "--balance", "2500", "--account", "101-1"]
    )  # fmt: skip
    options = options_from_args(args, environ={})
    assert (options.seed, options.speed, options.instruments, options.heartbeat_s) == (
        7,
        60.0,
        ("EUR_USD", "USD_JPY"),
        0.5,
    )
    assert (options.start, options.balance, options.account_id, options.token) == (
        "2024-03-06T14:00:00Z",
        "2500",
        "101-1",
        DEV_TOKEN,
    )


def test_cli_credentials_default_to_the_environment() -> None:
    args = build_parser().parse_args([])
    options = options_from_args(args, environ={"OANDA_TOKEN": "t-1", "OANDA_ACCOUNT_ID": "101-9"})
    assert (options.token, options.account_id) == ("t-1", "101-9")
    assert options == dataclasses.replace(EmulatorOptions(), token="t-1", account_id="101-9")  # noqa: S106 - fake


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--port", "70000"], "tradehost emulator: --port: 70000 is not a TCP port (0-65535)"),
        (["--port", "abc"], "tradehost emulator: --port: 'abc' is not an integer"),
        (["--host", "0.0.0.0"], "tradehost emulator: --host: '0.0.0.0' is not a loopback address"),
        (["--speed", "-1"], "tradehost emulator: --speed: -1.0 is not a speed"),
        (["--speed", "inf"], "tradehost emulator: --speed: inf is not a speed"),
        (["--balance", "abc"], "tradehost emulator: --balance: 'abc' is not a decimal number"),
        (["--start", "yesterday"], "tradehost emulator: --start: 'yesterday' is not a time"),
        (["--instruments", ","], "tradehost emulator: --instruments: must name at least one instrument"),
        (["--heartbeat", "0"], "tradehost emulator: --heartbeat: 0.0 is not a heartbeat interval"),
        (["--data", "EUR_USD=/no/such.csv"], "tradehost emulator: --data: 'EUR_USD=/no/such.csv': /no/such.csv is not"),
        (["--account", " "], "tradehost emulator: --account: must not be empty"),
    ],
)  # fmt: skip
def test_a_bad_cli_option_is_one_line_naming_the_flag_and_exit_2(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line), err
