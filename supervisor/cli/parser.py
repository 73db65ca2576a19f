"""The argument parser of ``tradehost``: one function per command's options.

Built only when a command line is not the plain ``ctl`` form ``main`` parses itself (building the
tree costs a tenth of a ``tradehost ctl``); each ``_add_<command>`` adds one subcommand with its
help text and options, in the order ``tradehost --help`` lists them.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from supervisor.cli.options import BACKTEST_BARS, CTL_HELP, add_config_args

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]  # what add_subparsers returns


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tradehost``."""
    parser = argparse.ArgumentParser(
        prog="tradehost",
        description="A supervised process tree that trades an OANDA v20 account from CatBoost models, safe first.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (
        _add_run,
        _add_ctl,
        _add_emulator,
        _add_train,
        _add_backtest,
        _add_sweep,
        _add_report,
        _add_journal,
        _add_alert,
        _add_keys,
    ):
        add(sub)
    return parser


def _add_run(sub: Commands) -> None:
    """``tradehost run``."""
    run = sub.add_parser(
        "run",
        help="start the tree in the foreground",
        description="Start the supervisor, the bus, the ctl endpoint and the roles (with the embedded broker "
        "emulator first, by default) in the foreground. "
        "SIGTERM, SIGINT or `tradehost ctl shutdown` stop it gracefully (exit 0).",
    )
    add_config_args(run)


