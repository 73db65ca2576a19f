"""The transaction stream's view of open trades: it answers only what it can vouch for."""

from __future__ import annotations

from typing import Any

import pytest

from actors.broker import Transaction, TransactionHeartbeat
from actors.roles.execution.tradeview import TradeView, ViewAnswer
from tests.fakes import ManualClock

pytestmark = pytest.mark.unit

STALE_S = 12.0


def _fill(tx_id: int, instrument: str, *, opened: str | None = None, closed: tuple[str, ...] = ()) -> Transaction:
    raw: dict[str, Any] = {"type": "ORDER_FILL", "instrument": instrument}
    if opened:
        raw["tradeOpened"] = {"tradeID": opened, "units": "1000"}
    if closed:
        raw["tradesClosed"] = [{"tradeID": t} for t in closed]
    return Transaction(id=str(tx_id), type="ORDER_FILL", ts=0, raw=raw)


def _synced(trades: dict[str, str] | None = None, last_id: str = "10") -> tuple[TradeView, ManualClock]:
    clock = ManualClock()
    view = TradeView(clock, STALE_S)
    view.snapshot(trades or {}, last_id)
    return view, clock


def test_a_fill_on_the_stream_opens_and_closes_trades_in_the_view() -> None:
    view, _ = _synced({"7": "EUR_USD"})
    assert view.open_trade_on("EUR_USD", 0) == ViewAnswer("7")
    assert view.heard(_fill(11, "GBP_USD", opened="11")) == ""
    assert view.open_trade_on("GBP_USD", 0) == ViewAnswer("11")
    assert view.heard(_fill(12, "EUR_USD", closed=("7",))) == ""
    assert view.open_trade_on("EUR_USD", 0) == ViewAnswer("")


def test_transactions_the_snapshot_already_holds_change_nothing() -> None:
    view, _ = _synced({"9": "EUR_USD"}, last_id="10")
    assert view.heard(_fill(9, "EUR_USD", opened="9")) == ""
    assert view.heard(_fill(10, "USD_JPY", opened="10")) == ""  # at or before the snapshot: skipped
    assert view.open_trade_on("USD_JPY", 0) == ViewAnswer("")
    assert view.open_trade_on("EUR_USD", 0) == ViewAnswer("9")


def test_a_gap_in_the_ids_or_a_heartbeat_ahead_of_the_view_stops_every_answer() -> None:
    view, _ = _synced()
    assert view.heard(_fill(12, "EUR_USD", opened="12")).startswith("gap: transaction 12 after 10")
    assert view.open_trade_on("EUR_USD", 0) is None and view.state == "down"

    view, _ = _synced()
    assert view.heard(TransactionHeartbeat(ts=0, last_transaction_id="10")) == ""
    assert view.open_trade_on("EUR_USD", 0) == ViewAnswer("")
    assert view.heard(TransactionHeartbeat(ts=0, last_transaction_id="11")).startswith("gap: heartbeat")
    assert view.open_trade_on("EUR_USD", 0) is None


def test_an_unreadable_fill_is_a_gap_not_a_guess() -> None:
    view, _ = _synced()
    bad = Transaction(id="11", type="ORDER_FILL", ts=0, raw={"type": "ORDER_FILL", "tradeOpened": {"units": "1"}})
    assert view.heard(bad).startswith("gap: ORDER_FILL 11")
    assert view.open_trade_on("EUR_USD", 0) is None


def test_a_silent_stream_is_stale_and_the_next_line_makes_it_fresh_again() -> None:
    view, clock = _synced()
    clock.advance(STALE_S - 1)
    assert view.open_trade_on("EUR_USD", 0) == ViewAnswer("")
    clock.advance(2)  # heartbeats missing
    assert view.open_trade_on("EUR_USD", 0) is None
    view.heard(TransactionHeartbeat(ts=0, last_transaction_id="10"))
    assert view.open_trade_on("EUR_USD", 0) == ViewAnswer("")


def test_no_answer_before_the_view_holds_the_desks_own_last_transaction() -> None:
    view, _ = _synced()
    view.expect("12")  # our own fill (11) and its SL/TP (12), answered by REST a moment ago
    assert view.open_trade_on("EUR_USD", 0) is None
    view.heard(_fill(11, "EUR_USD", opened="11"))
    assert view.open_trade_on("EUR_USD", 0) is None
    view.heard(Transaction(id="12", type="STOP_LOSS_ORDER", ts=0, raw={"type": "STOP_LOSS_ORDER"}))
    assert view.open_trade_on("EUR_USD", 0) == ViewAnswer("11")


def test_a_dropped_view_answers_nothing_until_the_next_snapshot() -> None:
    view, _ = _synced({"7": "EUR_USD"})
    view.drop("stream ended")
    assert view.open_trade_on("EUR_USD", 0) is None
    assert view.heard(_fill(11, "EUR_USD", closed=("7",))) == ""  # nothing to apply to
    assert view.open_trade_on("EUR_USD", 0) is None
    view.snapshot({}, "11")
    assert view.open_trade_on("EUR_USD", 0) == ViewAnswer("")
