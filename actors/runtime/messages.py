"""The whole message vocabulary of tradehost: envelope, topics, message types, encode/decode.

Every message on the bus and on the control channel is an ``Envelope`` (DESIGN §2): ``type``,
schema version ``v``, unique ``id``, ``ts`` (UTC nanoseconds), ``src`` (role), ``seq`` (the
publisher's running number, so subscribers can see gaps), ``corr`` (the id of the message that
caused it) and ``body``. Bodies are frozen, slotted, keyword-only dataclasses registered by type
name; decoding goes through that registry and each class's ``from_body`` checks the fields, so a
malformed, unknown or wrong-version message raises ``MessageDecodeError`` and nothing else.
orjson is strict JSON: non-finite floats are refused here, at encode time, instead of silently
becoming ``null``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import itertools
import math
import os
import time
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import orjson

from actors.core.domain import InstrumentId, IntentId, TradeId, TradeState
from actors.core.errors import MessageDecodeError

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 1 << 20

# Topics (prefix-subscribed). Instrument-specific topics append the instrument.
TOPIC_MD_TICK = "md.tick."
TOPIC_MD_BAR = "md.bar."
TOPIC_MD_BARS = "md.bars"  # one BarsClosed after the bars of one close ("md.bar." does not match it)
TOPIC_MD_HEALTH = "md.health"
TOPIC_MODEL_SIGNAL = "model.signal."
TOPIC_MODEL_SKIPPED = "model.skipped"  # SignalSkipped: a published bar the model did not predict
TOPIC_RISK_INTENT = "risk.intent"
TOPIC_RISK_SKIP = "risk.skip"
TOPIC_EXEC_REPORT = "exec.report"
TOPIC_EXEC_HEALTH = "exec.health"
TOPIC_RECON_STATE = "recon.state"
TOPIC_RECON_HEALTH = "recon.health"  # the REST connection's BrokerHealth, on change
TOPIC_RECON_ACTION = "recon.action"  # ProtectionRequested: the reconciler asks execution to protect a trade
TOPIC_SYS_STATE = "sys.state"
TOPIC_HEARTBEAT = "hb."
TOPIC_ALERT = "alert"


class SystemState(enum.StrEnum):
    """The states of the whole system (DESIGN §3); the supervisor alone changes them."""

    STARTING = "STARTING"
    RECONCILING = "RECONCILING"
    TRADING = "TRADING"
    PAUSED = "PAUSED"
    NO_TRADE = "NO_TRADE"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    STOPPED = "STOPPED"


def now_ns() -> int:
    """Current UTC time in integer nanoseconds."""
    return time.time_ns()


_id_counter = itertools.count()


def new_id() -> str:
    """A process-unique, time-ordered message id (hex time, pid, counter)."""
    return f"{time.time_ns():x}-{os.getpid():x}-{next(_id_counter):x}"


class TopicSequence:
    """The running numbers of one publisher, one counter per topic.

    A subscriber sees only the topics it subscribed to, so one counter per publisher would look
    like gaps to everyone; numbered per topic, a skipped number means a lost message.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def next(self, topic: str) -> int:
        """The number of the next message on ``topic`` (1, 2, 3, ...)."""
        seq = self._last[topic] = self._last.get(topic, 0) + 1
        return seq


_T = TypeVar("_T", bound="Body")
_REGISTRY: dict[str, type[Body]] = {}


Check = typing.Callable[[str, Any], Any]


def _fail(name: str, what: str) -> typing.NoReturn:
    raise MessageDecodeError(f"field {name!r}: {what}")


def _check_str(name: str, value: Any) -> Any:
    return value if type(value) is str else _fail(name, "expected a string")


def _check_int(name: str, value: Any) -> Any:
    return value if type(value) is int else _fail(name, "expected an integer")


def _check_bool(name: str, value: Any) -> Any:
    return value if type(value) is bool else _fail(name, "expected true or false")


def _check_float(name: str, value: Any) -> Any:
    if type(value) is float:
        return value if math.isfinite(value) else _fail(name, "not finite")
    return float(value) if type(value) is int else _fail(name, "expected a number")


def _check_dict(name: str, value: Any) -> Any:
    return value if type(value) is dict else _fail(name, "expected an object")


def _check_any(name: str, value: Any) -> Any:
    return value


