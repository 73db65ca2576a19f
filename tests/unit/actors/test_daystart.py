"""The day-start NAV rebuilt from the broker's transactions, trades and candles (``actors.core.daystart``)."""

from __future__ import annotations

import pytest

from actors.core.daystart import BoundaryTrade, day_start_nav, day_transactions, open_at_boundary, unrealized_at

pytestmark = pytest.mark.unit

NS = 1_000_000_000
BOUNDARY = 1_709_762_400 * NS  # 2024-03-06T22:00Z, 17:00 New York


def test_transactions_sum_pl_and_financing_and_keep_transfers_apart():
    raws = [
        {"type": "ORDER_FILL", "pl": "-1200.5000", "financing": "0.0000",
         "tradesClosed": [{"tradeID": "7", "units": "-500000"}]},
        {"type": "DAILY_FINANCING", "financing": "-12.2500"},
        {"type": "TRANSFER_FUNDS", "amount": "-10000.0000"},
        {"type": "ORDER_FILL", "pl": "300.0000", "financing": "-1.0000",
         "tradeReduced": {"tradeID": "9", "units": "200000"}},
        {"type": "ORDER_FILL", "pl": "nan"},  # not a number: nothing
    ]  # fmt: skip
    day = day_transactions(raws)
    assert day.realized == pytest.approx(-1200.5 - 12.25 + 300.0 - 1.0)
    assert day.transfers == -10_000.0 and day.count == 5
    assert day.closed_units == {"7": 500_000.0, "9": 200_000.0}


def test_a_trade_is_as_it_was_at_the_boundary_with_the_units_closed_since_added_back():
    kept = open_at_boundary(instrument="EUR_USD", price=1.085, units_now=300_000, sign=1,
                            opened_ns=BOUNDARY - NS, boundary_ns=BOUNDARY, closed_since=200_000)  # fmt: skip
    assert kept == BoundaryTrade(instrument="EUR_USD", units=500_000, price=1.085)
    closed = open_at_boundary(instrument="EUR_USD", price=1.085, units_now=0, sign=-1,
                              opened_ns=BOUNDARY - NS, boundary_ns=BOUNDARY, closed_since=100_000)  # fmt: skip
    assert closed is not None and closed.units == -100_000
    later = open_at_boundary(instrument="EUR_USD", price=1.085, units_now=1, sign=1,
                             opened_ns=BOUNDARY, boundary_ns=BOUNDARY, closed_since=0)  # fmt: skip
    assert later is None


def test_the_unrealized_pl_at_the_boundary_marks_longs_at_the_bid_shorts_at_the_ask_in_the_home_currency():
    trades = [
        BoundaryTrade(instrument="EUR_USD", units=1_000_000, price=1.0850),
        BoundaryTrade(instrument="EUR_GBP", units=-100_000, price=0.8600),
    ]
    quotes = {"EUR_USD": (1.0800, 1.0802), "EUR_GBP": (0.8500, 0.8502), "GBP_USD": (1.2700, 1.2702)}
    value = unrealized_at(trades, quotes, home="USD")
    assert value == pytest.approx((1.0800 - 1.0850) * 1_000_000 + (0.8502 - 0.8600) * -100_000 * 1.2701)
    assert unrealized_at(trades, {"EUR_USD": (1.08, 1.0802)}, home="USD") is None  # no GBP rate


def test_the_nav_at_the_boundary_is_the_nav_now_less_the_days_realized_and_the_change_in_unrealized():
    # 100,000 at 17:00 with a long at -1,000; since then: a close realized -1,500, the rest is at -4,000
    assert day_start_nav(nav=95_500.0, unrealized_now=-4_000.0, unrealized_then=-1_000.0, realized=-1_500.0) == (
        100_000.0
    )
