"""The offline commands: ``train`` (a model from candles), ``backtest`` (candles through the live
decision rules), ``report`` (a shadow run against a backtest of its window) and ``journal archive``
(old journal rows moved into an archive file, ``supervisor.offline.archive``; refused while a host
runs: exit 1, one line).

Each reads its flags and the configuration, hands the work to ``supervisor.offline`` and prints
one line of what it wrote; a bad input is one line on stderr and exit 2. The heavy imports
(pandas, CatBoost) happen inside each command, when it is chosen.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from actors.core.errors import ConfigError
from supervisor.cli.options import BACKTEST_BARS, conf_path, config_error
from supervisor.ctl.client import EXIT_OK, EXIT_REFUSED, EXIT_USAGE

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from pathlib import Path

    from actors.broker.config import BrokerConfig
    from actors.core.config import FeedConfig
    from actors.ml.modelstore import Model
    from supervisor.hostconfig import HostConfig
    from supervisor.offline.backtest.inputs import Inputs
    from supervisor.offline.backtest.run import BacktestResult
    from supervisor.offline.history import History


def _checked_out(text: str) -> Path:
    """``--out`` (``supervisor.offline.inputs.check_out_dir``), refused inside the run directory of a
    running host (its lock held): an offline command never writes among a live run's files.

    Raises:
        InputError: one line naming it and why.
    """
    from supervisor.offline.inputs import InputError, check_out_dir
    from supervisor.rundir import running_host_dir

    out = check_out_dir(text)
    held = running_host_dir(out)
    if held is not None:
        raise InputError(
            f"--out {text}: inside the run directory of a running host ({held}); nothing was written "
            "(give a directory outside it)"
        )
    return out


def cmd_train(args: argparse.Namespace) -> int:
    """``tradehost train``."""
    from actors.core.config import FeedConfig
    from actors.core.errors import BrokerError, TradehostError
    from supervisor.config import load_config
    from supervisor.offline.inputs import InputError, creating, parse_cli_time
    from supervisor.offline.train import TrainSpec, train

    def say(line: str) -> None:
        print(f"tradehost train: {line}", file=sys.stderr, flush=True)

    try:
        cfg = load_config(conf_path(args), args.overrides)
    except ConfigError as e:
        return config_error(e)
    feed = cfg.section("feed", FeedConfig)
    try:
        from_ns = parse_cli_time(args.from_, "--from") if args.from_ else None
        to_ns = parse_cli_time(args.to, "--to") if args.to else None
        if args.seed < 0:
            raise InputError(f"--seed: {args.seed} must be 0 or more")
        if args.bars < 1:
            raise InputError(f"--bars: {args.bars} is not a number of bars (>= 1)")
        out = _checked_out(args.out)
    except InputError as e:
        print(f"tradehost train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    granularity = args.granularity or feed.granularity
    try:
        data = _train_history(args, cfg, feed=feed, granularity=granularity, from_ns=from_ns, to_ns=to_ns, say=say)
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


def _train_history(
    args: argparse.Namespace,
    cfg: HostConfig,
    *,
    feed: FeedConfig,
    granularity: str,
    from_ns: int | None,
    to_ns: int | None,
    say: Callable[[str], None],
) -> History:
    """The candles to train on: from the ``--data`` files, else from the configured broker."""
    from supervisor.offline import history

    if args.data:
        return history.from_files(args.data, known=feed.instruments, granularity=granularity, validation=feed)
    say(f"reading {granularity} candles of {', '.join(feed.instruments)} from the {cfg.broker.kind} broker")
    with history.open_history_broker(cfg.broker) as broker:
        return history.from_broker(
            broker,
            feed.instruments,
            granularity,
            bars=args.bars,
            from_ns=from_ns,
            to_ns=to_ns,
            progress=say,
            validation=feed,
        )


class _BadInput(Exception):
    """A ``backtest`` input that cannot be used: ``tradehost backtest: <kind>: <detail>``, exit 2."""

    def __init__(self, kind: str, detail: object) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def cmd_backtest(args: argparse.Namespace) -> int:
    """``tradehost backtest``."""
    from actors.core.config import FeedConfig
    from actors.core.errors import BrokerError, TradehostError
    from actors.ml import modelstore
    from supervisor.config import load_config

    def say(line: str) -> None:
        if not args.quiet:
            print(f"tradehost backtest: {line}", file=sys.stderr, flush=True)

    def fail(kind: str, detail: object) -> int:
        print(f"tradehost backtest: {kind}: {detail}", file=sys.stderr)
        return EXIT_USAGE

    try:
        cfg = load_config(conf_path(args), args.overrides)
    except ConfigError as e:
        return config_error(e)
    feed = cfg.section("feed", FeedConfig)
    # The bars' granularity: --granularity, else the model directory's (model.json), else the feed's.
    granularity = args.granularity or _model_granularity(args, cfg) or feed.granularity
    try:
        out, from_ns, to_ns, broker_cfg = _backtest_window(args, cfg, granularity)
    except _BadInput as e:
        return fail(e.kind, e.detail)
    try:
        inputs, result = _backtest(
            args,
            cfg,
            feed=feed,
            granularity=granularity,
            out=out,
            from_ns=from_ns,
            to_ns=to_ns,
            broker_cfg=broker_cfg,
            say=say,
        )
    except modelstore.ModelMissingError as e:
        return fail("model missing", e)
    except modelstore.ModelMismatchError as e:
        return fail("model mismatch", e)
    except BrokerError as e:
        return fail("broker", e)
    except (TradehostError, ValueError, OSError) as e:
        return fail("error", e)
    _backtest_summary(inputs, result, out, say)
    return EXIT_OK


def _model_granularity(args: argparse.Namespace, cfg: HostConfig) -> str | None:
    """The granularity the model directory was trained on (its ``model.json``); None when it cannot be
    read (loading the model then says why)."""
    import json
    from pathlib import Path

    from actors.core.config import ModelConfig

    try:
        meta = json.loads((Path(args.model or cfg.section("model", ModelConfig).dir) / "model.json").read_text())
    except (OSError, ValueError):
        return None
    value = meta.get("granularity") if isinstance(meta, dict) else None
    return value if isinstance(value, str) and value else None


def _backtest_window(
    args: argparse.Namespace, cfg: HostConfig, granularity: str
) -> tuple[Path, int | None, int | None, BrokerConfig]:
    """The output directory, the window to decide on and the broker to read it from.

    Raises:
        _BadInput: a flag that cannot be used, alone or with the others.
    """
    from pathlib import Path

    from actors.core.errors import TradehostError
    from supervisor.offline.backtest import inputs as backtest_inputs
    from supervisor.offline.inputs import InputError, parse_cli_time

    try:
        from_ns = parse_cli_time(args.from_, "--from") if args.from_ else None
        to_ns = parse_cli_time(args.to, "--to") if args.to else None
        out = _checked_out(args.out)
    except InputError as e:
        raise _BadInput("error", e) from e
    broker_cfg = cfg.broker
    if args.window_of:
        if from_ns is not None or to_ns is not None or args.data is not None or args.bars != BACKTEST_BARS:
            raise _BadInput(
                "--window-of", "give it alone: it sets the window (--from/--to/--bars) and reads the broker"
            )
        try:
            from_ns, to_ns = backtest_inputs.window_of(
                Path(args.window_of), granularity, [Path(a) for a in args.archive]
            )
        except TradehostError as e:
            raise _BadInput("--window-of", e) from e
        broker_cfg = backtest_inputs.history_until(broker_cfg, to_ns)
    if from_ns is not None and to_ns is not None and from_ns >= to_ns:
        raise _BadInput("error", f"empty window: --from {args.from_} is not before --to {args.to}")
    if args.bars < 1:
        raise _BadInput("--bars", f"{args.bars} is not a number of bars (>= 1)")
    return out, from_ns, to_ns, broker_cfg


def _backtest(
    args: argparse.Namespace,
    cfg: HostConfig,
    *,
    feed: FeedConfig,
    granularity: str,
    out: Path,
    from_ns: int | None,
    to_ns: int | None,
    broker_cfg: BrokerConfig,
    say: Callable[[str], None],
) -> tuple[Inputs, BacktestResult]:
    """Read the candles and the model, replay the window, write the outputs into ``out``."""
    from actors.core.config import ExecutionConfig, RiskConfig
    from actors.core.timefmt import format_rfc3339
    from supervisor.offline.backtest import inputs as backtest_inputs
    from supervisor.offline.backtest import run as backtest
    from supervisor.offline.inputs import creating

    inputs, model = _backtest_inputs(
        args, cfg, feed=feed, granularity=granularity, from_ns=from_ns, to_ns=to_ns, broker_cfg=broker_cfg, say=say
    )
    spec = backtest.BacktestSpec(
        instruments=inputs.instruments,
        granularity=granularity,
        from_ns=from_ns,
        to_ns=to_ns,
        home_currency=inputs.home_currency,
        opening_nav=inputs.opening_nav,
        journal_level=args.journal_level,
    )
    backtest_inputs.check_bars(inputs.history, granularity)
    backtest_inputs.check_conversion(inputs)
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
    if result.last_ns <= model.meta.window_to_ns:
        print(
            f"tradehost backtest: warning: the window is entirely in-sample: every bar decided on is in the model's "
            f"training window (to {format_rfc3339(model.meta.window_to_ns)}), so its results flatter the model",
            file=sys.stderr,
            flush=True,
        )
    return inputs, result


def _backtest_inputs(
    args: argparse.Namespace,
    cfg: HostConfig,
    *,
    feed: FeedConfig,
    granularity: str,
    from_ns: int | None,
    to_ns: int | None,
    broker_cfg: BrokerConfig,
    say: Callable[[str], None],
) -> tuple[Inputs, Model]:
    """The candles (from the ``--data`` files, else from the broker, as many bars before the window
    as the model's features need) and the model, checked against the configuration."""
    from decimal import Decimal
    from pathlib import Path

    from actors.core.config import ModelConfig
    from actors.ml import modelstore
    from actors.ml.features import FEATURE_NAMES, FEATURES_VERSION
    from supervisor.offline.backtest import inputs as backtest_inputs

    model_dir = Path(args.model or cfg.section("model", ModelConfig).dir)
    if args.data:
        inputs = backtest_inputs.from_files(
            args.data,
            configured=feed.instruments,
            balance=Decimal(cfg.broker.emulator.balance),
            granularity=granularity,
            validation=feed,
        )
    else:
        inputs = None
    instruments = inputs.instruments if inputs is not None else feed.instruments
    model = modelstore.load(
        model_dir,
        features_version=FEATURES_VERSION,
        feature_names=FEATURE_NAMES,
        granularity=granularity,
        instruments=instruments,
    )
    if inputs is None:
        say(f"reading {granularity} candles of {', '.join(instruments)} from the {cfg.broker.kind} broker")
        inputs = backtest_inputs.from_broker(
            broker_cfg,
            instruments,
            granularity,
            from_ns=from_ns,
            to_ns=to_ns,
            bars=args.bars,
            history_bars=model.meta.window_bars,
            progress=say,
            validation=feed,
        )
    return inputs, model


def _backtest_summary(inputs: Inputs, result: BacktestResult, out: Path, say: Callable[[str], None]) -> None:
    from actors.core.timefmt import format_rfc3339
    from supervisor.offline.backtest import inputs as backtest_inputs
    from supervisor.offline.backtest.metrics import sample_lines

    m = result.metrics
    win = "n/a" if m["win_rate"] is None else f"{m['win_rate']:.1%}"
    say(backtest_inputs.summary_line(inputs))
    say(
        f"{m['bars']} bars decided from {format_rfc3339(result.first_ns)} to {format_rfc3339(result.last_ns)}: "
        f"{m['trades']} trades, win rate {win}, net {m['net_pnl']:+.2f} {inputs.home_currency}, max drawdown "
        f"{m['max_drawdown']:.2%}; wrote {out}/ (trades.csv, journal.sqlite, metrics.json, equity.png)"
    )
    quotes = m.get("quotes", {})
    by_kind = {kind: [n for n, k in quotes.items() if k == kind] for kind in ("bid_ask", "mid_spread")}
    described = {"bid_ask": "the source's bid/ask candles", "mid_spread": "mid -/+ half the closing spread"}
    say(
        "fills and stops read from "
        + "; ".join(f"{described[kind]} ({', '.join(names)})" for kind, names in by_kind.items() if names)
    )
    for line in sample_lines(m, inputs.home_currency):
        say(line)
    if m["open_at_end"]:
        say(
            f"{m['open_at_end']} trade(s) open at the end: marked at the last close's bid (long) / ask (short), "
            "no slippage (end_of_data in trades.csv), the same mark in net_pnl"
        )


def cmd_report(args: argparse.Namespace) -> int:
    """``tradehost report``."""
    import dataclasses
    from pathlib import Path

    from supervisor.offline.inputs import InputError, creating
    from supervisor.offline.report.run import ReportError, ReportLimits, write_report

    try:
        limits = ReportLimits(
            min_match=args.min_match,
            max_win_rate_gap=args.max_win_rate_gap,
            max_slippage_pips=args.max_slippage_pips,
            max_latency_ms=args.max_latency_ms,
            max_growth_mb_per_h=args.max_growth_mb_per_h,
            min_memory_span_s=args.min_memory_span_s,
            min_days=args.min_days,
            min_trades=args.min_trades,
            max_rejected_pct=args.max_rejected_pct,
            allow_unobserved=frozenset(args.allow_unobserved),
        )
        out = _checked_out(args.out)
        with creating(out) as work:
            report = write_report(
                Path(args.journal), Path(args.backtest), work, limits=limits, archives=[Path(a) for a in args.archive]
            )
        report = dataclasses.replace(report, path=out / report.path.name)
    except (ReportError, InputError, ValueError, OSError) as e:
        print(f"tradehost report: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(report.summary())
    return EXIT_OK if report.passed else EXIT_REFUSED


def cmd_sweep(args: argparse.Namespace) -> int:
    """``tradehost sweep``: the grid's cells on a Dask cluster (``supervisor.offline.sweep``)."""
    try:
        return _sweep(args)
    except KeyboardInterrupt:  # before the cells were submitted (after, the sweep handles it itself)
        print("tradehost sweep: interrupted before any cell ran; nothing to resume", file=sys.stderr)
        return EXIT_REFUSED


def _sweep(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from decimal import Decimal
    from pathlib import Path

    from actors.core.config import ExecutionConfig, FeedConfig, RiskConfig
    from actors.core.errors import TradehostError
    from supervisor.config import load_config
    from supervisor.offline.backtest import inputs as backtest_inputs
    from supervisor.offline.inputs import InputError
    from supervisor.rundir import running_host_dir

    def say(line: str) -> None:
        print(f"tradehost sweep: {line}", file=sys.stderr, flush=True)

    def fail(detail: object) -> int:
        print(f"tradehost sweep: error: {detail}", file=sys.stderr)
        return EXIT_USAGE

    try:
        cfg = load_config(conf_path(args), args.overrides)
    except ConfigError as e:
        return config_error(e)
    if args.scheduler and args.workers is not None:
        return fail("--workers: the cluster at --scheduler has its own workers; give one or the other")
    workers = 2 if args.workers is None else args.workers
    if workers < 1:
        return fail(f"--workers: {workers} is not a number of worker processes (>= 1)")
    try:
        from supervisor.offline.sweep import grid as sweep_grid
        from supervisor.offline.sweep import run as sweep
    except ImportError as e:
        return fail(f"the sweep extra is not installed ({e}): pip install -e '.[sweep]'")
    feed = cfg.section("feed", FeedConfig)
    granularity = args.granularity or feed.granularity
    try:
        text = Path(args.grid).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return fail(f"--grid {args.grid}: cannot be read ({getattr(e, 'strerror', None) or e})")
    out = Path(args.out)
    try:
        if not (out.is_dir() and (out / sweep.MANIFEST_FILE).is_file()):
            out = _checked_out(args.out)
        held = running_host_dir(out)
        if held is not None:
            raise InputError(f"--out {args.out}: inside the run directory of a running host ({held})")
        inputs = backtest_inputs.from_files(
            args.data,
            configured=feed.instruments,
            balance=Decimal(cfg.broker.emulator.balance),
            granularity=granularity,
            validation=feed,
        )
        grid = sweep_grid.parse_grid(text, instruments=inputs.instruments)
        backtest_inputs.check_bars(inputs.history, granularity)
        for names in grid.instrument_sets.values():
            backtest_inputs.check_conversion(replace(inputs, instruments=names))
        for warning in inputs.history.warnings:
            say(f"warning: {warning}")

        def sections(overrides: list[str]) -> tuple[RiskConfig, ExecutionConfig]:
            c = load_config(conf_path(args), [*args.overrides, *overrides])
            return c.section("risk", RiskConfig), c.section("execution", ExecutionConfig)

        try:
            cells = sweep.plan(grid, inputs, granularity=granularity, sections=sections, configured=feed.instruments)
        except ConfigError as e:
            raise sweep_grid.GridError(f"parameters: {'; '.join(e.problems)}") from e
        resumed = sweep.prepare_out(out, text)
    except sweep_grid.GridError as e:
        return fail(f"{args.grid}: {e}")
    except (TradehostError, ValueError, OSError) as e:
        return fail(e)
    if resumed:
        say(f"resuming the sweep in {out}")
    try:
        outcome = sweep.run_sweep(
            cells,
            inputs.history,
            out=out,
            grid=grid,
            scheduler=args.scheduler,
            workers=workers,
            say=say,
            show_progress=not args.quiet,
        )
    except sweep.SweepError as e:
        return fail(e)
    ok = len(outcome.rows) - len(outcome.failed)
    say(
        f"{ok} of {outcome.total} cells ok, {len(outcome.failed)} failed, {outcome.total - len(outcome.rows)} not run "
        f"({outcome.reused} done before, {outcome.ran} run now) in {outcome.elapsed_s:.1f}s; wrote {out}/ "
        "(results.csv, results.parquet, heatmap.png)"
    )
    for row in outcome.failed[:10]:
        say(f"failed: cell {row['cell']}: {row['error']}")
    if len(outcome.failed) > 10:
        say(f"... and {len(outcome.failed) - 10} more failed cells (status and error in results.csv)")
    if outcome.interrupted:
        say("interrupted: rerun the same command to resume (finished cells are kept)")
    return (
        EXIT_OK
        if not outcome.failed and not outcome.interrupted and len(outcome.rows) == outcome.total
        else EXIT_REFUSED
    )


def cmd_journal(args: argparse.Namespace) -> int:
    """``tradehost journal archive``: exit 0 moved (or nothing to move), 1 refused (a host runs) or
    failed, 2 usage (a bad DATE, ``--out`` not an archive, no journal)."""
    import sqlite3
    import time
    from pathlib import Path

    from actors.core.timefmt import format_rfc3339
    from supervisor.config import load_core_config
    from supervisor.host import JOURNAL_NAME
    from supervisor.offline.archive import ArchiveError, archive_before
    from supervisor.offline.inputs import InputError, parse_cli_time
    from supervisor.rundir import HostLock, HostLockedError

    def say(line: str) -> None:
        print(f"tradehost journal archive: {line}", file=sys.stderr)

    try:
        before_ns = parse_cli_time(args.before, "--before")
    except InputError as e:
        say(str(e))
        return EXIT_USAGE
    try:
        cfg = load_core_config(conf_path(args), args.overrides)
    except ConfigError as e:
        return config_error(e)
    journal = cfg.run_dir / JOURNAL_NAME
    if not journal.is_file():
        say(f"{journal}: no such journal; nothing was moved")
        return EXIT_USAGE
    try:
        lock = HostLock.acquire(cfg.run_dir)
    except HostLockedError as e:
        say(f"refused: {e.args[0].removeprefix('host.run_dir: ')}; stop it first (nothing was moved)")
        return EXIT_REFUSED
    except ConfigError as e:
        say(str(e))
        return EXIT_USAGE
    try:
        result = archive_before(journal, before_ns, Path(args.out), now_ns=time.time_ns())
    except ArchiveError as e:
        say(str(e))
        return EXIT_USAGE
    except (sqlite3.Error, OSError) as e:
        say(f"failed: {e}; the journal is as it was")
        return EXIT_REFUSED
    finally:
        lock.release()
    if result.count == 0:
        say(f"no row of {journal} before {format_rfc3339(before_ns)}; nothing was moved")
    else:
        say(
            f"moved {result.count} rows (seq {result.first_seq}..{result.last_seq}) before "
            f"{format_rfc3339(before_ns)} from {journal} to {result.archive} (sha256 {result.sha256[:16]}...)"
        )
    return EXIT_OK