@functools.cache
def _validator(expected: Any) -> Check:
    """A checking function for one annotation, built once per annotation."""
    simple = {str: _check_str, int: _check_int, bool: _check_bool, float: _check_float, dict: _check_dict}
    supertype = getattr(expected, "__supertype__", None)  # a NewType checks as what it wraps
    if supertype is not None:
        return _validator(supertype)
    if expected in simple:
        return simple[expected]
    if expected is Any:
        return _check_any
    origin = typing.get_origin(expected)
    if origin is dict:
        return _check_dict
    if origin in (types.UnionType, typing.Union):
        optional = type(None) in typing.get_args(expected)
        options = [_validator(o) for o in typing.get_args(expected) if o is not type(None)]

        def check_union(name: str, value: Any) -> Any:
            if value is None and optional:
                return None
            for option in options:
                try:
                    return option(name, value)
                except MessageDecodeError:
                    continue
            _fail(name, f"{type(value).__name__} is not {expected}")

        return check_union
    if origin is tuple:
        item = _validator((typing.get_args(expected) or (Any,))[0])

        def check_tuple(name: str, value: Any) -> Any:
            if type(value) is not list and type(value) is not tuple:
                _fail(name, "expected a list")
            return tuple(item(name, v) for v in value)

        return check_tuple
    if isinstance(expected, type) and issubclass(expected, enum.Enum):
        enum_cls = expected

        def check_enum(name: str, value: Any) -> Any:
            try:
                return enum_cls(value)
            except ValueError:
                _fail(name, f"{value!r} is not a {enum_cls.__name__}")

        return check_enum
    if isinstance(expected, type) and issubclass(expected, Body):
        body_cls = expected

        def check_body(name: str, value: Any) -> Any:
            if type(value) is not dict:
                _fail(name, "expected an object")
            return body_cls.from_body(value)

        return check_body
    raise TypeError(f"unsupported message field annotation {expected!r}")


_SCHEMAS: dict[type, dict[str, tuple[Check, bool]]] = {}
_FINITE_CHECKS: dict[type, tuple[str, ...]] = {}


