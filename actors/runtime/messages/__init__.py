"""The whole message vocabulary of tradehost, in one import: topics, bodies, envelope, encode/decode.

This package is a documented facade: importers write ``from actors.runtime.messages import ...``
and never need to know which module a type lives in. Importing it also registers every body type,
so ``decode`` knows the whole vocabulary whichever message a process happens to use first. The
vocabulary is split by channel, each module owning one part of it:

- ``topics``: the bus's topic constants;
- ``body``: the ``Body`` base, its registry and the field checks that decode one;
- ``envelope``: the ``Envelope``, message ids and sequence numbers, ``encode`` / ``decode``;
- ``control``: child <-> supervisor (heartbeats, stop, no-trade requests, alerts, commands);
- ``state``: the system state and the reports behind ``ctl status`` (market, model, account ...);
- ``marketdata``: stream prices, bars and the end of a close;
- ``decisions``: the model's signals and the risk gate's intents and skips;
- ``orders``: execution reports, protection and flatten requests, the shutdown SL/TP check.
"""

from __future__ import annotations

from actors.runtime.messages.body import Body
from actors.runtime.messages.control import (
    AlertCleared,
    AlertRaised,
    CauseHealthy,
    Heartbeat,
    NoTradeRequested,
    ReconcileNow,
    ReconciliationCompleted,
    RestartRequested,
    RoleEvent,
    RoleStopping,
    StopRole,
)
from actors.runtime.messages.decisions import IntentSkipped, RiskIntent, SignalProduced, SignalSkipped
from actors.runtime.messages.envelope import (
    MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
    Envelope,
    TopicSequence,
    decode,
    encode,
    make_envelope,
    new_id,
    now_ns,
    to_jsonable,
)
from actors.runtime.messages.marketdata import Bar, BarsClosed, Prices, PriceTick
from actors.runtime.messages.orders import (
    ExecutionReport,
    ExitsChecked,
    FlattenRequested,
    ProtectionReport,
    ProtectionRequested,
    TradeProtection,
)
from actors.runtime.messages.state import (
    AccountSnapshot,
    BrokerHealth,
    CheckResult,
    InstrumentMarket,
    MarketReport,
    ModelReport,
    Reason,
    SystemState,
    SystemStateChanged,
    TradeView,
    WatchdogReport,
)
from actors.runtime.messages.topics import (
    TOPIC_ALERT,
    TOPIC_EXEC_HEALTH,
    TOPIC_EXEC_REPORT,
    TOPIC_HEARTBEAT,
    TOPIC_MD_BAR,
    TOPIC_MD_BARS,
    TOPIC_MD_HEALTH,
    TOPIC_MD_TICK,
    TOPIC_MODEL_SIGNAL,
    TOPIC_MODEL_SKIPPED,
    TOPIC_RECON_ACTION,
    TOPIC_RECON_HEALTH,
    TOPIC_RECON_STATE,
    TOPIC_RISK_INTENT,
    TOPIC_RISK_SKIP,
    TOPIC_SYS_STATE,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "SCHEMA_VERSION",
    "TOPIC_ALERT",
    "TOPIC_EXEC_HEALTH",
    "TOPIC_EXEC_REPORT",
    "TOPIC_HEARTBEAT",
    "TOPIC_MD_BAR",
    "TOPIC_MD_BARS",
    "TOPIC_MD_HEALTH",
    "TOPIC_MD_TICK",
    "TOPIC_MODEL_SIGNAL",
    "TOPIC_MODEL_SKIPPED",
    "TOPIC_RECON_ACTION",
    "TOPIC_RECON_HEALTH",
    "TOPIC_RECON_STATE",
    "TOPIC_RISK_INTENT",
    "TOPIC_RISK_SKIP",
    "TOPIC_SYS_STATE",
    "AccountSnapshot",
    "AlertCleared",
    "AlertRaised",
    "Bar",
    "BarsClosed",
    "Body",
    "BrokerHealth",
    "CauseHealthy",
    "CheckResult",
    "Envelope",
    "ExecutionReport",
    "ExitsChecked",
    "FlattenRequested",
    "Heartbeat",
    "InstrumentMarket",
    "IntentSkipped",
    "MarketReport",
    "ModelReport",
    "NoTradeRequested",
    "PriceTick",
    "Prices",
    "ProtectionReport",
    "ProtectionRequested",
    "Reason",
    "ReconcileNow",
    "ReconciliationCompleted",
    "RestartRequested",
    "RiskIntent",
    "RoleEvent",
    "RoleStopping",
    "SignalProduced",
    "SignalSkipped",
    "StopRole",
    "SystemState",
    "SystemStateChanged",
    "TopicSequence",
    "TradeProtection",
    "TradeView",
    "WatchdogReport",
    "decode",
    "encode",
    "make_envelope",
    "new_id",
    "now_ns",
    "to_jsonable",
]
