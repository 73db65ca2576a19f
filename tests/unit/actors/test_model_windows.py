"""The model role's live inputs equal the batch inputs: windows, Bar messages and the features."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from actors.core.bars import BarCandle
from actors.core.candlespec import CANDLE_COLUMNS
from actors.core.domain import OHLC, Candle
from actors.ml.candlefile import frame_from_candles
from actors.ml.features import FEATURE_NAMES, LOOKBACK, WINDOW_BARS, compute_features, wide_bars
from actors.roles.model import BarWindows, bar_values
from actors.runtime.messages import Bar, Prices

pytestmark = pytest.mark.unit

STEP = 900 * 10**9
PIPS = {"EUR_USD": 0.0001, "GBP_USD": 0.0001, "USD_JPY": 0.01}


def _candles(name: str, n: int, seed: int) -> list[Candle]:
    rng = np.random.default_rng(seed)
    price = {"EUR_USD": 1.08, "GBP_USD": 1.27, "USD_JPY": 150.0}[name]
    digits = 3 if name == "USD_JPY" else 5
    out = []
    for i in range(n):
        o = price
        c = price * float(np.exp(rng.normal(0, 0.001)))
        h, lo = max(o, c) * (1 + abs(rng.normal(0, 0.0004))), min(o, c) * (1 - abs(rng.normal(0, 0.0004)))
        half = float(rng.uniform(0.5, 2.0)) * PIPS[name] / 2
        q = Decimal(10) ** -digits

        def side(shift: float, o: float = o, h: float = h, lo: float = lo, c: float = c, q: Decimal = q) -> OHLC:  # noqa: PLR0917
            return OHLC(
                o=Decimal(o + shift).quantize(q),
                h=Decimal(h + shift).quantize(q),
                l=Decimal(lo + shift).quantize(q),
                c=Decimal(c + shift).quantize(q),
            )

        bid, ask = side(-half), side(half)
        out.append(
            Candle(
                ts=1_709_000_000 * 10**9 + i * STEP, volume=int(rng.integers(1, 500)), complete=True, bid=bid, ask=ask
            )
        )
        price = c
    return out


def _bar(name: str, candle: Candle) -> Bar:
    assert candle.bid is not None and candle.ask is not None
    mid = BarCandle.from_candle(candle).mid

    def prices(ohlc: OHLC) -> Prices:
        return Prices(o=str(ohlc.o), h=str(ohlc.h), l=str(ohlc.l), c=str(ohlc.c))

    return Bar(
        instrument=name,  # type: ignore[arg-type]
        granularity="M15",
        ts=candle.ts,
        bid=prices(candle.bid),
        ask=prices(candle.ask),
        mid=prices(mid),
        volume=candle.volume,
    )


def test_a_bar_message_gives_the_same_row_as_the_candles_training_and_history_read() -> None:
    candles = _candles("EUR_USD", 5, seed=1)
    frame = frame_from_candles(candles)

    for candle in candles:
        expected = tuple(float(v) for v in frame.loc[candle.ts, list(CANDLE_COLUMNS)])
        assert bar_values(_bar("EUR_USD", candle)) == pytest.approx(expected, rel=0, abs=1e-12)


def test_live_features_from_the_rolling_windows_equal_the_batch_features_over_the_whole_history() -> None:
    # Arrange: the whole history, as training and a backtest see it.
    n, loaded = 400, 150
    candles = {name: _candles(name, n, seed=i) for i, name in enumerate(PIPS)}
    full = compute_features(wide_bars({name: frame_from_candles(c) for name, c in candles.items()}), PIPS)
    # The live role: history loaded at start, then one Bar message per instrument per close.
    windows = BarWindows(tuple(PIPS), WINDOW_BARS)
    for name, cs in candles.items():
        windows.load(name, frame_from_candles(cs[:loaded]))

    # Act / Assert: at every later close the live features equal the batch ones, bit for bit.
    checked = 0
    for i in range(loaded, n):
        for name, cs in candles.items():
            windows.add(name, cs[i].ts, bar_values(_bar(name, cs[i])))
        ts = candles["EUR_USD"][i].ts
        live = compute_features(windows.wide(), PIPS).loc[ts, list(FEATURE_NAMES)]
        batch = full.loc[ts, list(FEATURE_NAMES)]
        np.testing.assert_allclose(live.to_numpy(), batch.to_numpy(), rtol=0, atol=1e-12)
        checked += 1
    assert checked == n - loaded and loaded > LOOKBACK


def test_windows_keep_the_last_bars_and_ignore_a_bar_that_is_not_newer() -> None:
    windows = BarWindows(("EUR_USD",), 3)
    frame = pd.DataFrame(
        [[1.0, 1.1, 0.9, 1.0, 5.0, 0.0001]] * 5,
        index=pd.Index([i * STEP for i in range(5)], dtype=np.int64, name="time"),
        columns=list(CANDLE_COLUMNS),
    )
    windows.load("EUR_USD", frame)
    windows.add("EUR_USD", 4 * STEP, (9.0,) * 6)  # not newer: ignored
    windows.add("EUR_USD", 5 * STEP, (2.0, 2.1, 1.9, 2.0, 7.0, 0.0002))

    wide = windows.wide()
    assert list(wide.close.index) == [3 * STEP, 4 * STEP, 5 * STEP]
    assert list(wide.close["EUR_USD"]) == [1.0, 1.0, 2.0]


def test_windows_that_disagree_give_the_same_frames_as_the_batch_union() -> None:
    # GBP_USD misses one bar (rejected): the union of times, NaN where it has none, as training sees it.
    candles = {name: _candles(name, 30, seed=i) for i, name in enumerate(PIPS)}
    del candles["GBP_USD"][25]
    windows = BarWindows(tuple(PIPS), 20)
    for name, cs in candles.items():
        windows.load(name, frame_from_candles(cs))

    live = windows.wide()
    batch = wide_bars({name: frame_from_candles(cs).iloc[-20:] for name, cs in candles.items()})

    pd.testing.assert_frame_equal(live.close, batch.close)
    assert live.close["GBP_USD"].isna().sum() == 1
