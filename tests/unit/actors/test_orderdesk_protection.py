"""The order desk's protection of open trades: a repair measured from the ATR of the broker's own
validated candles (never the 0.5 % fallback when candles can be read) that journals only what it
sent and is verified by the broker's answer; the shutdown check that retries and says the truth;
the intent of an order sent before a restart rebuilt from its journal rows."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.core.clock import SYSTEM_CLOCK
from actors.core.config import ExecutionConfig, RiskConfig
from actors.core.domain import OHLC, Candle, TradeState
from actors.core.errors import BrokerError, BrokerTemporaryError
from actors.roles.execution.desk import OrderDesk
from actors.roles.execution.jobs import Protect, Protection, ToSupervisor
from actors.roles.execution.orders import intent_from_rows
from actors.runtime.journal import Journal
from actors.runtime.marketview import MarketView
from actors.runtime.messages import CauseHealthy, NoTradeRequested
from tests.fakebroker import InMemoryBroker
from tests.fakes import permit_of

pytestmark = pytest.mark.unit

M15_NS = 900 * 10**9
BAR0 = 1_709_733_600 * 10**9  # 2024-03-06 14:00 UTC, a Wednesday


class _Broker(InMemoryBroker):
    """An in-memory broker whose trade-order changes fail ``refuse`` times, or every read fails."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse = 0
        self.down = False

    def _enter(self, name: str) -> None:
        if self.down:
            raise BrokerTemporaryError(f"{name}: HTTP 503: down")
        super()._enter(name)

    def set_trade_orders(self, spec: str, **kwargs: Any) -> Any:  # type: ignore[override]
        if self.refuse > 0:
            self.refuse -= 1
            raise BrokerTemporaryError("set trade orders: HTTP 503")
        return super().set_trade_orders(spec, **kwargs)


def _naked(broker: InMemoryBroker, trade_id: str = "7", units: int = 10_000, tp: str | None = None) -> None:
    zero = Decimal(0)
    broker.trades[trade_id] = TradeState(
        id=trade_id, instrument="EUR_USD", price=Decimal("1.08450"), open_ts=1, state="OPEN",
        initial_units=Decimal(units), current_units=Decimal(units), realized_pl=zero, unrealized_pl=zero,
        take_profit_price=None if tp is None else Decimal(tp), take_profit_order_id=None if tp is None else "3",
    )  # fmt: skip


def _candles(n: int = 16, true_range: str = "0.0010") -> list[Candle]:
    # Flat closes at 1.08500 with a constant range: the ATR is ``true_range`` exactly.
    half, spread = Decimal(true_range) / 2, Decimal("0.00010")
    out = []
    for i in range(n):
        mid = Decimal("1.08500")
        bid = OHLC(o=mid - spread / 2, h=mid + half - spread / 2, l=mid - half - spread / 2, c=mid - spread / 2)
        ask = OHLC(o=bid.o + spread, h=bid.h + spread, l=bid.l + spread, c=bid.c + spread)
        out.append(Candle(ts=BAR0 + i * M15_NS, volume=100 + i, complete=i < n - 1, bid=bid, ask=ask))
    return out


def _desk(
    tmp_path: Path, broker: InMemoryBroker, journaled: list[tuple[str, dict[str, Any]]], posted: list[Any]
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
        permit=permit_of(False),
        open_broker=lambda **_: broker,
        host_id="testhost",
        clock=SYSTEM_CLOCK,
    )


def test_a_repair_after_a_restart_measures_its_stop_from_the_atr_of_the_brokers_candles(tmp_path: Path) -> None:
    # Arrange: a fresh process (no bars, no quote); the broker has 15 complete M15 bars, ATR 0.0010.
    broker, journaled, posted = _Broker(), [], []  # type: ignore[var-annotated]
    broker.candle_data[("EUR_USD", "M15")] = _candles()
    _naked(broker)
    desk = _desk(tmp_path, broker, journaled, posted)

    # Act
    desk._protect_requested(broker, Protect("7", "repair", "EUR_USD"))

    # Assert: SL = bid - 1.5 x ATR (risk.sl_atr_mult), not 0.5 % of the price (~0.0054 away).
    trade = broker.trades["7"]
    bid = Decimal("1.08495")  # the latest candle's bid close
    assert trade.stop_loss_price is not None and trade.take_profit_price is not None
    distance = bid - trade.stop_loss_price
    assert Decimal("0.0015") <= distance <= Decimal("0.00151")
    (row,) = [b for k, b in journaled if k == "exec.exit_changed"]
    assert row["atr"] == pytest.approx(0.0010) and row["price_basis"] == "latest candle"
    assert any(isinstance(p, ToSupervisor) and isinstance(p.body, CauseHealthy) for p in posted)


