"""Command line of the emulator (``tradehost emulator ...`` / ``python -m actors.broker.emulator``).

The options are not declared here: each comes from a field of ``EmulatorOptions`` (the
operator-facing ones from ``EmulatorConfig``, plus ``--token`` and ``--account``), with its flag,
default, help and validation, so the command line and ``[broker.emulator]`` cannot drift apart.
Parses the options, starts the server, prints the port (and writes it to ``--port-file``), and
runs until SIGINT or SIGTERM. Exit codes: 0 after a clean stop, 2 for invalid options (one line
per problem, naming the flag).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from actors.broker.config import EmulatorOptionsError
from actors.broker.emulator.app import CLI_OPTIONS, EmulatorOptions
from actors.broker.emulator.server import serve
from actors.core.errors import ConfigError

__all__ = ["build_parser", "flag_of", "main", "options_from_args"]

_FIELDS = {f.name: f for f in dataclasses.fields(EmulatorOptions)}
_TYPES = typing.get_type_hints(EmulatorOptions)


def flag_of(name: str) -> str:
    """The command-line flag of the option ``name`` (``--heartbeat`` for ``heartbeat_s``)."""
    flag: str = _FIELDS[name].metadata.get("flag") or "--" + name.replace("_", "-")
    return flag


def _default_text(f: dataclasses.Field[Any]) -> str:
    default = f.default
    if isinstance(default, tuple):
        joiner = " " if f.metadata.get("nargs") else ","
        shown = joiner.join(default) or "none"
    else:
        shown = str(default) if default != "" else "none"
    env = f.metadata.get("env")
    return f"default ${env}, else {shown}" if env else f"default {shown}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one option per field of ``CLI_OPTIONS``, plus ``--port-file``."""
    parser = argparse.ArgumentParser(
        prog="tradehost emulator",
        description="An OANDA v20-compatible REST + streaming emulator for tradehost, on loopback. "
        "Point oandapyV20 at http://HOST:PORT; the admin API is under /admin on the same port. "
        "The options are those of the [broker.emulator] configuration section.",
    )
    for name in CLI_OPTIONS:
        f = _FIELDS[name]
        kwargs: dict[str, Any] = {
            "dest": name,
            "default": None,
            "help": f"{f.metadata['doc']} ({_default_text(f)})",
            "metavar": f.metadata.get("metavar") or name.upper(),
        }
        if f.metadata.get("nargs"):
            kwargs["nargs"] = f.metadata["nargs"]
        elif typing.get_origin(_TYPES[name]) is tuple:
            kwargs["help"] = f"{f.metadata['doc']}, comma-separated ({_default_text(f)})"
        parser.add_argument(flag_of(name), **kwargs)
    parser.add_argument("--port-file", type=Path, metavar="FILE", help="write the bound port to this file (atomically)")
    return parser


def _convert(name: str, raw: str | list[str]) -> Any:
    tp = _TYPES[name]
    if typing.get_origin(tp) is tuple:
        items = raw if isinstance(raw, list) else raw.split(",")
        return tuple(item.strip() for item in items if item.strip())
    if not isinstance(raw, str):
        raise ValueError(f"expected one value, got {len(raw)}")
    if tp is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not an integer") from None
    if tp is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
    return raw


def options_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> EmulatorOptions:
    """Turn parsed arguments into ``EmulatorOptions``; an option not given keeps its default
    (``--token`` / ``--account``: the environment variable named in the field, if set).

    Raises:
        EmulatorOptionsError: an option has the wrong type or fails its check (``by_field``
            names the fields; ``flag_of`` gives their flags).
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for name in CLI_OPTIONS:
        raw = getattr(args, name, None)
        env = _FIELDS[name].metadata.get("env")
        if raw is None and env and environ.get(env, "").strip():
            raw = environ[env].strip()
        if raw is None:
            continue
        try:
            values[name] = _convert(name, raw)
        except ValueError as e:
            problems.append((name, str(e)))
    if problems:
        raise EmulatorOptionsError(problems, prefix=EmulatorOptions.PREFIX)
    return EmulatorOptions(**values)


def _usage_error(e: ConfigError) -> int:
    if isinstance(e, EmulatorOptionsError):
        lines = [f"{flag_of(name) if name in _FIELDS else name}: {problem}" for name, problem in e.by_field]
    else:
        lines = e.problems
    for line in lines:
        print(f"tradehost emulator: {line}", file=sys.stderr)
    return 2


def main(argv: Sequence[str]) -> int:
    """Run the emulator until SIGINT/SIGTERM.

    Args:
        argv: the arguments after the command name.

    Returns:
        0 after a clean stop, 2 for invalid options.
    """
    parser = build_parser()
    args = parser.parse_args(list(argv))
    try:
        options = options_from_args(args)
    except ConfigError as e:
        return _usage_error(e)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def ready(port: int) -> None:
        if args.port_file is not None:
            tmp = args.port_file.with_suffix(".tmp")
            tmp.write_text(f"{port}\n")
            tmp.replace(args.port_file)
        print(port, flush=True)

    try:
        serve(options, ready=ready, stop=stop)
    except (OSError, ValueError) as e:
        print(f"tradehost emulator: {e}", file=sys.stderr)
        return 2
    return 0
