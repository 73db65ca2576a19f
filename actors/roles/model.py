"""Model role: rolling bar windows, the feature function and one CatBoost call per bar close.

At start a worker loads the model directory (``model.dir``; ``actors.ml.modelstore`` refuses one
that does not fit the configured features, granularity or instruments: the supervisor then
latches ``model_missing`` / ``model_mismatch`` and the host runs on without signals) and the
model's window of bars per instrument from the broker's candles, so a restarted model predicts
the next bar at once. The loaded bars pass the live feed's checks first (``validate_candles``,
the rule the feed applies to every close, with ``feed.atr_bars`` + 1 more bars read before the
window so each bar is checked against a full ATR): a bar the feed rejected live never enters the
window after a restart; the load is journaled as ``history.loaded`` with the bars rejected.
Each ``md.bar.<INSTR>`` extends its instrument's window; each ``md.bars``
(the feed is through one close) computes the features of every instrument over the windows
(``actors.ml.features``, the same function training and the backtest call), predicts them all in
one call, publishes ``model.signal.<INSTR>`` with the bar's corr, and journals ``model.signal``
or, for a row with NaN/inf features or output, ``model.skipped`` with the features, the bar and
the model version. pandas and CatBoost are imported here; the forkserver preloads this module.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from actors.core.backoff import Backoff
from actors.core.bars import RejectedBar, history_report, validate_candles
from actors.core.candlespec import CANDLE_COLUMNS
from actors.core.config import FeedConfig, ModelConfig
from actors.core.domain import Candle, InstrumentId, bar_id
from actors.core.errors import BrokerError
from actors.ml import modelstore
from actors.ml.candlefile import frame_from_candles
from actors.ml.features import FEATURE_NAMES, FEATURES_VERSION, WideBars, compute_features, wide_bars
from actors.runtime.actor import RoleActor
from actors.runtime.messages import (
    TOPIC_MD_BAR,
    TOPIC_MD_BARS,
    TOPIC_MODEL_SIGNAL,
    TOPIC_MODEL_SKIPPED,
    Bar,
    BarsClosed,
    Envelope,
    ModelReport,
    SignalProduced,
    SignalSkipped,
)

CANDLES_PER_REQUEST = 5000


class BarWindows:
    """The last ``size`` bars of each instrument, as the feature function takes them (pure).

    Each window is a pair of numpy arrays (bar times, the six candle-frame columns) shifted in
    place when a bar arrives, so building the wide frames at each close is one stack when all
    instruments hold the same bar times (the normal case) rather than 6 x N pandas reindexes;
    windows that disagree (a rejected or missing bar) go through ``wide_bars`` over the union of
    their times, as training does.

    Args:
        instruments: the instruments, in the order the features and the model use.
        size: bars kept per instrument (the model's ``window_bars``).
    """

    def __init__(self, instruments: tuple[str, ...], size: int) -> None:
        self.instruments = instruments
        self.size = size
        width = len(CANDLE_COLUMNS)
        self._times = {i: np.zeros(size, dtype=np.int64) for i in instruments}
        self._values = {i: np.zeros((size, width), dtype=np.float64) for i in instruments}
        self._held = dict.fromkeys(instruments, 0)

    def load(self, instrument: str, frame: pd.DataFrame) -> None:
        """Replace an instrument's window with the last bars of ``frame`` (a candle frame)."""
        tail = frame.iloc[-self.size :] if self.size else frame.iloc[:0]
        n = len(tail)
        self._times[instrument][self.size - n :] = tail.index.to_numpy(dtype=np.int64)
        self._values[instrument][self.size - n :] = tail[list(CANDLE_COLUMNS)].to_numpy(dtype=np.float64)
        self._held[instrument] = n

    def add(self, instrument: str, ts: int, values: tuple[float, ...]) -> None:
        """Append one bar (ignored when not newer than the last one held)."""
        held = self._held.get(instrument)
        if held is None or self.size == 0 or (held and self._times[instrument][-1] >= ts):
            return
        times, rows = self._times[instrument], self._values[instrument]
        times[:-1], rows[:-1] = times[1:].copy(), rows[1:].copy()
        times[-1], rows[-1] = ts, values
        self._held[instrument] = min(self.size, held + 1)

    def wide(self) -> WideBars:
        """The windows as wide frames over the union of their bar times."""
        n = self._held[self.instruments[0]]
        first = self._times[self.instruments[0]][self.size - n :]
        if all(self._held[i] == n and np.array_equal(self._times[i][self.size - n :], first) for i in self.instruments):
            cube = np.stack([self._values[i][self.size - n :] for i in self.instruments], axis=1)
            index = pd.Index(first, dtype=np.int64, name="time")
            columns = pd.Index(list(self.instruments))
            return WideBars(
                **{
                    field_name: pd.DataFrame(cube[:, :, k], index=index, columns=columns)
                    for k, field_name in enumerate(CANDLE_COLUMNS)
                }
            )
        frames = {}
        for name in self.instruments:
            held = self._held[name]
            index = pd.Index(self._times[name][self.size - held :], dtype=np.int64, name="time")
            values = self._values[name][self.size - held :]
            frames[name] = pd.DataFrame(values, index=index, columns=list(CANDLE_COLUMNS))
        return wide_bars(frames)

    def held(self, instrument: str) -> int:
        """Bars held for ``instrument``."""
        return self._held[instrument]


def bar_values(bar: Bar) -> tuple[float, ...]:
    """A ``Bar`` message as the candle-frame row (open, high, low, close, volume, spread)."""
    mid = bar.mid
    spread = float(Decimal(bar.ask.c) - Decimal(bar.bid.c))  # exactly as actors.ml.candlefile computes it
    return (float(mid.o), float(mid.h), float(mid.l), float(mid.c), float(bar.volume), spread)


def features_hash(row: np.ndarray) -> str:
    """A short hash of one feature row (to tie a signal to the exact inputs)."""
    return hashlib.sha256(np.ascontiguousarray(row, dtype=np.float64).tobytes()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class _Loaded:
    model: modelstore.Model
    history: dict[str, pd.DataFrame]
    rejected: dict[str, list[RejectedBar]]


@dataclass(frozen=True, slots=True)
class _LoadFailed:
    state: str
    detail: str


_LoadResult = _Loaded | _LoadFailed  # what the loader worker hands back


class ModelActor(RoleActor[ModelConfig, _LoadResult]):
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
            self.hand_back(_LoadFailed("missing", str(e)))
        except modelstore.ModelMismatchError as e:
            self.hand_back(_LoadFailed("mismatch", str(e)))
        else:
            loaded = self._history(model, stop)
            if loaded is not None:
                self.hand_back(_Loaded(model, *loaded))
        stop.wait()  # the worker's job is done; it stays (a worker that ends fails the role)

    def _history(
        self, model: modelstore.Model, stop: threading.Event
    ) -> tuple[dict[str, pd.DataFrame], dict[str, list[RejectedBar]]] | None:
        # The window at once, so a (re)started model predicts the next bar; retried while the
        # broker cannot be read (no signals meanwhile). The bars before the window let the live
        # checks see a full ATR before its first bar.
        broker = self.runtime.open_broker()
        backoff = Backoff(0.5, 15.0)
        count = min(CANDLES_PER_REQUEST, model.meta.window_bars + 1 + self.feed.atr_bars + 1)
        while not stop.is_set():
            try:
                pips = {i.name: i.pip_location for i in broker.instruments(list(self.feed.instruments))}
                history, rejected = {}, {}
                for name in self.feed.instruments:
                    candles: list[Candle] = broker.candles(name, self.feed.granularity, count=count, price="BA")
                    accepted, rejected[name] = validate_candles(
                        candles, granularity=self.feed.granularity, pip_location=pips.get(name, -4), config=self.feed
                    )
                    history[name] = frame_from_candles(accepted)
                return history, rejected
            except BrokerError as e:
                self.hand_back(_LoadFailed("loading", f"history not read yet: {e}"))
                stop.wait(backoff.next_delay())
        return None

    def on_other(self, message: _LoadResult) -> None:
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
            loaded = {name: (len(frame), message.rejected.get(name, [])) for name, frame in message.history.items()}
            self.runtime.journal("history.loaded", {"purpose": "features", **history_report(loaded)})
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
            elif isinstance(envelope.body, BarsClosed):  # no model: every bar still gets its outcome
                closed = envelope.body
                for name in closed.published:
                    skipped = SignalSkipped(instrument=InstrumentId(name), bar_ts=closed.ts, reason=self.report.state)
                    self.runtime.publish(TOPIC_MODEL_SKIPPED, skipped, corr=bar_id(name, closed.granularity, closed.ts))
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
        columns = list(meta.feature_names)
        last_ts = int(features.index[-1][0]) if len(features) else None
        if last_ts == closed.ts and len(names) == len(windows.instruments) and columns == list(features.columns):
            rows = features.to_numpy()[-len(names) :]  # the last block: this close, every instrument in order
        else:
            try:
                rows = features.loc[closed.ts].loc[names, columns].to_numpy()
            except KeyError:
                rows = np.full((len(names), len(columns)), np.nan)
        prediction = model.predict(rows)
        now_ns = self.clock.time_ns()
        predicted = skipped = 0
        rows_out: list[tuple[str, dict[str, Any], str | None, int]] = []  # one transaction after the publishing
        for i, name in enumerate(names):
            corr = bar_id(name, closed.granularity, closed.ts)
            if not prediction.valid[i]:
                skipped += 1
                body = {
                    "instrument": name,
                    "bar_ts": closed.ts,
                    "reason": prediction.reasons[i],
                    "features": {f: _jsonable(v) for f, v in zip(meta.feature_names, rows[i], strict=True)},
                    "model_version": meta.short_version,
                }
                skipped_msg = SignalSkipped(
                    instrument=InstrumentId(name), bar_ts=closed.ts, reason=str(prediction.reasons[i])
                )
                self.runtime.publish(TOPIC_MODEL_SKIPPED, skipped_msg, corr=corr)
                rows_out.append(("model.skipped", body, corr, self.clock.time_ns()))
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
            body = {"instrument": name, "bar_ts": closed.ts, "p_up": p_up, "model_version": meta.short_version}
            rows_out.append(("model.signal", body, corr, self.clock.time_ns()))
            predicted += 1
        if rows_out:
            self.runtime.journal_many(rows_out)
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
