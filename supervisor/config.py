"""Configuration: TOML in, one typed frozen ``HostConfig`` out, every problem named by its key.

Loading is one pass (STYLE "Configuration"): read the TOML with ``tomllib``, apply ``--set``
overrides, walk the dataclass fields of each section rejecting unknown keys, wrong types and
out-of-range values (all problems are collected, each with its dotted key, before one
``ConfigError`` is raised), then run the cross-field ``_check_*`` rules. Relative paths are
resolved against the current directory. Every key is documented in ``conf/default.toml`` and
in the ``doc`` metadata of its field.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import tomllib
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from actors.core.errors import ConfigError
from actors.runtime import registry
from supervisor.coreconfig import LOOPBACK, MAX_IPC_PATH, BusConfig, CoreConfig

if TYPE_CHECKING:
    from supervisor.hostconfig import HostConfig

# The sections beyond the core, from the role registry: ``tradehost ctl`` skips them (see
# ``load_core_config``), ``tradehost run`` builds them.
ROLE_SECTIONS: tuple[str, ...] = (*registry.SHARED_SECTIONS, *registry.role_sections())

_C = TypeVar("_C", bound=CoreConfig)
_S = TypeVar("_S")


# --- Parsing ---------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``key.path=value``: the value is read as TOML, or taken as a plain string.

    Raises:
        ConfigError: no ``=`` or an empty key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected key.path=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def _apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {'.'.join(path)}: {part} is not a table")
        node = child
    node[path[-1]] = value


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _check_scalar(key: str, tp: Any, value: Any, meta: Mapping[str, Any], problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            problems.append(f"{key}: {value!r} is not one of {_type_name(tp)}")
        return value
    if origin in (types.UnionType, typing.Union):
        for option in typing.get_args(tp):
            sub: list[str] = []
            result = _check_scalar(key, option, value, meta, sub)
            if not sub:
                return result
        problems.append(f"{key}: {value!r} is not {tp}")
        return value
    if origin is tuple:
        (item_tp, *_rest) = typing.get_args(tp)
        if not isinstance(value, list):
            problems.append(f"{key}: expected a list, got {type(value).__name__}")
            return value
        return tuple(_check_scalar(f"{key}[{i}]", item_tp, v, meta, problems) for i, v in enumerate(value))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{key}: expected a number, got {type(value).__name__} {value!r}")
            return value
        value = float(value)
        if not math.isfinite(value):
            problems.append(f"{key}: {value!r} is not a finite number")
            return value
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
            return value
    elif tp is bool:
        if not isinstance(value, bool):
            problems.append(f"{key}: expected true or false, got {value!r}")
            return value
    elif tp is str and meta.get("time") and isinstance(value, datetime.date):
        return _time_text(key, value, problems)
    elif tp is str and not isinstance(value, str):
        problems.append(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "min" in meta and value < meta["min"]:
            problems.append(f"{key}: {value!r} is below the minimum {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems.append(f"{key}: {value!r} is above the maximum {meta['max']}")
    return value


def _time_text(key: str, value: datetime.date, problems: list[str]) -> str:
    """A time key's TOML datetime (``start = 2017-12-20T12:00:00Z``, unquoted) as the RFC3339 text
    its field holds, in UTC; a datetime without an offset or a bare date is refused (which zone?)."""
    if not isinstance(value, datetime.datetime) or value.tzinfo is None:
        problems.append(f"{key}: {value.isoformat()} has no UTC offset: give one (2017-12-20T12:00:00Z)")
        return ""
    utc = value.astimezone(datetime.UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else "") + "Z"


def build_section(
    cls: type[Any], data: Any, prefix: str, problems: list[str], *, also_known: Collection[str] = ()
) -> Any:
    """Build one dataclass from a TOML table, recording problems instead of raising."""
    if not isinstance(data, dict):
        problems.append(f"{prefix}: expected a table, got {type(data).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for key in sorted(set(data) - set(fields)):
        known = ", ".join(sorted({*fields, *also_known}))
        problems.append(f"{prefix}{'.' if prefix else ''}{key}: unknown key (known: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            continue
        key = f"{prefix}{'.' if prefix else ''}{name}"
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = build_section(typing.cast(type[Any], tp), data[name], key, problems)
        else:
            kwargs[name] = _check_scalar(key, tp, data[name], f.metadata, problems)
    try:
        return cls(**kwargs)
    except ConfigError as e:  # a section's own __post_init__ checks: one line a key
        named = {p.split(":", 1)[0] for p in problems}
        problems.extend(p for p in e.problems if p.split(":", 1)[0] not in named)
    except (TypeError, ValueError):
        if not problems:
            raise
    # Build from defaults so an object exists; the caller raises anyway.
    return cls()


def _resolve_endpoint(value: str, run_dir: str, name: str) -> str:
    return value or f"ipc://{os.path.join(run_dir, name)}"  # noqa: PTH118


def _check_endpoints(cfg: CoreConfig, problems: list[str]) -> None:
    for key, endpoint in (
        ("ctl.endpoint", cfg.ctl.endpoint),
        ("bus.events_in", cfg.bus.events_in),
        ("bus.events_out", cfg.bus.events_out),
        ("bus.control", cfg.bus.control),
    ):
        if not endpoint.startswith(("ipc://", "tcp://")):
            problems.append(f"{key}: {endpoint!r} must start with ipc:// or tcp://")
        elif endpoint.startswith("ipc://") and len(endpoint) - len("ipc://") > MAX_IPC_PATH:
            problems.append(f"{key}: ipc path is longer than {MAX_IPC_PATH} bytes; use a shorter host.run_dir")
        elif endpoint.startswith("tcp://"):
            host, _, port = endpoint[len("tcp://") :].rpartition(":")
            if host not in LOOPBACK and key != "ctl.endpoint":  # ctl over tcp: CURVE only (_check_ctl_curve)
                # Anyone who reaches these sockets can grant a permit or run ctl commands.
                problems.append(f"{key}: tcp endpoints must be on loopback until CURVE authentication exists")
            elif not (port.isdigit() and 1 <= int(port) <= 65535):
                problems.append(f"{key}: {port!r} is not a TCP port (1-65535)")
    seen: dict[str, str] = {}
    for key, endpoint in (
        ("bus.events_in", cfg.bus.events_in),
        ("bus.events_out", cfg.bus.events_out),
        ("bus.control", cfg.bus.control),
        ("ctl.endpoint", cfg.ctl.endpoint),
    ):
        if endpoint in seen:
            problems.append(f"{key}: same endpoint as {seen[endpoint]} ({endpoint}); endpoints must all differ")
        seen.setdefault(endpoint, key)


def _check_ctl_curve(cfg: CoreConfig) -> list[str]:
    """The host's side of ``ctl.endpoint = "tcp://..."``: CURVE or nothing (pyzmq's, with the ZAP
    authenticator admitting the public keys of ``ctl.authorized_keys_dir``)."""
    ctl = cfg.ctl
    if not ctl.is_tcp:
        return []
    if not (ctl.server_secret_key_file and ctl.authorized_keys_dir):
        return [
            "ctl.endpoint: a tcp:// endpoint needs CURVE: set ctl.server_secret_key_file and ctl.authorized_keys_dir "
            "(`tradehost keys new NAME`), or leave ctl.endpoint empty for the ipc socket"
        ]
    from actors.core.secretfile import check_secret_file
    from actors.runtime import transport

    if not transport.has_curve():
        return ["ctl.endpoint: this libzmq has no CURVE (built without libsodium); a tcp:// endpoint is refused"]
    problems = []
    try:
        check_secret_file(ctl.server_secret_key_file, "ctl.server_secret_key_file")
        if transport.load_curve_key(ctl.server_secret_key_file)[1] is None:
            problems.append(f"ctl.server_secret_key_file: {ctl.server_secret_key_file} holds no secret key")
    except ConfigError as e:
        problems.extend(e.problems)
    except (OSError, ValueError) as e:
        problems.append(f"ctl.server_secret_key_file: {ctl.server_secret_key_file} is not a CURVE key file ({e})")
    if not os.path.isdir(ctl.authorized_keys_dir):  # noqa: PTH112
        problems.append(f"ctl.authorized_keys_dir: {ctl.authorized_keys_dir} is not a directory")
    return problems


GC_INTERVAL_MIN_S = 0.5


def _check_supervisor(cfg: CoreConfig, problems: list[str]) -> None:
    if 0 < cfg.host.gc_interval_s < GC_INTERVAL_MIN_S:
        problems.append(
            f"host.gc_interval_s: 0 (off) or at least {GC_INTERVAL_MIN_S:g} s: a full collection "
            f"takes the root ~10 ms ({cfg.host.gc_interval_s:g} s)"
        )
    sup = cfg.supervisor
    if sup.heartbeat_timeout_s <= sup.heartbeat_interval_s:
        problems.append(
            "supervisor.heartbeat_timeout_s: must be longer than supervisor.heartbeat_interval_s "
            f"({sup.heartbeat_timeout_s} <= {sup.heartbeat_interval_s})"
        )
    if sup.permit_ttl_s < 2 * sup.state_interval_s:
        problems.append(
            "supervisor.permit_ttl_s: must be at least twice supervisor.state_interval_s "
            "(else permits lapse between two publications)"
        )
    if sup.backoff_max_s < sup.backoff_initial_s:
        problems.append("supervisor.backoff_max_s: must not be below supervisor.backoff_initial_s")


def load_config(
    path: str | os.PathLike[str] | None,
    overrides: Sequence[str] = (),
    *,
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> HostConfig:
    """Read, override, validate and resolve the whole configuration (``tradehost run``).

    Args:
        path: the TOML file; None means built-in defaults only.
        overrides: ``key.path=value`` strings from ``--set``.
        cwd: directory that relative paths are resolved against (default: the current one).
        environ: where secrets and the live confirmation come from (default: ``os.environ``).

    Raises:
        ConfigError: with one line per problem, each naming the dotted key.
    """
    from supervisor.hostconfig import HostConfig, check_host_config, role_config_classes

    cfg = _load(HostConfig, path, overrides, cwd=cwd, skip_sections=(), role_sections=role_config_classes())
    curve_problems = _check_ctl_curve(cfg)
    if curve_problems:
        raise ConfigError(curve_problems)
    check_host_config(cfg, os.environ if environ is None else environ)
    return cfg


def load_core_config(
    path: str | os.PathLike[str] | None, overrides: Sequence[str] = (), *, cwd: str | os.PathLike[str] | None = None
) -> CoreConfig:
    """The sections ``tradehost ctl`` needs, validated the same way; the roles' sections are only
    checked by name, so a mistake in them never keeps an operator from reaching a running host.
    """
    return _load(CoreConfig, path, overrides, cwd=cwd, skip_sections=ROLE_SECTIONS)


def load_section(path: str | os.PathLike[str] | None, overrides: Sequence[str], name: str, cls: type[_S]) -> _S:
    """One section alone, validated the same way (``tradehost alert`` reads only ``[alerts]``, so
    it works when the rest of the configuration, or the host, is broken).

    Raises:
        ConfigError: the file is unreadable, or the section has problems (dotted keys).
    """
    data = _read(path) if path is not None else {}
    for text in overrides:
        key, value = parse_override(text)
        if key[0] == name:
            _apply_override(data, key, value)
    problems: list[str] = []
    section: _S = build_section(cls, data.get(name, {}), name, problems)
    if problems:
        raise ConfigError(problems)
    return section


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:  # noqa: PTH123
            return tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no such file") from e
    except IsADirectoryError as e:
        raise ConfigError(f"{path}: is a directory") from e
    except PermissionError as e:
        raise ConfigError(f"{path}: permission denied") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e


def _load(
    cls: type[_C],
    path: str | os.PathLike[str] | None,
    overrides: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None,
    skip_sections: Collection[str],
    role_sections: Mapping[str, type[Any]] | None = None,
) -> _C:
    data = _read(path) if path is not None else {}
    for text in overrides:
        key, value = parse_override(text)
        _apply_override(data, key, value)
    for name in skip_sections:
        data.pop(name, None)
    problems: list[str] = []
    built: dict[str, object] = {}
    for name, section_cls in (role_sections or {}).items():
        built[name] = build_section(section_cls, data.pop(name, {}), name, problems)
    cfg: _C = build_section(cls, data, "", problems, also_known=built)
    if role_sections is not None:
        cfg = dataclasses.replace(cfg, roles=built)  # type: ignore[call-arg]
    if problems:
        raise ConfigError(problems)
    base = os.fspath(cwd) if cwd is not None else os.getcwd()  # noqa: PTH109
    run_dir = os.path.realpath(os.path.join(base, cfg.host.run_dir)) if cfg.host.run_dir else base  # noqa: PTH118
    if not cfg.host.run_dir:
        problems.append("host.run_dir: must not be empty")
    cfg = dataclasses.replace(
        cfg,
        source="<defaults>" if path is None else str(path),
        host=dataclasses.replace(cfg.host, run_dir=str(run_dir)),
        ctl=dataclasses.replace(cfg.ctl, endpoint=_resolve_endpoint(cfg.ctl.endpoint, run_dir, "ctl.sock")),
        bus=BusConfig(
            events_in=_resolve_endpoint(cfg.bus.events_in, run_dir, "bus-in.sock"),
            events_out=_resolve_endpoint(cfg.bus.events_out, run_dir, "bus-out.sock"),
            control=_resolve_endpoint(cfg.bus.control, run_dir, "control.sock"),
        ),
    )
    for check in (_check_endpoints, _check_supervisor):
        check(cfg, problems)
    if problems:
        raise ConfigError(problems)
    return cfg


def documented_keys(cls: type[Any] | None = None, prefix: str = "") -> dict[str, str]:
    """Every configuration key with its doc line (default: of the whole ``HostConfig``)."""
    if cls is None:
        from supervisor.hostconfig import HostConfig, role_config_classes

        out = documented_keys(HostConfig)
        for name, section_cls in role_config_classes().items():
            out.update(documented_keys(section_cls, name))
        return out
    out = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        key = f"{prefix}{'.' if prefix else ''}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(documented_keys(typing.cast(type[Any], tp), key))
        else:
            out[key] = str(f.metadata.get("doc", ""))
    return out
