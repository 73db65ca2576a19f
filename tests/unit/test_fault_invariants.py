"""The fault matrix's invariant checker (tests/faults/invariants.py) on made-up records: each
invariant catches what it must and lets through what the permit and the batches allow."""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.invariants import (
    BrokerRecord,
    Limits,
    check_run,
    client_id_violations,
    fault_timing,
    naked_spans,
    orders_while_not_trading,
    sendings_without_outcome,
    state_events,
)
from tests.helpers import JournalRow

pytestmark = pytest.mark.unit

S = 1_000_000_000
T0 = 1_700_000_000 * S
LIMITS = Limits(permit_ttl_s=3.0, repair_deadline_s=30.0, poll_interval_s=1.0)


def row(seq: int, at_s: float, kind: str, **body: Any) -> JournalRow:
    return JournalRow(seq=seq, ts_ns=T0 + int(at_s * S), src="supervisor", kind=kind, corr=None, body=body)


def changed(seq: int, at_s: float, to: str, *reasons: str) -> JournalRow:
    return row(seq, at_s, "state.changed", to=to, reasons=list(reasons))


def post(at_s: float, client_id: str | None = "c1") -> dict[str, Any]:
    return {
        "t": at_s,
        "ts_ns": T0 + int(at_s * S),
        "method": "POST",
        "path": "/v3/accounts/101-001-0000000-001/orders",
        "client_id": client_id,
        "order_type": "MARKET",
        "instrument": "EUR_USD",
    }


RUN = [
    row(1, 0.0, "host.started"),
    changed(2, 0.5, "RECONCILING"),
    changed(3, 1.0, "TRADING"),
    changed(4, 10.0, "NO_TRADE", "role_down:feed"),
    changed(5, 20.0, "TRADING"),
]


@pytest.mark.parametrize(
    ("at_s", "ok"),
    [
        (0.2, False),  # before the first TRADING
        (0.9, False),
        (5.0, True),
        (10.5, True),  # the permit's propagation after a revocation out loud
        (11.5, False),
        (19.0, False),
        (25.0, True),
    ],
)
def test_an_order_post_is_allowed_only_in_trading_or_within_the_permits_propagation(at_s: float, ok: bool) -> None:
    found = orders_while_not_trading([post(at_s)], state_events(RUN), LIMITS)
    assert (found == []) is ok, found


def test_after_the_root_is_killed_a_post_is_allowed_only_while_the_permit_has_not_expired() -> None:
    # TRADING from 20 s; the test killed the root at 30 s (no row); a new run started at 40 s.
    rows = [*RUN, row(6, 40.0, "host.started"), changed(7, 41.0, "RECONCILING"), changed(8, 42.0, "TRADING")]
    events = state_events(rows, outages=[T0 + 30 * S])

    assert orders_while_not_trading([post(32.5)], events, LIMITS) == []
    late = orders_while_not_trading([post(34.0, "late")], events, LIMITS)
    assert len(late) == 1 and "late" in late[0] and "4.000s after TRADING ended (silence" in late[0]
    assert orders_while_not_trading([post(41.5)], events, LIMITS) != []  # the new run is RECONCILING
    assert orders_while_not_trading([post(43.0)], events, LIMITS) == []


def test_a_client_id_posted_twice_or_a_post_without_one_is_a_violation() -> None:
    assert client_id_violations([post(1, "a"), post(2, "b")]) == []
    assert client_id_violations([post(1, "a"), post(2, "a"), post(3, None)]) == [
        "client id a POSTed 2 times",
        "1 order POST(s) without a client id",
    ]


