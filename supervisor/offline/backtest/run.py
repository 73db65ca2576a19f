"""``tradehost backtest``: what the model would have done over a window, fast and deterministically.

One process replays candles through the same decision functions the live roles call, with no copy
of any of them (``supervisor.offline.backtest.book`` says which rule is called where): the feature function
(``actors.ml.features``) over the whole history at once, one ``Model.predict`` over every bar of the
window, then one walk over the bars with the gate, sizing, zones, exits and the fill model.
Candles come from ``--data INSTR=CSV`` files or, by default, from the configured broker (the
embedded emulator's history, started in this process as ``tradehost train`` does); the rows
before the window (or the model's ``window_bars`` first rows) are history only, as the live model
loads its window before its first prediction.

Outputs in ``--out``: ``trades.csv``, ``journal.sqlite`` (the live journal kinds and body fields,
``corr`` = the bar id, stamped with market time, ``src`` = ``backtest``; see ``JOURNAL_LEVELS``;
its last row is ``backtest.completed`` with the window and the metrics), ``metrics.json``
(``supervisor.offline.backtest.metrics``) and ``equity.png``. The same inputs give byte-identical
``trades.csv`` and ``metrics.json`` and the same journal rows.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import pandas as pd

from actors.core.candlespec import CANDLE_COLUMNS
from actors.core.errors import TradehostError
from actors.core.timefmt import format_rfc3339
from actors.ml.features import WideBars, compute_features, wide_bars
from actors.runtime.journal import Journal
from supervisor.offline.backtest.book import JOURNAL_LEVELS, Simulation
from supervisor.offline.backtest.metrics import compute_metrics, plot_equity, sample_split, trades_csv, write_json
from supervisor.offline.backtest.records import BarGrid, ClosedTrade, _Outcome
from supervisor.offline.backtest.rows import JournalRow

if TYPE_CHECKING:
    from actors.core.config import ExecutionConfig, RiskConfig
    from actors.core.domain import Instrument
    from actors.ml.modelstore import Model, Prediction
    from supervisor.offline.history import History

__all__ = ["BacktestError", "BacktestResult", "BacktestSpec", "Progress", "run_backtest", "write_outputs"]

JOURNAL_FILE = "journal.sqlite"
TRADES_FILE = "trades.csv"
METRICS_FILE = "metrics.json"
EQUITY_FILE = "equity.png"
_FLUSH_ROWS = 50_000


class BacktestError(TradehostError):
    """The backtest cannot run on this input; the message says why in one line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestSpec:
    """What to replay.

    Attributes:
        instruments: the instruments, in the order the live roles decide them (``feed.instruments``).
        granularity: the bars' granularity (the model's).
        from_ns: the first bar to decide on (inclusive); None: after the model's window of history.
        to_ns: bars before this are decided on (exclusive); None: to the end of the candles.
        home_currency: the account currency.
        opening_nav: the account's NAV at the start (home currency).
        journal_level: one of ``JOURNAL_LEVELS``.
    """

    instruments: tuple[str, ...]
    granularity: str
    from_ns: int | None = None
    to_ns: int | None = None
    home_currency: str = "USD"
    opening_nav: float = 100_000.0
    journal_level: str = "decisions"


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    """What ``run_backtest`` produced (``write_outputs`` writes the files from it).

    Attributes:
        spec: the spec.
        trades: the closed trades.
        metrics: ``supervisor.offline.backtest.metrics.compute_metrics`` plus the decisions by reason.
        equity_ns: bar closes of the window.
        equity: the NAV at each of them.
        first_ns: start of the first bar decided on.
        last_ns: start of the last bar decided on.
        model_version: the model's short version.
        precision: instrument -> display precision.
        timings_s: seconds per phase (``features``, ``predict``, ``simulate``, ``journal``).
    """

    spec: BacktestSpec
    trades: list[ClosedTrade]
    metrics: dict[str, Any]
    equity_ns: list[int]
    equity: list[float]
    first_ns: int
    last_ns: int
    model_version: str
    precision: dict[str, int]
    timings_s: dict[str, float] = field(default_factory=dict)


