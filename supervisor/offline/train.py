"""The training core of ``tradehost train``: candles in, a checked model directory and metrics out.

This module owns the label, the walk-forward split, the CatBoost fit and the held-out metrics.
It takes candle frames per instrument (``actors.ml.candlefile`` reads them from files, or
``frame_from_candles`` from a broker; ``tradehost train`` reads them through ``supervisor.offline.history``,
which leaves out every bar the live feed would reject), computes the features with ``actors.ml.features`` (the same
function the live role and backtests call) and writes the directory with ``actors.ml.modelstore``.

Label: 1 ("up") when the mid close ``N = horizon_bars`` rows later is strictly above this bar's
close, else 0 (equal counts as not up); rows are those of the union bar index of all instruments,
and a row whose label bar is missing, or whose features are NaN (warm-up, gaps), is dropped.
Split: by time, never shuffled. The labelled bar times are cut at ``1 - holdout_fraction``; the
model trains on the rows before the cut whose label bar also lies before it (a gap of N rows, so
no training label looks into the held-out tail) and is scored on the rows from the cut on, next to
two naive baselines: ``always_up`` (always predicts up, with the training share of ups as its
probability) and ``last_direction`` (predicts the direction of the bar's own return, with the
training share of ups after an up / a not-up bar as its probability). Same candles, spec and seed
give a byte-identical ``model.cbm`` (fixed ``random_seed`` and ``thread_count``, no files written
by CatBoost, instruments in sorted order, CatBoost's per-run ``model_guid`` and
``train_finish_time`` removed from the model's metadata), hence the same version hash.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, CatBoostError, Pool

from actors.core.candlespec import CANDLE_COLUMNS
from actors.core.domain import GRANULARITIES
from actors.core.errors import TradehostError
from actors.core.timefmt import format_rfc3339
from actors.ml.candlefile import grid_problem
from actors.ml.features import (
    FEATURE_NAMES,
    FEATURES_VERSION,
    LOOKBACK,
    WINDOW_BARS,
    WideBars,
    compute_features,
    wide_bars,
)
from actors.ml.modelstore import ModelMeta, save

__all__ = ["LABEL", "Metrics", "TrainError", "TrainResult", "TrainSpec", "train"]

LABEL = "1 if the mid close horizon_bars bars ahead > this bar's mid close, else 0 (equal is 0)"

# Fewer rows than this on either side of the split make metrics (or a model) meaningless.
MIN_TRAIN_ROWS = 200
MIN_HOLDOUT_ROWS = 50

_EPS = 1e-15


class TrainError(TradehostError):
    """Training cannot run on this input; the message says why in one line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainSpec:
    """What to train and how.

    Attributes:
        granularity: OANDA granularity of the candles (``M15``); the bars must be that far apart.
        out_dir: the model directory to write.
        seed: CatBoost's ``random_seed``.
        from_ns: first bar start to use (inclusive), or all.
        to_ns: bar starts before this (exclusive), or all.
        horizon_bars: N, the label's horizon in bars.
        holdout_fraction: share of the labelled time range held out at the end.
        iterations: CatBoost boosting rounds.
        depth: CatBoost tree depth.
        learning_rate: CatBoost learning rate.
        thread_count: CatBoost threads (fixed: the model bytes depend on it).
    """

    granularity: str
    out_dir: Path
    seed: int = 0
    from_ns: int | None = None
    to_ns: int | None = None
    horizon_bars: int = 4
    holdout_fraction: float = 0.2
    iterations: int = 300
    depth: int = 4
    learning_rate: float = 0.05
    thread_count: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Metrics:
    """Scores on the held-out tail.

    Attributes:
        rows: rows scored.
        accuracy: share of rows whose direction (p >= 0.5 means up) is right.
        log_loss: mean binary cross-entropy (probabilities clipped to [1e-15, 1 - 1e-15]).
        auc: ROC AUC (ties averaged), or None when the tail holds one class only.
    """

    rows: int
    accuracy: float
    log_loss: float
    auc: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        """The metrics as a JSON-ready dict."""
        return {"rows": self.rows, "accuracy": self.accuracy, "log_loss": self.log_loss, "auc": self.auc}


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainResult:
    """What ``train`` built.

    Attributes:
        directory: the model directory written.
        meta: its metadata (with the version hash).
        metrics: ``model``, ``always_up`` and ``last_direction`` on the held-out tail.
        train_rows: rows the model was fitted on.
        holdout_rows: rows it was scored on.
        elapsed_s: wall time of the whole call.
    """

    directory: Path
    meta: ModelMeta
    metrics: dict[str, Metrics]
    train_rows: int
    holdout_rows: int
    elapsed_s: float


