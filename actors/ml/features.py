"""The feature function: wide OHLC + volume + spread frames of all instruments to model features.

This module owns the one definition of every model input. Training (``supervisor/offline/train.py``), the
live model role and backtests call ``compute_features`` on the same kind of input, so a feature
cannot mean two things. Input is a ``WideBars``: one pandas frame per field (mid ``open``,
``high``, ``low``, ``close``, tick ``volume``, and ``spread`` = ask - bid at the close in price
units), all indexed by the bar start as integer UTC nanoseconds (an ``int64`` index named
``time``, increasing, unique) with one column per instrument. Output is a frame indexed by
(``time``, ``instrument``) with the columns ``FEATURE_NAMES`` in that order.

Every feature depends only on the last ``LOOKBACK`` rows (bars, counted in rows of the index)
and every rolling statistic is computed from the window's own values, never from a running state
(no exponentially weighted recursion: MACD uses truncated, renormalised EMA weights). So the live
role, which keeps the last ``WINDOW_BARS`` rows, gets the same values for its last bar as this
function gives over the whole history (``tests/unit/actors/test_features.py`` proves it).

Missing bars. A cell whose open, high, low or close is missing, not finite or not > 0 means the
instrument has no bar at that time (OANDA sends no candle for an interval without ticks). Up to
``FILL_LIMIT_BARS`` consecutive missing bars are filled as flat bars at the previous close with
volume 0 and the previous spread, so that an isolated missing bar does not blank an instrument
for ``LOOKBACK`` bars; a longer gap is a gap (NaN) and the instrument warms up again after it.
A row for a missing bar itself is always NaN: there is nothing to predict.

NaN policy. A row is all-finite or all-NaN: the first ``LOOKBACK - 1`` rows are NaN (warm-up),
as is any row whose window holds a gap, a missing spread or volume. Features are never infinite:
every division is guarded, and a flat market (all prices equal) gives 0 for returns,
volatilities, z-scores, moving-average gaps, MACD, ATR, Bollinger width and the bar-shape ratios;
50 for RSI; 0.5 for the Bollinger and 16-bar range positions; 1 for the volatility and ATR
ratios; and ``spread_atr`` = spread / pip (the ATR is floored at one pip). Constant volume gives
``volume_z_32`` = 0.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "FEATURES_REVISION",
    "FEATURES_VERSION",
    "FEATURE_DOCS",
    "FEATURE_NAMES",
    "FIELDS",
    "FILL_LIMIT_BARS",
    "LOOKBACK",
    "WINDOW_BARS",
    "WideBars",
    "compute_features",
    "wide_bars",
]

# Bump when a definition changes in a way the names and docs below do not show.
FEATURES_REVISION = 1

# Bars of history (rows, the current bar included) the longest feature needs: MACD's signal line,
# a 27-bar truncated EMA of a MACD whose slow EMA spans 78 bars (78 + 27 - 1).
LOOKBACK = 104

# At most this many consecutive missing bars are filled as flat bars (see the module docstring).
FILL_LIMIT_BARS = 5

# Rows the live role keeps so that its last row's features equal the whole-history values even
# when filled bars sit at the start of its lookback.
WINDOW_BARS = LOOKBACK + FILL_LIMIT_BARS

# The input fields of ``WideBars``, in order.
FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "spread")

FEATURE_DOCS: dict[str, str] = {
    "ret_1": "log return of the close over 1 bar",
    "ret_4": "log return of the close over 4 bars",
    "ret_8": "log return of the close over 8 bars",
    "ret_16": "log return of the close over 16 bars",
    "ret_32": "log return of the close over 32 bars",
    "ret_64": "log return of the close over 64 bars",
    "vol_8": "standard deviation of 1-bar log returns over 8 bars",
    "vol_32": "standard deviation of 1-bar log returns over 32 bars",
    "vol_96": "standard deviation of 1-bar log returns over 96 bars",
    "vol_ratio_8_96": "vol_8 / vol_96 (volatility regime; 1 when both are 0)",
    "ret_z_1": "ret_1 / vol_96 (the last return in units of recent volatility)",
    "ret_z_16": "ret_16 / (vol_96 * sqrt(16))",
    "close_z_16": "(close - 16-bar mean close) / 16-bar standard deviation of the close",
    "close_z_64": "(close - 64-bar mean close) / 64-bar standard deviation of the close",
    "sma_gap_8_32": "8-bar mean close / 32-bar mean close - 1",
    "sma_gap_32_96": "32-bar mean close / 96-bar mean close - 1",
    "sma_slope_32": "32-bar mean close / the same mean 8 bars earlier - 1",
    "rsi_7": "RSI over 7 bars with simple averages (Cutler): 100 * gains / (gains + losses)",
    "rsi_14": "RSI over 14 bars with simple averages (Cutler)",
    "atr_14_rel": "14-bar average true range / close",
    "atr_ratio_14_96": "14-bar ATR / 96-bar ATR",
    "bb_pos_20": "position of the close in the 20-bar Bollinger bands (mean +- 2 sd): 0 lower, 1 upper",
    "bb_width_20": "width of the 20-bar Bollinger bands / their mean (4 sd / mean)",
    "macd": "(EMA12 - EMA26) of the close / close, EMAs truncated at 3 spans (36 and 78 bars)",
    "macd_signal": "EMA9 of macd, truncated at 27 bars",
    "macd_hist": "macd - macd_signal",
    "range_atr": "(high - low) of the bar / 14-bar ATR",
    "body_ratio": "(close - open) / (high - low) of the bar",
    "upper_wick_ratio": "(high - max(open, close)) / (high - low) of the bar",
    "lower_wick_ratio": "(min(open, close) - low) / (high - low) of the bar",
    "close_pos_16": "(close - 16-bar lowest low) / (16-bar highest high - 16-bar lowest low)",
    "volume_z_32": "z-score of log(1 + volume) over 32 bars",
    "spread_pips": "spread at the close (ask - bid) in pips",
    "spread_atr": "spread / max(14-bar ATR, 1 pip): the cost of a round trip in ranges",
    "tod_sin": "sin of the UTC time of day of the bar start (24 h cycle)",
    "tod_cos": "cos of the UTC time of day of the bar start",
    "dow_sin": "sin of the position in the week (Monday 00:00 UTC = 0, 7-day cycle)",
    "dow_cos": "cos of the position in the week",
}

FEATURE_NAMES: tuple[str, ...] = tuple(FEATURE_DOCS)


def _version() -> str:
    digest = hashlib.sha256()
    digest.update(f"{FEATURES_REVISION}|{LOOKBACK}|{FILL_LIMIT_BARS}".encode())
    for name, doc in FEATURE_DOCS.items():
        digest.update(f"|{name}={doc}".encode())
    return f"{FEATURES_REVISION}-{digest.hexdigest()[:12]}"


# Changes whenever a feature's name, documented definition, the lookback or the fill rule does.
FEATURES_VERSION = _version()

_NS_PER_S = 1_000_000_000
_DAY_S = 86_400
_WEEK_S = 7 * _DAY_S
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
# A price or volume standard deviation this small next to its mean is rounding noise: flat.
_FLAT_REL = 1e-12


@dataclass(frozen=True, slots=True, kw_only=True)
class WideBars:
    """Bars of all instruments as one frame per field.

    Every frame has the same index (bar start, integer UTC ns, increasing, unique, named
    ``time``) and the same columns (instruments, in the order the output uses). Prices are mid;
    ``volume`` is OANDA's tick volume; ``spread`` is ask - bid at the close, in price units.
    NaN marks a missing bar (prices) or an unknown value (volume, spread).
    """

    open: pd.DataFrame
    high: pd.DataFrame
    low: pd.DataFrame
    close: pd.DataFrame
    volume: pd.DataFrame
    spread: pd.DataFrame

    def __post_init__(self) -> None:
        """Check that the six frames share one index and one column order."""
        index, columns = self.close.index, self.close.columns
        if index.dtype != np.int64:
            raise ValueError(f"WideBars: the index must be int64 UTC nanoseconds, not {index.dtype}")
        if not index.is_monotonic_increasing or not index.is_unique:
            raise ValueError("WideBars: the index must be increasing and unique")
        for field in FIELDS:
            frame = getattr(self, field)
            if not frame.index.equals(index) or not frame.columns.equals(columns):
                raise ValueError(f"WideBars: {field} differs from close in its index or columns")

    @property
    def instruments(self) -> tuple[str, ...]:
        """The instruments, in column order."""
        return tuple(str(c) for c in self.close.columns)


def wide_bars(frames: Mapping[str, pd.DataFrame]) -> WideBars:
    """Build ``WideBars`` from one frame per instrument.

    Args:
        frames: instrument -> frame indexed by bar start (int UTC ns) with the columns ``FIELDS``
            (as ``actors.ml.candlefile`` returns them). Instruments keep the mapping's order.

    Returns:
        The wide frames over the union of all bar times; an instrument without a bar at a time
        has NaN there.
    """
    if not frames:
        raise ValueError("wide_bars: no instruments")
    index = pd.Index(sorted(set().union(*(f.index for f in frames.values()))), dtype=np.int64, name="time")
    fields = {
        field: pd.DataFrame(
            {name: frame[field].astype(np.float64).reindex(index) for name, frame in frames.items()}, index=index
        )
        for field in FIELDS
    }
    return WideBars(**fields)


def compute_features(bars: WideBars, pip_sizes: Mapping[str, float]) -> pd.DataFrame:
    """Compute ``FEATURE_NAMES`` for every bar of every instrument.

    Args:
        bars: the wide frames (see ``WideBars``).
        pip_sizes: instrument -> size of one pip in price units (0.0001 for EUR_USD).

    Returns:
        A float64 frame indexed by (``time``, ``instrument``), time-major (all instruments of
        the first bar, then the next bar), with the columns ``FEATURE_NAMES``. Rows are either
        all finite or all NaN (warm-up, gaps, missing bars; see the module docstring).
    """
    instruments = bars.instruments
    missing = [name for name in instruments if name not in pip_sizes]
    if missing:
        raise ValueError(f"compute_features: no pip size for {', '.join(missing)}")
    pip = np.array([float(pip_sizes[name]) for name in instruments], dtype=np.float64)
    if not np.all(np.isfinite(pip) & (pip > 0)):
        raise ValueError("compute_features: pip sizes must be finite and > 0")
    times = bars.close.index.to_numpy(dtype=np.int64)
    with np.errstate(all="ignore"):
        cube = _feature_cube(bars, pip, times)
    index = pd.MultiIndex.from_product([bars.close.index, list(instruments)], names=["time", "instrument"])
    rows = cube.reshape(len(FEATURE_NAMES), len(times) * len(instruments)).T
    return pd.DataFrame(rows, index=index, columns=list(FEATURE_NAMES), copy=False)


def _feature_cube(bars: WideBars, pip: np.ndarray, times: np.ndarray) -> np.ndarray:
    o, h, low, c, present = _filled_prices(bars)
    filled = ~present & np.isfinite(c)
    volume = bars.volume.to_numpy(dtype=np.float64)
    volume = np.where(present & (volume >= 0), volume, np.where(filled, 0.0, np.nan))
    spread = bars.spread.to_numpy(dtype=np.float64)
    spread = np.where(present & (spread >= 0), spread, np.nan)
    spread = np.where(filled, _carried(spread), spread)

    returns = {f"ret_{k}": np.log(c / _lag(c, k)) for k in (1, 4, 8, 16, 32, 64)}
    r1 = returns["ret_1"]
    vol_8, vol_32, vol_96 = (_window_std(r1, n) for n in (8, 32, 96))
    sma = {n: _window_sum(c, n) / n for n in (8, 16, 20, 32, 64, 96)}
    prev_c = _lag(c, 1)
    true_range = np.maximum(h, prev_c) - np.minimum(low, prev_c)
    atr_14 = _window_sum(true_range, 14) / 14
    atr_96 = _window_sum(true_range, 96) / 96
    bar_range = h - low
    macd = (_ema_offset(c, 12) - _ema_offset(c, 26)) / c
    macd_signal = _truncated_ema(macd, 9)
    lowest_16 = _window_extreme(low, 16, np.minimum)
    highest_16 = _window_extreme(h, 16, np.maximum)
    bb_sd = _window_std(c, 20, mean=sma[20])
    week_s = (times // _NS_PER_S + _EPOCH_WEEKDAY * _DAY_S) % _WEEK_S
    day_angle = 2 * math.pi * (week_s % _DAY_S) / _DAY_S
    week_angle = 2 * math.pi * week_s / _WEEK_S

    def across(values: np.ndarray) -> np.ndarray:
        return np.broadcast_to(values[:, None], c.shape)

    columns: dict[str, np.ndarray] = {
        **returns,
        "vol_8": vol_8,
        "vol_32": vol_32,
        "vol_96": vol_96,
        "vol_ratio_8_96": _ratio(vol_8, vol_96, neutral=1.0),
        "ret_z_1": _ratio(r1, vol_96, neutral=0.0),
        "ret_z_16": _ratio(returns["ret_16"], vol_96 * 4.0, neutral=0.0),
        "close_z_16": _zscore(c, 16, sma[16]),
        "close_z_64": _zscore(c, 64, sma[64]),
        "sma_gap_8_32": sma[8] / sma[32] - 1,
        "sma_gap_32_96": sma[32] / sma[96] - 1,
        "sma_slope_32": sma[32] / _lag(sma[32], 8) - 1,
        "rsi_7": _rsi(c, 7),
        "rsi_14": _rsi(c, 14),
        "atr_14_rel": atr_14 / c,
        "atr_ratio_14_96": _ratio(atr_14, atr_96, neutral=1.0),
        "bb_pos_20": _ratio(c - (sma[20] - 2 * bb_sd), 4 * bb_sd, neutral=0.5),
        "bb_width_20": 4 * bb_sd / sma[20],
        "macd": macd,
        "macd_signal": macd_signal,
        "macd_hist": macd - macd_signal,
        "range_atr": _ratio(bar_range, atr_14, neutral=0.0),
        "body_ratio": _ratio(c - o, bar_range, neutral=0.0),
        "upper_wick_ratio": _ratio(h - np.maximum(o, c), bar_range, neutral=0.0),
        "lower_wick_ratio": _ratio(np.minimum(o, c) - low, bar_range, neutral=0.0),
        "close_pos_16": _ratio(c - lowest_16, highest_16 - lowest_16, neutral=0.5),
        "volume_z_32": _zscore(np.log1p(volume), 32),
        "spread_pips": spread / pip,
        "spread_atr": spread / np.maximum(atr_14, pip),
        "tod_sin": across(np.sin(day_angle)),
        "tod_cos": across(np.cos(day_angle)),
        "dow_sin": across(np.sin(week_angle)),
        "dow_cos": across(np.cos(week_angle)),
    }
    # Feature-major (F, T, I) so that each feature is written contiguously and the frame's block
    # is this very array (no copy).
    cube = np.empty((len(FEATURE_NAMES), *c.shape), dtype=np.float64)
    for j, name in enumerate(FEATURE_NAMES):
        cube[j] = columns[name]
    # All-or-nothing rows: warm-up, gaps, unknown spread/volume and missing bars blank the row.
    bad = ~np.isfinite(cube).all(axis=0) | ~present
    cube[:, bad] = np.nan
    return cube


def _filled_prices(bars: WideBars) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    o, h, low, c = (getattr(bars, f).to_numpy(dtype=np.float64) for f in ("open", "high", "low", "close"))
    present = np.isfinite(o) & np.isfinite(h) & np.isfinite(low) & np.isfinite(c)
    present &= (o > 0) & (h > 0) & (low > 0) & (c > 0)
    close = np.where(present, c, np.nan)
    flat = _carried(close)
    return (np.where(present, o, flat), np.where(present, h, flat), np.where(present, low, flat), flat, present)


def _carried(values: np.ndarray) -> np.ndarray:
    return np.asarray(pd.DataFrame(values).ffill(limit=FILL_LIMIT_BARS).to_numpy(), dtype=np.float64)


def _lag(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


def _window_sum(x: np.ndarray, n: int, decay: float = 1.0) -> np.ndarray:
    # sum_{k<n} decay**k * x[t-k], from blocks of doubling length: O(log n) array operations,
    # and each value is a fixed function of its own window (no running state), so any slice of
    # the history that holds the window gives the identical result. NaN inside a window -> NaN.
    blocks = [x]  # blocks[i] sums 2**i bars
    while 2 ** len(blocks) <= n:
        size = 2 ** (len(blocks) - 1)
        blocks.append(blocks[-1] + decay**size * _lag(blocks[-1], size))
    total, offset = blocks[-1], 2 ** (len(blocks) - 1)
    for i in range(len(blocks) - 2, -1, -1):
        if n - offset >= 2**i:
            total = total + decay**offset * _lag(blocks[i], offset)
            offset += 2**i
    return total


def _window_extreme(x: np.ndarray, n: int, pick: np.ufunc) -> np.ndarray:
    # The running max or min over n bars, by the same doubling blocks as _window_sum.
    blocks = [x]
    while 2 ** len(blocks) <= n:
        size = 2 ** (len(blocks) - 1)
        blocks.append(pick(blocks[-1], _lag(blocks[-1], size)))
    total, offset = blocks[-1], 2 ** (len(blocks) - 1)
    for i in range(len(blocks) - 2, -1, -1):
        if n - offset >= 2**i:
            total = pick(total, _lag(blocks[i], offset))
            offset += 2**i
    return total


def _window_std(x: np.ndarray, n: int, mean: np.ndarray | None = None) -> np.ndarray:
    # Population standard deviation over n bars, in two passes against the window's own mean (no
    # cancellation for prices far from 0). A window of equal values can still leave a rounding
    # residue of the mean; next to the mean it is below _FLAT_REL and counts as flat.
    if mean is None:
        mean = _window_sum(x, n) / n
    squares = np.zeros_like(x)
    for k in range(n):
        deviation = x[: len(x) - k] - mean[k:]
        squares[k:] += deviation * deviation
    squares[: n - 1] = np.nan  # rows without a full window (mean is NaN there already)
    sd = np.sqrt(squares / n)
    return np.where(sd <= _FLAT_REL * np.abs(mean), 0.0, sd)


def _zscore(x: np.ndarray, n: int, mean: np.ndarray | None = None) -> np.ndarray:
    if mean is None:
        mean = _window_sum(x, n) / n
    sd = _window_std(x, n, mean=mean)
    return _ratio(x - mean, sd, neutral=0.0)


def _rsi(c: np.ndarray, n: int) -> np.ndarray:
    change = c - _lag(c, 1)
    gains = _window_sum(np.maximum(change, 0.0), n)
    losses = _window_sum(np.maximum(-change, 0.0), n)
    return _ratio(100.0 * gains, gains + losses, neutral=50.0)


def _truncated_ema(x: np.ndarray, span: int) -> np.ndarray:
    # An EMA with alpha = 2 / (span + 1), cut at 3 spans and renormalised: a finite window, so it
    # does not depend on bars older than 3 * span (a recursive EMA depends on all of them).
    decay = 1.0 - 2.0 / (span + 1)
    length = 3 * span
    weight = (1.0 - decay**length) / (1.0 - decay)
    return _window_sum(x, length, decay) / weight


def _ema_offset(x: np.ndarray, span: int) -> np.ndarray:
    # _truncated_ema(x) - x, summed as weights * (x[t-k] - x[t]) so that equal prices give
    # exactly 0 (the renormalised weights do not sum to exactly 1 in floating point).
    decay = 1.0 - 2.0 / (span + 1)
    length = 3 * span
    weights = decay ** np.arange(length)
    total = np.zeros_like(x)
    for k in range(1, length):
        total[k:] += weights[k] * (x[: len(x) - k] - x[k:])
    total[: length - 1] = np.nan
    return total / float(weights.sum())


def _ratio(num: np.ndarray, den: np.ndarray, *, neutral: float) -> np.ndarray:
    # num / den, with ``neutral`` where den is exactly 0 (flat windows give exact zeros); NaN stays
    # NaN, so a gap is never mistaken for a flat market.
    return np.where(den == 0, np.where(np.isnan(num), np.nan, neutral), num / den)