def tx(tx_id: int, at_s: float, kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": str(tx_id), "wall_ns": T0 + int(at_s * S), "type": kind, **fields}


def fill(tx_id: int, at_s: float, *, opened: str | None = None, closed: str | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"instrument": "EUR_USD"}
    if opened:
        extra["tradeOpened"] = {"tradeID": opened}
    if closed:
        extra["tradesClosed"] = [{"tradeID": closed}]
    return tx(tx_id, at_s, "ORDER_FILL", **extra)


def test_a_trade_filled_with_its_sl_and_tp_in_one_batch_is_never_naked() -> None:
    history = [
        tx(3, 1.0, "MARKET_ORDER"),
        fill(4, 1.0, opened="4"),
        tx(5, 1.0, "TAKE_PROFIT_ORDER", tradeID="4"),
        tx(6, 1.0, "STOP_LOSS_ORDER", tradeID="4"),
        # A trailing move: the stop replaced in one batch.
        tx(7, 9.0, "ORDER_CANCEL", orderID="6", reason="CLIENT_REQUEST_REPLACED"),
        tx(8, 9.0, "STOP_LOSS_ORDER", tradeID="4"),
        fill(9, 20.0, closed="4"),
        tx(10, 20.0, "ORDER_CANCEL", orderID="5", reason="LINKED_TRADE_CLOSED"),
    ]
    assert naked_spans(history) == []


def test_naked_spans_follow_the_broker_from_fill_cancel_and_repair_to_close() -> None:
    history = [
        fill(3, 1.0, opened="3"),  # a trade opened without stops (open_trade)
        tx(4, 6.0, "STOP_LOSS_ORDER", tradeID="3"),  # half repaired
        tx(5, 8.0, "TAKE_PROFIT_ORDER", tradeID="3"),  # protected from 8 s
        tx(6, 10.0, "ORDER_CANCEL", orderID="4", reason="CLIENT_REQUEST"),  # its SL removed
        fill(7, 50.0, closed="3"),  # closed, still without its SL
        fill(8, 60.0, opened="8"),
        tx(9, 60.0, "TAKE_PROFIT_ORDER", tradeID="8"),  # never gets an SL
    ]

    spans = naked_spans(history)

    assert [(s.trade_id, s.start_ns, s.end_ns, s.missing) for s in spans] == [
        ("3", T0 + 1 * S, T0 + 8 * S, "SL+TP"),
        ("3", T0 + 10 * S, T0 + 50 * S, "SL"),
        ("8", T0 + 60 * S, None, "SL"),
    ]
    record = BrokerRecord(requests=[], transactions=history, at_ns=T0 + 80 * S)
    with pytest.raises(AssertionError) as e:
        check_run(RUN, [record], LIMITS)
    message = str(e.value)
    assert "trade 3 (EUR_USD) was open without SL for 40.0s" in message
    assert "trade 8 (EUR_USD) was open without SL for 20.0s and still is" not in message  # 20 s < 31 s
    assert "7.0s" not in message  # 7 s naked: within the deadline


def test_every_sending_needs_an_outcome_row_and_only_a_final_ambiguous_counts() -> None:
    rows = [
        row(1, 1, "exec.sending", intent_id="a"),
        row(2, 1, "exec.filled", intent_id="a"),
        row(3, 2, "exec.sending", intent_id="b"),
        row(4, 2, "exec.ambiguous", intent_id="b", final=True),
        row(5, 3, "exec.sending", intent_id="c"),
        row(6, 3, "exec.ambiguous", intent_id="c", detail="answer lost"),
        row(7, 4, "exec.sending", intent_id="d"),
        row(8, 9, "exec.resolved", intent_id="d", outcome="filled"),
    ]
    assert sendings_without_outcome(rows) == ["exec.sending c has no outcome row"]


def test_check_run_names_every_violated_invariant() -> None:
    record = BrokerRecord(requests=[post(15.0, "x"), post(25.0, "x")], transactions=[], at_ns=T0 + 30 * S)
    rows = [*RUN, row(9, 25.0, "exec.sending", intent_id="x")]
    with pytest.raises(AssertionError) as e:
        check_run(rows, [record], LIMITS)
    message = str(e.value)
    assert "(a) order POSTs while not TRADING" in message and "5.000s after TRADING ended" in message
    assert "(b) client ids" in message and "client id x POSTed 2 times" in message
    assert "(d) exec.sending without an outcome" in message
    assert "(c)" not in message


def test_fault_timing_measures_to_no_trade_and_back_by_itself_or_after_resume() -> None:
    transient = fault_timing(RUN, T0 + 9 * S)
    assert (transient.to_no_trade_s, transient.back_s, transient.back_by) == (1.0, 11.0, "itself")
    assert transient.reasons == ("role_down:feed",)
    assert transient.cells() == ("1.00 s", "11.00 s")

    latched = [*RUN[:4], row(5, 18.0, "operator.resume", cleared=["another_host"]), changed(6, 18.5, "TRADING")]
    timing = fault_timing(latched, T0 + 9 * S)
    assert (timing.back_s, timing.back_by) == (0.5, "ctl resume")
    assert timing.cells() == ("1.00 s", "0.50 s after `ctl resume`")

    never = fault_timing(RUN[:3], T0 + 5 * S)
    assert never.to_no_trade_s is None and never.back_s is None and never.cells() == ("—", "—")
