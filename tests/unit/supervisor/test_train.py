"""The training core: determinism, the walk-forward split, metrics next to baselines, one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from actors.core.errors import TradehostError
from actors.ml.features import FEATURE_NAMES, FEATURES_VERSION, LOOKBACK, compute_features, wide_bars
from actors.ml.modelstore import META_FILE, MODEL_FILE, load
from supervisor.offline.train import MIN_HOLDOUT_ROWS, TrainError, TrainSpec, train

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

M15_NS = 900 * 10**9
START_NS = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
NAMES = ["GBP_USD", "EUR_USD", "USD_JPY"]  # not sorted on purpose
PIPS = {"EUR_USD": 0.0001, "GBP_USD": 0.0001, "USD_JPY": 0.01}


def candles(bars: int, seed: int, *, reversion: float = 0.0, names: list[str] = NAMES) -> dict[str, pd.DataFrame]:
    """M15 candles; ``reversion`` > 0 makes each return undo part of the previous one."""
    rng = np.random.default_rng(seed)
    index = pd.Index(START_NS + np.arange(bars, dtype=np.int64) * M15_NS, name="time")
    out = {}
    for name in names:
        noise = rng.normal(0, 1e-3, bars)
        returns = noise.copy()
        for t in range(1, bars):
            returns[t] = noise[t] - reversion * returns[t - 1]
        close = (150.0 if name == "USD_JPY" else 1.1) * np.exp(np.cumsum(returns))
        open_ = np.r_[close[0], close[:-1]]
        out[name] = pd.DataFrame(
            {
                "open": open_,
                "high": np.maximum(open_, close) * (1 + rng.uniform(0, 5e-4, bars)),
                "low": np.minimum(open_, close) * (1 - rng.uniform(0, 5e-4, bars)),
                "close": close,
                "volume": rng.integers(1, 300, bars).astype(float),
                "spread": PIPS[name] * rng.uniform(0.8, 2.0, bars),
            },
            index=index,
        )
    return out


def spec(out_dir: Path, **changes: Any) -> TrainSpec:
    return TrainSpec(**{"granularity": "M15", "out_dir": out_dir, "seed": 11, "iterations": 60, **changes})


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return candles(1200, seed=1)


def test_the_same_candles_and_seed_give_a_byte_identical_model(tmp_path: Path, data: dict[str, pd.DataFrame]) -> None:
    # Act: the default CatBoost settings, twice, and once with another seed
    first = train(data, pip_sizes=PIPS, spec=TrainSpec(granularity="M15", out_dir=tmp_path / "a", seed=5))
    second = train(
        dict(reversed(data.items())), pip_sizes=PIPS, spec=TrainSpec(granularity="M15", out_dir=tmp_path / "b", seed=5)
    )
    other = train(data, pip_sizes=PIPS, spec=TrainSpec(granularity="M15", out_dir=tmp_path / "c", seed=6))

    # Assert
    model_a = (tmp_path / "a" / MODEL_FILE).read_bytes()
    assert model_a == (tmp_path / "b" / MODEL_FILE).read_bytes()
    assert (tmp_path / "a" / META_FILE).read_bytes() == (tmp_path / "b" / META_FILE).read_bytes()
    assert first.meta.version == second.meta.version
    assert model_a != (tmp_path / "c" / MODEL_FILE).read_bytes()
    assert other.meta.version != first.meta.version


def test_metrics_on_the_held_out_tail_stand_next_to_the_baselines_everywhere(
    tmp_path: Path, data: dict[str, pd.DataFrame]
) -> None:
    lines: list[str] = []

    result = train(data, pip_sizes=PIPS, spec=spec(tmp_path / "m"), progress=lines.append)

    assert set(result.metrics) == {"model", "always_up", "last_direction"}
    for m in result.metrics.values():
        assert m.rows == result.holdout_rows > 0
        assert 0.0 <= m.accuracy <= 1.0 and math.isfinite(m.log_loss) and m.log_loss > 0
        assert m.auc is not None and 0.0 <= m.auc <= 1.0
    assert result.metrics["always_up"].auc == 0.5
    stored = json.loads((tmp_path / "m" / META_FILE).read_text())["metrics"]
    assert stored == {name: m.as_dict() for name, m in result.metrics.items()}
    table = "\n".join(lines)
    for name, m in result.metrics.items():
        assert f"{name}" in table and f"{m.accuracy:.4f}" in table
    assert any(line.startswith("fit: 15/60") for line in lines)


def test_a_planted_pattern_is_learned_and_beats_always_up(tmp_path: Path) -> None:
    # Arrange: strongly mean-reverting returns, label one bar ahead
    data = candles(1500, seed=2, reversion=0.6)

    # Act
    result = train(data, pip_sizes=PIPS, spec=spec(tmp_path / "m", horizon_bars=1))

    # Assert
    model, always_up = result.metrics["model"], result.metrics["always_up"]
    assert model.accuracy > 0.6 > always_up.accuracy
    assert model.auc is not None and model.auc > 0.65
    assert model.log_loss < always_up.log_loss
    # Mean reversion: the last bar's direction is the wrong call more often than not.
    assert result.metrics["last_direction"].accuracy < 0.45


def test_the_split_is_by_time_with_a_gap_of_the_horizon(tmp_path: Path, data: dict[str, pd.DataFrame]) -> None:
    horizon = 6
    result = train(data, pip_sizes=PIPS, spec=spec(tmp_path / "m", horizon_bars=horizon, holdout_fraction=0.25))

    # Rows with features and a label: bars LOOKBACK-1 .. 1199-horizon of each instrument.
    first, last = LOOKBACK - 1, 1199 - horizon
    cut = first + math.ceil((last - first + 1) * 0.75)
    assert result.meta.holdout_from_ns == START_NS + cut * M15_NS
    assert result.train_rows == (cut - horizon - first) * len(NAMES)
    assert result.holdout_rows == (last - cut + 1) * len(NAMES)
    assert result.meta.horizon_bars == horizon
    assert (result.meta.window_from_ns, result.meta.window_to_ns) == (START_NS, START_NS + 1199 * M15_NS)


def test_the_directory_loads_for_the_live_role_and_predicts_the_last_bar(
    tmp_path: Path, data: dict[str, pd.DataFrame]
) -> None:
    train(data, pip_sizes=PIPS, spec=spec(tmp_path / "m"))

    model = load(tmp_path / "m", features_version=FEATURES_VERSION, feature_names=FEATURE_NAMES, granularity="M15",
                 instruments=["EUR_USD", "USD_JPY"])  # fmt: skip
    features = compute_features(wide_bars(data), PIPS)
    rows = features.xs(features.index.get_level_values("time")[-1], level="time")
    prediction = model.predict(rows.to_numpy())

    assert model.meta.instruments == ("EUR_USD", "GBP_USD", "USD_JPY")
    assert prediction.valid.all()
    assert ((prediction.p_up > 0) & (prediction.p_up < 1)).all()


def test_a_window_restricts_the_bars_used(tmp_path: Path, data: dict[str, pd.DataFrame]) -> None:
    start, end = START_NS + 100 * M15_NS, START_NS + 1100 * M15_NS

    result = train(data, pip_sizes=PIPS, spec=spec(tmp_path / "m", from_ns=start, to_ns=end))

    assert (result.meta.window_from_ns, result.meta.window_to_ns) == (start, end - M15_NS)


def test_candles_without_spread_or_volume_train_with_a_fallback_spread(tmp_path: Path) -> None:
    # Arrange: what a mid-only candle file gives
    data = candles(900, seed=3)
    for frame in data.values():
        frame["spread"] = np.nan
        frame["volume"] = np.nan
    lines: list[str] = []
    fallback = {name: 1.4 * pip for name, pip in PIPS.items()}

    # Act
    result = train(data, pip_sizes=PIPS, spec=spec(tmp_path / "m"), spread_fallback=fallback, progress=lines.append)

    # Assert
    assert result.train_rows > 0
    assert "EUR_USD: spread 1.40 pips assumed on 900 bars without one" in lines
    assert "EUR_USD: no volume in the candles; volume_z_32 is 0 for it" in lines
    with pytest.raises(TrainError, match="EUR_USD: no spread on 900 bars"):
        train(data, pip_sizes=PIPS, spec=spec(tmp_path / "n"))


def _rising(bars: int) -> dict[str, pd.DataFrame]:
    data = candles(bars, seed=4, names=["EUR_USD"])
    frame = data["EUR_USD"]
    close = 1.1 * np.exp(np.arange(bars) * 1e-4)
    frame["close"], frame["open"] = close, np.r_[close[0], close[:-1]]
    frame["high"], frame["low"] = close * 1.0001, frame["open"] * 0.9999
    return data


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda: candles(400, 5), {"spec": {"granularity": "M7"}}, "unknown granularity 'M7'"),
        (lambda: candles(400, 5), {"instruments": ["USD_CHF"]}, "unknown instrument USD_CHF: no candles for it"),
        (lambda: candles(400, 5), {"pip_sizes": {"EUR_USD": 0.0001}}, "unknown instrument GBP_USD: no pip size"),
        (lambda: candles(400, 5), {"instruments": []}, "no instruments to train on"),
        (lambda: candles(400, 5), {"spec": {"from_ns": START_NS + 10**15}}, "EUR_USD: no candles between 2024-01-12"),
        (lambda: candles(400, 5), {"spec": {"from_ns": START_NS, "to_ns": START_NS}}, "empty window: from"),
        (lambda: candles(LOOKBACK, 5), {}, f"EUR_USD: {LOOKBACK} bars in the window; the features need {LOOKBACK}"),
        (lambda: candles(400, 5), {"spec": {"granularity": "H1"}}, "EUR_USD: bars are 900 s apart, not H1 (3600 s)"),
        (
            lambda: candles(LOOKBACK + 60, 5),
            {},
            f"too few rows: 126 to train on and 33 held out (need 200 and {MIN_HOLDOUT_ROWS})",
        ),
        (lambda: _rising(600), {}, "every training label is 1"),
        (
            lambda: {"EUR_USD": candles(400, 5)["EUR_USD"].drop(columns="spread")},
            {},
            "EUR_USD: candles lack the column(s) spread",
        ),
        (lambda: {"EUR_USD": candles(400, 5)["EUR_USD"].iloc[::-1]}, {}, "must be indexed by increasing"),
        (lambda: {"EUR_USD": candles(400, 5)["EUR_USD"].assign(low=0.0)}, {}, "has a missing or non-positive price"),
        (lambda: candles(400, 5), {"spec": {"holdout_fraction": 1.0}}, "holdout_fraction must be between 0 and 1"),
        (lambda: candles(400, 5), {"spec": {"horizon_bars": 0}}, "horizon_bars must be >= 1"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path: Path, make: Any, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"pip_sizes": PIPS, **kwargs, "spec": spec(tmp_path / "m", **kwargs.get("spec", {}))}

    with pytest.raises(TrainError) as caught:
        train(make(), **args)

    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, TradehostError)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--seed", "-1"], "--seed: -1 must be 0 or more"),
        (["--bars", "0"], "--bars: 0 is not a number of bars"),
        (["--from", "1e30"], "--from: '1e30' is out of range"),
        (["--to", "2024-02-30"], "--to: '2024-02-30' is not a valid time"),
    ],
)
def test_the_train_command_refuses_bad_flags_before_reading_anything(
    tmp_path: Path, capsys: Any, flags: list[str], words: str
) -> None:
    from supervisor import cli

    code = cli.main(["train", *flags, "--out", str(tmp_path / "m")])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and words in err
    assert not (tmp_path / "m").exists()


def test_the_train_command_never_writes_over_an_existing_model(tmp_path: Path, capsys: Any) -> None:
    from supervisor import cli

    model = tmp_path / "models" / "default"
    model.mkdir(parents=True)
    (model / MODEL_FILE).write_bytes(b"the model the host trades with")

    code = cli.main(["train", "--out", str(model)])

    assert code == 2
    assert "exists and is not empty; nothing was written" in capsys.readouterr().err
    assert (model / MODEL_FILE).read_bytes() == b"the model the host trades with"
