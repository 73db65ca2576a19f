"""Exposure per currency counts every open trade of an instrument (issue 16, defect 7): the risk
role's decision path (``book_of`` -> ``currency_exposure`` -> the gate's ``max_exposure``) at the
issue's numbers, and the backtest's book, which holds one trade per instrument, counted the same."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.core.config import RiskConfig
from actors.core.domain import InstrumentId, TradeId
from actors.core.money import currency_exposure
from actors.roles.risk.actor import book_of
from actors.runtime.messages import IntentSkipped, RiskIntent, TradeView
from supervisor.offline.backtest.records import _OpenTrade
from tests.unit.actors.riskworld import decide, running_role, snapshot, tell

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

# A USD account of 100 000 with two EUR_USD longs, 500 000 units and 1 000 units (listed last),
# EUR_USD at 1.08495 / 1.08505 (mid 1.0850), and a limit of 5 NAVs (500 000 USD) per currency.
QUOTES = {
    "EUR_USD": ("1.08495", "1.08505"),
    "GBP_USD": ("1.26495", "1.26505"),
    "EUR_GBP": ("0.85765", "0.85775"),
}
LIMIT = RiskConfig(max_exposure_per_currency=5.0, max_open_positions=5)


def _trade(trade_id: str, units: str, price: str) -> TradeView:
    return TradeView(trade_id=TradeId(trade_id), instrument=InstrumentId("EUR_USD"), units=units, price=price,
                     open_ts=1, unrealized_pl="0", stop_loss="1.07000", take_profit="1.10000")  # fmt: skip


BIG, SMALL = _trade("11", "500000", "1.08400"), _trade("12", "1000", "1.08500")


def test_two_longs_of_one_instrument_count_in_full_against_the_currency_limit() -> None:
    account = snapshot(margin_available="80000", open_trades=2, trades=(BIG, SMALL))
    with running_role(LIMIT, quotes=QUOTES) as (ref, runtime, _):
        tell(ref, account)
        mids = ref.proxy().market.get(timeout=5).mids()

        # Act: a long EUR_GBP adds to the EUR the two trades already hold.
        [decision] = decide(ref, runtime, ("EUR_GBP",))

    # Assert: 501 000 EUR at the mid, in USD: 543 585, over the 500 000 limit (one trade alone,
    # 1 085 USD, is far under it), so the entry is refused.
    assert isinstance(decision, IntentSkipped) and decision.reason == "max_exposure", decision
    mid = (Decimal("1.08495") + Decimal("1.08505")) / 2
    assert mids["EUR_USD"] == float(mid) == 1.085
    exposure = currency_exposure(book_of(account), mids, "USD")
    assert exposure["EUR"] == pytest.approx(float(501_000 * mid)) == 543_585.0
    assert exposure["USD"] == pytest.approx(-543_585.0)


def test_one_of_those_trades_alone_leaves_room_for_the_same_entry() -> None:
    # The control: the same signal with only the 1 000 units open is an entry, so the refusal
    # above is the 500 000 units counted, not something else about the signal.
    account = snapshot(margin_available="80000", open_trades=1, trades=(SMALL,))
    with running_role(LIMIT, quotes=QUOTES) as (ref, runtime, _):
        tell(ref, account)
        [decision] = decide(ref, runtime, ("EUR_GBP",))

    assert isinstance(decision, RiskIntent), decision


def test_the_backtests_book_counts_its_trade_as_the_risk_role_counts_the_same_trade() -> None:
    # The backtest holds at most one trade per instrument (its gate's position_open), so its net is
    # that trade: the same Position, and the same exposure, as book_of makes of the broker's
    # report of a 501 000-unit long.
    trade = _OpenTrade(
        trade_id="1", intent_id="i", column=0, instrument="EUR_USD", sign=1, units=501_000.0, units_text="501000",
        entry_price=1.08400, initial_stop_loss=1.07000, stop_loss=1.07000, take_profit=1.10000, open_bar_ts=0,
        open_start_ns=0, entry_ns=0, corr="c", risk_home=0.0, p_up=0.9, open_factor=1.0,
    )  # fmt: skip
    account = snapshot(open_trades=1, trades=(_trade("1", "501000", "1.08400"),))

    assert {"EUR_USD": trade.position()} == book_of(account)
    mids = {"EUR_USD": 1.085}
    assert currency_exposure({"EUR_USD": trade.position()}, mids, "USD") == currency_exposure(
        book_of(account), mids, "USD"
    )
