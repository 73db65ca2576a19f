"""The typed journal rows write the very bytes the dicts they replaced wrote.

Each case is one row as a call site of the order path built it before the records (the dict
literal copied from that code, at values an operator sees) and the record that call site builds
now: the journal stores ``orjson.dumps(body)``, so the two must serialize byte for byte alike:
same keys, same order, same values, ``null`` where the dict had ``None``, absent where it had no
key.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from actors.core.domain import InstrumentId, IntentId, SkipReason
from actors.runtime.journal import Journal
from actors.runtime.journalrows import (
    ExecAmbiguousRow,
    ExecCancelledRow,
    ExecClosedRow,
    ExecErrorRow,
    ExecFilledRow,
    ExecManagedRow,
    ExecProtectedRow,
    ExecProtectFailedRow,
    ExecRejectedRow,
    ExecRepairedRow,
    ExecResolvedFillRow,
    ExecResolvedRow,
    ExecSendingRow,
    ExecStopMovedRow,
    JournalRecord,
    RiskIntentRow,
    RiskSkipRow,
    ShutdownProtectionRow,
    ShutdownUncheckedRow,
)

pytestmark = pytest.mark.unit

INTENT = IntentId("main.EUR_USD.1709733600000000000.L")
EUR = InstrumentId("EUR_USD")
BASE = {"intent_id": INTENT, "instrument": EUR, "model_version": "2024-03-01.a1b2c3"}
IDS: dict[str, Any] = {"intent_id": INTENT, "instrument": EUR, "model_version": "2024-03-01.a1b2c3"}
REFUSAL = "position_open at send time: trade 41 on EUR_USD is open at the broker"
SENT_DETAIL = "INSUFFICIENT_MARGIN: order cancelled"
UNRESOLVED = "order @main.EUR_USD.1709733600000000000.L still unresolved after 30s (order is PENDING)"

# (what the old code journaled, kind and body; what the new code journals)
CASES: list[tuple[str, str, dict[str, Any], JournalRecord]] = [
    (
        "risk.intent",
        "risk.intent",
        {
            "intent_id": INTENT,
            "instrument": EUR,
            "direction": "long",
            "units": "12000",
            "stop_loss": "1.08310",
            "take_profit": "1.08880",
            "decision_price": 1.08502,
            "risk_home": round(23.04123456, 4),
            "margin_home": round(432.1987654, 4),
            "multiplier": 0.5,
            "p_up": 0.6312,
            "bar_ts": 1_709_733_600_000_000_000,
            "model_version": "2024-03-01.a1b2c3",
        },
        RiskIntentRow(
            intent_id=INTENT,
            instrument=EUR,
            direction="long",
            units="12000",
            stop_loss="1.08310",
            take_profit="1.08880",
            decision_price=1.08502,
            risk_home=round(23.04123456, 4),
            margin_home=round(432.1987654, 4),
            multiplier=0.5,
            p_up=0.6312,
            bar_ts=1_709_733_600_000_000_000,
            model_version="2024-03-01.a1b2c3",
        ),
    ),
    (
        "risk.skip below the threshold (no direction)",
        "risk.skip",
        {
            "instrument": EUR,
            "bar_ts": 1_709_733_600_000_000_000,
            "reason": SkipReason.BELOW_THRESHOLD,
            "detail": "p_up 0.52 below 0.55",
            "direction": None,
            "p_up": 0.52,
            "model_version": "2024-03-01.a1b2c3",
        },
        RiskSkipRow(
            instrument=EUR,
            bar_ts=1_709_733_600_000_000_000,
            reason=SkipReason.BELOW_THRESHOLD,
            detail="p_up 0.52 below 0.55",
            direction=None,
            p_up=0.52,
            model_version="2024-03-01.a1b2c3",
        ),
    ),
    (
        "exec.rejected at send time",
        "exec.rejected",
        {**BASE, "reason": REFUSAL, "sent": False},
        ExecRejectedRow(**IDS, reason=REFUSAL, sent=False),
    ),
    (
        "exec.rejected by the broker",
        "exec.rejected",
        {**BASE, "reason": "NOT_SENT", "detail": "429 Too Many Requests", "sent": True},
        ExecRejectedRow(**IDS, reason="NOT_SENT", detail="429 Too Many Requests", sent=True),
    ),
    (
        "exec.cancelled",
        "exec.cancelled",
        {**BASE, "reason": "INSUFFICIENT_MARGIN", "detail": SENT_DETAIL, "sent": True},
        ExecCancelledRow(**IDS, reason="INSUFFICIENT_MARGIN", detail=SENT_DETAIL, sent=True),
    ),
    (
        "exec.sending",
        "exec.sending",
        {
            **BASE,
            "units": "12000",
            "stop_loss": "1.08310",
            "take_profit": "1.08880",
            "client_id": INTENT,
            "tag": "host-7f3a",
        },
        ExecSendingRow(
            **IDS,
            units="12000",
            stop_loss="1.08310",
            take_profit="1.08880",
            client_id=INTENT,
            tag="host-7f3a",
        ),
    ),
    (
        "exec.ambiguous on the send",
        "exec.ambiguous",
        {**BASE, "detail": "read timed out"},
        ExecAmbiguousRow(**IDS, detail="read timed out"),
    ),
    (
        "exec.ambiguous found by client id",
        "exec.ambiguous",
        {**BASE, "detail": "answer lost; found by client id", "resolved": True},
        ExecAmbiguousRow(**IDS, detail="answer lost; found by client id", resolved=True),
    ),
    (
        "exec.ambiguous past the timeout",
        "exec.ambiguous",
        {"intent_id": INTENT, "final": True, "detail": UNRESOLVED},
        ExecAmbiguousRow(intent_id=INTENT, final=True, detail=UNRESOLVED),
    ),
    (
        "exec.ambiguous after a restart",
        "exec.ambiguous",
        {"intent_id": INTENT, "detail": "outcome lost (restart)"},
        ExecAmbiguousRow(intent_id=INTENT, detail="outcome lost (restart)"),
    ),
    (
        "exec.filled",
        "exec.filled",
        {
            "intent_id": INTENT,
            "instrument": EUR,
            "trade_id": "42",
            "units": "12000",
            "fill_price": "1.08507",
            "slippage_pips": 0.5,
            "latency_ms": 2.5,
            "model_version": "2024-03-01.a1b2c3",
        },
        ExecFilledRow(
            intent_id=INTENT,
            instrument=EUR,
            trade_id="42",
            units="12000",
            fill_price="1.08507",
            slippage_pips=0.5,
            latency_ms=2.5,
            model_version="2024-03-01.a1b2c3",
        ),
    ),
    (
        "exec.resolved of a fill",
        "exec.resolved",
        {
            "intent_id": INTENT,
            "instrument": EUR,
            "trade_id": "42",
            "units": "12000",
            "fill_price": "1.08507",
            "slippage_pips": None,
            "latency_ms": None,
            "model_version": "2024-03-01.a1b2c3",
            "outcome": "filled",
        },
        ExecResolvedFillRow(
            intent_id=INTENT,
            instrument=EUR,
            trade_id="42",
            units="12000",
            fill_price="1.08507",
            slippage_pips=None,
            latency_ms=None,
            model_version="2024-03-01.a1b2c3",
        ),
    ),
    (
        "exec.resolved filled without a trade to book",
        "exec.resolved",
        {
            "intent_id": INTENT,
            "instrument": "EUR_USD",
            "outcome": "filled",
            "trade_id": "",
            "detail": "filled; booked by the reconciler",
        },
        ExecResolvedRow(
            intent_id=INTENT,
            instrument="EUR_USD",
            outcome="filled",
            trade_id="",
            detail="filled; booked by the reconciler",
        ),
    ),
    (
        "exec.resolved cancelled",
        "exec.resolved",
        {"intent_id": INTENT, "outcome": "cancelled"},
        ExecResolvedRow(intent_id=INTENT, outcome="cancelled"),
    ),
    (
        "exec.error of a job",
        "exec.error",
        {"job": "Flatten", "error": "BrokerTemporaryError: 503"},
        ExecErrorRow(job="Flatten", error="BrokerTemporaryError: 503"),
    ),
    (
        "exec.error of an unread close",
        "exec.error",
        {"job": "Exits", "trade_id": "42", "error": "BrokerTemporaryError: 503", "tries": 2},
        ExecErrorRow(job="Exits", trade_id="42", error="BrokerTemporaryError: 503", tries=2),
    ),
    (
        "exec.error of a repair's candles",
        "exec.error",
        {"job": "Repair", "trade_id": "42", "error": "candles: 503"},
        ExecErrorRow(job="Repair", trade_id="42", error="candles: 503"),
    ),
    (
        "exec.closed by the desk",
        "exec.closed",
        {
            "trade_id": "42",
            "instrument": "EUR_USD",
            "reason": "time_exit",
            "price": "1.08611",
            "realized_pl": "-12.4100",
            "model_version": "",
        },
        ExecClosedRow(
            trade_id="42",
            instrument="EUR_USD",
            reason="time_exit",
            price="1.08611",
            realized_pl="-12.4100",
            model_version="",
        ),
    ),
    (
        "exec.closed at the broker",
        "exec.closed",
        {
            "trade_id": "42",
            "instrument": "EUR_USD",
            "reason": "closed at the broker (SL/TP or outside the host)",
            "realized_pl": "13.0800",
            "model_version": "2024-03-01.a1b2c3",
        },
        ExecClosedRow(
            trade_id="42",
            instrument="EUR_USD",
            reason="closed at the broker (SL/TP or outside the host)",
            realized_pl="13.0800",
            model_version="2024-03-01.a1b2c3",
        ),
    ),
    (
        "exec.closed unread",
        "exec.closed",
        {"trade_id": "42", "instrument": "EUR_USD", "reason": "closed at the broker", "realized_pl": "unknown"},
        ExecClosedRow(trade_id="42", instrument="EUR_USD", reason="closed at the broker", realized_pl="unknown"),
    ),
    (
        "exec.exit_changed by the exit rules",
        "exec.exit_changed",
        {"trade_id": "42", "instrument": "EUR_USD", "reason": "breakeven", "stop_loss": "1.08507", "was": "1.08310"},
        ExecStopMovedRow(trade_id="42", instrument="EUR_USD", reason="breakeven", stop_loss="1.08507", was="1.08310"),
    ),
    (
        "exec.exit_changed by a repair of the SL only, without an ATR",
        "exec.exit_changed",
        {
            "trade_id": "42",
            "instrument": "EUR_USD",
            "reason": "repaired (reconciler)",
            "stop_loss": "1.07960",
            "atr": None,
            "price_basis": "entry price (no price known)",
        },
        ExecRepairedRow(
            trade_id="42",
            instrument="EUR_USD",
            reason="repaired (reconciler)",
            stop_loss="1.07960",
            atr=None,
            price_basis="entry price (no price known)",
        ),
    ),
    (
        "exec.exit_changed by a repair of both",
        "exec.exit_changed",
        {
            "trade_id": "42",
            "instrument": "EUR_USD",
            "reason": "repaired (shutdown check)",
            "stop_loss": "1.08350",
            "take_profit": "1.08800",
            "atr": 0.001,
            "price_basis": "live quote",
        },
        ExecRepairedRow(
            trade_id="42",
            instrument="EUR_USD",
            reason="repaired (shutdown check)",
            stop_loss="1.08350",
            take_profit="1.08800",
            atr=0.001,
            price_basis="live quote",
        ),
    ),
    (
        "exec.protect_failed",
        "exec.protect_failed",
        {"trade_id": "42", "instrument": "EUR_USD", "action": "close", "error": "BrokerRejectedError: halted"},
        ExecProtectFailedRow(trade_id="42", instrument="EUR_USD", action="close", error="BrokerRejectedError: halted"),
    ),
    (
        "exec.protected",
        "exec.protected",
        {"trade_id": "42", "instrument": "EUR_USD", "action": "repair", "outcome": "repaired"},
        ExecProtectedRow(trade_id="42", instrument="EUR_USD", action="repair", outcome="repaired"),
    ),
    (
        "exec.managed",
        "exec.managed",
        {
            "trade_id": "42",
            "instrument": "EUR_USD",
            "why": "adopted",
            "entry_price": "1.08500",
            "initial_stop_loss": "1.08350",
            "open_ts": 1709733600000000000,
            "open_bar_ts": 1709732700000000000,
        },
        ExecManagedRow(
            trade_id="42",
            instrument="EUR_USD",
            why="adopted",
            entry_price="1.08500",
            initial_stop_loss="1.08350",
            open_ts=1709733600000000000,
            open_bar_ts=1709732700000000000,
        ),
    ),
    (
        "shutdown.protection checked",
        "shutdown.protection",
        {
            "complete": False,
            "trades": {"42": "repaired", "43": "failed: BrokerTemporaryError: 503"},
            "unverified": ["43"],
            "cancelled_orders": ["77"],
            "pending_orders": None,
            "attempts": 4,
            "error": "",
            "summary": "NOT VERIFIED: 43 EUR_USD (SL NONE, TP NONE: failed); 2 open trades",
        },
        ShutdownProtectionRow(
            complete=False,
            trades={"42": "repaired", "43": "failed: BrokerTemporaryError: 503"},
            unverified=["43"],
            cancelled_orders=["77"],
            pending_orders=None,
            attempts=4,
            error="",
            summary="NOT VERIFIED: 43 EUR_USD (SL NONE, TP NONE: failed); 2 open trades",
        ),
    ),
    (
        "shutdown.protection unchecked",
        "shutdown.protection",
        {"complete": False, "unverified": [], "summary": "NOT VERIFIED: the protection check did not finish"},
        ShutdownUncheckedRow(
            complete=False, unverified=[], summary="NOT VERIFIED: the protection check did not finish"
        ),
    ),
]


@pytest.mark.parametrize(("kind", "old", "new"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_record_serializes_to_the_bytes_of_the_dict_it_replaced(
    kind: str, old: dict[str, Any], new: JournalRecord
) -> None:
    assert kind == new.KIND
    assert orjson.dumps(new.body(), option=orjson.OPT_NON_STR_KEYS) == orjson.dumps(old, option=orjson.OPT_NON_STR_KEYS)


def test_the_journal_stores_a_record_and_its_dict_alike(tmp_path: Any) -> None:
    # Arrange: one journal, each case written the old way and the new way.
    journal = Journal(tmp_path / "journal.sqlite", src="execution")

    # Act
    for _name, kind, old, new in CASES:
        journal.write(kind, old)
        journal.write(new.KIND, new.body())

    # Assert: the stored text, row by row, as sqlite holds it.
    rows = journal._db.execute("SELECT kind, body FROM journal ORDER BY seq").fetchall()
    assert len(rows) == 2 * len(CASES)
    assert rows[0::2] == rows[1::2]
