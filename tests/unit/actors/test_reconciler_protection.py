"""The reconciler's side of an unprotected trade: a no-trade reason from the first sight, repairs
with backoff, a close once ``repair_deadline_s`` has passed, a latch when even that does not end
it, the reason cleared by the broker's word; and a reconciliation that completes only once every
open trade is protected. Driven through the actor's own handler with a manual clock."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from actors.core.backoff import Backoff
from actors.core.config import ReconcilerConfig
from actors.core.domain import AccountState, TradeState
from actors.core.zones import ZoneVerdict
from actors.roles.reconciler.actor import ReconcilerActor, _Polled
from actors.runtime.messages import (
    CauseHealthy,
    NoTradeRequested,
    ProtectionRequested,
    Reason,
    ReconciliationCompleted,
    SystemState,
    SystemStateChanged,
)
from tests.fakes import ManualClock, RecordingRuntime

pytestmark = pytest.mark.unit


def _trade(trade_id: str = "7", *, sl: str | None = None, tp: str | None = None) -> TradeState:
    zero = Decimal(0)
    return TradeState(
        id=trade_id, instrument="EUR_USD", price=Decimal("1.08450"), open_ts=1, state="OPEN",
        initial_units=Decimal(10_000), current_units=Decimal(10_000), realized_pl=zero, unrealized_pl=zero,
        stop_loss_price=None if sl is None else Decimal(sl), take_profit_price=None if tp is None else Decimal(tp),
    )  # fmt: skip


def _polled(*trades: TradeState, full: bool = False) -> _Polled:
    account = AccountState(
        id="101-001-1-001", currency="USD", balance=Decimal(100_000), nav=Decimal(100_000), unrealized_pl=Decimal(0),
        margin_used=Decimal(0), margin_available=Decimal(100_000), open_trade_count=len(trades),
        open_position_count=len(trades), pending_order_count=0, last_transaction_id="40",
    )  # fmt: skip
    verdict = ZoneVerdict(
        zone=0, multiplier=1.0, drawdown=0.0, daily_pnl=0.0, daily_loss_hit=False, drawdown_stop=False
    )
    return _Polled(account, list(trades), 0, [], {}, verdict, 100_000.0, 100_000.0, full)


class _Reconciler:
    """The actor without its worker: its handler fed with polls by hand."""

    def __init__(self, **cfg: Any) -> None:
        self.clock = ManualClock()
        self.runtime = RecordingRuntime("reconciler", role_config=ReconcilerConfig(**cfg), clock=self.clock)
        actor = ReconcilerActor(self.runtime)
        actor.unprotected, actor.closed_by_host = {}, set()
        actor.waiting_protection = False
        actor.connected, actor.last_ok_ns, actor.detail, actor._published = False, None, "", None
        self.actor = actor

    def poll(self, *trades: TradeState, full: bool = False) -> None:
        self.actor.on_other(_polled(*trades, full=full))

    def sees(self, reasons: tuple[Reason, ...]) -> None:
        state = SystemStateChanged(state=SystemState.NO_TRADE, reasons=reasons, expires_ns=2**62, ttl_s=3.0)
        self.actor.permit.update(state, src="supervisor")

    def requests(self) -> list[NoTradeRequested]:
        return [b for b in self.runtime.sent if isinstance(b, NoTradeRequested)]

    def actions(self) -> list[str]:
        return [b.action for _, b, _ in self.runtime.published if isinstance(b, ProtectionRequested)]


def _seeded(actor: ReconcilerActor) -> None:
    # A repair schedule without randomness: the full-jitter delays come from a seeded source.
    for track in actor.unprotected.values():
        track.backoff = Backoff(track.backoff.initial_s, track.backoff.max_s, rng=random.Random(1))


def test_a_trade_without_stops_is_a_reason_at_once_and_a_repair_request() -> None:
    rec = _Reconciler()

    rec.poll(_trade(sl="1.08000"))  # a TP missing is as bad as an SL missing

    (request,) = rec.requests()
    assert request.code == "unprotected:7" and not request.latch
    assert "has no TP at the broker" in request.detail
    assert rec.actions() == ["repair"]
    assert [k for k, _, _ in rec.runtime.journaled if k.startswith("recon.")][:2] == [
        "recon.unprotected",
        "recon.protection_requested",
    ]


def test_repairs_are_retried_with_backoff_and_the_trade_is_closed_once_the_deadline_has_passed() -> None:
    # Arrange: a 30 s deadline; the account read every second.
    rec = _Reconciler(repair_deadline_s=30.0, repair_retry_s=2.0)
    rec.poll(_trade())
    _seeded(rec.actor)

    # Act: 29 s of failed repairs, then the deadline.
    for _ in range(29):
        rec.clock.advance(1.0)
        rec.poll(_trade())
    repairs = rec.actions().count("repair")
    rec.clock.advance(1.0)
    rec.poll(_trade())

    # Assert: several repairs, far fewer than polls (backoff), then the close.
    assert 3 <= repairs < 20
    assert rec.actions()[-1] == "close"
    assert not any(r.latch for r in rec.requests())


def test_the_close_option_closes_at_once() -> None:
    rec = _Reconciler(unprotected="close")

    rec.poll(_trade())

    assert rec.actions() == ["close"]


def test_a_trade_still_open_a_poll_after_its_close_latches_the_reason_with_what_to_do() -> None:
    rec = _Reconciler(repair_deadline_s=5.0, poll_interval_s=5.0)
    rec.poll(_trade())
    rec.clock.advance(5.0)
    rec.poll(_trade())  # the deadline: closed
    assert rec.actions()[-1] == "close"

    rec.clock.advance(5.0)
    rec.poll(_trade())  # still there, still naked

    last = rec.requests()[-1]
    assert last.latch and last.code == "unprotected:7"
    assert "could not be closed" in last.detail and "tradehost ctl flatten --yes" in last.detail
    # A resume that clears it while the trade is naked does not last: the next poll raises it again.
    rec.sees(())
    rec.clock.advance(1.0)
    rec.poll(_trade())
    assert rec.requests()[-1].latch


def test_the_deadline_counts_from_the_reasons_own_time_so_a_restart_does_not_extend_it() -> None:
    rec = _Reconciler(repair_deadline_s=30.0)
    raised_ns = rec.clock.time_ns() - 31 * 10**9  # raised 31 s ago by an earlier reconciler process
    rec.sees((Reason(code="unprotected:7", detail="", latched=False, since_ns=raised_ns),))

    rec.poll(_trade())

    assert rec.actions() == ["close"]


def test_the_brokers_word_clears_the_reason_whoever_raised_it_but_never_a_latched_one() -> None:
    rec = _Reconciler()
    rec.poll(_trade())
    rec.sees(
        (
            Reason(code="unprotected:7", detail="", latched=False, since_ns=1),
            Reason(code="unprotected:8", detail="", latched=True, since_ns=1),
        )
    )

    rec.poll(_trade(sl="1.08", tp="1.09"))  # repaired

    assert [b.code for b in rec.runtime.sent if isinstance(b, CauseHealthy)] == ["unprotected:7"]
    protected = [b for k, b, _ in rec.runtime.journaled if k == "recon.protected"]
    assert protected and protected[0]["outcome"] == "protected"


def test_a_full_reconciliation_completes_only_once_every_open_trade_is_protected() -> None:
    rec = _Reconciler()

    rec.poll(_trade(), full=True)
    completed_while_naked = [b for b in rec.runtime.sent if isinstance(b, ReconciliationCompleted)]
    rec.poll(_trade(sl="1.08", tp="1.09"), full=True)

    assert completed_while_naked == []
    assert [b.ok for b in rec.runtime.sent if isinstance(b, ReconciliationCompleted)] == [True]
    assert [k for k, _, _ in rec.runtime.journaled].count("recon.waiting_protection") == 1
