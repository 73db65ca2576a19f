"""One cell of ``tradehost sweep``, as a Dask worker runs it: train (``tradehost train``'s function) and
backtest (``tradehost backtest``'s function), nothing of their own.

``train_model`` calls ``supervisor.offline.train.train`` on the scattered candles into a private
temporary directory and hands back the model directory's two files as bytes, so a worker needs no
file system shared with the client (a remote cluster works the same as a local one) and the client
keeps them in ``--out``'s model cache, keyed by the content hash of everything the model depends on.
``run_cell`` loads those bytes with ``actors.ml.modelstore.load`` (its version check included) and
calls ``supervisor.offline.backtest.run.run_backtest`` over the cell's window, then keeps the
metrics of its ``in_sample`` and ``out_of_sample`` blocks.

A cell is the unit of failure: whatever goes wrong in it (a training window too short, a CatBoost
error, a bug) becomes a ``failed`` row with the error's one line, and the other cells go on. Both
functions are deterministic: the same inputs give the same model bytes (fixed seed and
``thread_count``) and the same metrics, on whichever worker they run; nothing in a row reads a clock.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor.offline.sweep.grid import METRIC_BLOCKS, METRIC_NAMES, Window

if TYPE_CHECKING:
    from actors.core.config import ExecutionConfig, RiskConfig
    from actors.core.domain import Instrument
    from supervisor.offline.history import History

__all__ = ["CellJob", "ModelJob", "TrainedModel", "error_line", "run_cell", "train_model"]

MODEL_FILES = ("model.cbm", "model.json")
STATUS_OK = "ok"
STATUS_FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ModelJob:
    """What one model is trained on: the instruments, the training window and the settings
    (``supervisor.offline.train.TrainSpec``'s fields). ``key`` is the content hash of all of it and of
    the candles."""

    key: str
    instruments: tuple[str, ...]
    granularity: str
    train_from_ns: int
    train_to_ns: int
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TrainedModel:
    """A model directory as bytes (``files``: name -> content), or the error that kept it from being
    trained (``error``, one line; ``files`` then empty)."""

    key: str
    files: Mapping[str, bytes]
    error: str = ""


@dataclass(frozen=True, slots=True)
class CellJob:
    """What one cell backtests: the model's instruments over [window.train_from, window.test_to) with its
    own ``[risk]`` and ``[execution]`` sections."""

    cell_id: str
    instruments: tuple[str, ...]
    granularity: str
    window: Window
    risk: RiskConfig
    execution: ExecutionConfig
    meta: Mapping[str, Instrument]
    home_currency: str
    opening_nav: float


def error_line(e: BaseException) -> str:
    """``Type: first line of the message``: how a failed cell's error is reported."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else '(no message)'}"


def train_model(history: History, job: ModelJob) -> TrainedModel:
    """Train one model with ``tradehost train``'s function; its files as bytes, or its error."""
    from supervisor.offline.train import TrainSpec, train  # noqa: PLC0415 - on the worker

    try:
        with tempfile.TemporaryDirectory(prefix="tradehost-sweep-") as tmp:
            out = Path(tmp) / "model"
            spec = TrainSpec(
                granularity=job.granularity,
                out_dir=out,
                from_ns=job.train_from_ns,
                to_ns=job.train_to_ns,
                **dict(job.settings),
            )
            train(
                history.frames,
                pip_sizes=history.pip_sizes,
                spec=spec,
                instruments=job.instruments,
                spread_fallback=history.spread_fallback,
            )
            return TrainedModel(job.key, {name: (out / name).read_bytes() for name in MODEL_FILES})
    except Exception as e:  # noqa: BLE001 - a cell is the unit of failure: reported, the rest goes on
        return TrainedModel(job.key, {}, error_line(e))


def run_cell(history: History, model: TrainedModel, job: CellJob) -> dict[str, Any]:
    """Backtest one cell with ``tradehost backtest``'s function; the metrics of its row (``status``
    ``ok``), or ``failed`` with the error."""
    if model.error:
        return {"status": STATUS_FAILED, "error": f"train: {model.error}"}
    try:
        return _backtested(history, model, job)
    except Exception as e:  # noqa: BLE001 - a cell is the unit of failure: reported, the rest goes on
        return {"status": STATUS_FAILED, "error": f"backtest: {error_line(e)}"}


def _backtested(history: History, model: TrainedModel, job: CellJob) -> dict[str, Any]:
    from actors.ml import modelstore  # noqa: PLC0415 - on the worker
    from actors.ml.features import FEATURE_NAMES, FEATURES_VERSION  # noqa: PLC0415
    from supervisor.offline.backtest.run import BacktestSpec, run_backtest  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="tradehost-sweep-") as tmp:
        for name, content in model.files.items():
            (Path(tmp) / name).write_bytes(content)
        loaded = modelstore.load(
            Path(tmp),
            features_version=FEATURES_VERSION,
            feature_names=FEATURE_NAMES,
            granularity=job.granularity,
            instruments=job.instruments,
        )
    spec = BacktestSpec(
        instruments=job.instruments,
        granularity=job.granularity,
        from_ns=job.window.train_from_ns,
        to_ns=job.window.test_to_ns,
        home_currency=job.home_currency,
        opening_nav=job.opening_nav,
        journal_level="trades",
    )
    result = run_backtest(
        history, model=loaded, meta=job.meta, risk=job.risk, execution=job.execution, spec=spec, journal=None
    )
    row: dict[str, Any] = {"status": STATUS_OK, "error": "", "model_version": loaded.meta.short_version}
    held_out = loaded.meta.metrics.get("model", {})
    for name in ("accuracy", "log_loss", "auc"):
        row[f"model.{name}"] = held_out.get(name)
    for block in METRIC_BLOCKS:
        metrics = result.metrics.get(block, {})
        for name in METRIC_NAMES:
            row[f"{block}.{name}"] = metrics.get(name)
    return row
