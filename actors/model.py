"""Model role: rolling bar windows, the feature function and one CatBoost call per bar close.

At start a worker loads the model directory (``model.dir``; ``actors.modelstore`` refuses one
that does not fit the configured features, granularity or instruments: the supervisor then
latches ``model_missing`` / ``model_mismatch`` and the host runs on without signals) and the
model's window of bars per instrument from the broker's candles, so a restarted model predicts
the next bar at once. Each ``md.bar.<INSTR>`` extends its instrument's window; each ``md.bars``
(the feed is through one close) computes the features of every instrument over the windows
(``actors.features``, the same function training and the backtest call), predicts them all in
one call, publishes ``model.signal.<INSTR>`` with the bar's corr, and journals ``model.signal``
or, for a row with NaN/inf features or output, ``model.skipped`` with the features, the bar and
the model version. pandas and CatBoost are imported here; the forkserver preloads this module.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from actors import modelstore
from actors.backoff import Backoff
from actors.base import RoleActor
from actors.broker import Candle
from actors.candlefile import CANDLE_COLUMNS, frame_from_candles
from actors.errors import BrokerError
from actors.features import FEATURE_NAMES, FEATURES_VERSION, WideBars, compute_features, wide_bars
from actors.feed import FeedConfig
from actors.messages import (
    TOPIC_MD_BAR,
    TOPIC_MD_BARS,
    TOPIC_MODEL_SIGNAL,
    Bar,
    BarsClosed,
    Envelope,
    ModelReport,
    SignalProduced,
    bar_id,
)

CANDLES_PER_REQUEST = 5000


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """The ``[model]`` section."""

    dir: str = field(
        default="models/default",
        metadata={"doc": "Model directory (model.cbm + model.json), built by `tradehost train`."},
    )


class BarWindows:
    """The last ``size`` bars of each instrument, as the feature function takes them (pure).

    Args:
        instruments: the instruments, in the order the features and the model use.
        size: bars kept per instrument (the model's ``window_bars``).
    """

    def __init__(self, instruments: tuple[str, ...], size: int) -> None:
        self.instruments = instruments
        self.size = size
        self._rows: dict[str, deque[tuple[int, tuple[float, ...]]]] = {i: deque(maxlen=size) for i in instruments}

    def load(self, instrument: str, frame: pd.DataFrame) -> None:
        """Replace an instrument's window with the last bars of ``frame`` (a candle frame)."""
        rows = self._rows[instrument]
        rows.clear()
        for ts, values in zip(frame.index.to_numpy(), frame[list(CANDLE_COLUMNS)].to_numpy(), strict=True):
            rows.append((int(ts), tuple(float(v) for v in values)))

    def add(self, instrument: str, ts: int, values: tuple[float, ...]) -> None:
        """Append one bar (ignored when not newer than the last one held)."""
        rows = self._rows.get(instrument)
        if rows is None or (rows and rows[-1][0] >= ts):
            return
        rows.append((ts, values))

    def wide(self) -> WideBars:
        """The windows as wide frames over the union of their bar times."""
        frames = {}
        for name in self.instruments:
            rows = self._rows[name]
            index = pd.Index([ts for ts, _ in rows], dtype=np.int64, name="time")
            values = np.array([v for _, v in rows], dtype=np.float64).reshape(len(rows), len(CANDLE_COLUMNS))
            frames[name] = pd.DataFrame(values, index=index, columns=list(CANDLE_COLUMNS))
        return wide_bars(frames)

    def held(self, instrument: str) -> int:
        """Bars held for ``instrument``."""
        return len(self._rows[instrument])


def bar_values(bar: Bar) -> tuple[float, ...]:
    """A ``Bar`` message as the candle-frame row (open, high, low, close, volume, spread)."""
    mid = bar.mid
    spread = float(Decimal(bar.ask.c) - Decimal(bar.bid.c))  # exactly as actors.candlefile computes it
    return (float(mid.o), float(mid.h), float(mid.l), float(mid.c), float(bar.volume), spread)


def features_hash(row: np.ndarray) -> str:
    """A short hash of one feature row (to tie a signal to the exact inputs)."""
    return hashlib.sha256(np.ascontiguousarray(row, dtype=np.float64).tobytes()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class _Loaded:
    model: modelstore.Model
    history: dict[str, pd.DataFrame]


@dataclass(frozen=True, slots=True)
class _LoadFailed:
    state: str
    detail: str


class ModelActor(RoleActor[ModelConfig]):
    """The model's actor."""

    ROLE: ClassVar[str] = "model"
    TOPICS: ClassVar[tuple[str, ...]] = (TOPIC_MD_BAR, TOPIC_MD_BARS)
    CONFIG: ClassVar[type[ModelConfig]] = ModelConfig

    def on_start(self) -> None:
        """Load the model and its history on a worker (the first heartbeat does not wait)."""
        self.feed = self.shared("feed", FeedConfig)
        self.model: modelstore.Model | None = None
        self.windows: BarWindows | None = None
        self.report = ModelReport(state="loading", detail=f"loading {self.cfg.dir}")
        self.pending: list[Envelope] = []  # bars that arrive while the history loads
        self.start_worker("loader", self._load)

    def _load(self, stop: threading.Event) -> None:
        try:
            model = modelstore.load(
                Path(self.cfg.dir),
                features_version=FEATURES_VERSION,
                feature_names=FEATURE_NAMES,
                granularity=self.feed.granularity,
                instruments=self.feed.instruments,
            )
        except modelstore.ModelMissingError as e:
            self.actor_ref.tell(_LoadFailed("missing", str(e)))
        except modelstore.ModelMismatchError as e:
            self.actor_ref.tell(_LoadFailed("mismatch", str(e)))
        else:
            history = self._history(model, stop)
            if history is not None:
                self.actor_ref.tell(_Loaded(model, history))
        stop.wait()  # the worker's job is done; it stays (a worker that ends fails the role)

    def _history(self, model: modelstore.Model, stop: threading.Event) -> dict[str, pd.DataFrame] | None:
        # The window at once, so a (re)started model predicts the next bar; retried while the
        # broker cannot be read (no signals meanwhile).
        broker = self.runtime.open_broker()
        backoff = Backoff(0.5, 15.0)
        count = min(CANDLES_PER_REQUEST, model.meta.window_bars + 1)
        while not stop.is_set():
            try:
                history = {}
                for name in self.feed.instruments:
                    candles: list[Candle] = broker.candles(name, self.feed.granularity, count=count, price="BA")
                    history[name] = frame_from_candles(candles)
                return history
            except BrokerError as e:
                self.actor_ref.tell(_LoadFailed("loading", f"history not read yet: {e}"))
                stop.wait(backoff.next_delay())
        return None

    def on_other(self, message: Any) -> None:
        """The loader's outcome."""
        if isinstance(message, _Loaded):
            self.model = message.model
            meta = message.model.meta
            self.windows = BarWindows(tuple(self.feed.instruments), meta.window_bars)
            for name, frame in message.history.items():
                self.windows.load(name, frame)
            self.report = ModelReport(
                state="loaded", version=meta.short_version, detail=str(self.cfg.dir), loaded_at_ns=self.clock.time_ns()
            )
            held = {name: self.windows.held(name) for name in self.feed.instruments}
            self.runtime.journal(
                "model.loaded",
                {"dir": self.cfg.dir, "version": meta.version, "features": meta.features_version, "history": held},
            )
            self.runtime.to_supervisor(self.report)
            for env in self.pending:
                self.on_message(env)
            self.pending.clear()
        elif isinstance(message, _LoadFailed):
            self.report = ModelReport(state=message.state, detail=message.detail)
            if message.state != "loading":
                self.runtime.journal("model.load_failed", {"state": message.state, "detail": message.detail})
            self.runtime.to_supervisor(self.report)

    def on_message(self, envelope: Envelope) -> None:
        """Bars extend the windows; the end of a close predicts every instrument at once."""
        if self.windows is None:
            if self.report.state == "loading":
                self.pending.append(envelope)
            return
        body = envelope.body
        if isinstance(body, Bar):
            self.windows.add(body.instrument, body.ts, bar_values(body))
        elif isinstance(body, BarsClosed) and body.published:
            self._predict(body)

    def _predict(self, closed: BarsClosed) -> None:
        model, windows = self.model, self.windows
        if model is None or windows is None:
            return
        meta = model.meta
        features = compute_features(windows.wide(), meta.pip_sizes)
        names = [n for n in windows.instruments if n in closed.published]
        try:
            rows = features.loc[closed.ts].loc[names, list(meta.feature_names)].to_numpy()
        except KeyError:
            rows = np.full((len(names), len(meta.feature_names)), np.nan)
        prediction = model.predict(rows)
        now_ns = self.clock.time_ns()
        predicted = skipped = 0
        for i, name in enumerate(names):
            corr = bar_id(name, closed.granularity, closed.ts)
            if not prediction.valid[i]:
                skipped += 1
                self.runtime.journal(
                    "model.skipped",
                    {
                        "instrument": name,
                        "bar_ts": closed.ts,
                        "reason": prediction.reasons[i],
                        "features": {f: _jsonable(v) for f, v in zip(meta.feature_names, rows[i], strict=True)},
                        "model_version": meta.short_version,
                    },
                    corr=corr,
                )
                continue
            p_up = float(prediction.p_up[i])
            signal = SignalProduced(
                instrument=name,  # type: ignore[arg-type]
                bar_ts=closed.ts,
                p_up=p_up,
                direction="long" if p_up >= 0.5 else "short",
                model_version=meta.short_version,
                features_hash=features_hash(rows[i]),
            )
            self.runtime.publish(TOPIC_MODEL_SIGNAL + name, signal, corr=corr)
            self.runtime.journal(
                "model.signal",
                {"instrument": name, "bar_ts": closed.ts, "p_up": p_up, "model_version": meta.short_version},
                corr=corr,
            )
            predicted += 1
        r = self.report
        self.report = ModelReport(
            state=r.state,
            version=r.version,
            detail=r.detail,
            loaded_at_ns=r.loaded_at_ns,
            last_prediction_ns=now_ns if predicted else r.last_prediction_ns,
            predictions=r.predictions + predicted,
            skipped=r.skipped + skipped,
        )

    def on_heartbeat(self) -> None:
        """Re-send the model's state with every heartbeat."""
        self.runtime.to_supervisor(self.report)


def _jsonable(value: float) -> float | str:
    return float(value) if np.isfinite(value) else str(value)


ACTOR = ModelActor
