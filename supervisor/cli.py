"""``tradehost``: the command line (run, ctl, emulator).

Exit codes: 0 ok, 1 refused or failed, 2 usage or invalid configuration, 3 host not running.
``tradehost ctl`` is called by scripts and people alike, so this module imports only what the
ctl path needs; ``run`` and ``emulator`` import the heavy parts when they are chosen.
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

import json  # noqa: E402
import os  # noqa: E402
import types  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from actors.errors import ConfigError  # noqa: E402
from supervisor.client import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, CtlClient  # noqa: E402
from supervisor.config import load_core_config  # noqa: E402

if TYPE_CHECKING:
    import argparse

DEFAULT_CONF = "conf/default.toml"

CTL_HELP = """\
commands:
  status [--json]   state, no-trade reasons, per-role pid/status/restarts/heartbeat age/rss
  pause             stop opening new trades (an operator latch; exits go on)
  resume            clear the pause and latched reasons (refused while a role is down for good)
  shutdown          graceful shutdown: permit revoked, roles stopped in reverse order, exit 0
  restart ROLE      stop one role gracefully and start it again (ROLE: emulator, watchdog,
                    reconciler, feed, model, risk, execution)
  reconcile         reconcile with the broker now (no new entries until it is through)
  flatten [--yes]   close every open trade, then pause (without --yes: list them, exit 1)

