"""The model directory: ``model.cbm`` + ``model.json``, saved with a version hash, loaded with checks.

This module owns what a model directory holds and when the host may use it. ``model.json``
carries the metadata (``ModelMeta``: feature names in order, the feature function's version, the
label and its horizon, instruments, granularity, training window, seed, CatBoost parameters,
metrics, the bars of history the features need) and ``version``, a SHA-256 over the bytes of
``model.cbm`` and the canonical JSON of the rest of the metadata, so any edit to either file is
noticed. ``load`` refuses a directory that is missing (``ModelMissingError``) or does not fit the
running configuration (``ModelMismatchError``), each with a one-line detail for the model role's
latched no-trade reason. A loaded ``Model`` predicts P(up) for all instruments of a bar in one
CatBoost call and reports, per row, whether the prediction is usable.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from catboost import CatBoostClassifier, CatBoostError

from actors.core.errors import TradehostError

__all__ = [
    "META_FILE",
    "META_FORMAT",
    "MODEL_FILE",
    "Model",
    "ModelMeta",
    "ModelMismatchError",
    "ModelMissingError",
    "Prediction",
    "load",
    "save",
]

MODEL_FILE = "model.cbm"
META_FILE = "model.json"
# The layout of model.json; a directory written with another layout is refused.
META_FORMAT = 1


class ModelMissingError(TradehostError):
    """No model directory, or it lacks ``model.cbm`` or ``model.json``: build one with train."""


class ModelMismatchError(TradehostError):
    """The model directory is corrupt or does not fit the configuration: retrain or reconfigure."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelMeta:
    """What ``model.json`` says about the model.

    Attributes:
        feature_names: the model's input columns, in order.
        features_version: ``actors.ml.features.FEATURES_VERSION`` at training time.
        lookback_bars: bars each feature needs (``actors.ml.features.LOOKBACK``).
        window_bars: bars of history the live role keeps (``actors.ml.features.WINDOW_BARS``).
        label: the label's definition, in words.
        horizon_bars: N, the number of bars ahead the label looks.
        instruments: the instruments trained on (sorted).
        granularity: OANDA granularity of the bars, e.g. ``M15``.
        window_from_ns: start of the first bar read for training (UTC ns).
        window_to_ns: start of the last bar read (UTC ns).
        holdout_from_ns: start of the first bar of the held-out tail (UTC ns).
        seed: CatBoost's ``random_seed``.
        params: the CatBoost parameters.
        pip_sizes: instrument -> pip size used for the spread features.
        metrics: name (``model``, ``always_up``, ``last_direction``) -> metric -> value on the
            held-out tail (None where undefined, e.g. AUC of a one-class tail).
        format: the model.json layout (``META_FORMAT``).
        version: SHA-256 hex over model.cbm and the other fields; set by ``save``.
    """

    feature_names: tuple[str, ...]
    features_version: str
    lookback_bars: int
    window_bars: int
    label: str
    horizon_bars: int
    instruments: tuple[str, ...]
    granularity: str
    window_from_ns: int
    window_to_ns: int
    holdout_from_ns: int
    seed: int
    params: Mapping[str, Any] = field(default_factory=dict)
    pip_sizes: Mapping[str, float] = field(default_factory=dict)
    metrics: Mapping[str, Mapping[str, float | int | None]] = field(default_factory=dict)
    format: int = META_FORMAT
    version: str = ""

    @property
    def short_version(self) -> str:
        """The first 12 hex digits of ``version``, for status lines and signals."""
        return self.version[:12]


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """P(up) for a batch of feature rows, with the rows that could not be predicted.

    Attributes:
        p_up: float64, one per input row; NaN where ``valid`` is false.
        valid: bool, one per input row.
        reasons: one per input row: ``""`` when valid, else why (the non-finite features by
            name, or a non-finite model output), for the caller's ``model.skipped`` journal row.
    """

    p_up: np.ndarray
    valid: np.ndarray
    reasons: tuple[str, ...]

    @property
    def skipped(self) -> tuple[int, ...]:
        """Indices of the rows that were not predicted."""
        return tuple(int(i) for i in np.flatnonzero(~self.valid))