def test_a_repair_journals_only_what_it_sent(tmp_path: Path) -> None:
    broker, journaled, posted = _Broker(), [], []  # type: ignore[var-annotated]
    broker.candle_data[("EUR_USD", "M15")] = _candles()
    _naked(broker, tp="1.09500")  # the TP is there; only the SL is missing

    _desk(tmp_path, broker, journaled, posted)._protect_requested(broker, Protect("7", "repair", "EUR_USD"))

    (row,) = [b for k, b in journaled if k == "exec.exit_changed"]
    assert "stop_loss" in row and "take_profit" not in row
    assert broker.trades["7"].take_profit_price == Decimal("1.09500")


def test_a_close_that_fails_latches_the_reason_with_what_to_do(tmp_path: Path) -> None:
    broker, journaled, posted = _Broker(), [], []  # type: ignore[var-annotated]
    _naked(broker)
    broker.set_price("EUR_USD", Decimal("1.08440"), Decimal("1.08450"))
    broker.fail_next(BrokerError("unused"))  # the trade read fails first: nothing is known, nothing is closed

    desk = _desk(tmp_path, broker, journaled, posted)
    desk._protect_requested(broker, Protect("7", "close", "EUR_USD"))

    (request,) = [p.body for p in posted if isinstance(p, ToSupervisor) and isinstance(p.body, NoTradeRequested)]
    assert request.code == "unprotected:7" and request.latch
    assert "close it at the broker by hand" in request.detail
    assert [k for k, _ in journaled] == ["exec.protect_failed"]


def test_the_shutdown_check_retries_a_refused_repair_until_it_is_verified(tmp_path: Path) -> None:
    broker, journaled, posted = _Broker(), [], []  # type: ignore[var-annotated]
    broker.candle_data[("EUR_USD", "M15")] = _candles()
    _naked(broker)
    broker.refuse = 2  # two 503s, then the repair goes through
    desk = _desk(tmp_path, broker, journaled, posted)
    job = Protection(until=SYSTEM_CLOCK.monotonic() + 10.0)

    report = desk._shutdown_protection(broker, job, threading.Event())

    assert report.complete and report.attempts == 3
    assert [(t.trade_id, t.outcome, t.verified) for t in report.trades] == [("7", "repaired", True)]
    (row,) = [b for k, b in journaled if k == "shutdown.protection"]
    assert row["complete"] is True and row["unverified"] == []


def test_the_shutdown_check_never_calls_an_unverified_trade_complete(tmp_path: Path) -> None:
    broker, journaled, posted = _Broker(), [], []  # type: ignore[var-annotated]
    _naked(broker)
    broker.refuse = 10_000
    job = Protection(until=SYSTEM_CLOCK.monotonic() + 0.5)

    report = _desk(tmp_path, broker, journaled, posted)._shutdown_protection(broker, job, threading.Event())

    assert not report.complete
    assert [t.trade_id for t in report.unverified] == ["7"]
    assert report.summary.startswith("NOT VERIFIED: 7 EUR_USD (SL NONE, TP NONE: failed: BrokerTemporaryError")
    (row,) = [b for k, b in journaled if k == "shutdown.protection"]
    assert row["complete"] is False and row["unverified"] == ["7"]


def test_the_shutdown_check_with_the_broker_unreachable_is_journaled_unverified(tmp_path: Path) -> None:
    broker, journaled, posted = _Broker(), [], []  # type: ignore[var-annotated]
    broker.down = True
    job = Protection(until=SYSTEM_CLOCK.monotonic() + 0.3)

    report = _desk(tmp_path, broker, journaled, posted)._shutdown_protection(broker, job, threading.Event())

    assert not report.complete and report.trades == () and report.attempts >= 2
    assert report.summary.startswith("NOT VERIFIED: the open trades could not be read (BrokerTemporaryError")
    assert [b["complete"] for k, b in journaled if k == "shutdown.protection"] == [False]


def test_an_order_sent_before_a_restart_gets_its_intent_back_from_the_journal_rows() -> None:
    sending = {
        "intent_id": "main.EUR_USD.1.L",
        "instrument": "EUR_USD",
        "model_version": "m1",
        "units": "-2500",
        "stop_loss": "1.08700",
        "take_profit": "1.08100",
        "client_id": "main.EUR_USD.1.L",
    }
    decided = {"decision_price": 1.0845, "bar_ts": BAR0, "p_up": 0.31, "multiplier": 0.5}

    intent = intent_from_rows(sending, decided, decided_ns=42)

    assert intent is not None
    assert (intent.direction, intent.units, intent.stop_loss, intent.bar_ts) == ("short", "2500", "1.08700", BAR0)
    assert intent.sl_distance == pytest.approx(0.0025)
    assert intent_from_rows({"intent_id": "x"}, None, decided_ns=0) is None  # rows that do not hold it
