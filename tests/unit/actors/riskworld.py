"""A risk role ready to decide, for unit tests: two instruments, a TRADING permit, quotes and a
quiet market's bars (0.8-pip ATR), driven through a ``RecordingRuntime`` (and, where a test
gives one, a real journal)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pykka

from actors.core.config import FeedConfig, RiskConfig
from actors.core.domain import InstrumentId
from actors.roles.risk.actor import RiskActor
from actors.runtime.actor import Inbound
from actors.runtime.journal import Journal
from actors.runtime.messages import (
    TOPIC_RISK_INTENT,
    TOPIC_RISK_SKIP,
    AccountSnapshot,
    Bar,
    Body,
    ExitsChecked,
    Prices,
    PriceTick,
    SignalProduced,
    SystemState,
    SystemStateChanged,
    make_envelope,
)
from tests.fakebroker import _DEFAULT as EUR_USD
from tests.fakebroker import InMemoryBroker
from tests.fakes import ManualClock, RecordingRuntime
from tests.helpers import poll_until

NS = 10**9
BAR = 1_709_733_600 * NS  # 2024-03-06 14:00 UTC, a Wednesday afternoon in London
M15 = 900 * NS
WALL = BAR + M15 + NS  # the wall clock of a live run: the first price after the close
GBP_USD = dataclasses.replace(EUR_USD, name="GBP_USD", margin_rate=Decimal("0.05"))
EUR_GBP = dataclasses.replace(EUR_USD, name="EUR_GBP")
METADATA = {i.name: i for i in (EUR_USD, GBP_USD, EUR_GBP)}
QUOTES = {"EUR_USD": ("1.08500", "1.08510"), "GBP_USD": ("1.26495", "1.26505")}
Ref = pykka.ActorRef[RiskActor]


def tell(ref: Ref, body: Body, src: str = "test") -> None:
    """Hand ``body`` to the role as if it came from ``src`` on the bus."""
    ref.tell(Inbound(make_envelope(body, src=src, corr="c")))


def _bar(name: str, ts: int, quotes: dict[str, tuple[str, str]] = QUOTES) -> Bar:
    # A quiet bar: 0.8 pips from low to high, closing where it opened.
    bid, ask = quotes[name]
    low, high = Decimal(bid) - Decimal("0.00004"), Decimal(bid) + Decimal("0.00004")
    prices = Prices(o=bid, h=str(high), l=str(low), c=bid)
    spread = Decimal(ask) - Decimal(bid)
    asks = Prices(o=ask, h=str(high + spread), l=str(low + spread), c=ask)
    return Bar(instrument=InstrumentId(name), granularity="M15", ts=ts, bid=prices, ask=asks, mid=prices, volume=100)


def snapshot(margin_available: str = "100000", **fields: Any) -> AccountSnapshot:
    """The reconciler's account: 100 000 USD, no open trade unless ``fields`` say otherwise."""
    base: dict[str, Any] = {
        "currency": "USD", "balance": "100000", "nav": "100000", "unrealized_pl": "0", "margin_used": "0",
        "open_trades": 0, "pending_orders": 0, "last_transaction_id": "1", "ts": WALL,
        "margin_available": margin_available,
    }  # fmt: skip
    base.update(fields)
    return AccountSnapshot(**base)


@contextlib.contextmanager
def running_role(
    config: RiskConfig | None = None,
    journal: Journal | None = None,
    quotes: dict[str, tuple[str, str]] | None = None,
) -> Iterator[tuple[Ref, RecordingRuntime, ManualClock]]:
    """A started risk role with metadata, a permit, bars and quotes of its instruments (``QUOTES``,
    or ``quotes``: EUR_USD, GBP_USD and EUR_GBP by name)."""
    quotes = quotes or QUOTES
    clock = ManualClock(wall_ns=WALL, mono_s=100.0)
    runtime = RecordingRuntime(
        role="risk",
        role_config=config or RiskConfig(),
        broker=InMemoryBroker(instruments=tuple(METADATA[name] for name in quotes)),
        clock=clock,
        shared={"feed": FeedConfig(instruments=tuple(quotes))},
    )
    runtime.journal_db = journal
    ref = RiskActor.start(runtime)
    try:
        poll_until(
            lambda: len(ref.proxy().instruments.get(timeout=5)) == len(quotes), timeout_s=10, what="the metadata"
        )
        state = SystemStateChanged(state=SystemState.TRADING, expires_ns=BAR + 10 * M15, ttl_s=3600.0)
        tell(ref, state, src="supervisor")
        for name, (bid, ask) in quotes.items():
            for k in range(16, 0, -1):
                tell(ref, _bar(name, BAR - k * M15, quotes))
            tell(ref, PriceTick(instrument=name, ts=BAR + M15 + NS, bid=bid, ask=ask, tradeable=True))
        yield ref, runtime, clock
    finally:
        with contextlib.suppress(pykka.ActorDeadError):
            ref.stop()


def decide(
    ref: Ref, runtime: RecordingRuntime, names: tuple[str, ...] = tuple(QUOTES), p_up: float = 0.9
) -> list[Body]:
    """Signals of the close at ``BAR`` for ``names``; returns the decisions (intents and skips) in order."""
    before = len(_decisions(runtime))
    tell(ref, ExitsChecked(bar_ts=BAR))
    for name in names:
        tell(ref, SignalProduced(instrument=InstrumentId(name), bar_ts=BAR, p_up=p_up, direction="long",
                                 model_version="v1", features_hash="h"))  # fmt: skip
    return poll_until(
        lambda: (out := _decisions(runtime)[before:]) and len(out) == len(names) and out,
        timeout_s=5,
        what="the decisions",
    )


def _decisions(runtime: RecordingRuntime) -> list[Body]:
    return [b for t, b, _ in list(runtime.published) if t in (TOPIC_RISK_INTENT, TOPIC_RISK_SKIP)]