class Progress:
    """A progress bar on a text stream: redrawn in place on a terminal, a line per tenth otherwise.

    Args:
        label: what is counted (``bars``).
        stream: where to write (stderr).
    """

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.perf_counter()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        """Show ``done`` of ``total``."""
        steps = 50 if self.tty else 10
        mark = done * steps // max(total, 1)
        if mark == self.shown and done < total:
            return
        self.shown = mark
        elapsed = time.perf_counter() - self.started
        bar = "#" * (done * 30 // max(total, 1))
        share = done * 100 // max(total, 1)
        text = f"tradehost backtest: [{bar:<30}] {share:3d}% {done}/{total} {self.label} {elapsed:.1f}s"
        if self.tty:
            self.stream.write("\r" + text + ("\n" if done >= total else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _prepared(name: str, frame: pd.DataFrame, spread_fallback: Mapping[str, float]) -> pd.DataFrame:
    frame = frame.loc[:, list(CANDLE_COLUMNS)].astype(np.float64)
    if frame["volume"].isna().all():  # as tradehost train: no volume -> 0 (volume_z_32 is then 0)
        frame["volume"] = 0.0
    unknown = frame["spread"].isna()
    if unknown.any():
        fallback = spread_fallback.get(name)
        if fallback is None:
            raise BacktestError(f"{name}: no spread on {int(unknown.sum())} bars and no fallback spread for it")
        frame.loc[unknown, "spread"] = float(fallback)
    return frame


def _window(times: np.ndarray, spec: BacktestSpec, history_rows: int) -> tuple[int, int]:
    first = int(np.searchsorted(times, spec.from_ns)) if spec.from_ns is not None else min(history_rows, len(times))
    last = int(np.searchsorted(times, spec.to_ns)) if spec.to_ns is not None else len(times)
    if first >= last:
        lo = format_rfc3339(spec.from_ns) if spec.from_ns is not None else f"bar {history_rows + 1}"
        hi = format_rfc3339(spec.to_ns) if spec.to_ns is not None else "the end of the candles"
        raise BacktestError(f"empty window: no bars to decide on between {lo} and {hi} ({len(times)} bars read)")
    return first, last


def run_backtest(
    history: History,
    *,
    model: Model,
    meta: Mapping[str, Instrument],
    risk: RiskConfig,
    execution: ExecutionConfig,
    spec: BacktestSpec,
    journal: Journal | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Replay ``history`` through the live rules (see the module docstring).

    Args:
        history: candle frames per instrument, pip sizes and fallback spreads.
        model: the loaded, checked model.
        meta: instrument metadata by name.
        risk: the ``[risk]`` section.
        execution: the ``[execution]`` section.
        spec: instruments, window, account and journal level.
        journal: where the journal rows go (None: nowhere).
        progress: called with (bars done, bars in the window).

    Raises:
        BacktestError: an instrument without candles or metadata, a bad journal level, or an
            empty window.
    """
    _check_inputs(history, meta, spec)
    timings: dict[str, float] = {}
    window = _predicted(history, model, spec, timings)
    rows = _JournalRows(journal)
    t0 = time.perf_counter()
    try:
        outcome = _simulate(
            window, model, meta=meta, risk=risk, execution=execution, spec=spec, emit=rows.emit, progress=progress
        )
    except BaseException:
        rows.stop()
        raise
    timings["simulate"] = time.perf_counter() - t0 - rows.written_s
    metrics = compute_metrics(
        outcome.trades,
        equity=outcome.equity,
        exposed_bars=outcome.exposed,
        opening_nav=spec.opening_nav,
        granularity=spec.granularity,
    )
    metrics["decisions"] = dict(sorted(outcome.decisions.items()))
    metrics["quotes"] = quotes_used(history, spec.instruments)
    metrics.update(
        sample_split(
            outcome.trades,
            equity_ns=outcome.equity_ns,
            equity=outcome.equity,
            exposed=outcome.exposed_at,
            opening_nav=spec.opening_nav,
            granularity=spec.granularity,
            training_to_ns=model.meta.window_to_ns,
        )
    )
    times, first, last = window.times, window.first, window.last
    result = BacktestResult(
        spec=spec,
        trades=outcome.trades,
        metrics=metrics,
        equity_ns=outcome.equity_ns,
        equity=outcome.equity,
        first_ns=int(times[first]),
        last_ns=int(times[last - 1]),
        model_version=model.meta.short_version,
        precision={name: meta[name].display_precision for name in spec.instruments},
        timings_s=timings,
    )
    rows.emit([("backtest.completed", _summary(result), None, result.equity_ns[-1] if result.equity_ns else 0)])
    rows.flush(last=True)
    timings["journal"] = rows.written_s
    return result


def _check_inputs(history: History, meta: Mapping[str, Instrument], spec: BacktestSpec) -> None:
    if spec.journal_level not in JOURNAL_LEVELS:
        raise BacktestError(f"--journal {spec.journal_level!r}: choose one of {', '.join(JOURNAL_LEVELS)}")
    for name in spec.instruments:
        if name not in history.frames or history.frames[name].empty:
            raise BacktestError(f"{name}: no candles for it")
        if name not in meta:
            raise BacktestError(f"{name}: no instrument metadata for it")


@dataclass(frozen=True, slots=True)
class _Window:
    """The bars of a run (all rows; ``first``..``last`` is the window decided on), their feature
    rows, and the model's P(up) and validity per (window row, instrument)."""

    bars: WideBars
    times: np.ndarray
    first: int
    last: int
    values: np.ndarray
    width: int
    prediction: Prediction
    p_up: np.ndarray
    valid: np.ndarray
    quotes: Mapping[str, pd.DataFrame]


def _predicted(history: History, model: Model, spec: BacktestSpec, timings: dict[str, float]) -> _Window:
    """The features of every bar and the model's predictions over the window, timed."""
    t0 = time.perf_counter()
    frames = {name: _prepared(name, history.frames[name], history.spread_fallback) for name in spec.instruments}
    bars = wide_bars(frames)
    times = bars.close.index.to_numpy(dtype=np.int64)
    first, last = _window(times, spec, model.meta.window_bars)
    features = compute_features(bars, model.meta.pip_sizes)
    columns = list(model.meta.feature_names)
    width = len(spec.instruments)
    values = features.to_numpy() if list(features.columns) == columns else features[columns].to_numpy()
    timings["features"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    prediction = model.predict(values[first * width : last * width])
    p_up = prediction.p_up.reshape(last - first, width)
    valid = prediction.valid.reshape(last - first, width)
    timings["predict"] = time.perf_counter() - t0
    return _Window(bars, times, first, last, values, width, prediction, p_up, valid, history.quotes)


class _JournalRows:
    """A run's journal rows, written ``_FLUSH_ROWS`` at a time (one transaction each, in order), and
    the time the simulation waited for the writes.

    The writes run on one writer thread while the simulation goes on (SQLite lets go of the GIL
    while it writes), one batch at a time: a batch waits for the one before it, so the rows keep
    their order and at most two batches are held. ``flush(last=True)`` waits for every write and
    raises a write's error.
    """

    def __init__(self, journal: Journal | None) -> None:
        self.journal = journal
        self.buffer: list[JournalRow] = []
        self.written_s = 0.0
        self._writer: ThreadPoolExecutor | None = None
        self._writing: Future[None] | None = None

    def flush(self, *, last: bool = False) -> None:
        started = time.perf_counter()
        try:
            if self._writing is not None:
                self._writing.result()
                self._writing = None
            if self.journal is not None and self.buffer:
                batch, self.buffer = self.buffer, []
                if last:
                    self.journal.write_many(batch)
                else:
                    if self._writer is None:
                        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backtest-journal")
                    self._writing = self._writer.submit(self.journal.write_many, batch)
            self.buffer.clear()
        finally:
            if last and self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
            self.written_s += time.perf_counter() - started

    def emit(self, rows: list[JournalRow]) -> None:
        self.buffer.extend(rows)
        if len(self.buffer) >= _FLUSH_ROWS:
            self.flush()

    def stop(self) -> None:
        """Wait for the write under way, if any (a failed run: its error is the one raised)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None


def _simulate(
    window: _Window,
    model: Model,
    *,
    meta: Mapping[str, Instrument],
    risk: RiskConfig,
    execution: ExecutionConfig,
    spec: BacktestSpec,
    emit: Callable[[list[JournalRow]], None],
    progress: Callable[[int, int], None] | None,
) -> _Outcome:
    """Walk the bars: warm up before the window, then step through it, deciding on each bar."""
    bars, times, first, last, width = window.bars, window.times, window.first, window.last, window.width
    values, prediction, p_up, valid = window.values, window.prediction, window.p_up, window.valid
    version = model.meta.short_version
    bid, ask = _quote_grid(window.quotes, times, spec.instruments)
    grid = BarGrid(
        times=times,
        instruments=spec.instruments,
        mid={side: getattr(bars, side).to_numpy(dtype=np.float64) for side in ("open", "high", "low", "close")},
        spread=bars.spread.to_numpy(dtype=np.float64),
        volume=bars.volume.to_numpy(dtype=np.float64),
        bid=bid,
        ask=ask,
    )
    sim = Simulation(
        grid,
        meta=meta,
        risk=risk,
        execution=execution,
        granularity=spec.granularity,
        home_currency=spec.home_currency,
        nav=spec.opening_nav,
        model_version=version,
        journal_level=spec.journal_level,
        emit=emit,
    )
    for row in range(first):
        sim.warm_up(row)
    total = last - first
    names = model.meta.feature_names

    for k, row in enumerate(range(first, last)):

        def skipped(j: int, row: int = row) -> dict[str, Any]:
            cells = values[row * width + j]
            return {
                "instrument": spec.instruments[j],
                "bar_ts": int(times[row]),
                "reason": prediction.reasons[(row - first) * width + j],
                "features": {f: float(v) if math.isfinite(v) else str(v) for f, v in zip(names, cells, strict=True)},
                "model_version": version,
            }

        sim.step(row, p_up[k].tolist(), valid[k].tolist(), skipped)
        if progress is not None and (k % 256 == 0 or k == total - 1):
            progress(k + 1, total)
    return sim.finish()


_OHLC = ("open", "high", "low", "close")
QUOTES_BID_ASK = "bid_ask"  # the source's bid/ask candles (price=BA)
QUOTES_MID_SPREAD = "mid_spread"  # mid -/+ half the closing spread (candle files)


def _quote_grid(
    quotes: Mapping[str, pd.DataFrame], times: np.ndarray, instruments: Sequence[str]
) -> tuple[dict[str, np.ndarray] | None, dict[str, np.ndarray] | None]:
    """The bid and ask OHLC of the instruments that have them on the grid's rows (NaN elsewhere)."""
    if not any(name in quotes for name in instruments):
        return None, None
    index = pd.Index(times, dtype=np.int64)
    sides: dict[str, dict[str, np.ndarray]] = {}
    for which in ("bid", "ask"):
        sides[which] = {}
        for field_ in _OHLC:
            column = f"{which}_{field_}"
            sides[which][field_] = np.column_stack(
                [
                    quotes[name][column].reindex(index).to_numpy(dtype=np.float64)
                    if name in quotes
                    else np.full(len(times), np.nan)
                    for name in instruments
                ]
            )
    return sides["bid"], sides["ask"]


def quotes_used(history: History, instruments: Sequence[str]) -> dict[str, str]:
    """Per instrument, what the fills and stops were read from: ``bid_ask`` (the source's bid/ask
    candles) or ``mid_spread`` (mid -/+ half the closing spread)."""
    return {n: QUOTES_BID_ASK if n in history.quotes else QUOTES_MID_SPREAD for n in instruments}


def _summary(result: BacktestResult) -> dict[str, Any]:
    spec = result.spec
    return {
        "instruments": list(spec.instruments),
        "granularity": spec.granularity,
        "first_bar_ts": result.first_ns,
        "last_bar_ts": result.last_ns,
        "model_version": result.model_version,
        "journal": spec.journal_level,
        "home_currency": spec.home_currency,
        "metrics": result.metrics,
    }


def write_outputs(result: BacktestResult, out_dir: Path) -> None:
    """Write ``trades.csv``, ``metrics.json`` and ``equity.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TRADES_FILE).write_text(trades_csv(result.trades, result.precision), encoding="utf-8")
    write_json(
        out_dir / METRICS_FILE,
        {**_summary(result), "first_bar": format_rfc3339(result.first_ns), "last_bar": format_rfc3339(result.last_ns)},
    )
    title = (
        f"{', '.join(result.spec.instruments)} {result.spec.granularity}, model {result.model_version}: "
        f"{format_rfc3339(result.first_ns)[:16]} .. {format_rfc3339(result.last_ns)[:16]}"
    )
    plot_equity(out_dir / EQUITY_FILE, result.equity_ns, result.equity, title=title)


def fresh_journal(out_dir: Path) -> Journal:
    """A new ``journal.sqlite`` in ``out_dir`` (an earlier run's journal is removed first)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (out_dir / f"{JOURNAL_FILE}{suffix}").unlink(missing_ok=True)
    return Journal(out_dir / JOURNAL_FILE, src="backtest")


def ordered_instruments(found: Sequence[str], configured: Sequence[str]) -> tuple[str, ...]:
    """The instruments of ``found`` in the configured (feed) order, the others after them as found."""
    return (*[n for n in configured if n in found], *[n for n in found if n not in configured])
