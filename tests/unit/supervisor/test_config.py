"""``load_config``: defaults, every bad configuration named by its dotted key, ``--set``, docs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from actors.core.errors import ConfigError
from supervisor.config import documented_keys, load_config, parse_override
from supervisor.coreconfig import MAX_IPC_PATH
from supervisor.hostconfig import HostConfig

SECRETS = {"OANDA_TOKEN": "unit-test-token", "OANDA_ACCOUNT_ID": "101-004-1234567-001"}
pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / "tests" / "data" / "configs"
DEFAULT_TOML = REPO / "conf" / "default.toml"


def _problems(path: Path | str | None, overrides: list[str] | None = None, cwd: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides or [], cwd=cwd)
    return info.value.problems


def _names(problems: list[str], key: str) -> bool:
    return any(p.startswith(f"{key}:") for p in problems)


# --- defaults and good files ---------------------------------------------------------------------


def test_no_file_gives_the_built_in_defaults_resolved_against_cwd(tmp_path: Path) -> None:
    cfg = load_config(None, cwd=tmp_path)

    assert cfg.host.mode == "shadow"
    assert cfg.host.log_level == "info"
    assert cfg.supervisor.max_restarts == 5
    assert cfg.run_dir == tmp_path / "var"
    assert cfg.ctl.endpoint == f"ipc://{tmp_path / 'var' / 'ctl.sock'}"
    assert cfg.bus.events_in == f"ipc://{tmp_path / 'var' / 'bus-in.sock'}"
    assert cfg.bus.events_out == f"ipc://{tmp_path / 'var' / 'bus-out.sock'}"
    assert cfg.bus.control == f"ipc://{tmp_path / 'var' / 'control.sock'}"
    assert cfg.source == "<defaults>"


def test_a_relative_run_dir_is_resolved_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    cfg = load_config(None, ["host.run_dir='run/here'"])

    assert cfg.host.run_dir == str(tmp_path.resolve() / "run" / "here")


def test_an_absolute_run_dir_is_kept(tmp_path: Path) -> None:
    cfg = load_config(None, [f"host.run_dir='{tmp_path}/abs'"], cwd=Path("/"))

    assert cfg.run_dir == tmp_path / "abs"


def test_conf_default_toml_loads_and_matches_the_built_in_defaults(tmp_path: Path) -> None:
    from_file = load_config(DEFAULT_TOML, cwd=tmp_path)
    built_in = load_config(None, cwd=tmp_path)

    assert from_file.to_dict() == built_in.to_dict()
    assert from_file.source == str(DEFAULT_TOML)


def test_a_valid_file_overrides_only_what_it_sets(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "valid.toml", cwd=tmp_path, environ=SECRETS)

    assert (cfg.host.mode, cfg.host.log_level) == ("live", "debug")
    assert cfg.broker.kind == "oanda"
    assert cfg.supervisor.max_restarts == 3
    assert cfg.supervisor.heartbeat_interval_s == 1.0
    assert cfg.ctl.endpoint == "ipc:///tmp/tradehost-valid-ctl.sock"
    assert cfg.ctl.timeout_s == 1.0
    assert isinstance(cfg.ctl.timeout_s, float)


def test_to_dict_lists_every_section_and_leaves_out_the_source(tmp_path: Path) -> None:
    out = load_config(None, cwd=tmp_path).to_dict()

    assert set(out) == {
        *("host", "supervisor", "ctl", "bus", "metrics", "broker", "alerts"),
        *("watchdog", "feed", "model", "reconciler", "risk", "execution"),
    }
    assert out["supervisor"]["max_restarts"] == 5


# --- bad files ------------------------------------------------------------------------------------

_BAD_FILES: list[Any] = [
    ("unknown-key-in-host.toml", "host.colour"),
    ("unknown-key-in-supervisor.toml", "supervisor.heartbeat_intervall_s"),
    ("unknown-key-in-ctl.toml", "ctl.port"),
    ("unknown-key-in-bus.toml", "bus.events"),
    ("unknown-section.toml", "brokerage"),
    ("section-not-a-table.toml", "supervisor"),
    ("bool-for-int.toml", "supervisor.max_restarts"),
    ("float-for-int.toml", "supervisor.max_restarts"),
    ("string-for-float.toml", "supervisor.heartbeat_interval_s"),
    ("bool-for-float.toml", "ctl.timeout_s"),
    ("int-for-string.toml", "host.run_dir"),
    ("below-minimum.toml", "supervisor.heartbeat_interval_s"),
    ("above-maximum.toml", "supervisor.max_restarts"),
    ("mode-not-a-choice.toml", "host.mode"),
    ("log-level-not-a-choice.toml", "host.log_level"),
    ("ipc-path-too-long.toml", "ctl.endpoint"),
    ("heartbeat-timeout-not-above-interval.toml", "supervisor.heartbeat_timeout_s"),
    ("endpoint-without-scheme.toml", "ctl.endpoint"),
    ("duplicate-endpoints.toml", "bus.events_out"),
    ("nan-cooldown.toml", "supervisor.cooldown_s"),
    ("metrics-listen-not-host-port.toml", "metrics.listen"),
]


@pytest.mark.parametrize(("name", "key"), _BAD_FILES)
def test_every_bad_config_file_is_refused_with_a_problem_naming_its_dotted_key(
    name: str, key: str, tmp_path: Path
) -> None:
    problems = _problems(CONFIGS / name, cwd=tmp_path)

    assert _names(problems, key), problems


def test_duplicate_endpoints_are_refused(tmp_path: Path) -> None:
    problems = _problems(CONFIGS / "duplicate-endpoints.toml", cwd=tmp_path)

    assert any("endpoints must all differ" in p for p in problems), problems


def test_an_unknown_key_lists_the_known_keys_of_its_section(tmp_path: Path) -> None:
    (problem,) = _problems(CONFIGS / "unknown-key-in-ctl.toml", cwd=tmp_path)

    assert problem == (
        "ctl.port: unknown key (known: authorized_keys_dir, client_secret_key_file, endpoint, max_request_bytes, "
        "server_public_key_file, server_secret_key_file, timeout_s)"
    )


def test_a_too_long_ipc_path_is_reported_for_every_endpoint_in_the_run_dir(tmp_path: Path) -> None:
    problems = _problems(CONFIGS / "ipc-path-too-long.toml", cwd=tmp_path)

    for key in ("ctl.endpoint", "bus.events_in", "bus.events_out", "bus.control"):
        assert _names(problems, key), problems


def test_an_ipc_path_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    # "bus-out.sock" is the longest socket name; make its full path exactly MAX_IPC_PATH bytes.
    run_dir = "/tmp/" + "r" * (MAX_IPC_PATH - len("/tmp/") - len("/bus-out.sock"))
    cfg = load_config(None, [f"host.run_dir='{run_dir}'"], cwd=tmp_path)

    assert len(cfg.bus.events_out) - len("ipc://") == MAX_IPC_PATH
    longer = _problems(None, [f"host.run_dir='{run_dir}x'"], cwd=tmp_path)
    assert _names(longer, "bus.events_out")


def test_bool_is_not_accepted_where_an_integer_is_expected(tmp_path: Path) -> None:
    (problem,) = _problems(CONFIGS / "bool-for-int.toml", cwd=tmp_path)

    assert problem == "supervisor.max_restarts: expected an integer, got bool True"


def test_out_of_range_values_say_which_bound_they_crossed(tmp_path: Path) -> None:
    (low,) = _problems(CONFIGS / "below-minimum.toml", cwd=tmp_path)
    (high,) = _problems(CONFIGS / "above-maximum.toml", cwd=tmp_path)

    assert "below the minimum 0.05" in low
    assert "above the maximum 1000" in high


def test_a_mode_outside_its_choices_lists_the_choices(tmp_path: Path) -> None:
    (problem,) = _problems(CONFIGS / "mode-not-a-choice.toml", cwd=tmp_path)

    assert problem == "host.mode: 'paper' is not one of 'shadow' | 'live'"


def test_every_problem_of_a_file_is_reported_together(tmp_path: Path) -> None:
    problems = _problems(CONFIGS / "many-problems.toml", cwd=tmp_path)

    assert len(problems) == 4, problems
    for key in ("host.mode", "host.colour", "supervisor.max_restarts", "supervisor.heartbeat_interval_s"):
        assert _names(problems, key), problems


def test_every_cross_field_problem_is_reported_together(tmp_path: Path) -> None:
    overrides = [
        "supervisor.heartbeat_timeout_s=1.0",
        "supervisor.permit_ttl_s=1.0",
        "supervisor.backoff_initial_s=2.0",
        "supervisor.backoff_max_s=1.0",
    ]

    problems = _problems(None, overrides, cwd=tmp_path)

    assert len(problems) == 3, problems
    for key in ("supervisor.heartbeat_timeout_s", "supervisor.permit_ttl_s", "supervisor.backoff_max_s"):
        assert _names(problems, key), problems


@pytest.mark.parametrize(("interval", "ok"), [(0.0, True), (0.1, False), (0.49, False), (0.5, True), (60.0, True)])
def test_host_gc_interval_s_is_off_or_at_least_half_a_second(tmp_path: Path, interval: float, ok: bool) -> None:
    override = [f"host.gc_interval_s={interval}"]
    if ok:
        assert load_config(None, override, cwd=tmp_path).host.gc_interval_s == interval
    else:
        assert _names(_problems(None, override, cwd=tmp_path), "host.gc_interval_s")


def test_an_empty_run_dir_is_refused(tmp_path: Path) -> None:
    problems = _problems(None, ["host.run_dir=''"], cwd=tmp_path)

    assert _names(problems, "host.run_dir")


def test_the_internal_source_field_cannot_be_set_from_a_file(tmp_path: Path) -> None:
    problems = _problems(None, ["source='forged'"], cwd=tmp_path)

    assert _names(problems, "source")


def test_a_missing_file_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"

    (problem,) = _problems(path)

    assert problem == f"{path}: no such file"


def test_invalid_toml_is_refused_with_its_path(tmp_path: Path) -> None:
    path = CONFIGS / "invalid-toml.toml"

    (problem,) = _problems(path, cwd=tmp_path)

    assert problem.startswith(f"{path}: not valid TOML")


def test_a_directory_given_as_the_file_is_refused(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path)

    assert problem == f"{tmp_path}: is a directory"


# --- --set overrides ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("supervisor.max_restarts=3", (["supervisor", "max_restarts"], 3)),
        ("supervisor.cooldown_s=2.5", (["supervisor", "cooldown_s"], 2.5)),
        ('host.run_dir="/tmp/x"', (["host", "run_dir"], "/tmp/x")),
        ("host.run_dir='a b'", (["host", "run_dir"], "a b")),
        ("host.mode=live", (["host", "mode"], "live")),
        ("ctl.endpoint=tcp://127.0.0.1:1", (["ctl", "endpoint"], "tcp://127.0.0.1:1")),
        ("flag=true", (["flag"], True)),
        ("xs=[1, 2]", (["xs"], [1, 2])),
        (" host.mode =live", (["host", "mode"], "live")),
        ("host.run_dir=", (["host", "run_dir"], "")),
        ("a=b=c", (["a"], "b=c")),
    ],
)
def test_parse_override_reads_toml_values_and_falls_back_to_plain_strings(
    text: str, expected: tuple[list[str], Any]
) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["no-equals-sign", "=3", " =3", "a..b=1", ".a=1", "a.=1", ""])
def test_parse_override_refuses_bad_syntax(text: str) -> None:
    with pytest.raises(ConfigError, match=r"expected key\.path=value"):
        parse_override(text)


def test_overrides_apply_on_top_of_the_file(tmp_path: Path) -> None:
    cfg = load_config(
        CONFIGS / "valid.toml", ["supervisor.max_restarts=7", "host.mode=shadow"], cwd=tmp_path, environ=SECRETS
    )

    assert cfg.supervisor.max_restarts == 7
    assert cfg.host.mode == "shadow"
    assert cfg.host.log_level == "debug"


def test_the_last_override_of_a_key_wins(tmp_path: Path) -> None:
    cfg = load_config(None, ["supervisor.max_restarts=1", "supervisor.max_restarts=9"], cwd=tmp_path)

    assert cfg.supervisor.max_restarts == 9


def test_a_bad_override_value_is_named_by_its_dotted_key(tmp_path: Path) -> None:
    problems = _problems(None, ["supervisor.max_restarts=many", "host.nope=1"], cwd=tmp_path)

    assert _names(problems, "supervisor.max_restarts")
    assert _names(problems, "host.nope")


def test_an_override_through_a_non_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--set host\.mode\.x: mode is not a table"):
        load_config(None, ["host.mode=live", "host.mode.x=1"], cwd=tmp_path)


def test_bad_override_syntax_is_refused_by_load_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected key\.path=value"):
        load_config(None, ["supervisor"], cwd=tmp_path)


# --- documentation --------------------------------------------------------------------------------


def _default_toml_layout() -> dict[str, list[str]]:
    """Map each ``section.key`` of conf/default.toml to the lines above it, nearest first."""
    lines = DEFAULT_TOML.read_text().splitlines()
    section = ""
    out: dict[str, list[str]] = {}
    for i, line in enumerate(lines):
        header = re.fullmatch(r"\[([A-Za-z_.]+)\]\s*", line)
        if header:
            section = header.group(1)
            continue
        assignment = re.match(r"([A-Za-z_][A-Za-z0-9_]*) = ", line)
        if assignment and section:
            out[f"{section}.{assignment.group(1)}"] = list(reversed(lines[:i]))
    return out


_LAYOUT = _default_toml_layout()
# Keys that share the comment of the key above them; STYLE asks for a comment directly above.


def test_documented_keys_cover_every_config_field_with_a_doc_line() -> None:
    keys = documented_keys()

    def flatten(prefix: str, table: dict) -> set[str]:
        out: set[str] = set()
        for name, value in table.items():
            key = f"{prefix}.{name}" if prefix else name
            out |= flatten(key, value) if isinstance(value, dict) else {key}
        return out

    assert set(keys) == flatten("", HostConfig().to_dict())
    assert all(doc.strip() for doc in keys.values()), [k for k, d in keys.items() if not d.strip()]


@pytest.mark.parametrize("key", sorted(documented_keys()))
def test_every_documented_key_appears_in_conf_default_toml_under_its_section(key: str) -> None:
    assert key in _LAYOUT, f"{key} is missing from {DEFAULT_TOML}"


@pytest.mark.parametrize("key", sorted(documented_keys()))
def test_every_key_in_conf_default_toml_has_a_comment_line_directly_above_it(key: str) -> None:
    above = _LAYOUT.get(key, [""])

    assert above[0].startswith("#"), f"{key}: line above is {above[0]!r}"


def _time_keys() -> list[str]:
    # Every configuration key documented as a time (its field's metadata says ``time``).
    import dataclasses
    import typing

    keys: list[str] = []

    def walk(cls: Any, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}{f.name}.")
            elif f.metadata.get("time"):
                keys.append(f"{prefix}{f.name}")

    from supervisor.hostconfig import role_config_classes

    walk(HostConfig, "")
    for section, cls in role_config_classes().items():
        walk(cls, f"{section}.")
    return keys


def test_every_time_key_takes_a_toml_datetime_from_set_and_from_the_file(tmp_path: Path) -> None:
    # ``--set broker.emulator.start=2017-12-20T12:00:00Z`` is a TOML datetime, not a string
    from supervisor.hostconfig import role_config_classes

    keys = _time_keys()
    assert "broker.emulator.start" in keys
    conf = tmp_path / "conf.toml"
    conf.write_text("[broker.emulator]\nstart = 2017-12-20T13:00:00+01:00\n")
    for key in keys:
        first, *rest = key.split(".")
        via_set = load_config(None, [f"{key}=2017-12-20T12:00:00Z", "host.run_dir=/tmp/x"])
        roles = role_config_classes()
        node: Any = via_set.section(first, roles[first]) if first in roles else getattr(via_set, first)
        for part in rest:
            node = getattr(node, part)
        assert node == "2017-12-20T12:00:00Z", key
    from_file = load_config(conf, ["host.run_dir=/tmp/x"])
    assert from_file.broker.emulator.start == "2017-12-20T12:00:00Z"  # the same instant, in UTC
    naive = _problems(None, ["broker.emulator.start=2017-12-20T12:00:00"])
    assert len(naive) == 1 and naive[0].startswith("broker.emulator.start:") and "offset" in naive[0]
