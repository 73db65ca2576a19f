"""The order desk's exit pass: a close it cannot read is tried again, then given up loudly, and the
risk role hears that a close was checked only when every close of it was reported. And the desk
says it took an intent (SENDING) before the order leaves."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.core.config import ExecutionConfig, RiskConfig
from actors.core.domain import InstrumentId, IntentId, TradeState
from actors.core.errors import BrokerAmbiguousError, BrokerTemporaryError
from actors.roles.execution.desk import OrderDesk
from actors.roles.execution.exits import CLOSE_REPORT_TRIES
from actors.roles.execution.jobs import Exits, Publish, Submit, ToSupervisor
from actors.runtime.journal import Journal
from actors.runtime.marketview import MarketView
from actors.runtime.messages import (
    AlertRaised,
    ExecutionReport,
    ExitsChecked,
    NoTradeRequested,
    Reason,
    RiskIntent,
    SystemState,
    SystemStateChanged,
)
from tests.fakebroker import InMemoryBroker
from tests.fakes import ManualClock, permit_of

pytestmark = pytest.mark.unit

BAR = 1_709_733_600 * 10**9


def _desk(
    tmp_path: Path, posted: list[Any], journaled: list[tuple[str, dict[str, Any]]], *, permit: bool = False
) -> OrderDesk:
    return OrderDesk(
        cfg=ExecutionConfig(),
        risk=RiskConfig(),
        granularity="M15",
        market=MarketView(keep_bars=15),
        state_path=tmp_path / "memos.json",
        journal=lambda row, corr=None: journaled.append((row.KIND, row.body())),
        journal_db=Journal(tmp_path / "journal.sqlite", src="execution"),
        post=posted.append,
        permit=permit_of(permit),
        open_broker=lambda **_: InMemoryBroker(),
        host_id="testhost",
        clock=ManualClock(),
    )


def _gone_trade() -> TradeState:
    zero = Decimal(0)
    return TradeState(
        id="99", instrument="EUR_USD", price=Decimal("1.1"), open_ts=1, state="OPEN",
        initial_units=Decimal(1000), current_units=Decimal(1000), realized_pl=zero, unrealized_pl=zero,
    )  # fmt: skip


def test_a_close_that_cannot_be_read_holds_the_check_back_then_is_reported_without_its_pnl(tmp_path: Path) -> None:
    # Arrange: the desk saw trade 99 open; the broker no longer knows it (trade("99") fails).
    posted: list[Any] = []
    journaled: list[tuple[str, dict[str, Any]]] = []
    desk, broker = _desk(tmp_path, posted, journaled), InMemoryBroker()
    desk.known_open = {"99": _gone_trade()}

    # Act: one exit pass per close
    for i in range(CLOSE_REPORT_TRIES):
        desk._do(broker, Exits(BAR + i), stop=None)  # type: ignore[arg-type]

    # Assert: no "exits checked" while the close was unread; then a CLOSED report, an alert, the check
    bodies = [p.body for p in posted if isinstance(p, Publish)]
    checked = [b.bar_ts for b in bodies if isinstance(b, ExitsChecked)]
    closed = [b for b in bodies if isinstance(b, ExecutionReport) and b.status == "CLOSED"]
    alerts = [b.code for b in bodies if isinstance(b, AlertRaised)]
    assert checked == [BAR + CLOSE_REPORT_TRIES - 1]
    assert [(c.trade_id, c.realized_pl) for c in closed] == [("99", "")]
    assert alerts == ["close_unread:EUR_USD"]
    assert [b["tries"] for k, b in journaled if k == "exec.error"] == list(range(1, CLOSE_REPORT_TRIES + 1))
    assert desk.known_open == {}


def _intent(desk: OrderDesk, intent_id: str = "main.EUR_USD.1.L") -> RiskIntent:
    return RiskIntent(
        intent_id=IntentId(intent_id), instrument=InstrumentId("EUR_USD"), direction="long",
        units="1000", stop_loss="1.09000", take_profit="1.12000", decision_price=1.1, sl_distance=0.01,
        bar_ts=BAR, decided_ns=desk.clock.time_ns(), p_up=0.9, model_version="v1",
    )  # fmt: skip


def _reports(posted: list[Any]) -> list[ExecutionReport]:
    return [p.body for p in posted if isinstance(p, Publish) and isinstance(p.body, ExecutionReport)]


def test_an_entry_on_an_instrument_with_a_trade_open_at_the_broker_is_never_sent(tmp_path: Path) -> None:
    # Arrange: a trade of this instrument the risk role did not count (say, a late fill after a restart)
    posted: list[Any] = []
    desk, broker = _desk(tmp_path, posted, [], permit=True), InMemoryBroker()
    broker.set_price("EUR_USD", Decimal("1.10000"), Decimal("1.10010"))
    desk._do(broker, Submit(_intent(desk, "main.EUR_USD.0.L"), None), stop=None)  # type: ignore[arg-type]
    assert [t.instrument for t in broker.open_trades()] == ["EUR_USD"]
    posted.clear()

    # Act
    desk._do(broker, Submit(_intent(desk), "corr"), stop=None)  # type: ignore[arg-type]

    # Assert
    [report] = _reports(posted)
    assert (report.status, report.intent_id) == ("REJECTED", "main.EUR_USD.1.L")
    assert report.reason.startswith("position_open at send time")
    assert len(broker.open_trades()) == 1


def test_an_entry_is_not_sent_when_the_open_trades_cannot_be_read(tmp_path: Path) -> None:
    posted: list[Any] = []
    desk, broker = _desk(tmp_path, posted, [], permit=True), InMemoryBroker()
    broker.set_price("EUR_USD", Decimal("1.10000"), Decimal("1.10010"))
    broker.fail_next(BrokerTemporaryError("HTTP 503"))

    desk._do(broker, Submit(_intent(desk), "corr"), stop=None)  # type: ignore[arg-type]

    [report] = _reports(posted)
    assert report.status == "REJECTED" and report.reason.startswith("open trades unreadable at send time")
    assert broker.open_trades() == []


def test_the_desk_reports_an_intent_as_taken_before_its_order_leaves(tmp_path: Path) -> None:
    # Arrange: a permit, a price, and a broker that notes how many reports were out when it was called
    posted: list[Any] = []
    desk, broker = _desk(tmp_path, posted, [], permit=True), InMemoryBroker()
    broker.set_price("EUR_USD", Decimal("1.10000"), Decimal("1.10010"))
    reports_at_send: list[int] = []
    submit = broker.submit_market_order

    def noting(request: Any) -> Any:
        reports_at_send.append(len(posted))
        return submit(request)

    broker.submit_market_order = noting  # type: ignore[method-assign]
    intent = RiskIntent(
        intent_id=IntentId("main.EUR_USD.1.L"), instrument=InstrumentId("EUR_USD"), direction="long",
        units="1000", stop_loss="1.09000", take_profit="1.12000", decision_price=1.1, sl_distance=0.01,
        bar_ts=BAR, decided_ns=desk.clock.time_ns(), p_up=0.9, model_version="v1",
    )  # fmt: skip

    # Act
    desk._do(broker, Submit(intent, "corr"), stop=None)  # type: ignore[arg-type]

    # Assert
    reports = [p.body for p in posted if isinstance(p, Publish) and isinstance(p.body, ExecutionReport)]
    assert [(r.status, r.intent_id) for r in reports] == [
        ("SENDING", "main.EUR_USD.1.L"),
        ("FILLED", "main.EUR_USD.1.L"),
    ]
    assert reports_at_send == [1]


def test_after_declaring_an_order_unresolved_the_desk_sends_no_queued_order_on_its_old_permit(tmp_path: Path) -> None:
    # Arrange: a TRADING permit; every order's answer is lost and no look-up by client id answers
    # (each look-up moves the desk's clock past execution.resolve_timeout_s).
    posted: list[Any] = []
    desk, broker = _desk(tmp_path, posted, [], permit=True), InMemoryBroker()
    broker.set_price("EUR_USD", Decimal("1.10000"), Decimal("1.10010"))
    sent: list[str] = []

    def lost(request: Any) -> Any:
        sent.append(request.client_id)
        raise BrokerAmbiguousError("read timed out")

    def unanswered(order_id: str) -> Any:
        desk.clock.advance(desk.cfg.resolve_timeout_s + 1)  # type: ignore[attr-defined]
        raise BrokerTemporaryError("HTTP 503")

    broker.submit_market_order = lost  # type: ignore[method-assign]
    broker.order = unanswered  # type: ignore[method-assign]
    first = _intent(desk, "main.EUR_USD.1.L")
    desk._do(broker, Submit(first, None), stop=threading.Event())

    # Act: the next intent (fresh), queued before the supervisor's NO_TRADE could reach the role
    second = _intent(desk, "main.EUR_USD.2.L")
    desk._do(broker, Submit(second, None), stop=threading.Event())

    # Assert: the no-trade request went out, and the second order never left
    requests = [p.body for p in posted if isinstance(p, ToSupervisor) and isinstance(p.body, NoTradeRequested)]
    assert [r.code for r in requests] == ["order_unresolved:EUR_USD"]
    assert sent == [first.intent_id]
    assert [(r.status, r.intent_id) for r in _reports(posted)][-1] == ("REJECTED", second.intent_id)
    assert _reports(posted)[-1].reason.startswith("no trading permit at send time")
    assert desk.permit.held == {"order_unresolved:EUR_USD"}


def test_the_desks_hold_ends_when_the_supervisors_state_carries_the_reason() -> None:
    permit = permit_of(True)
    permit.hold("order_unresolved:EUR_USD")
    assert permit.allows_entry() is False

    reason = Reason(code="order_unresolved:EUR_USD", detail="lost", latched=True, since_ns=1)
    permit.update(
        SystemStateChanged(state=SystemState.NO_TRADE, expires_ns=10**30, reasons=(reason,), ttl_s=1e9),
        src=permit.SOURCE,
    )
    assert permit.held == frozenset()
    assert permit.allows_entry() is False  # the supervisor's NO_TRADE governs now

    permit.update(
        SystemStateChanged(state=SystemState.TRADING, expires_ns=10**30, reasons=(), ttl_s=1e9), src="supervisor"
    )
    assert permit.allows_entry() is True  # after the operator's resume


def test_a_cause_the_role_reports_healthy_releases_its_hold() -> None:
    permit = permit_of(True)
    permit.hold("unprotected:7")
    permit.release("unprotected:7")
    assert permit.allows_entry() is True