def _silent(_line: str) -> None:
    return None


def train(
    candles: Mapping[str, pd.DataFrame],
    *,
    pip_sizes: Mapping[str, float],
    spec: TrainSpec,
    instruments: Sequence[str] | None = None,
    spread_fallback: Mapping[str, float] | None = None,
    progress: Callable[[str], None] = _silent,
) -> TrainResult:
    """Build a model directory from candles.

    Args:
        candles: instrument -> candle frame (columns ``actors.ml.candlefile.CANDLE_COLUMNS``,
            indexed by bar start in int64 UTC ns, increasing).
        pip_sizes: instrument -> pip size in price units.
        spec: granularity, window, seed, output directory and CatBoost settings.
        instruments: the instruments to train on (default: all of ``candles``).
        spread_fallback: instrument -> spread in price units for bars whose spread is unknown
            (a file without spread or bid/ask columns, e.g. the emulator's constant spread).
        progress: called with one line of text per step (and during the fit).

    Returns:
        The directory, its metadata and the held-out metrics next to the baselines.

    Raises:
        TrainError: bad spec, unknown instrument, malformed or missing candles, an empty window,
            too few rows for the lookback, horizon and split, or one class only.
    """
    started = time.perf_counter()
    _check_spec(spec)
    names = sorted(instruments if instruments is not None else candles)
    if not names:
        raise TrainError("no instruments to train on")
    frames = {
        name: _prepared(
            name, candles, pip_sizes=pip_sizes, spec=spec, spread_fallback=spread_fallback, progress=progress
        )
        for name in names
    }
    window_from = min(int(f.index[0]) for f in frames.values())
    window_to = max(int(f.index[-1]) for f in frames.values())
    progress(
        f"candles: {', '.join(f'{n} {len(f)}' for n, f in frames.items())} bars of {spec.granularity}, "
        f"{format_rfc3339(window_from)} .. {format_rfc3339(window_to)}"
    )
    data = _dataset(wide_bars(frames), pip_sizes, spec, width=len(names), progress=progress)
    booster, params = _fit(data, spec, progress)
    metrics = _score(booster, data.rows, data.labels, data.fit, data.held)
    for line in _table(metrics):
        progress(line)
    meta = save(
        spec.out_dir,
        booster=booster,
        meta=ModelMeta(
            feature_names=FEATURE_NAMES,
            features_version=FEATURES_VERSION,
            lookback_bars=LOOKBACK,
            window_bars=WINDOW_BARS,
            label=LABEL,
            horizon_bars=spec.horizon_bars,
            instruments=tuple(names),
            granularity=spec.granularity,
            window_from_ns=window_from,
            window_to_ns=window_to,
            holdout_from_ns=data.holdout_from,
            seed=spec.seed,
            params=params,
            pip_sizes={name: float(pip_sizes[name]) for name in names},
            metrics={name: m.as_dict() for name, m in metrics.items()},
        ),
    )
    progress(f"model version {meta.short_version} written")
    return TrainResult(
        directory=spec.out_dir,
        meta=meta,
        metrics=metrics,
        train_rows=data.n_fit,
        holdout_rows=data.n_held,
        elapsed_s=time.perf_counter() - started,
    )


@dataclass(frozen=True, slots=True)
class _Dataset:
    """The feature rows and labels of every (bar, instrument), and the walk-forward split: the rows
    to fit on, the rows held out (``horizon_bars`` after the last fitted label), and where the
    held-out part starts."""

    rows: np.ndarray
    labels: np.ndarray
    fit: np.ndarray
    held: np.ndarray
    n_fit: int
    n_held: int
    holdout_from: int