def _add_ctl(sub: Commands) -> None:
    """``tradehost ctl COMMAND [ARGS]``."""
    ctl = sub.add_parser(
        "ctl",
        help="talk to a running host",
        description="Send one command to a running host.",
        epilog=CTL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(ctl)
    ctl.add_argument(
        "ctl_command",
        metavar="COMMAND",
        help="status | pause | resume | shutdown | restart ROLE | reconcile | flatten [--yes]",
    )
    ctl.add_argument("ctl_args", metavar="ARGS", nargs=argparse.REMAINDER, help="arguments of the command")


def _add_emulator(sub: Commands) -> None:
    """``tradehost emulator`` (its own parser: ``actors.broker.emulator.cli``)."""
    sub.add_parser(
        "emulator", help="run the OANDA v20 emulator on its own (see `tradehost emulator --help`)", add_help=False
    )


def _add_train(sub: Commands) -> None:
    """``tradehost train``."""
    train = sub.add_parser(
        "train",
        help="build a model directory from candles",
        description="Build a model directory (model.cbm + model.json) from candle files or, without --data, "
        "from the configured broker's candles (by default the embedded emulator's history, started in this "
        "process). Label: 1 if the mid close --horizon bars ahead is above this bar's close. Walk-forward split "
        "by time; held-out metrics are printed next to naive baselines and stored in model.json. The same "
        "inputs and --seed give a byte-identical model.cbm. Exit 0 ok, 2 bad input.",
    )
    add_config_args(train)
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


def _add_backtest(sub: Commands) -> None:
    """``tradehost backtest``."""
    backtest = sub.add_parser(
        "backtest",
        help="replay candles through the live decision rules (deterministic)",
        description="Replay a window of candles through the decision functions the live roles call (features, "
        "the model, the gate, sizing, drawdown zones, exits, the fill model) in one process: entries fill at the "
        "next bar's open on the right side of the spread, SL/TP are checked inside each bar (when both "
        "could have hit, the one on the side of the extreme nearer the open first), decisions are taken at each "
        "bar's close in market time. Candles from --data files "
        "or, without it, from the configured broker (by default the embedded emulator's history, started in this "
        "process; --window-of backtests the window of a shadow run's journal). Writes "
        "trades.csv, journal.sqlite (the live journal kinds, corr = bar id), metrics.json and equity.png into "
        "--out. The same inputs give a byte-identical trades.csv. Exit 0 ok, 2 bad input.",
    )
    add_config_args(backtest)
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
    backtest.add_argument(
        "--archive",
        action="append",
        default=[],
        metavar="FILE",
        help="with --window-of: an archive of that journal's old rows, read with it; may be repeated",
    )
    backtest.add_argument("--granularity", help="bar granularity (default: the model directory's, from its model.json)")
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


SWEEP_GRID_HELP = """\
GRID.toml (top-level keys before the first table):
  metric = "out_of_sample.sharpe"                    heatmap.png's metric (a results column)
  heatmap = ["risk.min_probability", "train.depth"]  its axes: two of [parameters]
  [parameters]                  the cells are the cross product of these lists
  "risk.min_probability" = [0.55, 0.6]      risk.<key>, execution.<key> (checked as --set)
  "train.depth" = [4, 6]        train.<seed|horizon_bars|iterations|depth|learning_rate|holdout_fraction>
  [train]                       training settings every cell shares (iterations = 300, ...)
  [instruments]                 named sets of --data instruments (default: one set of all)
  majors = ["EUR_USD", "GBP_USD"]
  [walk_forward]                train_days, test_days[, start, step_days, windows, anchored]
                                (or [[windows]] tables of train_from, train_to, test_to)
"""


def _wrapped(text: str) -> str:
    import textwrap

    return textwrap.fill(text, 79)


def _add_sweep(sub: Commands) -> None:
    """``tradehost sweep``."""
    sweep = sub.add_parser(
        "sweep",
        help="walk-forward train + backtest over a parameter grid, on a Dask cluster",
        epilog=SWEEP_GRID_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrapped(
            "Run every cell of GRID.toml (parameter set x instrument set x walk-forward window): each trains "
            "a model with tradehost train's function (or reuses one already trained for the same candles and settings) "
            "and backtests it with tradehost backtest's function over its training window (in-sample) and the test "
            "window after it (out-of-sample). The cells run on Dask: a LocalCluster of --workers processes on this "
            "machine, or an existing cluster's scheduler (--scheduler tcp://HOST:8786; its workers need tradehost and "
            "the sweep extra installed, and read no files: the candles and models travel through Dask). Writes "
            "results.csv and results.parquet (one row per cell: parameters, in-sample and out-of-sample metrics), "
            "heatmap.png (the grid's metric over two parameters) and cells/, models/ into --out. A failed cell is "
            "reported with its error and the rest goes on; Ctrl-C stops cleanly and keeps the finished cells; the same "
            "command with the same --out resumes. GRID.toml's format: README, 'Research on a cluster'. "
            "Exit 0 every cell ok, 1 a cell failed or the run was interrupted, 2 bad input."
        ),
    )
    add_config_args(sweep)
    sweep.add_argument("--grid", required=True, metavar="GRID.toml", help="the grid: parameters, instruments, windows")
    sweep.add_argument(
        "--data",
        required=True,
        nargs="+",
        metavar="INSTR=CSV",
        help="candle CSV files (time,open,high,low,close[,...])",
    )
    sweep.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the output directory: new or empty, or an earlier sweep's (its finished cells are kept, the rest run)",
    )
    sweep.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="an existing Dask cluster's scheduler (e.g. tcp://10.0.0.5:8786); default: a LocalCluster here",
    )
    sweep.add_argument(
        "--workers", type=int, default=None, help="worker processes of the LocalCluster, one thread each (default 2)"
    )
    sweep.add_argument("--granularity", help="bar granularity of the files (default: feed.granularity)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_report(sub: Commands) -> None:
    """``tradehost report``."""
    report = sub.add_parser(
        "report",
        help="shadow run vs backtest: the go-live checklist",
        description="Compare a (replayed) shadow run's journal with a backtest of the same window: duration in "
        "market days, win rate, crashes, weekends, reconnections, memory, trade-by-trade match with the first "
        "differences explained, slippage (judged on live runs only), bar-to-order latency and data quality. A line "
        "the run did not observe fails unless --allow-unobserved names it. Writes report.md, PNG plots and the "
        'verdict report.json (what broker.environment = "live" needs to start) into --out; prints the '
        "checklist. Exit 0 when every line passes, 1 when one fails, 2 bad input.",
    )
    report.add_argument("--journal", required=True, metavar="PATH", help="the shadow run's journal.sqlite")
    report.add_argument(
        "--archive",
        action="append",
        default=[],
        metavar="FILE",
        help="an archive of that journal's old rows (`tradehost journal archive`), read with it; may be repeated "
        "(a journal whose archived rows are not all given is refused, naming the file)",
    )
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
    report.add_argument(
        "--min-memory-span-s",
        type=float,
        default=600.0,
        help="memory samples must span at least this many seconds of the run to be judged (600)",
    )
    report.add_argument(
        "--min-days",
        type=float,
        default=14.0,
        help="least shadow period that passes, in market days of the run's bars (market time: a replay counts "
        "the window it replayed) (14)",
    )
    report.add_argument(
        "--min-trades", type=int, default=30, help="closed trades each side needs for the win rate to be judged (30)"
    )
    report.add_argument(
        "--max-rejected-pct",
        type=float,
        default=1.0,
        help="largest share of rejected bars/ticks, model skips and lost messages per bar expected that passes (1)",
    )
    report.add_argument(
        "--allow-unobserved",
        action="append",
        default=[],
        metavar="LINE",
        help="let this line pass when the run observed nothing for it (duration, win_rate, crashes, weekends, "
        "disconnections, memory, match, slippage, latency, data_quality); may be repeated",
    )


def _add_journal(sub: Commands) -> None:
    """``tradehost journal archive``."""
    journal = sub.add_parser(
        "journal",
        help="journal retention: move old rows into an archive file",
        description="`tradehost journal archive --before DATE --out FILE` moves the rows of the run directory's "
        "journal written before DATE into FILE (an SQLite archive: created, or appended to when it is a tradehost "
        "archive), written, fsynced and read back before any row leaves the journal; the journal keeps a "
        "journal.archived row (seq range, count, the file's sha256). Seq numbers never change. Refused while a "
        "host runs in the run directory. `tradehost report --archive FILE` and `tradehost backtest --window-of J "
        "--archive FILE` read the archives with the journal. Exit 0 moved (or nothing to move), 1 refused (a host "
        "runs) or failed, 2 usage (a bad DATE, FILE not an archive, no journal).",
    )
    add_config_args(journal)
    journal.add_argument("action", choices=("archive",), help="archive: move the rows before --before")
    journal.add_argument(
        "--before", required=True, metavar="DATE", help="move rows written before this (RFC3339, YYYY-MM-DD, epoch s)"
    )
    journal.add_argument("--out", required=True, metavar="FILE", help="the archive file (new, or a tradehost archive)")


def _add_alert(sub: Commands) -> None:
    """``tradehost alert``."""
    alert = sub.add_parser(
        "alert",
        help="send one alert mail now (when the host itself is dead)",
        description="Send one mail with the [alerts] settings of the configuration (the SMTP password from "
        "TRADEHOST_SMTP_PASSWORD), without a running host: the systemd unit calls it through OnFailure=. Reads "
        "only the [alerts] section. Exit 0 sent, 1 not sent (the reason on stderr), 2 usage or configuration.",
    )
    add_config_args(alert)
    alert.add_argument("--subject", required=True, help="the subject line")
    alert.add_argument("--body-file", metavar="F", help="the body, from this file ('-' for stdin; default empty)")


def _add_keys(sub: Commands) -> None:
    """``tradehost keys new NAME``."""
    keys = sub.add_parser(
        "keys",
        help="CURVE key pairs for ctl over tcp",
        description="`tradehost keys new NAME` writes NAME.key (the public key) and NAME.key_secret (the key "
        "pair), both mode 0600, in pyzmq's certificate format; existing files are never written over. The host "
        "reads its own pair from ctl.server_secret_key_file and admits the clients whose NAME.key is in "
        "ctl.authorized_keys_dir; a client reads its pair from ctl.client_secret_key_file and the host's NAME.key "
        "from ctl.server_public_key_file. Exit 0 written, 1 refused (a file exists), 2 usage.",
    )
    keys.add_argument("action", choices=("new",), help="new: write a key pair")
    keys.add_argument("name", metavar="NAME", help="the key's name: letters, digits, '.', '_' and '-'")
    keys.add_argument("--dir", default=".", metavar="DIR", help="where to write the two files (default: .)")
