"""Sizing within the margin, in the real tree against the emulator in live mode (issue 14, defect 10).

A small account (10 000 USD, ``broker.emulator.balance``) risking 2 % of its NAV on tight stops
(half an ATR of M15 bars) with room for 30 NAVs of exposure per currency: the risk rule alone
sizes each entry to about the whole NAV in margin (EUR_USD at 30:1, GBP_USD at 20:1, USD_JPY at
25:1), and the three instruments decide at the same close. Without the margin rule the broker
cancels entries with ``INSUFFICIENT_MARGIN``; with it the first entry is cut to the margin, the
next ones to what the earlier ones (still in flight, not yet in any account snapshot) left, and
once not even ``risk.min_units`` fits the decision is ``risk.skip`` with reason ``margin``.
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.broker.config import DEV_ACCOUNT_ID, DEV_TOKEN, BrokerConfig, Credentials
from actors.broker.oanda.client import OandaBroker
from tests.faults.invariants import OUTCOME_KINDS
from tests.helpers import Host, poll_until, running_host
from tests.integration.test_orders import LIVE

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

TIGHT_MARGIN = [
    *LIVE,
    'broker.emulator.balance="10000"',
    "risk.risk_per_trade=0.02",
    "risk.sl_atr_mult=0.5",
    "risk.max_exposure_per_currency=30.0",
    "risk.min_units=1000.0",
]


def _bodies(host: Host, kind: str) -> list[dict[str, Any]]:
    return [e["body"] for e in host.journal(kind)]


def _broker_cancels(host: Host) -> list[dict[str, Any]]:
    # The emulator's own record of what happened to every order (not the host's journal).
    cfg = BrokerConfig(kind="emulator", api_url=host.status()["broker"]["api_url"])
    with OandaBroker(cfg, Credentials(token=DEV_TOKEN, account_id=DEV_ACCOUNT_ID)) as broker:
        page = broker.transactions_since("1")
    cancels = [t.raw for t in page.transactions if t.type == "ORDER_CANCEL"]
    return [c for c in cancels if c.get("reason") != "LINKED_TRADE_CLOSED"]  # an SL or TP whose trade closed


def _in_flight(host: Host) -> list[str]:
    """The entries decided (``risk.intent``) without an outcome row from the execution role yet."""
    done = {b["intent_id"] for kind in OUTCOME_KINDS for b in _bodies(host, kind)}
    done |= {b["intent_id"] for b in _bodies(host, "exec.ambiguous") if b.get("final")}
    return [b["intent_id"] for b in _bodies(host, "risk.intent") if b["intent_id"] not in done]


def test_entries_on_tight_stops_fit_the_margin_and_a_full_account_skips_as_margin() -> None:
    with running_host(TIGHT_MARGIN) as host:
        # Until the account's margin is full (a margin skip) or the broker refused an order for it.
        poll_until(
            lambda: (
                any(b["reason"] == "margin" for b in _bodies(host, "risk.skip"))
                or any(b["reason"] == "INSUFFICIENT_MARGIN" for b in _bodies(host, "exec.cancelled"))
            ),
            timeout_s=120,
            what="a margin skip or an INSUFFICIENT_MARGIN cancel",
        )
        # The skip is journaled at the close that decided it, while the entries decided before it
        # at that close may still be in the air (on a loaded machine, for seconds): their outcomes.
        poll_until(lambda: not _in_flight(host), timeout_s=60, what="the outcome of every entry decided")
        cancels = _broker_cancels(host)
        filled = _bodies(host, "exec.filled")
        skips = [b for b in _bodies(host, "risk.skip") if b["reason"] == "margin"]

    assert [c["reason"] for c in cancels] == [], cancels  # the broker refused nothing for margin
    assert filled, "no entry filled"
    assert skips and all(s["direction"] in ("long", "short") for s in skips)