class Model:
    """A loaded, checked model (build one with ``load``).

    Args:
        meta: the checked metadata.
        booster: the CatBoost model read from ``model.cbm``.
        directory: where it was loaded from.
    """

    def __init__(self, *, meta: ModelMeta, booster: CatBoostClassifier, directory: Path) -> None:
        self.meta = meta
        self.directory = directory
        self._booster = booster
        classes = [int(c) for c in booster.classes_]
        if sorted(classes) != [0, 1]:
            raise ModelMismatchError(f"{directory}/{MODEL_FILE}: classes {classes}, expected 0 (not up) and 1 (up)")
        self._up_column = classes.index(1)

    def predict(self, rows: np.ndarray) -> Prediction:
        """P(up) for each row, all valid rows in one CatBoost call.

        Rows holding NaN or inf are not passed to CatBoost; they come back invalid with the
        names of the bad features, and so do rows whose output is not a finite probability.

        Args:
            rows: shape (instruments, features), columns in ``meta.feature_names`` order.

        Raises:
            ValueError: ``rows`` is not 2-D with one column per feature.
        """
        values = np.asarray(rows, dtype=np.float64)
        width = len(self.meta.feature_names)
        if values.ndim != 2 or values.shape[1] != width:
            raise ValueError(f"predict: expected rows of {width} features, got an array of shape {values.shape}")
        finite = np.asarray(np.isfinite(values).all(axis=1))
        p_up = np.full(len(values), np.nan)
        if finite.any():
            proba = self._booster.predict_proba(np.ascontiguousarray(values[finite]), thread_count=1)
            p_up[finite] = proba[:, self._up_column]
        valid: np.ndarray = finite & np.isfinite(p_up) & (p_up >= 0.0) & (p_up <= 1.0)
        p_up[~valid] = np.nan
        reasons = tuple("" if valid[i] else self._reason(values[i], finite=bool(finite[i])) for i in range(len(values)))
        return Prediction(p_up=p_up, valid=valid, reasons=reasons)

    def _reason(self, row: np.ndarray, *, finite: bool) -> str:
        if finite:
            return "non-finite model output"
        bad = [name for name, value in zip(self.meta.feature_names, row, strict=True) if not math.isfinite(value)]
        return "non-finite features: " + ", ".join(bad)