def _dataset(
    bars: WideBars, pip_sizes: Mapping[str, float], spec: TrainSpec, *, width: int, progress: Callable[[str], None]
) -> _Dataset:
    """Features, labels and the split (see ``_Dataset``).

    Raises:
        TrainError: no usable row, too few rows on either side of the split, or one class only.
    """
    t0 = time.perf_counter()
    features = compute_features(bars, pip_sizes)
    progress(f"features: {len(FEATURE_NAMES)} x {len(features)} rows in {time.perf_counter() - t0:.2f} s")

    rows = features.to_numpy(dtype=np.float64)
    close = bars.close.to_numpy(dtype=np.float64)
    ahead = np.full_like(close, np.nan)
    ahead[: len(close) - spec.horizon_bars] = close[spec.horizon_bars :]
    known = (np.isfinite(close) & np.isfinite(ahead)).reshape(-1)
    labels = (ahead > close).reshape(-1).astype(np.int64)
    position = np.repeat(np.arange(len(close)), width)
    usable = known & np.isfinite(rows).all(axis=1)
    if not usable.any():
        raise TrainError(f"no bar has both its {LOOKBACK} bars of history and its label {spec.horizon_bars} bars ahead")

    first, last = int(position[usable].min()), int(position[usable].max())
    cut = first + math.ceil((last - first + 1) * (1.0 - spec.holdout_fraction))
    fit = usable & (position < cut - spec.horizon_bars)
    held = usable & (position >= cut)
    n_fit, n_held = int(fit.sum()), int(held.sum())
    if n_fit < MIN_TRAIN_ROWS or n_held < MIN_HOLDOUT_ROWS:
        raise TrainError(
            f"too few rows: {n_fit} to train on and {n_held} held out (need {MIN_TRAIN_ROWS} and "
            f"{MIN_HOLDOUT_ROWS}); give more bars (each row needs {LOOKBACK} bars of history)"
        )
    if len(set(labels[fit].tolist())) < 2:
        raise TrainError(f"every training label is {int(labels[fit][0])}: the market never moved both ways")
    holdout_from = int(bars.close.index[cut])
    progress(
        f"split: {n_fit} rows to train on, {n_held} held out from {format_rfc3339(holdout_from)} "
        f"(gap {spec.horizon_bars} bars)"
    )
    return _Dataset(rows, labels, fit, held, n_fit, n_held, holdout_from)


def _fit(data: _Dataset, spec: TrainSpec, progress: Callable[[str], None]) -> tuple[CatBoostClassifier, dict[str, Any]]:
    """The fitted booster (without its run metadata: the same inputs give the same bytes) and its
    parameters.

    Raises:
        TrainError: CatBoost failed.
    """
    params: dict[str, Any] = {
        "iterations": spec.iterations,
        "depth": spec.depth,
        "learning_rate": spec.learning_rate,
        "loss_function": "Logloss",
        "random_seed": spec.seed,
        "thread_count": spec.thread_count,
    }
    booster = CatBoostClassifier(**params, allow_writing_files=False, verbose=False)
    t0 = time.perf_counter()
    try:
        booster.fit(
            Pool(data.rows[data.fit], data.labels[data.fit], feature_names=list(FEATURE_NAMES)),
            callbacks=[_FitProgress(spec.iterations, progress)],
        )
    except CatBoostError as e:
        raise TrainError(f"CatBoost failed: {str(e).splitlines()[0]}") from e
    progress(f"fit: {spec.iterations} iterations, depth {spec.depth}, in {time.perf_counter() - t0:.2f} s")
    _drop_run_metadata(booster)
    return booster, params


def _drop_run_metadata(booster: CatBoostClassifier) -> None:
    # CatBoost stamps every fit with a random model_guid and the wall-clock finish time; without
    # them the saved bytes depend only on the data, the parameters and the CatBoost version.
    metadata = booster.get_metadata()
    for key in ("model_guid", "train_finish_time"):
        if key in metadata.keys():  # noqa: SIM118 - a CatBoost proxy without __contains__
            del metadata[key]


def _check_spec(spec: TrainSpec) -> None:
    if spec.granularity not in GRANULARITIES:
        raise TrainError(f"unknown granularity {spec.granularity!r} (one of {', '.join(GRANULARITIES)})")
    if spec.horizon_bars < 1:
        raise TrainError(f"horizon_bars must be >= 1, not {spec.horizon_bars}")
    if not 0.0 < spec.holdout_fraction < 1.0:
        raise TrainError(f"holdout_fraction must be between 0 and 1, not {spec.holdout_fraction}")
    if spec.iterations < 1 or spec.depth < 1 or spec.thread_count < 1 or spec.learning_rate <= 0:
        raise TrainError("iterations, depth, thread_count and learning_rate must be positive")
    if spec.from_ns is not None and spec.to_ns is not None and spec.from_ns >= spec.to_ns:
        raise TrainError(
            f"empty window: from {format_rfc3339(spec.from_ns)} is not before to {format_rfc3339(spec.to_ns)}"
        )


