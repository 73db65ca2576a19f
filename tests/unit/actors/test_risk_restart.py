"""A restarted risk role rebuilds its loss cool-downs and its intents in flight from the journal.

Each test writes what the journal of a run holds when the risk role is killed (its own rows and
the execution role's), starts a new role on that journal and looks at its next decisions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.core.config import RiskConfig
from actors.core.domain import InstrumentId, TradeId
from actors.runtime.actor import HeartbeatDue
from actors.runtime.journal import Journal
from actors.runtime.messages import TOPIC_RISK_SKIP, ExecutionReport, IntentSkipped, TradeView
from tests.helpers import poll_until
from tests.unit.actors.riskworld import BAR, M15, NS, WALL, decide, running_role, snapshot, tell

pytestmark = [pytest.mark.unit, pytest.mark.timeout(20)]

EUR = "main.EUR_USD.1709732700000000000.L"  # decided at the close before BAR
ONE_SLOT = RiskConfig(max_open_positions=1)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    db = Journal(tmp_path / "journal.sqlite", src="test")
    yield db
    db.close()


def _write(journal: Journal, *rows: tuple[str, dict[str, Any], int]) -> None:
    # (kind, body, seconds before the role's wall clock)
    journal.write_many([(kind, body, None, WALL - int(ago_s * NS)) for kind, body, ago_s in rows])


def _intent(intent_id: str = EUR, instrument: str = "EUR_USD", units: str = "100000") -> dict[str, Any]:
    # A risk.intent row as the role journals it; 3 623 USD of margin and spread taken.
    prices = {"stop_loss": "1.08000", "take_profit": "1.09000", "decision_price": 1.0851}
    sizing = {"risk_home": 500.0, "margin_home": 3623.0, "multiplier": 1.0}
    signal = {"p_up": 0.9, "bar_ts": BAR - M15, "model_version": "v1"}
    return {"intent_id": intent_id, "instrument": instrument, "direction": "long", "units": units,
            **prices, **sizing, **signal}  # fmt: skip


def _reasons(decisions: list[Any]) -> dict[str, str]:
    return {d.instrument: (d.reason if isinstance(d, IntentSkipped) else "intent") for d in decisions}


# --- Cool-downs ---------------------------------------------------------------------------------


def test_a_losing_close_journals_the_cool_down_it_starts(journal: Journal) -> None:
    with running_role(journal=journal) as (ref, runtime, _):
        report = ExecutionReport(status="CLOSED", instrument=InstrumentId("EUR_USD"), trade_id="7", realized_pl="-25.5")
        tell(ref, report)
        rows = poll_until(
            lambda: [b for k, b, _ in list(runtime.journaled) if k == "risk.cooldown"], timeout_s=5, what="the row"
        )

    assert rows == [{"instrument": "EUR_USD", "trade_id": "7", "realized_pl": "-25.5", "since_ns": BAR + M15,
                     "until_ns": BAR + M15 + 3600 * NS, "estimated": False}]  # fmt: skip


def test_a_cool_down_started_before_a_restart_still_holds_after_it(journal: Journal) -> None:
    _write(
        journal,
        ("exec.closed", {"trade_id": "7", "instrument": "EUR_USD", "reason": "SL", "realized_pl": "-25.5"}, 10),
        (
            "risk.cooldown",
            {
                "instrument": "EUR_USD",
                "trade_id": "7",
                "realized_pl": "-25.5",
                "since_ns": BAR,
                "until_ns": BAR + 3600 * NS,
                "estimated": False,
            },
            10,
        ),
    )
    with running_role(journal=journal) as (ref, runtime, _):
        tell(ref, snapshot())

        decisions = decide(ref, runtime)

    assert _reasons(decisions) == {"EUR_USD": "cooldown", "GBP_USD": "intent"}


def test_a_loss_reported_while_the_role_was_down_starts_a_cool_down_from_its_journal_row(journal: Journal) -> None:
    # The execution role reported the close while the risk role was being restarted: only its row.
    _write(journal, ("exec.closed", {"trade_id": "7", "instrument": "EUR_USD", "reason": "SL",
                                     "realized_pl": "-25.5"}, 2))  # fmt: skip
    with running_role(journal=journal) as (ref, runtime, _):
        tell(ref, snapshot())

        decisions = decide(ref, runtime)

    assert _reasons(decisions) == {"EUR_USD": "cooldown", "GBP_USD": "intent"}
    [row] = [b for k, b, _ in list(runtime.journaled) if k == "risk.cooldown"]
    assert row["estimated"] is True and row["trade_id"] == "7"
    assert BAR + M15 - 3 * NS <= row["since_ns"] <= BAR + M15  # at most the row's age before the close


def test_old_losses_and_wins_start_no_cool_down(journal: Journal) -> None:
    _write(
        journal,
        ("exec.closed", {"trade_id": "5", "instrument": "EUR_USD", "reason": "SL", "realized_pl": "-25.5"}, 7200),
        ("exec.closed", {"trade_id": "6", "instrument": "GBP_USD", "reason": "TP", "realized_pl": "40.0"}, 5),
        ("exec.closed", {"trade_id": "8", "instrument": "GBP_USD", "reason": "gone", "realized_pl": "unknown"}, 4),
    )
    with running_role(journal=journal) as (ref, runtime, _):
        tell(ref, snapshot())

        decisions = decide(ref, runtime)

    assert _reasons(decisions) == {"EUR_USD": "intent", "GBP_USD": "intent"}


# --- Intents in flight --------------------------------------------------------------------------


def test_an_intent_sent_before_a_restart_still_takes_its_slot(journal: Journal) -> None:
    # Sent, no outcome yet, not in the account: the only open slot is taken.
    _write(journal, ("risk.intent", _intent(), 3), ("exec.sending", {"intent_id": EUR, "instrument": "EUR_USD"}, 3))
    with running_role(ONE_SLOT, journal=journal) as (ref, runtime, clock):
        tell(ref, snapshot())

        decisions = decide(ref, runtime)
        clock.advance(10 * ONE_SLOT.intent_expiry_s)  # reported on: never expires
        ref.tell(HeartbeatDue())
        still = ref.proxy().in_flight.get(timeout=5)

    assert _reasons(decisions) == {"EUR_USD": "position_open", "GBP_USD": "max_open_positions"}
    assert set(still) == {"EUR_USD"} and still["EUR_USD"].reported


def test_a_rebuilt_intent_counts_its_margin(journal: Journal) -> None:
    _write(journal, ("risk.intent", _intent(), 3), ("exec.sending", {"intent_id": EUR, "instrument": "EUR_USD"}, 3))
    with running_role(journal=journal) as (ref, runtime, _):
        tell(ref, snapshot("8600", margin_used="91400"))  # 3 600 above the reserve, 3 623 taken by EUR

        decisions = decide(ref, runtime, names=("GBP_USD",))

    assert _reasons(decisions) == {"GBP_USD": "margin"}


def test_an_intent_the_execution_role_never_took_expires_after_a_restart_too(journal: Journal) -> None:
    _write(journal, ("risk.intent", _intent(), 100))
    with running_role(ONE_SLOT, journal=journal) as (ref, runtime, clock):
        tell(ref, snapshot())
        kept = decide(ref, runtime, names=("GBP_USD",))
        clock.advance(ONE_SLOT.intent_expiry_s - 100 + 1)  # its age now passes intent_expiry_s
        ref.tell(HeartbeatDue())
        freed = decide(ref, runtime, names=("GBP_USD",))

    assert _reasons(kept) == {"GBP_USD": "max_open_positions"}
    assert _reasons(freed) == {"GBP_USD": "intent"}
    assert [b["intent_id"] for k, b, _ in list(runtime.journaled) if k == "risk.intent_expired"] == [EUR]


@pytest.mark.parametrize(
    "outcome",
    [
        [("exec.cancelled", {"intent_id": EUR, "reason": "INSUFFICIENT_MARGIN"})],
        [("exec.rejected", {"intent_id": EUR, "reason": "stale intent", "sent": False})],
        [("exec.resolved", {"intent_id": EUR, "outcome": "cancelled"})],
        [("risk.intent_expired", {"intent_id": EUR, "instrument": "EUR_USD"})],
        [
            ("exec.filled", {"intent_id": EUR, "instrument": "EUR_USD", "trade_id": "9"}),
            ("exec.closed", {"trade_id": "9", "instrument": "EUR_USD", "realized_pl": "12.0"}),
        ],
        [
            ("exec.ambiguous", {"intent_id": EUR, "final": True, "detail": "unresolved"}),
            ("recon.completed", {"ok": True, "detail": "broker is the truth"}),
        ],
    ],
    ids=["cancelled", "refused", "resolved-cancelled", "expired", "filled-and-closed", "unresolved-then-reconciled"],
)
def test_an_intent_whose_story_ended_in_the_journal_takes_no_slot(journal: Journal, outcome: list[Any]) -> None:
    rows = [("risk.intent", _intent(), 5), ("exec.sending", {"intent_id": EUR, "instrument": "EUR_USD"}, 5)]
    _write(journal, *rows, *[(kind, body, 4) for kind, body in outcome])
    with running_role(ONE_SLOT, journal=journal) as (ref, runtime, _):
        tell(ref, snapshot())

        decisions = decide(ref, runtime, names=("GBP_USD",))

    assert _reasons(decisions) == {"GBP_USD": "intent"}


@pytest.mark.parametrize(
    "outcome",
    [
        [("exec.ambiguous", {"intent_id": EUR, "detail": "timeout"})],
        [("exec.ambiguous", {"intent_id": EUR, "final": True, "detail": "unresolved"})],
        [
            ("recon.completed", {"ok": True, "detail": "before the order's last word"}),
            ("exec.ambiguous", {"intent_id": EUR, "final": True, "detail": "unresolved"}),
        ],
    ],
    ids=["ambiguous", "unresolved", "reconciled-before-unresolved"],
)
def test_an_order_whose_outcome_is_unknown_keeps_its_slot(journal: Journal, outcome: list[Any]) -> None:
    rows = [("risk.intent", _intent(), 5), ("exec.sending", {"intent_id": EUR, "instrument": "EUR_USD"}, 5)]
    _write(journal, *rows, *[(kind, body, 4) for kind, body in outcome])
    with running_role(ONE_SLOT, journal=journal) as (ref, runtime, _):
        tell(ref, snapshot())

        decisions = decide(ref, runtime, names=("GBP_USD",))

    assert _reasons(decisions) == {"GBP_USD": "max_open_positions"}


def test_a_filled_intent_counts_until_the_account_shows_its_trade(journal: Journal) -> None:
    _write(
        journal,
        ("risk.intent", _intent(), 5),
        ("exec.sending", {"intent_id": EUR, "instrument": "EUR_USD"}, 5),
        ("exec.filled", {"intent_id": EUR, "instrument": "EUR_USD", "trade_id": "9"}, 5),
    )
    trade = TradeView(trade_id=TradeId("9"), instrument=InstrumentId("EUR_USD"), units="100000", price="1.0851",
                      open_ts=BAR, unrealized_pl="0", client_id=EUR)  # fmt: skip
    with running_role(ONE_SLOT, journal=journal) as (ref, runtime, _):
        before = set(ref.proxy().in_flight.get(timeout=5))
        tell(ref, snapshot(open_trades=1, trades=(trade,)))
        decisions = decide(ref, runtime, names=("GBP_USD",))
        after = set(ref.proxy().in_flight.get(timeout=5))

    assert before == {"EUR_USD"} and after == set()
    assert _reasons(decisions) == {"GBP_USD": "max_open_positions"}  # the account's trade now counts


def test_a_fill_whose_trade_no_account_read_shows_frees_its_slot_after_the_intent_expiry(journal: Journal) -> None:
    # Resolved as filled after a restart of the execution role, without its trade id (so its
    # close cannot be matched): it counts, but not for ever once no account read shows it.
    _write(
        journal,
        ("risk.intent", _intent(), 60),
        ("exec.sending", {"intent_id": EUR, "instrument": "EUR_USD"}, 60),
        ("exec.resolved", {"intent_id": EUR, "outcome": "filled"}, 30),
    )
    with running_role(ONE_SLOT, journal=journal) as (ref, runtime, clock):
        tell(ref, snapshot())  # no trade: it closed already
        kept = decide(ref, runtime, names=("GBP_USD",))
        clock.advance(ONE_SLOT.intent_expiry_s - 30 + 1)  # intent_expiry_s after the fill
        ref.tell(HeartbeatDue())
        freed = decide(ref, runtime, names=("GBP_USD",))

    assert _reasons(kept) == {"GBP_USD": "max_open_positions"}
    assert _reasons(freed) == {"GBP_USD": "intent"}
    [row] = [b for k, b, _ in list(runtime.journaled) if k == "risk.intent_expired"]
    assert row["intent_id"] == EUR and "filled before this role restarted" in row["detail"]


def test_only_the_newest_intent_of_an_instrument_is_rebuilt(journal: Journal) -> None:
    old = "main.EUR_USD.1709731800000000000.L"
    _write(
        journal,
        ("risk.intent", _intent(old), 900),
        ("risk.intent_expired", {"intent_id": old, "instrument": "EUR_USD"}, 700),
        ("risk.intent", _intent(), 5),
        ("exec.sending", {"intent_id": EUR, "instrument": "EUR_USD"}, 5),
    )
    with running_role(journal=journal) as (ref, _, _):
        flying = ref.proxy().in_flight.get(timeout=5)

    assert {k: (v.intent_id, v.reported, v.margin_home) for k, v in flying.items()} == {"EUR_USD": (EUR, True, 3623.0)}


def test_without_a_journal_the_role_starts_empty() -> None:
    with running_role() as (ref, runtime, _):
        assert ref.proxy().in_flight.get(timeout=5) == {}
        assert ref.proxy().last_loss_close_ns.get(timeout=5) == {}
        assert not [t for t, _, _ in list(runtime.published) if t == TOPIC_RISK_SKIP]