exit codes: 0 ok, 1 refused or failed, 2 usage, 3 host not running
"""


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="CONF",
        default=None,
        help=f"TOML configuration (default: {DEFAULT_CONF} if it exists, else built-in defaults)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one key, e.g. --set supervisor.max_restarts=3 (VALUE is read as TOML, "
        "else as a plain string); may be repeated",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tradehost``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="tradehost",
        description="A supervised process tree that trades an OANDA v20 account from CatBoost models, safe first.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="start the tree in the foreground",
        description="Start the supervisor, the bus, the ctl endpoint and the roles (with the embedded broker "
        "emulator first, by default) in the foreground. "
        "SIGTERM, SIGINT or `tradehost ctl shutdown` stop it gracefully (exit 0).",
    )
    _add_config_args(run)
    ctl = sub.add_parser(
        "ctl",
        help="talk to a running host",
        description="Send one command to a running host.",
        epilog=CTL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_args(ctl)
    ctl.add_argument(
        "ctl_command",
        metavar="COMMAND",
        help="status | pause | resume | shutdown | restart ROLE | reconcile | flatten [--yes]",
    )
    ctl.add_argument("ctl_args", metavar="ARGS", nargs=argparse.REMAINDER, help="arguments of the command")
    sub.add_parser(
        "emulator", help="run the OANDA v20 emulator on its own (see `tradehost emulator --help`)", add_help=False
    )
    train = sub.add_parser(
        "train",
        help="build a model directory from candles",
        description="Build a model directory (model.cbm + model.json) from candle files or, without --data, "
        "from the configured broker's candles (by default the embedded emulator's history, started in this "
        "process). Label: 1 if the mid close --horizon bars ahead is above this bar's close. Walk-forward split "
        "by time; held-out metrics are printed next to naive baselines and stored in model.json. The same "
        "inputs and --seed give a byte-identical model.cbm. Exit 0 ok, 2 bad input.",
    )
    _add_config_args(train)
    train.add_argument(
        "--data", nargs="*", default=[], metavar="INSTR=CSV", help="candle CSV files (time,open,high,low,close[,...])"
    )
    train.add_argument("--granularity", help="bar granularity (default: feed.granularity)")
    train.add_argument("--from", dest="from_", metavar="T", help="first bar (RFC3339 or epoch seconds)")
    train.add_argument("--to", metavar="T", help="bars before this time (RFC3339 or epoch seconds)")
    train.add_argument(
        "--bars", type=int, default=5000, help="without --data or --from: the last N bars per instrument (5000)"
    )
    train.add_argument("--horizon", type=int, default=4, help="label horizon in bars (default 4)")
    train.add_argument("--seed", type=int, default=0, help="CatBoost seed (default 0)")
    train.add_argument("--out", required=True, metavar="DIR", help="the model directory to write")
    alert = sub.add_parser(
        "alert",
        help="send one alert mail now (when the host itself is dead)",
        description="Send one mail with the [alerts] settings of the configuration (the SMTP password from "
        "TRADEHOST_SMTP_PASSWORD), without a running host: the systemd unit calls it through OnFailure=. Reads "
        "only the [alerts] section. Exit 0 sent, 1 not sent (the reason on stderr), 2 usage or configuration.",
    )
    _add_config_args(alert)
    alert.add_argument("--subject", required=True, help="the subject line")
    alert.add_argument("--body-file", metavar="F", help="the body, from this file ('-' for stdin; default empty)")
    return parser


def _conf_path(args: argparse.Namespace) -> str | None:
    if args.config is None and os.path.exists(DEFAULT_CONF):  # noqa: PTH110 (no pathlib: ctl start-up)
        return DEFAULT_CONF
    path: str | None = args.config
    return path


def _config_error(e: ConfigError) -> int:
    for problem in e.problems:
        print(f"tradehost: config error: {problem}", file=sys.stderr)
    return EXIT_USAGE


def cmd_run(args: argparse.Namespace) -> int:
    """``tradehost run``."""
    from supervisor.config import load_config

    try:
        cfg = load_config(_conf_path(args), args.overrides)
    except ConfigError as e:
        return _config_error(e)
    from supervisor.host import HostLockedError, run_host

    try:
        code = run_host(cfg, early_signals=EARLY_SIGNALS)
    except HostLockedError as e:
        print(f"tradehost: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except ConfigError as e:
        return _config_error(e)
    # The root of a tree ends here, whatever threads a library left behind.
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_train(args: argparse.Namespace) -> int:
    """``tradehost train``."""
    from pathlib import Path

    from actors.broker.timefmt import parse_time
    from actors.errors import BrokerError, TradehostError
    from actors.feed import FeedConfig
    from supervisor import history
    from supervisor.config import load_config
    from supervisor.train import TrainSpec, train

    def say(line: str) -> None:
        print(f"tradehost train: {line}", file=sys.stderr, flush=True)

    try:
        cfg = load_config(_conf_path(args), args.overrides)
    except ConfigError as e:
        return _config_error(e)
    feed = cfg.section("feed", FeedConfig)
    try:
        from_ns = parse_time(args.from_) if args.from_ else None
        to_ns = parse_time(args.to) if args.to else None
    except ValueError as e:
        print(f"tradehost train: --from/--to: {e}", file=sys.stderr)
        return EXIT_USAGE
    granularity = args.granularity or feed.granularity
    try:
        if args.data:
            data = history.from_files(args.data, known=feed.instruments)
        else:
            say(f"reading {granularity} candles of {', '.join(feed.instruments)} from the {cfg.broker.kind} broker")
            with history.open_history_broker(cfg.broker) as broker:
                data = history.from_broker(
                    broker, feed.instruments, granularity, bars=args.bars, from_ns=from_ns, to_ns=to_ns, progress=say
                )
        spec = TrainSpec(
            granularity=granularity,
            out_dir=Path(args.out),
            seed=args.seed,
            from_ns=from_ns,
            to_ns=to_ns,
            horizon_bars=args.horizon,
        )
        result = train(
            data.frames,
            pip_sizes=data.pip_sizes,
            spec=spec,
            spread_fallback=data.spread_fallback,
            progress=say,
        )
    except (TradehostError, ValueError) as e:
        kind = "broker" if isinstance(e, BrokerError) else "error"
        print(f"tradehost train: {kind}: {e}", file=sys.stderr)
        return EXIT_USAGE
    say(f"wrote {result.directory} (version {result.meta.short_version}) in {result.elapsed_s:.1f}s")
    return EXIT_OK


def cmd_alert(args: argparse.Namespace) -> int:
    """``tradehost alert``."""
    from actors.alerts import AlertsConfig
    from actors.mailer import send_alert_now
    from supervisor.config import load_section

    try:
        config = load_section(_conf_path(args), args.overrides, "alerts", AlertsConfig)
    except ConfigError as e:
        return _config_error(e)
    body = ""
    if args.body_file == "-":
        body = sys.stdin.read()
    elif args.body_file:
        try:
            with open(args.body_file, encoding="utf-8", errors="replace") as f:  # noqa: PTH123
                body = f.read()
        except OSError as e:
            print(f"tradehost alert: --body-file: {e.strerror}: {args.body_file}", file=sys.stderr)
            return EXIT_USAGE
    result = send_alert_now(config, subject=args.subject, body=body, environ=os.environ)
    print(f"tradehost alert: {result.message}", file=sys.stderr if not result.ok else sys.stdout)
    return EXIT_OK if result.ok else EXIT_REFUSED


def cmd_ctl(args: argparse.Namespace) -> int:
    """``tradehost ctl``."""
    from supervisor.commands import COMMANDS

    command = COMMANDS.get(args.ctl_command)
    if command is None:
        print(f"tradehost ctl: unknown command {args.ctl_command!r}\n\n{CTL_HELP}", file=sys.stderr)
        return EXIT_USAGE
    argv = list(args.ctl_args)
    as_json = False
    if command.name == "status" and "--json" in argv:
        argv.remove("--json")
        as_json = True
    try:
        ctl_args: dict[str, Any] = command.parse(argv)
    except SystemExit as e:  # argparse already printed the usage
        return EXIT_OK if e.code == 0 else EXIT_USAGE
    try:
        cfg = load_core_config(_conf_path(args), args.overrides)
    except ConfigError as e:
        return _config_error(e)
    reply = CtlClient(cfg.ctl.endpoint, cfg.ctl.timeout_s).call(command.name, ctl_args)
    if not reply.ok:
        print(f"tradehost ctl {command.name}: {reply.reason}", file=sys.stderr)
        return reply.exit_code
    result = reply.result or {}
    if as_json:
        sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    else:
        print(command.render(result))
    return EXIT_OK


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
    """Entry point of the ``tradehost`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "emulator":
        try:
            from actors.broker.emulator.cli import main as emulator_main
        except ImportError as e:
            print(f"tradehost emulator: not available ({e})", file=sys.stderr)
            return EXIT_REFUSED
        return emulator_main(argv[1:])
    fast = _parse_plain_ctl(argv)
    if fast is not None:
        return cmd_ctl(fast)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_OK if e.code == 0 else EXIT_USAGE
    if args.command == "run":
        return cmd_run(args)
    if args.command == "ctl":
        return cmd_ctl(args)
    if args.command == "train":
        return cmd_train(args)
    if args.command == "alert":
        return cmd_alert(args)
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