def _prepared(
    name: str,
    candles: Mapping[str, pd.DataFrame],
    *,
    pip_sizes: Mapping[str, float],
    spec: TrainSpec,
    spread_fallback: Mapping[str, float] | None,
    progress: Callable[[str], None],
) -> pd.DataFrame:
    if name not in candles:
        raise TrainError(f"unknown instrument {name}: no candles for it")
    pip = pip_sizes.get(name)
    if pip is None or not (math.isfinite(pip) and pip > 0):
        raise TrainError(f"unknown instrument {name}: no pip size for it")
    frame = candles[name]
    missing = [c for c in CANDLE_COLUMNS if c not in frame.columns]
    if missing:
        raise TrainError(f"{name}: candles lack the column(s) {', '.join(missing)}")
    index = frame.index
    if index.dtype != np.int64 or not index.is_monotonic_increasing or not index.is_unique:
        raise TrainError(f"{name}: candles must be indexed by increasing, unique int64 UTC ns")
    frame = frame.loc[:, list(CANDLE_COLUMNS)].astype(np.float64)
    if spec.from_ns is not None:
        frame = frame[frame.index >= spec.from_ns]
    if spec.to_ns is not None:
        frame = frame[frame.index < spec.to_ns]
    if frame.empty:
        lo = format_rfc3339(spec.from_ns) if spec.from_ns is not None else "the start"
        hi = format_rfc3339(spec.to_ns) if spec.to_ns is not None else "the end"
        raise TrainError(f"{name}: no candles between {lo} and {hi}")
    need = LOOKBACK + spec.horizon_bars
    if len(frame) < need:
        raise TrainError(
            f"{name}: {len(frame)} bars in the window; the features need {LOOKBACK} and the label "
            f"{spec.horizon_bars} more (at least {need}, and more for a split)"
        )
    prices = frame[["open", "high", "low", "close"]].to_numpy()
    bad = ~(np.isfinite(prices) & (prices > 0)).all(axis=1)
    if bad.any():
        when = format_rfc3339(int(frame.index[bad.argmax()]))
        raise TrainError(f"{name}: bar at {when} has a missing or non-positive price")
    problem = grid_problem(name, frame.index.to_numpy(), spec.granularity)
    if problem:
        raise TrainError(problem)
    if frame["volume"].isna().all():
        frame["volume"] = 0.0
        progress(f"{name}: no volume in the candles; volume_z_32 is 0 for it")
    unknown = frame["spread"].isna()
    if unknown.any():
        fallback = (spread_fallback or {}).get(name)
        if fallback is None:
            raise TrainError(
                f"{name}: no spread on {int(unknown.sum())} bars (first at "
                f"{format_rfc3339(int(frame.index[unknown.to_numpy().argmax()]))}); give spread or bid,ask "
                "columns, or a fallback spread"
            )
        frame.loc[unknown, "spread"] = float(fallback)
        progress(f"{name}: spread {fallback / pip:.2f} pips assumed on {int(unknown.sum())} bars without one")
    return frame


class _FitProgress:
    # CatBoost's fit callback: a progress line at every quarter of the iterations.
    def __init__(self, iterations: int, progress: Callable[[str], None]) -> None:
        self._marks = {max(1, iterations * q // 4) for q in (1, 2, 3)}
        self._iterations = iterations
        self._progress = progress

    def after_iteration(self, info: Any) -> bool:
        done = int(info.iteration)
        if done in self._marks:
            self._progress(f"fit: {done}/{self._iterations} iterations")
        return True


def _score(
    booster: CatBoostClassifier, rows: np.ndarray, labels: np.ndarray, fit: np.ndarray, held: np.ndarray
) -> dict[str, Metrics]:
    y = labels[held]
    up_column = [int(c) for c in booster.classes_].index(1)
    p_model = booster.predict_proba(rows[held], thread_count=1)[:, up_column]
    base_rate = float(labels[fit].mean())
    last_up = rows[:, FEATURE_NAMES.index("ret_1")] > 0
    rate_after_up = _share(labels[fit & last_up], base_rate)
    rate_after_down = _share(labels[fit & ~last_up], base_rate)
    p_last = np.where(last_up[held], rate_after_up, rate_after_down)
    return {
        "model": _metrics(y, p_model, p_model >= 0.5),
        "always_up": _metrics(y, np.full(len(y), base_rate), np.ones(len(y), dtype=bool)),
        "last_direction": _metrics(y, p_last, last_up[held]),
    }


def _share(labels: np.ndarray, default: float) -> float:
    return float(labels.mean()) if len(labels) else default


def _metrics(y: np.ndarray, p_up: np.ndarray, says_up: np.ndarray) -> Metrics:
    p = np.clip(p_up, _EPS, 1.0 - _EPS)
    log_loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1.0 - p)))
    return Metrics(rows=len(y), accuracy=float(np.mean(says_up == (y == 1))), log_loss=log_loss, auc=_auc(y, p_up))


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _table(metrics: Mapping[str, Metrics]) -> list[str]:
    lines = [f"held-out tail: {'':14} {'accuracy':>9} {'log loss':>9} {'AUC':>7}"]
    for name, m in metrics.items():
        auc = "n/a" if m.auc is None else f"{m.auc:.4f}"
        lines.append(f"  {name:<26} {m.accuracy:>9.4f} {m.log_loss:>9.4f} {auc:>7}")
    return lines
