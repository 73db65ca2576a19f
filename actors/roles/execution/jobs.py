"""What goes into the order desk and what comes back out of it.

The jobs (``Submit``, ``BarRange``, ``Exits``, ``Protect``, ``Flatten``, ``Protection``, ``Snapshot``) the
execution actor queues for the desk's worker, which carries them out one at a time; and what the
desk hands back to the actor (``Publish``, ``ToSupervisor``), since only the actor's thread touches
the runtime's sockets.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from actors.core.domain import Candle
from actors.runtime.messages import Body, ProtectionReport, RiskIntent


@dataclass(frozen=True, slots=True)
class Submit:
    """Send this intent's order."""

    intent: RiskIntent
    corr: str | None


@dataclass(frozen=True, slots=True)
class Exits:
    """A close: manage the exits of every open trade."""

    bar_ts: int


@dataclass(frozen=True, slots=True)
class BarRange:
    """A validated bar: the broker (the shadow book) checks SL/TP against its range, in turn with
    the exits of the closes around it."""

    instrument: str
    candle: Candle
    end_ns: int


@dataclass(frozen=True, slots=True)
class Protect:
    """Give an unprotected trade its SL and TP ("repair") or close it."""

    trade_id: str
    action: str
    instrument: str = ""


@dataclass(frozen=True, slots=True)
class Flatten:
    """Close every open trade."""

    why: str


@dataclass
class Protection:
    """The shutdown check, retried until ``until`` (monotonic); ``done`` is set with the report
    when it is through."""

    until: float
    done: threading.Event = field(default_factory=threading.Event)
    report: ProtectionReport | None = None


@dataclass
class Snapshot:
    """The open trades (id -> instrument) and the account's last transaction id read before them,
    for the transaction stream's view (read on the desk's worker, in turn with the orders: the
    desk's broker session is never used from two threads); ``done`` is set when they are in, or
    ``error`` says why not."""

    done: threading.Event = field(default_factory=threading.Event)
    trades: dict[str, str] = field(default_factory=dict)
    last_id: str = ""
    error: str = ""


Job = Submit | Exits | BarRange | Protect | Flatten | Protection | Snapshot


@dataclass(frozen=True, slots=True)
class Publish:
    """For the actor: publish ``body`` on ``topic`` (only the actor's thread touches the runtime)."""

    topic: str
    body: Body
    corr: str | None


@dataclass(frozen=True, slots=True)
class ToSupervisor:
    """For the actor: send ``body`` to the supervisor."""

    body: Body


Handback = Publish | ToSupervisor  # what the desk hands its actor (``RoleActor.hand_back``)
