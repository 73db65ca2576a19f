"""The risk role sizes within the broker's margin available, less what its intents in flight took.

A 100 000 USD account with part of its margin in use (as the reconciler read it), a quiet market
(0.8-pip ATR, a 1.2-pip stop) and the default ``[risk]`` section: the risk rule alone asks for
millions of units, which the broker would cancel with ``INSUFFICIENT_MARGIN``.
"""

from __future__ import annotations

import pytest

from actors.runtime.messages import IntentSkipped, RiskIntent
from tests.unit.actors.riskworld import QUOTES, decide, running_role, snapshot, tell

pytestmark = [pytest.mark.unit, pytest.mark.timeout(20)]


def _taken(intent: RiskIntent) -> float:
    # What the entry takes from the margin available: its margin at the mid plus its spread.
    rate = {"EUR_USD": 0.0333, "GBP_USD": 0.05}[intent.instrument]
    bid, ask = (float(p) for p in QUOTES[intent.instrument])
    return float(intent.units) * ((bid + ask) / 2 * rate + (ask - bid))


def test_the_second_entry_of_a_close_fits_what_the_first_left() -> None:
    with running_role() as (ref, runtime, _):
        tell(ref, snapshot("50000", margin_used="50000"))

        first, second = decide(ref, runtime)

    # EUR_USD is cut by the exposure rule and fits; GBP_USD counts it (in flight: in no snapshot
    # yet) and is cut to what is left above the reserve (5 % of the NAV).
    assert isinstance(first, RiskIntent) and isinstance(second, RiskIntent), (first, second)
    assert first.instrument == "EUR_USD" and first.units == "921616"
    left = 50_000 - _taken(first) - 5_000
    assert left - 0.07 < _taken(second) <= left  # within one GBP_USD unit of all that is left


def test_an_entry_cut_to_the_margin_leaves_none_for_the_next_of_its_close() -> None:
    with running_role() as (ref, runtime, _):
        tell(ref, snapshot("16750", margin_used="83250"))  # 11 750 above the reserve

        first, second = decide(ref, runtime)

    assert isinstance(first, RiskIntent) and 11_749 < _taken(first) <= 11_750  # 324 297 units, not 921 616
    assert isinstance(second, IntentSkipped) and second.reason == "margin"  # without counting the first: a cancel


def test_no_margin_left_is_a_margin_skip_journaled_with_its_direction() -> None:
    with running_role() as (ref, runtime, _):
        tell(ref, snapshot("0.0000", margin_used="100000"))  # the broker's marginAvailable: all in use

        decisions = decide(ref, runtime)

    assert [(d.reason, d.direction) for d in decisions if isinstance(d, IntentSkipped)] == [("margin", "long")] * 2
    rows = [body for kind, body, _ in list(runtime.journaled) if kind == "risk.skip"]
    assert [r["reason"] for r in rows] == ["margin", "margin"]


def test_a_snapshot_without_the_margin_available_is_no_entry() -> None:
    with running_role() as (ref, runtime, _):
        tell(ref, snapshot(""))  # unknown: unsure means no trade

        decisions = decide(ref, runtime)

    assert [d.reason for d in decisions if isinstance(d, IntentSkipped)] == ["margin", "margin"]
