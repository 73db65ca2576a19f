"""The risk role sizes within the broker's margin available, less the margin of its intents in flight.

A 100 000 USD account with part of its margin in use (as the reconciler read it), a quiet market
(0.8-pip ATR, a 1.2-pip stop) and the default ``[risk]`` section: the risk rule alone asks for
millions of units, which the broker would cancel with ``INSUFFICIENT_MARGIN``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from decimal import Decimal

import pykka
import pytest

from actors.base import Inbound
from actors.broker.fake import _DEFAULT as EUR_USD
from actors.broker.fake import InMemoryBroker
from actors.clock import ManualClock
from actors.feed import FeedConfig
from actors.messages import (
    TOPIC_RISK_INTENT,
    TOPIC_RISK_SKIP,
    AccountSnapshot,
    Bar,
    ExitsChecked,
    InstrumentId,
    IntentSkipped,
    Prices,
    PriceTick,
    RiskIntent,
    SignalProduced,
    SystemState,
    SystemStateChanged,
    make_envelope,
)
from actors.risk import RiskActor, RiskConfig
from tests.fakes import RecordingRuntime
from tests.helpers import poll_until

pytestmark = [pytest.mark.unit, pytest.mark.timeout(20)]

NS = 10**9
BAR = 1_709_733_600 * NS  # 2024-03-06 14:00 UTC, a Wednesday afternoon in London
M15 = 900 * NS
GBP_USD = dataclasses.replace(EUR_USD, name="GBP_USD", margin_rate=Decimal("0.05"))
QUOTES = {"EUR_USD": ("1.08500", "1.08510"), "GBP_USD": ("1.26495", "1.26505")}
Role = tuple[pykka.ActorRef[RiskActor], RecordingRuntime, ManualClock]


def _tell(ref: pykka.ActorRef[RiskActor], body: object, src: str = "test") -> None:
    ref.tell(Inbound(make_envelope(body, src=src, corr="c")))  # type: ignore[arg-type]


def _bar(name: str, ts: int) -> Bar:
    # A quiet bar: 0.8 pips from low to high, closing where it opened.
    bid, ask = QUOTES[name]
    low, high = Decimal(bid) - Decimal("0.00004"), Decimal(bid) + Decimal("0.00004")
    prices = Prices(o=bid, h=str(high), l=str(low), c=bid)
    spread = Decimal(ask) - Decimal(bid)
    asks = Prices(o=ask, h=str(high + spread), l=str(low + spread), c=ask)
    return Bar(instrument=InstrumentId(name), granularity="M15", ts=ts, bid=prices, ask=asks, mid=prices, volume=100)


def _snapshot(margin_available: str) -> AccountSnapshot:
    return AccountSnapshot(
        currency="USD", balance="100000", nav="100000", unrealized_pl="0", margin_used="50000", open_trades=0,
        pending_orders=0, last_transaction_id="1", ts=BAR, margin_available=margin_available,
    )  # fmt: skip


@pytest.fixture
def role() -> Iterator[Role]:
    clock = ManualClock(wall_ns=BAR + M15 + NS, mono_s=100.0)
    runtime = RecordingRuntime(
        role="risk",
        role_config=RiskConfig(),
        broker=InMemoryBroker(instruments=(EUR_USD, GBP_USD)),
        clock=clock,
        shared={"feed": FeedConfig(instruments=("EUR_USD", "GBP_USD"))},
    )
    ref = RiskActor.start(runtime)
    poll_until(lambda: len(ref.proxy().instruments.get(timeout=5)) == 2, timeout_s=10, what="the metadata")
    state = SystemStateChanged(state=SystemState.TRADING, expires_ns=BAR + 10 * M15, ttl_s=3600.0)
    _tell(ref, state, src="supervisor")
    for name, (bid, ask) in QUOTES.items():
        for k in range(16, 0, -1):
            _tell(ref, _bar(name, BAR - k * M15))
        _tell(ref, PriceTick(instrument=name, ts=BAR + M15 + NS, bid=bid, ask=ask, tradeable=True))
    yield ref, runtime, clock
    with contextlib.suppress(pykka.ActorDeadError):
        ref.stop()


def _decide_both(ref: pykka.ActorRef[RiskActor], runtime: RecordingRuntime) -> list[object]:
    _tell(ref, ExitsChecked(bar_ts=BAR))
    for name in QUOTES:
        _tell(ref, SignalProduced(instrument=InstrumentId(name), bar_ts=BAR, p_up=0.9, direction="long",
                                  model_version="v1", features_hash="h"))  # fmt: skip
    return poll_until(
        lambda: (
            (out := [b for t, b, _ in list(runtime.published) if t in (TOPIC_RISK_INTENT, TOPIC_RISK_SKIP)])
            and len(out) == 2
            and out
        ),
        timeout_s=5,
        what="both decisions",
    )


def _taken(intent: RiskIntent) -> float:
    # What the entry takes from the margin available: its margin at the mid plus its spread.
    rate = {"EUR_USD": 0.0333, "GBP_USD": 0.05}[intent.instrument]
    bid, ask = (float(p) for p in QUOTES[intent.instrument])
    return float(intent.units) * ((bid + ask) / 2 * rate + (ask - bid))


def test_the_second_entry_of_a_close_fits_what_the_first_left(role: Role) -> None:
    ref, runtime, _ = role
    _tell(ref, _snapshot("50000"))

    first, second = _decide_both(ref, runtime)

    # EUR_USD is cut by the exposure rule and fits; GBP_USD counts it (in flight: in no snapshot
    # yet) and is cut to what is left above the reserve (5 % of the NAV).
    assert isinstance(first, RiskIntent) and isinstance(second, RiskIntent), (first, second)
    assert first.instrument == "EUR_USD" and first.units == "921616"
    left = 50_000 - _taken(first) - 5_000
    assert left - 0.07 < _taken(second) <= left  # within one GBP_USD unit of all that is left


def test_an_entry_cut_to_the_margin_leaves_none_for_the_next_of_its_close(role: Role) -> None:
    ref, runtime, _ = role
    _tell(ref, _snapshot("16750"))  # 16 750 available: 11 750 above the reserve

    first, second = _decide_both(ref, runtime)

    assert isinstance(first, RiskIntent) and 11_749 < _taken(first) <= 11_750  # 324 297 units, not 921 616
    assert isinstance(second, IntentSkipped) and second.reason == "margin"  # without counting the first: a cancel


def test_no_margin_left_is_a_margin_skip_journaled_with_its_direction(role: Role) -> None:
    ref, runtime, _ = role
    _tell(ref, _snapshot("0.0000"))  # the broker's marginAvailable: all of it in use

    decisions = _decide_both(ref, runtime)

    assert [(d.reason, d.direction) for d in decisions if isinstance(d, IntentSkipped)] == [("margin", "long")] * 2
    rows = [body for kind, body, _ in list(runtime.journaled) if kind == "risk.skip"]
    assert [r["reason"] for r in rows] == ["margin", "margin"]


def test_a_snapshot_without_the_margin_available_is_no_entry(role: Role) -> None:
    ref, runtime, _ = role
    _tell(ref, _snapshot(""))  # unknown: unsure means no trade

    decisions = _decide_both(ref, runtime)

    assert [d.reason for d in decisions if isinstance(d, IntentSkipped)] == ["margin", "margin"]
