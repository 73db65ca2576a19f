"""The feature function: documented names, live window == full history, no inf, reference values."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.ml.features import (
    FEATURE_DOCS,
    FEATURE_NAMES,
    FEATURES_VERSION,
    FIELDS,
    FILL_LIMIT_BARS,
    LOOKBACK,
    WINDOW_BARS,
    WideBars,
    compute_features,
    wide_bars,
)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

M15_NS = 900 * 10**9
MONDAY_NS = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z, a Monday
NAMES = ["EUR_USD", "USD_JPY", "XAU_USD"]
PIPS = {"EUR_USD": 0.0001, "USD_JPY": 0.01, "XAU_USD": 0.01}
BASE = {"EUR_USD": 1.08, "USD_JPY": 150.0, "XAU_USD": 2300.0}


def synthetic(bars: int, seed: int, names: list[str] = NAMES) -> WideBars:
    """Random-walk OHLC candles with volume and spread, M15 from a Monday."""
    rng = np.random.default_rng(seed)
    index = pd.Index(MONDAY_NS + np.arange(bars, dtype=np.int64) * M15_NS, name="time")
    frames = {}
    for name in names:
        close = BASE[name] * np.exp(np.cumsum(rng.normal(0, 1e-3, bars)))
        open_ = np.r_[close[0], close[:-1]]
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 6e-4, bars))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 6e-4, bars))
        frames[name] = pd.DataFrame(
            {
                "open": open_,
                "high": high,
                "low": low,
                "close": close,
                "volume": rng.integers(0, 400, bars).astype(float),
                "spread": PIPS[name] * rng.uniform(0.5, 3.0, bars),
            },
            index=index,
        )
    return wide_bars(frames)


def with_missing(bars: WideBars, cells: list[tuple[int, str]]) -> WideBars:
    """The same bars with the given (row, instrument) bars missing (NaN in every field)."""
    fields = {field: getattr(bars, field).copy() for field in FIELDS}
    for row, name in cells:
        for frame in fields.values():
            frame.iloc[row, frame.columns.get_loc(name)] = np.nan
    return WideBars(**fields)


def last_row(features: pd.DataFrame) -> np.ndarray:
    return features.xs(features.index.get_level_values("time")[-1], level="time").to_numpy()


def test_there_are_30_to_40_features_each_with_a_one_line_definition() -> None:
    assert 30 <= len(FEATURE_NAMES) <= 40
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert tuple(FEATURE_DOCS) == FEATURE_NAMES
    for name, doc in FEATURE_DOCS.items():
        assert doc.strip() and "\n" not in doc, name


def test_the_output_is_time_major_with_the_feature_columns_in_order() -> None:
    bars = synthetic(LOOKBACK + 3, seed=1)

    features = compute_features(bars, PIPS)

    assert list(features.columns) == list(FEATURE_NAMES)
    assert features.index.names == ["time", "instrument"]
    assert len(features) == (LOOKBACK + 3) * len(NAMES)
    assert list(features.index[:3]) == [(MONDAY_NS, name) for name in NAMES]
    assert features.dtypes.eq(np.float64).all()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_last_bar_from_a_lookback_window_equals_the_full_history_value(seed: int) -> None:
    # Arrange: a few hundred bars; many end points, so every phase of the doubling windows shows
    bars = synthetic(420, seed=seed)
    full = compute_features(bars, PIPS)
    full_rows = full.to_numpy().reshape(420, len(NAMES), len(FEATURE_NAMES))

    for end in [*range(LOOKBACK, 420, 7), 420]:
        # Act: what the live role computes from its last LOOKBACK bars
        window = WideBars(**{f: getattr(bars, f).iloc[end - LOOKBACK : end] for f in FIELDS})
        live = last_row(compute_features(window, PIPS))

        # Assert
        assert np.isfinite(live).all()
        np.testing.assert_allclose(live, full_rows[end - 1], rtol=0, atol=1e-12, err_msg=f"bar {end - 1}")


def test_with_missing_bars_the_live_window_equals_the_full_history_value() -> None:
    # Arrange: isolated missing bars, a run as long as the fill limit, and a longer gap
    run = [(200 + k, "USD_JPY") for k in range(FILL_LIMIT_BARS)]
    gap = [(300 + k, "XAU_USD") for k in range(FILL_LIMIT_BARS + 2)]
    bars = with_missing(synthetic(520, seed=4), [(150, "EUR_USD"), (151, "XAU_USD"), (260, "EUR_USD"), *run, *gap])
    full_rows = compute_features(bars, PIPS).to_numpy().reshape(520, len(NAMES), len(FEATURE_NAMES))

    for end in range(WINDOW_BARS, 521, 3):
        # Act
        live = last_row(compute_features(_window(bars, end=end), PIPS))

        # Assert (NaN where the full history has NaN, the same values elsewhere)
        np.testing.assert_allclose(live, full_rows[end - 1], rtol=0, atol=1e-12, err_msg=f"bar {end - 1}")


def _window(bars: WideBars, rows: int = WINDOW_BARS, *, end: int) -> WideBars:
    return WideBars(**{f: getattr(bars, f).iloc[end - rows : end] for f in FIELDS})


def test_the_first_lookback_minus_one_bars_are_warm_up_and_lookback_is_tight() -> None:
    bars = synthetic(LOOKBACK + 20, seed=5)

    rows = compute_features(bars, PIPS).to_numpy().reshape(LOOKBACK + 20, len(NAMES), len(FEATURE_NAMES))
    short = last_row(compute_features(_window(bars, LOOKBACK - 1, end=len(bars.close)), PIPS))

    assert np.isnan(rows[: LOOKBACK - 1]).all()
    assert np.isfinite(rows[LOOKBACK - 1 :]).all()
    assert np.isnan(short).all()


def test_a_missing_bar_blanks_its_own_row_and_is_filled_flat_for_the_bars_after_it() -> None:
    bars = with_missing(synthetic(200, seed=6), [(150, "EUR_USD")])

    features = compute_features(bars, PIPS)
    t = int(bars.close.index[150])
    after = int(bars.close.index[151])

    assert features.loc[(t, "EUR_USD")].isna().all()
    assert np.isfinite(features.loc[(t, "USD_JPY")]).all()
    assert np.isfinite(features.loc[(after, "EUR_USD")]).all()
    # The filled bar is flat at the previous close: no return over it.
    expected = np.log(bars.close.iloc[151, 0] / bars.close.iloc[149, 0])
    assert features.loc[(after, "EUR_USD"), "ret_1"] == pytest.approx(expected, abs=1e-15)


def test_a_gap_longer_than_the_fill_limit_blanks_the_instrument_until_it_has_warmed_up_again() -> None:
    gap = [(150 + k, "USD_JPY") for k in range(FILL_LIMIT_BARS + 1)]
    bars = with_missing(synthetic(400, seed=7), gap)
    rows = compute_features(bars, PIPS).to_numpy().reshape(400, len(NAMES), len(FEATURE_NAMES))
    jpy = NAMES.index("USD_JPY")
    # The last bar of the run stays unfilled, so the instrument needs LOOKBACK bars after it.
    back = 150 + FILL_LIMIT_BARS + 1 + LOOKBACK - 1

    assert np.isnan(rows[150:back, jpy]).all()
    assert np.isfinite(rows[back:, jpy]).all()
    assert np.isfinite(rows[150:, NAMES.index("EUR_USD")]).all()


def test_a_flat_market_gives_the_documented_neutral_values_and_no_inf() -> None:
    # Arrange: every price equal, zero range, constant volume and spread
    bars = synthetic(LOOKBACK + 5, seed=8)
    flat = {f: getattr(bars, f).copy() for f in FIELDS}
    for f in ("open", "high", "low", "close"):
        flat[f].loc[:, :] = 1.2345
    flat["volume"].loc[:, :] = 7.0
    flat["spread"].loc[:, :] = 0.0002

    # Act
    features = compute_features(WideBars(**flat), PIPS).dropna()

    # Assert
    assert len(features) == 6 * len(NAMES)
    neutral = {"rsi_7": 50.0, "rsi_14": 50.0, "bb_pos_20": 0.5, "close_pos_16": 0.5, "vol_ratio_8_96": 1.0,
               "atr_ratio_14_96": 1.0}  # fmt: skip
    for name in FEATURE_NAMES:
        values = features[name].to_numpy()
        if name in neutral:
            assert (values == neutral[name]).all(), name
        elif name in {"spread_pips", "spread_atr"}:
            np.testing.assert_allclose(values, [0.0002 / PIPS[n] for n in NAMES] * 6)
        elif not name.startswith(("tod_", "dow_")):
            assert (values == 0.0).all(), name


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    flat_from=st.integers(0, 200),
    flat_len=st.integers(0, 120),
    jump=st.sampled_from([1.0, 1e-6, 1e6]),
    trend=st.booleans(),
)
def test_features_are_never_infinite(seed: int, flat_from: int, flat_len: int, jump: float, trend: bool) -> None:
    # Arrange: random walks with flat stretches, zero volume and spread, a steady trend or a huge jump
    rng = np.random.default_rng(seed)
    bars = synthetic(220, seed=seed % 1000)
    close = bars.close.to_numpy(copy=True)
    if trend:
        close[:] = 1.1 * np.exp(np.arange(220) * 1e-4)[:, None]
    close[flat_from:] *= jump
    close[flat_from : flat_from + flat_len] = close[max(flat_from - 1, 0)]
    high = close * (1 + rng.uniform(0, 1e-4, close.shape) * (rng.random(close.shape) < 0.5))
    volume = bars.volume.to_numpy(copy=True)
    volume[flat_from : flat_from + flat_len] = 0.0
    spread = bars.spread.to_numpy(copy=True)
    spread[: flat_from // 2] = 0.0

    def frame(values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(values, index=bars.close.index, columns=bars.close.columns)

    fields = {"open": frame(close), "high": frame(high), "low": frame(close), "close": frame(close),
              "volume": frame(volume), "spread": frame(spread)}  # fmt: skip

    # Act
    values = compute_features(WideBars(**fields), PIPS).to_numpy()

    # Assert
    assert not np.isinf(values).any()
    assert np.isfinite(values[-len(NAMES) :]).all()


def test_features_match_straightforward_pandas_definitions() -> None:
    # Arrange
    bars = synthetic(300, seed=9)
    features = compute_features(bars, PIPS)
    name = "USD_JPY"
    c, h, low, o = (getattr(bars, f)[name] for f in ("close", "high", "low", "open"))
    got = features.xs(name, level="instrument").iloc[LOOKBACK:]
    rows = got.index

    def check(feature: str, expected: pd.Series) -> None:
        np.testing.assert_allclose(got[feature], expected.loc[rows], rtol=1e-9, atol=1e-12, err_msg=feature)

    # Act / Assert
    r1 = np.log(c / c.shift(1))
    check("ret_1", r1)
    check("ret_16", np.log(c / c.shift(16)))
    check("vol_32", r1.rolling(32).std(ddof=0))
    check("close_z_16", (c - c.rolling(16).mean()) / c.rolling(16).std(ddof=0))
    change = c.diff()
    gains, losses = change.clip(lower=0).rolling(14).sum(), (-change).clip(lower=0).rolling(14).sum()
    check("rsi_14", 100 * gains / (gains + losses))
    true_range = pd.concat([h, c.shift(1)], axis=1).max(axis=1) - pd.concat([low, c.shift(1)], axis=1).min(axis=1)
    check("atr_14_rel", true_range.rolling(14).mean() / c)
    check("close_pos_16", (c - low.rolling(16).min()) / (h.rolling(16).max() - low.rolling(16).min()))
    check("body_ratio", (c - o) / (h - low))
    check("sma_slope_32", c.rolling(32).mean() / c.rolling(32).mean().shift(8) - 1)

    def ema(x: pd.Series, span: int) -> pd.Series:
        beta = 1 - 2 / (span + 1)
        weights = beta ** np.arange(3 * span)
        return x.rolling(3 * span).apply(lambda w: np.dot(w[::-1], weights) / weights.sum(), raw=True)

    macd = (ema(c, 12) - ema(c, 26)) / c
    check("macd", macd)
    check("macd_signal", ema(macd, 9))
    check("spread_pips", bars.spread[name] / PIPS[name])


def test_time_cycles_follow_the_utc_bar_start() -> None:
    bars = synthetic(LOOKBACK + 100, seed=10)
    features = compute_features(bars, PIPS).xs("EUR_USD", level="instrument")
    hour = 3600 * 10**9

    monday_six = features.loc[MONDAY_NS + 30 * hour]  # Tuesday 06:00 UTC
    assert monday_six["tod_sin"] == pytest.approx(1.0)
    assert monday_six["tod_cos"] == pytest.approx(0.0, abs=1e-12)
    angle = 2 * np.pi * 30 / (7 * 24)
    assert monday_six["dow_sin"] == pytest.approx(np.sin(angle))
    assert monday_six["dow_cos"] == pytest.approx(np.cos(angle))


def test_feature_values_are_pinned_to_the_features_version() -> None:
    # If this fails, a definition changed: bump FEATURES_REVISION in actors/ml/features.py (models
    # trained on the old definitions are then refused) and update both pins here.
    values = compute_features(synthetic(LOOKBACK + 40, seed=11), PIPS).dropna().to_numpy()
    digest = hashlib.sha256(np.round(values, 8).tobytes()).hexdigest()[:16]

    assert (FEATURES_VERSION, digest) == ("1-2937b8fd83bd", "f02b041a4d850d43")


def test_mismatched_frames_and_missing_pip_sizes_are_refused() -> None:
    bars = synthetic(LOOKBACK, seed=12)
    fields = {f: getattr(bars, f) for f in FIELDS}

    with pytest.raises(ValueError, match="spread differs"):
        WideBars(**{**fields, "spread": fields["spread"].iloc[:, :2]})
    with pytest.raises(ValueError, match="int64"):
        WideBars(**{f: frame.set_axis(pd.to_datetime(frame.index, utc=True)) for f, frame in fields.items()})
    with pytest.raises(ValueError, match="no pip size for XAU_USD"):
        compute_features(bars, {"EUR_USD": 0.0001, "USD_JPY": 0.01})


def test_the_features_page_lists_every_feature_with_its_definition() -> None:
    page = (Path(__file__).resolve().parents[3] / "docs" / "features.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z0-9_]+)` \| (.*) \|$", page, flags=re.MULTILINE))

    assert {name: doc.replace("\\|", "|") for name, doc in rows.items()} == FEATURE_DOCS
