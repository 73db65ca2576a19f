"""The risk role's order of events: a close's signals wait for that close's exit check, so the
trades closed by then count as they do in a backtest; unsure (no check in time) means no trade."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

import pykka
import pytest

from actors.core.config import FeedConfig, RiskConfig
from actors.core.domain import Direction, InstrumentId, Position, TradeId
from actors.core.money import currency_exposure
from actors.roles.risk.actor import RiskActor, book_of
from actors.roles.risk.recovery import InFlight
from actors.runtime.actor import HeartbeatDue, Inbound
from actors.runtime.messages import (
    TOPIC_RISK_SKIP,
    AccountSnapshot,
    ExecutionReport,
    ExitsChecked,
    IntentSkipped,
    SignalProduced,
    TradeView,
    make_envelope,
)
from tests.fakebroker import InMemoryBroker
from tests.fakes import ManualClock, RecordingRuntime
from tests.helpers import poll_until

pytestmark = [pytest.mark.unit, pytest.mark.timeout(20)]

BAR = 1_709_733_600 * 10**9  # 2024-03-06 14:00 UTC
M15 = 900 * 10**9


def _signal(bar_ts: int) -> SignalProduced:
    return SignalProduced(
        instrument=InstrumentId("EUR_USD"),
        bar_ts=bar_ts,
        p_up=0.9,
        direction="long",
        model_version="v1",
        features_hash="h",
    )


@pytest.fixture
def role() -> Iterator[tuple[pykka.ActorRef[RiskActor], RecordingRuntime, ManualClock]]:
    clock = ManualClock(wall_ns=BAR + M15, mono_s=100.0)
    runtime = RecordingRuntime(
        role="risk",
        role_config=RiskConfig(exits_wait_s=5.0),
        broker=InMemoryBroker(),
        clock=clock,
        shared={"feed": FeedConfig(instruments=("EUR_USD",))},
    )
    ref = RiskActor.start(runtime)
    yield ref, runtime, clock
    with contextlib.suppress(pykka.ActorDeadError):
        ref.stop()


def _tell(ref: pykka.ActorRef[RiskActor], body: object) -> None:
    ref.tell(Inbound(make_envelope(body, src="test", corr="EUR_USD:M15:x")))  # type: ignore[arg-type]


def _skips(runtime: RecordingRuntime) -> list[IntentSkipped]:
    return [b for t, b, _ in list(runtime.published) if t == TOPIC_RISK_SKIP and isinstance(b, IntentSkipped)]


def test_a_signal_is_decided_only_after_its_close_was_checked_for_exits(role) -> None:
    ref, runtime, _ = role

    _tell(ref, _signal(BAR))
    ref.proxy().decisions.get(timeout=5)  # the actor has handled the signal
    before = _skips(runtime)
    _tell(ref, ExitsChecked(bar_ts=BAR))
    after = poll_until(lambda: _skips(runtime), timeout_s=5, what="the decision")

    assert before == []
    assert [(s.bar_ts, s.reason) for s in after] == [(BAR, "no_permit")]  # decided (no TRADING permit here)


def test_a_signal_of_a_close_already_checked_is_decided_at_once(role) -> None:
    ref, runtime, _ = role

    _tell(ref, ExitsChecked(bar_ts=BAR))
    _tell(ref, _signal(BAR))

    assert poll_until(lambda: _skips(runtime), timeout_s=5, what="the decision")[0].bar_ts == BAR


def test_a_close_never_checked_in_time_is_skipped_as_unchecked(role) -> None:
    ref, runtime, clock = role
    _tell(ref, _signal(BAR + M15))
    ref.proxy().decisions.get(timeout=5)

    ref.tell(HeartbeatDue())
    ref.proxy().decisions.get(timeout=5)
    early = _skips(runtime)
    clock.advance(5.5)
    ref.tell(HeartbeatDue())
    late = poll_until(lambda: _skips(runtime), timeout_s=5, what="the skip")

    assert early == []
    assert [(s.reason, s.bar_ts) for s in late] == [("exits_unchecked", BAR + M15)]


def test_a_losing_close_starts_the_cool_down_at_the_close_it_was_reported_at(role) -> None:
    ref, _, _ = role
    ref.proxy().market.get(timeout=5).now_ns = BAR + M15 + 3 * 10**9  # the first price after the close
    report = ExecutionReport(status="CLOSED", instrument=InstrumentId("EUR_USD"), trade_id="7", realized_pl="-5.0")

    _tell(ref, report)

    losses = poll_until(lambda: ref.proxy().last_loss_close_ns.get(timeout=5), timeout_s=5, what="the loss")
    assert losses == {"EUR_USD": BAR + M15}
    assert ref.proxy().closed_ids.get(timeout=5) == {"7"}


def test_a_signal_whose_bar_ended_more_than_a_bar_ago_is_skipped_as_stale(role) -> None:
    ref, runtime, _ = role
    ref.proxy().market.get(timeout=5).now_ns = BAR + 3 * M15  # prices two bars past the signal's close
    _tell(ref, ExitsChecked(bar_ts=BAR))

    _tell(ref, _signal(BAR))

    [skip] = poll_until(lambda: _skips(runtime), timeout_s=5, what="the decision")
    assert skip.reason == "stale_signal"


def test_an_old_snapshot_listing_a_closed_trade_does_not_clear_a_new_intent_in_flight(role) -> None:
    ref, _, _ = role
    position = Position(instrument="EUR_USD", direction=Direction.SHORT, units=1000.0, entry_price=1.1)
    ref.proxy().in_flight.get(timeout=5)["EUR_USD"] = InFlight("main.EUR_USD.2.S", position, since=100.0)
    old = AccountSnapshot(
        currency="USD", balance="100000", nav="100000", unrealized_pl="0", margin_used="0", open_trades=1,
        pending_orders=0, last_transaction_id="1", ts=1,
        trades=(TradeView(trade_id=TradeId("7"), instrument=InstrumentId("EUR_USD"), units="-500", price="1.1",
                          open_ts=1, unrealized_pl="0", client_id="main.EUR_USD.1.S"),),
    )  # fmt: skip
    other = ExecutionReport(
        status="CLOSED", instrument=InstrumentId("EUR_USD"), trade_id="7", intent_id="main.EUR_USD.1.S"
    )

    _tell(ref, other)
    _tell(ref, old)
    kept = ref.proxy().in_flight.get(timeout=5)
    _tell(ref, replace(old, trades=(replace(old.trades[0], trade_id=TradeId("9"), client_id="main.EUR_USD.2.S"),)))
    seen = ref.proxy().in_flight.get(timeout=5)

    assert kept == {"EUR_USD": InFlight("main.EUR_USD.2.S", position, since=100.0)}
    assert seen == {}


def _in_flight(ref: pykka.ActorRef[RiskActor], intent_id: str) -> None:
    position = Position(instrument="EUR_USD", direction=Direction.LONG, units=1000.0, entry_price=1.1)
    ref.proxy().in_flight.get(timeout=5)["EUR_USD"] = InFlight(intent_id, position, since=100.0)


def test_an_intent_the_execution_role_never_reported_on_expires_and_is_journaled(role) -> None:
    ref, runtime, clock = role
    _in_flight(ref, "main.EUR_USD.3.L")

    clock.advance(RiskConfig().intent_expiry_s - 1)
    ref.tell(HeartbeatDue())
    kept = set(ref.proxy().in_flight.get(timeout=5))
    clock.advance(2)
    ref.tell(HeartbeatDue())
    left = ref.proxy().in_flight.get(timeout=5)

    assert kept == {"EUR_USD"}
    assert left == {}
    [(_, row, _)] = [j for j in list(runtime.journaled) if j[0] == "risk.intent_expired"]
    assert row["intent_id"] == "main.EUR_USD.3.L" and row["instrument"] == "EUR_USD"


@pytest.mark.parametrize("status", ["SENDING", "FILLED", "UNRESOLVED"])
def test_an_intent_the_execution_role_reported_on_never_expires(role, status: str) -> None:
    ref, runtime, clock = role
    _in_flight(ref, "main.EUR_USD.3.L")
    report = ExecutionReport(status=status, instrument=InstrumentId("EUR_USD"), intent_id="main.EUR_USD.3.L")

    _tell(ref, report)
    clock.advance(10 * RiskConfig().intent_expiry_s)
    ref.tell(HeartbeatDue())

    assert set(ref.proxy().in_flight.get(timeout=5)) == {"EUR_USD"}
    assert not [j for j in list(runtime.journaled) if j[0] == "risk.intent_expired"]


def _open(trade_id: str, units: str, price: str) -> TradeView:
    return TradeView(trade_id=TradeId(trade_id), instrument=InstrumentId("EUR_USD"), units=units, price=price,
                     open_ts=1, unrealized_pl="0")  # fmt: skip


def test_the_trades_of_one_instrument_count_as_one_net_position_in_full() -> None:
    # Arrange: a trade opened by hand (adopted) beside the host's own, both long EUR_USD.
    account = AccountSnapshot(
        currency="USD", balance="100000", nav="100000", unrealized_pl="0", margin_used="0", open_trades=3,
        pending_orders=0, last_transaction_id="1", ts=1,
        trades=(_open("9", "1000", "1.09000"), _open("7", "2000", "1.08000"), _open("5", "500", "1.07000")),
    )  # fmt: skip

    # Act
    book = book_of(account, closed={"5"})
    exposure = currency_exposure(book, {"EUR_USD": 1.1}, "USD")

    # Assert: 3000 units at their average entry, so the exposure counts all of them (not the last
    # trade listed alone); a trade reported closed since the snapshot no longer counts.
    assert book == {"EUR_USD": Position(instrument="EUR_USD", direction=Direction.LONG, units=3000.0,
                                        entry_price=pytest.approx(3250 / 3000))}  # fmt: skip
    assert exposure["EUR"] == pytest.approx(3300.0)


def test_trades_of_one_instrument_on_both_sides_net_out_and_still_hold_the_instrument() -> None:
    # A hedging account: 1000 long and 400 short of one instrument are 600 long; all of it closed
    # out, the instrument still has open trades, so no new entry on it (``position_open``).
    account = AccountSnapshot(
        currency="USD", balance="100000", nav="100000", unrealized_pl="0", margin_used="0", open_trades=2,
        pending_orders=0, last_transaction_id="1", ts=1,
        trades=(_open("9", "1000", "1.09000"), _open("7", "-400", "1.08000")),
    )  # fmt: skip

    [net] = book_of(account).values()
    [flat] = book_of(replace(account, trades=(_open("9", "400", "1.09"), _open("7", "-400", "1.08")))).values()

    assert (net.direction, net.units) == (Direction.LONG, 600.0)
    assert flat.units == 0.0 and flat.instrument == "EUR_USD"