def save(directory: Path, *, booster: CatBoostClassifier, meta: ModelMeta) -> ModelMeta:
    """Write ``model.cbm`` and ``model.json`` into ``directory`` (created if missing).

    The files are written to temporary names and renamed, model first, so a reader sees either
    the old pair, a pair whose hash does not match (refused), or the new pair.

    Args:
        directory: the model directory.
        booster: the trained CatBoost model.
        meta: the metadata; its ``version`` is ignored and computed here.

    Returns:
        ``meta`` with ``version`` set.
    """
    directory.mkdir(parents=True, exist_ok=True)
    model_tmp = directory / f".{MODEL_FILE}.tmp"
    meta_tmp = directory / f".{META_FILE}.tmp"
    booster.save_model(str(model_tmp))
    model_bytes = model_tmp.read_bytes()
    meta = replace(meta, version=_version(model_bytes, _payload(meta)))
    meta_tmp.write_text(json.dumps(_payload(meta), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    model_tmp.replace(directory / MODEL_FILE)
    meta_tmp.replace(directory / META_FILE)
    return meta


def load(
    directory: Path,
    *,
    features_version: str,
    feature_names: Sequence[str],
    granularity: str,
    instruments: Sequence[str],
) -> Model:
    """Load a model directory and refuse it unless it fits the running configuration.

    Args:
        directory: the model directory (``model.dir``).
        features_version: ``actors.ml.features.FEATURES_VERSION`` of the running code.
        feature_names: ``actors.ml.features.FEATURE_NAMES`` of the running code.
        granularity: the configured bar granularity.
        instruments: the configured instruments; each must be one the model was trained on.

    Raises:
        ModelMissingError: no directory, or a file missing.
        ModelMismatchError: corrupt or edited files, another feature version or feature list,
            another granularity, or instruments the model was not trained on.
    """
    if not directory.is_dir():
        raise ModelMissingError(f"no model directory at {directory} (build one with tradehost train)")
    for name in (MODEL_FILE, META_FILE):
        if not (directory / name).is_file():
            raise ModelMissingError(f"{directory}: {name} is missing (build the model with tradehost train)")
    try:
        model_bytes = (directory / MODEL_FILE).read_bytes()
        text = (directory / META_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelMismatchError(f"{directory}: cannot read the model files: {e}") from e
    meta = _parse(text, directory / META_FILE)
    expected = _version(model_bytes, _payload(meta))
    if meta.version != expected:
        raise ModelMismatchError(
            f"{directory}: version hash mismatch (model.json says {meta.short_version or 'none'}, "
            f"the files give {expected[:12]}): the directory was edited or is incomplete"
        )
    _check_fit(
        meta,
        directory,
        features_version=features_version,
        feature_names=tuple(feature_names),
        granularity=granularity,
        instruments=tuple(instruments),
    )
    booster = CatBoostClassifier()
    try:
        booster.load_model(blob=model_bytes)
    except CatBoostError as e:
        raise ModelMismatchError(f"{directory}/{MODEL_FILE}: unreadable: {str(e).splitlines()[0]}") from e
    names = tuple(booster.feature_names_ or ())
    if names != meta.feature_names:
        raise ModelMismatchError(f"{directory}/{MODEL_FILE}: its {len(names)} features differ from model.json's")
    return Model(meta=meta, booster=booster, directory=directory)


def _check_fit(
    meta: ModelMeta,
    directory: Path,
    *,
    features_version: str,
    feature_names: tuple[str, ...],
    granularity: str,
    instruments: tuple[str, ...],
) -> None:
    if meta.feature_names != feature_names:
        pairs = enumerate(zip(meta.feature_names, feature_names, strict=False))
        diff = next(
            (f"#{i}: model {a!r}, code {b!r}" for i, (a, b) in pairs if a != b),
            f"model has {len(meta.feature_names)}, code has {len(feature_names)}",
        )
        raise ModelMismatchError(f"{directory}: feature names differ from the code's ({diff}); retrain")
    if meta.features_version != features_version:
        raise ModelMismatchError(
            f"{directory}: features version {meta.features_version} != code's {features_version}; retrain"
        )
    if meta.granularity != granularity:
        raise ModelMismatchError(f"{directory}: trained on {meta.granularity} bars, configured {granularity}")
    uncovered = [name for name in instruments if name not in meta.instruments]
    if uncovered:
        raise ModelMismatchError(
            f"{directory}: not trained on {', '.join(uncovered)} (model has {', '.join(meta.instruments)})"
        )


def _payload(meta: ModelMeta) -> dict[str, Any]:
    payload = asdict(meta)
    payload["feature_names"] = list(meta.feature_names)
    payload["instruments"] = list(meta.instruments)
    payload["params"] = dict(meta.params)
    payload["pip_sizes"] = dict(meta.pip_sizes)
    payload["metrics"] = {name: dict(values) for name, values in meta.metrics.items()}
    return payload


def _version(model_bytes: bytes, payload: Mapping[str, Any]) -> str:
    unsigned = {key: value for key, value in payload.items() if key != "version"}
    canonical = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), allow_nan=False)
    digest = hashlib.sha256(model_bytes)
    digest.update(b"\0")
    digest.update(canonical.encode())
    return digest.hexdigest()


_TYPES: dict[str, type | tuple[type, ...]] = {
    "feature_names": list,
    "features_version": str,
    "lookback_bars": int,
    "window_bars": int,
    "label": str,
    "horizon_bars": int,
    "instruments": list,
    "granularity": str,
    "window_from_ns": int,
    "window_to_ns": int,
    "holdout_from_ns": int,
    "seed": int,
    "params": dict,
    "pip_sizes": dict,
    "metrics": dict,
    "format": int,
    "version": str,
}


def _parse(text: str, path: Path) -> ModelMeta:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelMismatchError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(raw, dict):
        raise ModelMismatchError(f"{path}: expected a JSON object")
    if raw.get("format") != META_FORMAT:
        raise ModelMismatchError(f"{path}: format {raw.get('format')!r}, this code reads format {META_FORMAT}")
    known = {f.name for f in fields(ModelMeta)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ModelMismatchError(f"{path}: unknown key {unknown[0]!r}")
    for key in sorted(known):
        if key not in raw:
            raise ModelMismatchError(f"{path}: missing key {key!r}")
        kind = _TYPES[key]
        value = raw[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ModelMismatchError(f"{path}: {key} has the wrong type ({type(value).__name__})")
    if not all(isinstance(v, str) for v in (*raw["feature_names"], *raw["instruments"])):
        raise ModelMismatchError(f"{path}: feature_names and instruments must be lists of strings")
    return ModelMeta(
        **{
            **raw,
            "feature_names": tuple(raw["feature_names"]),
            "instruments": tuple(raw["instruments"]),
        }
    )
