"""``tradehost``: the command line (run, ctl, emulator, train, backtest, sweep, report, journal, alert,
keys): argparse and dispatch only.

Exit codes: 0 ok, 1 refused or failed, 2 usage or invalid configuration, 3 host not running.
``tradehost ctl`` is called by scripts and people alike, so this package's start-up imports only
what the ctl path needs: its plain form is parsed here without argparse, and the parser
(``parser``), the offline commands (``offline``) and the heavy parts of ``run`` are imported when
they are chosen. The commands live beside this module: ``live`` (run, ctl, alert) and ``offline``
(train, backtest, sweep, report, journal); ``options`` holds what they share.
"""

from __future__ import annotations

import signal
import sys

# `tradehost run`: a shutdown signal from the first moment on must end in a clean exit 0, so the
# handlers go in before anything else is imported; ``run_host`` picks up what they saw.
EARLY_SIGNALS: list[str] = []


def _remember_signal(signum: int, frame: object) -> None:
    EARLY_SIGNALS.append(signal.Signals(signum).name)


if sys.argv[1:2] == ["run"]:
    for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(_sig, _remember_signal)

import types  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from supervisor.cli import live  # noqa: E402
from supervisor.ctl.client import EXIT_OK, EXIT_REFUSED, EXIT_USAGE  # noqa: E402

if TYPE_CHECKING:
    import argparse


def _parse_plain_ctl(argv: list[str]) -> argparse.Namespace | None:
    """Parse the common ``ctl [-c CONF] [--set K=V]... COMMAND [ARGS]`` without building the
    argparse tree (it costs a tenth of the whole command); None hands anything else (help,
    mistakes, other commands) to argparse, which explains it."""
    if not argv or argv[0] != "ctl":
        return None
    config, overrides, i = None, [], 1
    while i < len(argv) and argv[i].startswith("-"):
        flag, has_value, value = argv[i].partition("=")
        if not has_value:
            if i + 1 >= len(argv):
                return None
            value, i = argv[i + 1], i + 1
        if flag in ("-c", "--config"):
            config = value
        elif flag == "--set":
            overrides.append(value)
        else:
            return None
        i += 1
    if i >= len(argv) or any(a in ("-h", "--help") for a in argv[i:]):
        return None
    return types.SimpleNamespace(  # type: ignore[return-value]
        command="ctl", config=config, overrides=overrides, ctl_command=argv[i], ctl_args=argv[i + 1 :]
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tradehost`` console script.

    A reader that stops early (``tradehost ctl status | head``) closes the pipe: the rest of the
    output goes nowhere, without a BrokenPipeError traceback, and the command's exit code stands.
    """
    try:
        code = _dispatch(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_gone()
        return EXIT_OK
    return code


def _stdout_gone() -> None:
    # Python flushes stdout again at exit: point it at /dev/null so that flush cannot fail.
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "emulator":
        try:
            from actors.broker.emulator.cli import main as emulator_main
        except ImportError as e:
            print(f"tradehost emulator: not available ({e})", file=sys.stderr)
            return EXIT_REFUSED
        return emulator_main(argv[1:])
    fast = _parse_plain_ctl(argv)
    if fast is not None:
        return live.cmd_ctl(fast)
    from supervisor.cli.parser import build_parser

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_OK if e.code == 0 else EXIT_USAGE
    if args.command == "run":
        return live.cmd_run(args, early_signals=EARLY_SIGNALS)
    if args.command in ("ctl", "alert"):
        return live.cmd_ctl(args) if args.command == "ctl" else live.cmd_alert(args)
    if args.command == "keys":
        return live.cmd_keys(args)
    if args.command in ("train", "backtest", "report", "sweep", "journal"):
        from supervisor.cli import offline

        commands = {
            "train": offline.cmd_train,
            "backtest": offline.cmd_backtest,
            "report": offline.cmd_report,
            "sweep": offline.cmd_sweep,
            "journal": offline.cmd_journal,
        }
        return commands[args.command](args)
    parser.print_help(sys.stderr)
    return EXIT_USAGE