def _schema_of(cls: type) -> dict[str, tuple[Check, bool]]:
    # Resolved once per class: get_type_hints is far too slow for every message.
    hints = typing.get_type_hints(cls)
    return {
        f.name: (
            _validator(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Body:
    """Base of every message body. Subclasses set ``TYPE`` and are registered by name."""

    TYPE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # dataclass(slots=True) builds a second class from the first: the later one wins, and
        # only a different class claiming the same name is an error.
        if cls.TYPE:
            previous = _REGISTRY.get(cls.TYPE)
            if previous is not None and previous.__qualname__ != cls.__qualname__:
                raise TypeError(f"duplicate message type {cls.TYPE}")
            _REGISTRY[cls.TYPE] = cls

    @classmethod
    def from_body(cls: type[_T], body: Mapping[str, Any]) -> _T:
        """Build the message from a decoded body, checking every field.

        Raises:
            MessageDecodeError: a required field is missing, of the wrong type, or unknown.
        """
        schema = _SCHEMAS.get(cls)
        if schema is None:
            schema = _SCHEMAS[cls] = _schema_of(cls)
        for key in body:
            if key not in schema:
                raise MessageDecodeError(f"{cls.TYPE}: unknown field {key!r}")
        kwargs: dict[str, Any] = {}
        for name, (check, required) in schema.items():
            if name in body:
                kwargs[name] = check(name, body[name])
            elif required:
                raise MessageDecodeError(f"{cls.TYPE}: missing field {name!r}")
        return cls(**kwargs)


# --- Control channel: child <-> supervisor -------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(Body):
    """A child is alive: sent every second by its actor (so a hung actor stops sending)."""

    TYPE: ClassVar[str] = "Heartbeat"
    role: str
    pid: int
    rss_mb: float
    queue_depth: int
    handled: int
    last_handled: str | None = None
    decode_errors: int = 0
    gaps: int = 0
    dropped: int = 0
    handler_errors: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciliationCompleted(Body):
    """The reconciler has brought local state in line with the broker (or has nothing to do)."""

    TYPE: ClassVar[str] = "ReconciliationCompleted"
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRole(Body):
    """Command to a child: run your shutdown hook within ``deadline_s`` and exit 0."""

    TYPE: ClassVar[str] = "StopRole"
    deadline_s: float
    reason: str = ""
    protection_s: float = 0.0  # the execution role: how long it retries the SL/TP check of open trades


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleStopping(Body):
    """A child has run its shutdown hook and is about to exit."""

    TYPE: ClassVar[str] = "RoleStopping"
    role: str
    clean: bool
    detail: str = ""


# --- Bus events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason(Body):
    """Why the system is not trading. ``latched`` reasons need ``ctl resume`` to clear."""

    TYPE: ClassVar[str] = "Reason"
    code: str
    detail: str
    latched: bool
    since_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemStateChanged(Body):
    """The supervisor's state, published on every change and at least every second.

    A role may open trades only while it holds a ``TRADING`` state that has not expired: neither
    ``expires_ns`` (wall clock) nor ``ttl_s`` after the role received it (its own monotonic
    clock, so a wall-clock step cannot extend a permit): silence means no trading.
    """

    TYPE: ClassVar[str] = "SystemStateChanged"
    state: SystemState
    reasons: tuple[Reason, ...] = ()
    paused: bool = False
    expires_ns: int
    ttl_s: float = 0.0
    mode: str = "shadow"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRaised(Body):
    """Something a human must hear about (the watchdog mails it)."""

    TYPE: ClassVar[str] = "AlertRaised"
    severity: str
    code: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertCleared(Body):
    """The cause of an earlier ``AlertRaised`` is healthy again (the watchdog mails a recovery)."""

    TYPE: ClassVar[str] = "AlertCleared"
    code: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class NoTradeRequested(Body):
    """A role asks the supervisor to stop trading for ``code`` (a reason code of
    ``supervisor.health.REASONS``: the table says who may raise it and whether it latches);
    ``latch`` latches a code that is otherwise transient (an unprotected trade that could not even
    be closed)."""

    TYPE: ClassVar[str] = "NoTradeRequested"
    code: str
    detail: str
    latch: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CauseHealthy(Body):
    """A role reports that the cause of a transient reason it may raise is healthy again."""

    TYPE: ClassVar[str] = "CauseHealthy"
    code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartRequested(Body):
    """The watchdog asks the supervisor to restart a role (e.g. over its memory limit)."""

    TYPE: ClassVar[str] = "RestartRequested"
    role: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult(Body):
    """One watchdog check: its last value, its limit and its verdict (``ok``, ``breach`` or
    ``unknown``)."""

    TYPE: ClassVar[str] = "CheckResult"
    name: str
    value: str
    limit: str
    verdict: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchdogReport(Body):
    """The watchdog's checks and its mail sender (``watchdog`` in ``ctl status``)."""

    TYPE: ClassVar[str] = "WatchdogReport"
    checks: tuple[CheckResult, ...] = ()
    mail: str = "off"  # "off" (no [alerts] smtp_host) or "on"
    mail_queued: int = 0
    mail_sent: int = 0
    mail_failed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceTick(Body):
    """Best bid/ask of one instrument from the pricing stream (prices as OANDA decimal strings)."""

    TYPE: ClassVar[str] = "PriceTick"
    instrument: str
    ts: int
    bid: str
    ask: str
    tradeable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Prices(Body):
    """Open, high, low, close as OANDA decimal strings."""

    TYPE: ClassVar[str] = "Prices"
    o: str
    h: str
    l: str  # noqa: E741 - OANDA's field name
    c: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar(Body):
    """A closed, validated bar of one instrument (``md.bar.<INSTR>``; the envelope's ``corr`` is its
    ``bar_id``, carried by every later message about it)."""

    TYPE: ClassVar[str] = "Bar"
    instrument: InstrumentId
    granularity: str
    ts: int  # the bar's start, UTC ns
    bid: Prices
    ask: Prices
    mid: Prices
    volume: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BarsClosed(Body):
    """All instruments of one close are through the feed (``md.bars``): which bars went out, which
    were rejected (journaled as ``feed.bar_rejected``) and which had no candle."""

    TYPE: ClassVar[str] = "BarsClosed"
    granularity: str
    ts: int
    published: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class InstrumentMarket(Body):
    """Whether one instrument's market is open, since when, and why not."""

    TYPE: ClassVar[str] = "InstrumentMarket"
    instrument: InstrumentId
    open: bool
    since_ns: int | None = None
    why: str = ""
    next_open_ns: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketReport(Body):
    """The feed's view of the market per instrument (to the supervisor: ``market`` in ``ctl status``)."""

    TYPE: ClassVar[str] = "MarketReport"
    instruments: tuple[InstrumentMarket, ...] = ()
    last_bar_ns: int | None = None
    bars_published: int = 0
    bars_rejected: int = 0
    ticks_rejected: int = 0  # stream prices refused by the tick checks (actors.core.ticks), never published


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
class ModelReport(Body):
    """The model role's state (to the supervisor: ``model`` in ``ctl status``, and no-trade reasons).

    ``state``: ``loading``, ``loaded``, ``missing`` (no model directory) or ``mismatch`` (a model that
    does not fit the configuration).
    """

    TYPE: ClassVar[str] = "ModelReport"
    state: str
    version: str = ""
    detail: str = ""
    loaded_at_ns: int | None = None
    last_prediction_ns: int | None = None
    predictions: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerHealth(Body):
    """Health of one broker connection (``source``: ``stream`` or ``rest``), sent on change and
    with every heartbeat of the role that owns the connection."""

    TYPE: ClassVar[str] = "BrokerHealth"
    source: str
    connected: bool
    last_ok_ns: int | None = None
    detail: str = ""
    reconnects: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeView(Body):
    """One open trade as the broker shows it (prices and money as decimal strings): the broker's
    ``TradeState`` as ``AccountSnapshot`` carries it (``of``)."""

    TYPE: ClassVar[str] = "TradeView"
    trade_id: TradeId
    instrument: InstrumentId
    units: str  # signed: positive long, negative short
    price: str
    open_ts: int
    unrealized_pl: str
    stop_loss: str | None = None
    take_profit: str | None = None
    client_id: str | None = None

    @classmethod
    def of(cls, trade: TradeState) -> TradeView:
        """The broker's open trade, its decimals written out in full (``format(value, "f")``)."""
        sl, tp = trade.stop_loss_price, trade.take_profit_price
        return cls(
            trade_id=TradeId(trade.id),
            instrument=InstrumentId(trade.instrument),
            units=format(trade.current_units, "f"),
            price=format(trade.price, "f"),
            open_ts=trade.open_ts,
            unrealized_pl=format(trade.unrealized_pl, "f"),
            stop_loss=None if sl is None else format(sl, "f"),
            take_profit=None if tp is None else format(tp, "f"),
            client_id=trade.client_id,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountSnapshot(Body):
    """The broker's account as the reconciler last read it (``recon.state``; money as decimal
    strings): balance, NAV, the open trades, today's P&L against the day-start NAV, the peak NAV,
    the drawdown and its zone (``actors.core.zones``), whether the daily loss limit or the last
    drawdown zone stops new entries, and the margin available for new trades."""

    TYPE: ClassVar[str] = "AccountSnapshot"
    currency: str
    balance: str
    nav: str
    unrealized_pl: str
    margin_used: str
    open_trades: int
    pending_orders: int
    last_transaction_id: str
    ts: int
    trades: tuple[TradeView, ...] = ()
    day_start_nav: str = ""
    daily_pnl: str = ""
    peak_nav: str = ""
    drawdown: float = 0.0
    zone: int = 0
    multiplier: float = 1.0
    daily_loss_hit: bool = False
    drawdown_stop: bool = False
    margin_available: str = ""  # the broker's marginAvailable; empty: unknown (no new entry)


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionReport(Body):
    """What became of an intent or a trade (``exec.report``; corr = the bar id when known).

    ``status``: SENDING (taken: the order is about to leave), FILLED, CANCELLED, REJECTED, AMBIGUOUS,
    RESOLVED, UNRESOLVED, EXIT_CHANGED, CLOSED.
    """

    TYPE: ClassVar[str] = "ExecutionReport"
    status: str
    instrument: InstrumentId
    intent_id: str = ""
    trade_id: str = ""
    units: str = ""
    price: str = ""
    slippage_pips: float | None = None
    latency_ms: float | None = None
    reason: str = ""
    realized_pl: str = ""
    model_version: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitsChecked(Body):
    """The execution role has checked every open trade at the close of ``bar_ts`` (``exec.report``):
    the CLOSED reports of trades that ended by then went out before it. The risk role decides a
    close's signals only after it, so it decides on the same closed trades a backtest sees."""

    TYPE: ClassVar[str] = "ExitsChecked"
    bar_ts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileNow(Body):
    """Command to the reconciler: a full reconciliation now (``ctl reconcile``)."""

    TYPE: ClassVar[str] = "ReconcileNow"
    why: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FlattenRequested(Body):
    """Command to the execution role: close every open trade (``ctl flatten --yes``)."""

    TYPE: ClassVar[str] = "FlattenRequested"
    why: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectionRequested(Body):
    """The reconciler found an open trade without SL or TP: the execution role sets them
    (``action`` "repair") or closes it ("close"), as ``reconciler.unprotected`` says."""

    TYPE: ClassVar[str] = "ProtectionRequested"
    trade_id: TradeId
    instrument: InstrumentId
    action: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeProtection(Body):
    """One open trade at the shutdown check: its SL/TP at the broker as last read, and what the
    check did (``protected``, ``repaired``, ``closed``, or ``failed: <why>``); ``verified`` only
    when the broker's own answer showed both SL and TP (or the trade closed)."""

    TYPE: ClassVar[str] = "TradeProtection"
    trade_id: TradeId
    instrument: InstrumentId
    units: str
    stop_loss: str | None = None
    take_profit: str | None = None
    outcome: str
    verified: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectionReport(Body):
    """The execution role's shutdown check (to the supervisor, before ``RoleStopping``):
    ``complete`` only when the open trades were read and every one was verified protected."""

    TYPE: ClassVar[str] = "ProtectionReport"
    complete: bool
    trades: tuple[TradeProtection, ...] = ()
    cancelled_orders: tuple[str, ...] = ()
    pending_orders: int | None = None  # entry orders still pending after the check (None: unread)
    attempts: int = 0
    summary: str = ""

    @property
    def unverified(self) -> tuple[TradeProtection, ...]:
        """The trades the check could not verify protected."""
        return tuple(t for t in self.trades if not t.verified)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleEvent(Body):
    """A free-form event (a kind and a dict). No role sends one: it is the vocabulary's one body
    with a dict field, which the message tests and the bus benchmark use."""

    TYPE: ClassVar[str] = "RoleEvent"
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


# --- Envelope ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """One message on the wire: metadata plus a typed body."""

    type: str
    v: int
    id: str
    ts: int
    src: str
    seq: int
    corr: str | None
    body: Body


def make_envelope(body: Body, *, src: str, seq: int = 0, corr: str | None = None) -> Envelope:
    """Wrap a body in a fresh envelope."""
    return Envelope(type=body.TYPE, v=SCHEMA_VERSION, id=new_id(), ts=now_ns(), src=src, seq=seq, corr=corr, body=body)


def _default(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise TypeError("non-finite float")
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _reject_non_finite(obj: Any) -> None:
    # orjson turns NaN/inf into null; refuse them before they reach the wire.
    kind = type(obj)
    if kind is str or kind is int or kind is bool or obj is None:
        return
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError("non-finite float in message")
    elif isinstance(obj, dict):
        for v in obj.values():
            _reject_non_finite(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _reject_non_finite(v)
    elif isinstance(obj, Body):
        names = _FINITE_CHECKS.get(kind)
        if names is None:
            hints = typing.get_type_hints(kind)
            names = _FINITE_CHECKS[kind] = tuple(
                f.name for f in dataclasses.fields(obj) if hints[f.name] not in (str, int, bool, str | None)
            )
        for name in names:
            _reject_non_finite(getattr(obj, name))


def encode(envelope: Envelope) -> bytes:
    """Serialize an envelope with orjson.

    Raises:
        ValueError: the body holds NaN or infinity.
    """
    _reject_non_finite(envelope.body)
    return orjson.dumps(envelope, default=_default)


_ENVELOPE_FIELDS = frozenset(("type", "v", "id", "ts", "src", "seq", "corr", "body"))


def decode(payload: bytes) -> Envelope:
    """Parse and check one payload.

    Raises:
        MessageDecodeError: not JSON, not an envelope, unknown type or version, bad body.
    """
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MessageDecodeError(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise MessageDecodeError(f"not JSON: {e}") from e
    if not isinstance(raw, dict):
        raise MessageDecodeError("envelope is not an object")
    missing = _ENVELOPE_FIELDS - raw.keys()
    if missing:
        raise MessageDecodeError(f"envelope lacks {sorted(missing)}")
    kind = raw["type"]
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MessageDecodeError(f"unknown message type {kind!r}")
    if type(raw["v"]) is not int or raw["v"] != SCHEMA_VERSION:
        raise MessageDecodeError(f"{kind}: unsupported version {raw['v']!r}")
    for name, kind_ in (("id", str), ("src", str), ("ts", int), ("seq", int)):
        if not isinstance(raw[name], kind_) or isinstance(raw[name], bool):
            raise MessageDecodeError(f"envelope field {name!r} has the wrong type")
    if raw["corr"] is not None and not isinstance(raw["corr"], str):
        raise MessageDecodeError("envelope field 'corr' has the wrong type")
    if not isinstance(raw["body"], dict):
        raise MessageDecodeError(f"{kind}: body is not an object")
    body = cls.from_body(raw["body"])
    return Envelope(
        type=kind,
        v=raw["v"],
        id=raw["id"],
        ts=raw["ts"],
        src=raw["src"],
        seq=raw["seq"],
        corr=raw["corr"],
        body=body,
    )


def to_jsonable(obj: Any) -> Any:
    """Turn a message body (or anything orjson handles) into plain JSON values."""
    return orjson.loads(orjson.dumps(obj, default=_default))
