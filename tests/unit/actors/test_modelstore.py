"""The model directory: round trip, one refusal per mismatch with its detail, per-row validity."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from catboost import CatBoostClassifier, Pool

from actors.core.errors import TradehostError
from actors.ml import modelstore
from actors.ml.features import FEATURE_NAMES, FEATURES_VERSION, LOOKBACK, WINDOW_BARS
from actors.ml.modelstore import META_FILE, MODEL_FILE, ModelMeta, ModelMismatchError, ModelMissingError, load, save

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

INSTRUMENTS = ("EUR_USD", "GBP_USD", "USD_JPY")


def booster(seed: int = 3) -> CatBoostClassifier:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, len(FEATURE_NAMES)))
    y = (x[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int)
    model = CatBoostClassifier(iterations=20, depth=3, random_seed=seed, thread_count=1,
                               allow_writing_files=False, verbose=False)  # fmt: skip
    model.fit(Pool(x, y, feature_names=list(FEATURE_NAMES)))
    return model


def meta(**changes: Any) -> ModelMeta:
    base = ModelMeta(
        feature_names=FEATURE_NAMES,
        features_version=FEATURES_VERSION,
        lookback_bars=LOOKBACK,
        window_bars=WINDOW_BARS,
        label="up in 4 bars",
        horizon_bars=4,
        instruments=INSTRUMENTS,
        granularity="M15",
        window_from_ns=1_700_000_000 * 10**9,
        window_to_ns=1_710_000_000 * 10**9,
        holdout_from_ns=1_708_000_000 * 10**9,
        seed=3,
        params={"iterations": 20, "depth": 3},
        pip_sizes={"EUR_USD": 0.0001, "GBP_USD": 0.0001, "USD_JPY": 0.01},
        metrics={"model": {"rows": 10, "accuracy": 0.6, "log_loss": 0.68, "auc": None}},
    )
    return replace(base, **changes)


@pytest.fixture(scope="module")
def trained() -> CatBoostClassifier:
    return booster()


@pytest.fixture
def model_dir(tmp_path: Path, trained: CatBoostClassifier) -> Path:
    save(tmp_path / "model", booster=trained, meta=meta())
    return tmp_path / "model"


def load_default(directory: Path, **changes: Any) -> modelstore.Model:
    args: dict[str, Any] = {
        "features_version": FEATURES_VERSION,
        "feature_names": FEATURE_NAMES,
        "granularity": "M15",
        "instruments": INSTRUMENTS,
    }
    return load(directory, **{**args, **changes})


def test_a_saved_directory_loads_back_with_its_metadata_and_version(
    model_dir: Path, trained: CatBoostClassifier
) -> None:
    saved = json.loads((model_dir / META_FILE).read_text())

    model = load_default(model_dir)

    assert model.meta == replace(meta(), version=saved["version"])
    assert len(model.meta.version) == 64 and model.meta.short_version == saved["version"][:12]
    rows = np.random.default_rng(1).normal(size=(5, len(FEATURE_NAMES)))
    np.testing.assert_allclose(model.predict(rows).p_up, trained.predict_proba(rows)[:, 1], rtol=0, atol=1e-15)
    assert sorted(p.name for p in model_dir.iterdir()) == [MODEL_FILE, META_FILE]


def test_saving_the_same_model_and_metadata_twice_gives_the_same_version(
    tmp_path: Path, trained: CatBoostClassifier
) -> None:
    first = save(tmp_path / "a", booster=trained, meta=meta())
    second = save(tmp_path / "b", booster=trained, meta=meta())
    other = save(tmp_path / "c", booster=trained, meta=meta(seed=4))

    assert first.version == second.version != other.version


def test_a_model_trained_on_more_instruments_than_configured_loads(model_dir: Path) -> None:
    assert load_default(model_dir, instruments=["USD_JPY"]).meta.instruments == INSTRUMENTS


def _edit_json(key: str, value: Any) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        raw = json.loads((directory / META_FILE).read_text())
        raw[key] = value
        (directory / META_FILE).write_text(json.dumps(raw))

    return edit


def _append_model_byte(directory: Path) -> None:
    with (directory / MODEL_FILE).open("ab") as handle:
        handle.write(b"\0")


@pytest.mark.parametrize(
    ("edit", "load_changes", "error", "detail"),
    [
        (
            lambda d: None,
            {"features_version": "2-abc"},
            ModelMismatchError,
            f"features version {FEATURES_VERSION} != code's 2-abc",
        ),
        (
            lambda d: None,
            {"feature_names": (*FEATURE_NAMES[:-1], "new_one")},
            ModelMismatchError,
            "#37: model 'dow_cos', code 'new_one'",
        ),
        (lambda d: None, {"feature_names": FEATURE_NAMES[:-1]}, ModelMismatchError, "feature names differ"),
        (lambda d: None, {"granularity": "H1"}, ModelMismatchError, "trained on M15 bars, configured H1"),
        (
            lambda d: None,
            {"instruments": ["EUR_USD", "XAU_USD", "AUD_USD"]},
            ModelMismatchError,
            "not trained on XAU_USD, AUD_USD",
        ),
        (lambda d: (d / META_FILE).write_text("{not json"), {}, ModelMismatchError, "not valid JSON"),
        (lambda d: (d / META_FILE).write_text("[1, 2]"), {}, ModelMismatchError, "expected a JSON object"),
        (_edit_json("seed", 5), {}, ModelMismatchError, "version hash mismatch"),
        (_edit_json("metrics", {}), {}, ModelMismatchError, "version hash mismatch"),
        (_edit_json("format", 2), {}, ModelMismatchError, "format 2, this code reads format 1"),
        (_edit_json("granularity", 15), {}, ModelMismatchError, "granularity has the wrong type"),
        (_edit_json("extra", 1), {}, ModelMismatchError, "unknown key 'extra'"),
        (_append_model_byte, {}, ModelMismatchError, "version hash mismatch"),
        (lambda d: (d / MODEL_FILE).unlink(), {}, ModelMissingError, "model.cbm is missing"),
        (lambda d: (d / META_FILE).unlink(), {}, ModelMissingError, "model.json is missing"),
    ],
)
def test_each_mismatch_is_refused_with_a_one_line_detail(
    model_dir: Path,
    edit: Callable[[Path], None],
    load_changes: dict[str, Any],
    error: type[TradehostError],
    detail: str,
) -> None:
    edit(model_dir)

    with pytest.raises(error) as caught:
        load_default(model_dir, **load_changes)

    message = str(caught.value)
    assert detail in message
    assert str(model_dir) in message
    assert "\n" not in message


def test_a_missing_key_is_refused(model_dir: Path) -> None:
    raw = json.loads((model_dir / META_FILE).read_text())
    del raw["horizon_bars"]
    (model_dir / META_FILE).write_text(json.dumps(raw))

    with pytest.raises(ModelMismatchError, match="missing key 'horizon_bars'"):
        load_default(model_dir)


def test_no_directory_is_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match=r"no model directory at .*nowhere"):
        load_default(tmp_path / "nowhere")


def test_an_unreadable_model_file_with_a_consistent_hash_is_refused(model_dir: Path) -> None:
    # Arrange: garbage bytes, and metadata re-signed over them (as a buggy writer might leave it)
    garbage = b"not a catboost model"
    (model_dir / MODEL_FILE).write_bytes(garbage)
    raw = json.loads((model_dir / META_FILE).read_text())
    raw["version"] = modelstore._version(garbage, raw)
    (model_dir / META_FILE).write_text(json.dumps(raw))

    # Act / Assert
    with pytest.raises(ModelMismatchError, match=r"model\.cbm: unreadable"):
        load_default(model_dir)


class CountingBooster:
    """Wraps the real booster and records each predict_proba call."""

    def __init__(self, inner: CatBoostClassifier) -> None:
        self.inner = inner
        self.classes_ = inner.classes_
        self.calls: list[int] = []

    def predict_proba(self, rows: np.ndarray, **kwargs: Any) -> np.ndarray:
        self.calls.append(len(rows))
        return self.inner.predict_proba(rows, **kwargs)


def test_all_rows_are_predicted_in_one_call_and_bad_rows_come_back_invalid_with_their_features(
    model_dir: Path,
) -> None:
    # Arrange
    model = load_default(model_dir)
    counting = CountingBooster(model._booster)
    model._booster = counting
    rows = np.random.default_rng(2).normal(size=(30, len(FEATURE_NAMES)))
    rows[4, FEATURE_NAMES.index("rsi_7")] = np.nan
    rows[9, FEATURE_NAMES.index("vol_8")] = np.inf
    rows[9, FEATURE_NAMES.index("macd")] = -np.inf

    # Act
    prediction = model.predict(rows)

    # Assert
    assert counting.calls == [28]
    assert prediction.skipped == (4, 9)
    assert prediction.reasons[4] == "non-finite features: rsi_7"
    assert prediction.reasons[9] == "non-finite features: vol_8, macd"
    assert np.isnan(prediction.p_up[[4, 9]]).all()
    good = np.delete(np.arange(30), [4, 9])
    assert prediction.valid[good].all() and all(prediction.reasons[i] == "" for i in good)
    np.testing.assert_allclose(prediction.p_up[good], counting.inner.predict_proba(rows[good])[:, 1], atol=1e-15)


def test_a_batch_without_any_good_row_never_reaches_catboost(model_dir: Path) -> None:
    model = load_default(model_dir)
    counting = CountingBooster(model._booster)
    model._booster = counting

    prediction = model.predict(np.full((3, len(FEATURE_NAMES)), np.nan))

    assert counting.calls == []
    assert prediction.skipped == (0, 1, 2)


def test_a_non_finite_model_output_is_reported_as_such(model_dir: Path) -> None:
    class NanBooster(CountingBooster):
        def predict_proba(self, rows: np.ndarray, **kwargs: Any) -> np.ndarray:
            out = self.inner.predict_proba(rows, **kwargs)
            out[1, 1] = np.nan
            return out

    model = load_default(model_dir)
    model._booster = NanBooster(model._booster)

    prediction = model.predict(np.zeros((3, len(FEATURE_NAMES))))

    assert prediction.skipped == (1,)
    assert prediction.reasons[1] == "non-finite model output"


def test_rows_of_the_wrong_width_are_a_caller_error(model_dir: Path) -> None:
    model = load_default(model_dir)

    with pytest.raises(ValueError, match=f"expected rows of {len(FEATURE_NAMES)} features"):
        model.predict(np.zeros((2, 37)))
    with pytest.raises(ValueError, match=f"expected rows of {len(FEATURE_NAMES)} features"):
        model.predict(np.zeros(38))
