"""The decisions vocabulary: the model's signal (or why a bar has none) and the risk gate's
intent to enter (or why it does not)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from actors.core.domain import InstrumentId, IntentId
from actors.runtime.messages.body import Body


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalProduced(Body):
    """The model's prediction for one instrument at one bar (``model.signal.<INSTR>``; corr = bar id)."""

    TYPE: ClassVar[str] = "SignalProduced"
    instrument: InstrumentId
    bar_ts: int
    p_up: float
    direction: str  # "long" when p_up >= 0.5, else "short"; the risk gate applies the threshold
    model_version: str
    features_hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalSkipped(Body):
    """A published bar the model gives no signal for (``model.skipped``; corr = bar id): its features
    or its output were not finite (``reason``: ``nan_features`` ...), or there is no model
    (``missing``, ``mismatch``). With ``SignalProduced`` every published bar has an outcome."""

    TYPE: ClassVar[str] = "SignalSkipped"
    instrument: InstrumentId
    bar_ts: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskIntent(Body):
    """The risk gate's decision to enter (``risk.intent``; corr = the bar id). ``intent_id`` is
    deterministic and becomes the order's client id; prices and units as decimal strings at the
    instrument's precision."""

    TYPE: ClassVar[str] = "RiskIntent"
    intent_id: IntentId
    instrument: InstrumentId
    direction: str
    units: str  # positive; the direction gives the sign
    stop_loss: str
    take_profit: str
    decision_price: float
    sl_distance: float
    bar_ts: int
    decided_ns: int
    p_up: float
    model_version: str
    multiplier: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentSkipped(Body):
    """The risk gate's decision not to enter, with its stable reason (``risk.skip``; corr = bar id)."""

    TYPE: ClassVar[str] = "IntentSkipped"
    instrument: InstrumentId
    bar_ts: int
    reason: str
    detail: str = ""
    direction: str | None = None
    p_up: float | None = None
    model_version: str = ""
