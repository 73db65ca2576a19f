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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import pandas as pd

from actors.core.candlespec import CANDLE_COLUMNS
from actors.core.errors import TradehostError
from actors.core.timefmt import format_rfc3339
from actors.ml.features import compute_features, wide_bars
from actors.runtime.journal import Journal
from supervisor.offline.backtest.book import JOURNAL_LEVELS, Simulation
from supervisor.offline.backtest.metrics import compute_metrics, plot_equity, trades_csv, write_json
from supervisor.offline.backtest.records import BarGrid, ClosedTrade
from supervisor.offline.backtest.rows import JournalRow

if TYPE_CHECKING:
    from actors.core.config import ExecutionConfig, RiskConfig
    from actors.core.domain import Instrument
    from actors.ml.modelstore import Model
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
    if spec.journal_level not in JOURNAL_LEVELS:
        raise BacktestError(f"--journal {spec.journal_level!r}: choose one of {', '.join(JOURNAL_LEVELS)}")
    for name in spec.instruments:
        if name not in history.frames or history.frames[name].empty:
            raise BacktestError(f"{name}: no candles for it")
        if name not in meta:
            raise BacktestError(f"{name}: no instrument metadata for it")
    timings: dict[str, float] = {}
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

    version = model.meta.short_version
    buffer: list[JournalRow] = []
    written = [0.0]

    def flush() -> None:
        if journal is not None and buffer:
            started = time.perf_counter()
            journal.write_many(buffer)
            written[0] += time.perf_counter() - started
        buffer.clear()

    def emit(rows: list[JournalRow]) -> None:
        buffer.extend(rows)
        if len(buffer) >= _FLUSH_ROWS:
            flush()

    grid = BarGrid(
        times=times,
        instruments=spec.instruments,
        mid={side: getattr(bars, side).to_numpy(dtype=np.float64) for side in ("open", "high", "low", "close")},
        spread=bars.spread.to_numpy(dtype=np.float64),
        volume=bars.volume.to_numpy(dtype=np.float64),
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
    t0 = time.perf_counter()
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
    outcome = sim.finish()
    timings["simulate"] = time.perf_counter() - t0 - written[0]
    metrics = compute_metrics(
        outcome.trades,
        equity=outcome.equity,
        exposed_bars=outcome.exposed,
        opening_nav=spec.opening_nav,
        granularity=spec.granularity,
    )
    metrics["decisions"] = dict(sorted(outcome.decisions.items()))
    result = BacktestResult(
        spec=spec,
        trades=outcome.trades,
        metrics=metrics,
        equity_ns=outcome.equity_ns,
        equity=outcome.equity,
        first_ns=int(times[first]),
        last_ns=int(times[last - 1]),
        model_version=version,
        precision={name: meta[name].display_precision for name in spec.instruments},
        timings_s=timings,
    )
    emit([("backtest.completed", _summary(result), None, result.equity_ns[-1] if result.equity_ns else 0)])
    flush()
    timings["journal"] = written[0]
    return result


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
