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

from actors.core.errors import ConfigError  # noqa: E402
from supervisor.config import load_core_config  # noqa: E402
from supervisor.ctl.client import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, CtlClient  # noqa: E402

if TYPE_CHECKING:
    import argparse

DEFAULT_CONF = "conf/default.toml"
BACKTEST_BARS = 2000  # tradehost backtest --bars default
ALERT_BODY_MAX = 1_000_000  # tradehost alert --body-file: characters

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
        "--data", nargs="+", metavar="INSTR=CSV", help="candle CSV files (time,open,high,low,close[,...])"
    )
    train.add_argument("--granularity", help="bar granularity (default: feed.granularity)")
    train.add_argument("--from", dest="from_", metavar="T", help="first bar (RFC3339, YYYY-MM-DD or epoch seconds)")
    train.add_argument("--to", metavar="T", help="bars before this time (RFC3339, YYYY-MM-DD or epoch seconds)")
    train.add_argument(
        "--bars", type=int, default=5000, help="without --data or --from: the last N bars per instrument (5000)"
    )
    train.add_argument("--horizon", type=int, default=4, help="label horizon in bars (default 4)")
    train.add_argument("--seed", type=int, default=0, help="CatBoost seed (default 0)")
    train.add_argument(
        "--out", required=True, metavar="DIR", help="the model directory to write: new or empty, never written over"
    )
    backtest = sub.add_parser(
        "backtest",
        help="replay candles through the live decision rules (deterministic)",
        description="Replay a window of candles through the decision functions the live roles call (features, "
        "the model, the gate, sizing, drawdown zones, exits, the fill model) in one process: entries fill at the "
        "next bar's open on the right side of the spread, SL/TP are checked inside each bar (the stop first when "
        "both could have hit), decisions are taken at each bar's close in market time. Candles from --data files "
        "or, without it, from the configured broker (by default the embedded emulator's history, started in this "
        "process; --window-of backtests the window of a shadow run's journal). Writes "
        "trades.csv, journal.sqlite (the live journal kinds, corr = bar id), metrics.json and equity.png into "
        "--out. The same inputs give a byte-identical trades.csv. Exit 0 ok, 2 bad input.",
    )
    _add_config_args(backtest)
    backtest.add_argument(
        "--data", nargs="+", metavar="INSTR=CSV", help="candle CSV files (time,open,high,low,close[,...])"
    )
    backtest.add_argument(
        "--from", dest="from_", metavar="T", help="first bar to decide on (RFC3339, YYYY-MM-DD or epoch seconds)"
    )
    backtest.add_argument(
        "--to", metavar="T", help="decide on bars before this time (RFC3339, YYYY-MM-DD or epoch seconds)"
    )
    backtest.add_argument(
        "--bars",
        type=int,
        default=BACKTEST_BARS,
        help=f"without --data or --from: the last N bars per instrument ({BACKTEST_BARS})",
    )
    backtest.add_argument(
        "--window-of",
        metavar="JOURNAL",
        help="decide on the bars a shadow run decided on (its journal.sqlite): from its first bar decided with a "
        "trading permit to its last; with the embedded emulator, its history is read up to that window's end",
    )
    backtest.add_argument("--model", metavar="DIR", help="model directory (default: model.dir)")
    backtest.add_argument(
        "--journal",
        dest="journal_level",
        choices=("all", "decisions", "trades"),
        default="decisions",
        help="what journal.sqlite holds: every row a live run would write (all); all but md.bar and "
        "below-threshold skips (decisions, the default); only each entry's story (trades)",
    )
    backtest.add_argument("--quiet", action="store_true", help="no progress bar")
    backtest.add_argument(
        "--out", required=True, metavar="DIR", help="the output directory: new or empty, never written over"
    )
    report = sub.add_parser(
        "report",
        help="shadow run vs backtest: the go-live checklist",
        description="Compare a (replayed) shadow run's journal with a backtest of the same window: win rate, "
        "crashes, weekends, reconnections, memory, trade-by-trade match with the first differences explained, "
        "slippage and bar-to-order latency. Writes report.md and PNG plots into --out; prints the checklist. "
        "Exit 0 when every line passes, 1 when one fails, 2 bad input.",
    )
    report.add_argument("--journal", required=True, metavar="PATH", help="the shadow run's journal.sqlite")
    report.add_argument("--backtest", required=True, metavar="DIR", help="the backtest's output directory")
    report.add_argument(
        "--out", required=True, metavar="DIR", help="where report.md and the plots go: new or empty, never written over"
    )
    report.add_argument("--min-match", type=float, default=0.95, help="least trade match rate that passes (0.95)")
    report.add_argument(
        "--max-win-rate-gap", type=float, default=5.0, help="largest win-rate gap that passes, in points (5)"
    )
    report.add_argument(
        "--max-slippage-pips", type=float, default=2.0, help="largest p99 slippage that passes, in pips (2)"
    )
    report.add_argument(
        "--max-latency-ms", type=float, default=1000.0, help="largest p99 bar-to-order latency that passes (1000 ms)"
    )
    report.add_argument(
        "--max-growth-mb-per-h", type=float, default=50.0, help="largest RSS growth that passes (50 MB/h)"
    )
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

    from actors.core.config import FeedConfig
    from actors.core.errors import BrokerError, TradehostError
    from supervisor.config import load_config
    from supervisor.offline import history
    from supervisor.offline.inputs import InputError, check_out_dir, creating, parse_cli_time
    from supervisor.offline.train import TrainSpec, train

    def say(line: str) -> None:
        print(f"tradehost train: {line}", file=sys.stderr, flush=True)

    try:
        cfg = load_config(_conf_path(args), args.overrides)
    except ConfigError as e:
        return _config_error(e)
    feed = cfg.section("feed", FeedConfig)
    try:
        from_ns = parse_cli_time(args.from_, "--from") if args.from_ else None
        to_ns = parse_cli_time(args.to, "--to") if args.to else None
        if args.seed < 0:
            raise InputError(f"--seed: {args.seed} must be 0 or more")
        if args.bars < 1:
            raise InputError(f"--bars: {args.bars} is not a number of bars (>= 1)")
        out = check_out_dir(args.out)
    except InputError as e:
        print(f"tradehost train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    granularity = args.granularity or feed.granularity
    try:
        if args.data:
            data = history.from_files(args.data, known=feed.instruments, granularity=granularity, validation=feed)
        else:
            say(f"reading {granularity} candles of {', '.join(feed.instruments)} from the {cfg.broker.kind} broker")
            with history.open_history_broker(cfg.broker) as broker:
                data = history.from_broker(
                    broker,
                    feed.instruments,
                    granularity,
                    bars=args.bars,
                    from_ns=from_ns,
                    to_ns=to_ns,
                    progress=say,
                    validation=feed,
                )
        for warning in data.warnings:  # bars the live feed would reject: left out
            print(f"tradehost train: warning: {warning}", file=sys.stderr, flush=True)
        with creating(out) as work:
            spec = TrainSpec(
                granularity=granularity,
                out_dir=work,
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
    except (TradehostError, ValueError, OSError) as e:
        kind = "broker" if isinstance(e, BrokerError) else "error"
        print(f"tradehost train: {kind}: {e}", file=sys.stderr)
        return EXIT_USAGE
    say(f"wrote {out} (version {result.meta.short_version}) in {result.elapsed_s:.1f}s")
    return EXIT_OK


def cmd_backtest(args: argparse.Namespace) -> int:
    """``tradehost backtest``."""
    from decimal import Decimal
    from pathlib import Path

    from actors.core.config import ExecutionConfig, FeedConfig, ModelConfig, RiskConfig
    from actors.core.errors import BrokerError, TradehostError
    from actors.core.timefmt import format_rfc3339
    from actors.ml import modelstore
    from actors.ml.features import FEATURE_NAMES, FEATURES_VERSION
    from supervisor.config import load_config
    from supervisor.offline.backtest import inputs as backtest_inputs
    from supervisor.offline.backtest import run as backtest
    from supervisor.offline.inputs import InputError, check_out_dir, creating, parse_cli_time

    def say(line: str) -> None:
        if not args.quiet:
            print(f"tradehost backtest: {line}", file=sys.stderr, flush=True)

    def fail(kind: str, detail: object) -> int:
        print(f"tradehost backtest: {kind}: {detail}", file=sys.stderr)
        return EXIT_USAGE

    try:
        cfg = load_config(_conf_path(args), args.overrides)
    except ConfigError as e:
        return _config_error(e)
    feed = cfg.section("feed", FeedConfig)
    try:
        from_ns = parse_cli_time(args.from_, "--from") if args.from_ else None
        to_ns = parse_cli_time(args.to, "--to") if args.to else None
        out = check_out_dir(args.out)
    except InputError as e:
        return fail("error", e)
    broker_cfg = cfg.broker
    if args.window_of:
        if from_ns is not None or to_ns is not None or args.data is not None or args.bars != BACKTEST_BARS:
            return fail("--window-of", "give it alone: it sets the window (--from/--to/--bars) and reads the broker")
        try:
            from_ns, to_ns = backtest_inputs.window_of(Path(args.window_of), feed.granularity)
        except TradehostError as e:
            return fail("--window-of", e)
        broker_cfg = backtest_inputs.history_until(broker_cfg, to_ns)
    if from_ns is not None and to_ns is not None and from_ns >= to_ns:
        return fail("error", f"empty window: --from {args.from_} is not before --to {args.to}")
    if args.bars < 1:
        return fail("--bars", f"{args.bars} is not a number of bars (>= 1)")
    model_dir = Path(args.model or cfg.section("model", ModelConfig).dir)
    try:
        if args.data:
            inputs = backtest_inputs.from_files(
                args.data,
                configured=feed.instruments,
                balance=Decimal(cfg.broker.emulator.balance),
                granularity=feed.granularity,
                validation=feed,
            )
        else:
            inputs = None
        instruments = inputs.instruments if inputs is not None else feed.instruments
        model = modelstore.load(
            model_dir,
            features_version=FEATURES_VERSION,
            feature_names=FEATURE_NAMES,
            granularity=feed.granularity,
            instruments=instruments,
        )
        if inputs is None:
            say(f"reading {feed.granularity} candles of {', '.join(instruments)} from the {cfg.broker.kind} broker")
            inputs = backtest_inputs.from_broker(
                broker_cfg,
                instruments,
                feed.granularity,
                from_ns=from_ns,
                to_ns=to_ns,
                bars=args.bars,
                history_bars=model.meta.window_bars,
                progress=say,
                validation=feed,
            )
        spec = backtest.BacktestSpec(
            instruments=inputs.instruments,
            granularity=feed.granularity,
            from_ns=from_ns,
            to_ns=to_ns,
            home_currency=inputs.home_currency,
            opening_nav=inputs.opening_nav,
            journal_level=args.journal_level,
        )
        backtest_inputs.check_bars(inputs.history, feed.granularity)
        for warning in backtest_inputs.coverage_warnings(inputs.history, from_ns, model.meta.window_bars):
            print(f"tradehost backtest: warning: {warning}", file=sys.stderr, flush=True)
        with creating(out) as work:
            journal = backtest.fresh_journal(work)
            try:
                result = backtest.run_backtest(
                    inputs.history,
                    model=model,
                    meta=inputs.meta,
                    risk=cfg.section("risk", RiskConfig),
                    execution=cfg.section("execution", ExecutionConfig),
                    spec=spec,
                    journal=journal,
                    progress=None if args.quiet else backtest.Progress("bars"),
                )
            finally:
                journal.close()
            backtest.write_outputs(result, work)
    except modelstore.ModelMissingError as e:
        return fail("model missing", e)
    except modelstore.ModelMismatchError as e:
        return fail("model mismatch", e)
    except BrokerError as e:
        return fail("broker", e)
    except (TradehostError, ValueError, OSError) as e:
        return fail("error", e)
    m = result.metrics
    win = "n/a" if m["win_rate"] is None else f"{m['win_rate']:.1%}"
    say(backtest_inputs.summary_line(inputs))
    say(
        f"{m['bars']} bars decided from {format_rfc3339(result.first_ns)} to {format_rfc3339(result.last_ns)}: "
        f"{m['trades']} trades, win rate {win}, net {m['net_pnl']:+.2f} {inputs.home_currency}, max drawdown "
        f"{m['max_drawdown']:.2%}; wrote {out}/ (trades.csv, journal.sqlite, metrics.json, equity.png)"
    )
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """``tradehost report``."""
    import dataclasses
    from pathlib import Path

    from supervisor.offline.inputs import InputError, check_out_dir, creating
    from supervisor.offline.report.run import ReportError, ReportLimits, write_report

    try:
        limits = ReportLimits(
            min_match=args.min_match,
            max_win_rate_gap=args.max_win_rate_gap,
            max_slippage_pips=args.max_slippage_pips,
            max_latency_ms=args.max_latency_ms,
            max_growth_mb_per_h=args.max_growth_mb_per_h,
        )
        out = check_out_dir(args.out)
        with creating(out) as work:
            report = write_report(Path(args.journal), Path(args.backtest), work, limits=limits)
        report = dataclasses.replace(report, path=out / report.path.name)
    except (ReportError, InputError, ValueError, OSError) as e:
        print(f"tradehost report: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(report.summary())
    return EXIT_OK if report.passed else EXIT_REFUSED


def cmd_alert(args: argparse.Namespace) -> int:
    """``tradehost alert``."""
    from actors.alerting.config import AlertsConfig, load_smtp_password
    from actors.alerting.mailer import send_alert_now
    from supervisor.config import load_section

    try:
        config = load_section(_conf_path(args), args.overrides, "alerts", AlertsConfig)
        if config.enabled:
            load_smtp_password(config, os.environ)  # a missing password is configuration: exit 2
    except ConfigError as e:
        return _config_error(e)
    body = ""
    try:
        if args.body_file == "-":
            body = sys.stdin.read(ALERT_BODY_MAX + 1)
        elif args.body_file:
            with open(args.body_file, encoding="utf-8", errors="replace") as f:  # noqa: PTH123
                body = f.read(ALERT_BODY_MAX + 1)
    except OSError as e:
        print(f"tradehost alert: --body-file: {e.strerror}: {args.body_file}", file=sys.stderr)
        return EXIT_USAGE
    if len(body) > ALERT_BODY_MAX:
        print(f"tradehost alert: --body-file: longer than {ALERT_BODY_MAX} characters", file=sys.stderr)
        return EXIT_USAGE
    result = send_alert_now(config, subject=args.subject, body=body, environ=os.environ)
    print(f"tradehost alert: {result.message}", file=sys.stderr if not result.ok else sys.stdout)
    return EXIT_OK if result.ok else EXIT_REFUSED


def cmd_ctl(args: argparse.Namespace) -> int:
    """``tradehost ctl``."""
    from supervisor.ctl.commands import COMMANDS

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
    if args.command == "backtest":
        return cmd_backtest(args)
    if args.command == "report":
        return cmd_report(args)
    if args.command == "alert":
        return cmd_alert(args)
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
