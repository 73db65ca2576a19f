"""The one fill model: market fills, SL/TP on ticks and on bars, gaps, the both-hit rule, P&L."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.core.domain import Instrument
from actors.core.fills import (
    ExitReason,
    bar_exit,
    bar_path,
    market_fill,
    pnl_home,
    pnl_quote,
    slippage_price,
    tick_exit,
)

pytestmark = pytest.mark.unit

EUR_USD = Instrument(
    name="EUR_USD", type="CURRENCY", display_precision=5, pip_location=-4, trade_units_precision=0,
    minimum_trade_size=Decimal(1), maximum_order_units=Decimal(100_000_000), margin_rate=Decimal("0.0333"),
)  # fmt: skip
P = 5
SLIP = 0.00002  # 0.2 pips
LONG, SHORT = 1, -1


# --- Market fills --------------------------------------------------------------------------------


def test_slippage_in_pips_becomes_price_units():
    assert slippage_price(0.2, EUR_USD) == pytest.approx(0.00002)


def test_a_buy_fills_at_the_ask_and_a_sell_at_the_bid_without_slippage():
    assert market_fill(LONG, 1.08500, 1.08510, slippage=0.0, precision=P) == 1.08510
    assert market_fill(SHORT, 1.08500, 1.08510, slippage=0.0, precision=P) == 1.08500


def test_slippage_always_goes_against_the_trader():
    assert market_fill(LONG, 1.08500, 1.08510, slippage=SLIP, precision=P) == pytest.approx(1.08512)
    assert market_fill(SHORT, 1.08500, 1.08510, slippage=SLIP, precision=P) == pytest.approx(1.08498)


def test_a_fractional_tick_of_slippage_rounds_against_the_trader():
    assert market_fill(LONG, 1.08500, 1.08510, slippage=0.000005, precision=P) == pytest.approx(1.08511)
    assert market_fill(SHORT, 1.08500, 1.08510, slippage=0.000005, precision=P) == pytest.approx(1.08499)


@given(
    bid_ticks=st.integers(50_000, 200_000),
    spread=st.integers(0, 50),
    slip_ticks=st.floats(0, 20),
    sign=st.sampled_from([LONG, SHORT]),
)
def test_a_market_fill_is_on_a_whole_tick_and_never_better_than_the_quote(bid_ticks, spread, slip_ticks, sign):
    bid, ask = bid_ticks / 1e5, (bid_ticks + spread) / 1e5
    fill = market_fill(sign, bid, ask, slippage=slip_ticks / 1e5, precision=P)
    assert abs(fill * 1e5 - round(fill * 1e5)) < 1e-6
    if sign > 0:
        assert fill >= ask - 1e-12
    else:
        assert fill <= bid + 1e-12


# --- Ticks ---------------------------------------------------------------------------------------


def test_a_long_triggers_on_the_bid_not_the_ask():
    # The ask touches the SL, the bid does not: nothing; the bid touches it: stop loss.
    assert tick_exit(LONG, 1.08400, 1.08800, 1.08401, 1.08400, slippage=0.0, precision=P) is None
    assert tick_exit(LONG, 1.08400, 1.08800, 1.08400, 1.08410, slippage=0.0, precision=P) == (
        ExitReason.STOP_LOSS, 1.08400,
    )  # fmt: skip
    assert tick_exit(LONG, 1.08400, 1.08800, 1.08790, 1.08800, slippage=0.0, precision=P) is None
    assert tick_exit(LONG, 1.08400, 1.08800, 1.08800, 1.08810, slippage=0.0, precision=P) == (
        ExitReason.TAKE_PROFIT, 1.08800,
    )  # fmt: skip


def test_a_short_triggers_on_the_ask_not_the_bid():
    assert tick_exit(SHORT, 1.08600, 1.08200, 1.08600, 1.08599, slippage=0.0, precision=P) is None
    assert tick_exit(SHORT, 1.08600, 1.08200, 1.08590, 1.08600, slippage=0.0, precision=P) == (
        ExitReason.STOP_LOSS, 1.08600,
    )  # fmt: skip
    assert tick_exit(SHORT, 1.08600, 1.08200, 1.08200, 1.08210, slippage=0.0, precision=P) is None
    assert tick_exit(SHORT, 1.08600, 1.08200, 1.08190, 1.08200, slippage=0.0, precision=P) == (
        ExitReason.TAKE_PROFIT, 1.08200,
    )  # fmt: skip


def test_a_gap_through_the_stop_fills_at_the_worse_tick_price_plus_slippage():
    assert tick_exit(LONG, 1.08400, None, 1.08350, 1.08360, slippage=SLIP, precision=P) == pytest.approx(
        (ExitReason.STOP_LOSS, 1.08348)
    )
    assert tick_exit(SHORT, 1.08600, None, 1.08640, 1.08650, slippage=SLIP, precision=P) == pytest.approx(
        (ExitReason.STOP_LOSS, 1.08652)
    )


def test_a_gap_through_the_target_fills_at_the_better_tick_price_without_slippage():
    assert tick_exit(LONG, None, 1.08800, 1.08850, 1.08860, slippage=SLIP, precision=P) == (
        ExitReason.TAKE_PROFIT, 1.08850,
    )  # fmt: skip


def test_a_trade_without_stops_never_triggers():
    assert tick_exit(LONG, None, None, 0.5, 0.5, slippage=0.0, precision=P) is None
    assert tick_exit(SHORT, None, None, 5.0, 5.0, slippage=0.0, precision=P) is None


# --- Bars ----------------------------------------------------------------------------------------


def test_a_bar_that_reaches_neither_level_triggers_nothing():
    assert bar_exit(LONG, 1.08400, 1.08800, 1.08500, 1.08790, 1.08410, slippage=0.0, precision=P) is None
    assert bar_exit(SHORT, 1.08600, 1.08200, 1.08500, 1.08590, 1.08210, slippage=0.0, precision=P) is None


def test_the_path_inside_a_bar_visits_the_extreme_nearer_the_open_first():
    assert bar_path(1.08500, 1.08900, 1.08300, 1.08600) == (1.08500, 1.08300, 1.08900, 1.08600)
    assert bar_path(1.08800, 1.08900, 1.08300, 1.08600) == (1.08800, 1.08900, 1.08300, 1.08600)
    assert bar_path(1.08600, 1.08900, 1.08300, 1.08800) == (1.08600, 1.08300, 1.08900, 1.08800)  # a tie: low


def test_a_bar_that_reaches_both_levels_hits_the_one_on_the_side_of_the_nearer_extreme_first():
    # The low nearer the open: the long's stop, the short's target.
    assert bar_exit(LONG, 1.08400, 1.08800, 1.08500, 1.08900, 1.08300, slippage=0.0, precision=P) == (
        ExitReason.STOP_LOSS, 1.08400,
    )  # fmt: skip
    assert bar_exit(SHORT, 1.08600, 1.08200, 1.08350, 1.08700, 1.08100, slippage=0.0, precision=P) == (
        ExitReason.TAKE_PROFIT, 1.08200,
    )  # fmt: skip
    # The high nearer the open: the long's target, the short's stop.
    assert bar_exit(LONG, 1.08400, 1.08800, 1.08700, 1.08900, 1.08300, slippage=0.0, precision=P) == (
        ExitReason.TAKE_PROFIT, 1.08800,
    )  # fmt: skip
    assert bar_exit(SHORT, 1.08600, 1.08200, 1.08500, 1.08700, 1.08100, slippage=0.0, precision=P) == (
        ExitReason.STOP_LOSS, 1.08600,
    )  # fmt: skip


def test_a_bar_stop_loss_pays_slippage_and_a_take_profit_fills_at_its_level():
    assert bar_exit(LONG, 1.08400, 1.08800, 1.08500, 1.08600, 1.08350, slippage=SLIP, precision=P) == pytest.approx(
        (ExitReason.STOP_LOSS, 1.08398)
    )
    assert bar_exit(LONG, 1.08400, 1.08800, 1.08500, 1.08850, 1.08450, slippage=SLIP, precision=P) == (
        ExitReason.TAKE_PROFIT, 1.08800,
    )  # fmt: skip
    assert bar_exit(SHORT, 1.08600, 1.08200, 1.08500, 1.08550, 1.08150, slippage=SLIP, precision=P) == (
        ExitReason.TAKE_PROFIT, 1.08200,
    )  # fmt: skip


def test_a_gap_at_the_open_fills_at_the_open():
    # Through the stop at the open, even though the bar later reaches the target.
    assert bar_exit(LONG, 1.08400, 1.08800, 1.08300, 1.08900, 1.08200, slippage=0.0, precision=P) == (
        ExitReason.STOP_LOSS, 1.08300,
    )  # fmt: skip
    assert bar_exit(LONG, 1.08400, 1.08800, 1.08900, 1.08950, 1.08300, slippage=0.0, precision=P) == (
        ExitReason.TAKE_PROFIT, 1.08900,
    )  # fmt: skip
    assert bar_exit(SHORT, 1.08600, 1.08200, 1.08700, 1.08750, 1.08100, slippage=0.0, precision=P) == (
        ExitReason.STOP_LOSS, 1.08700,
    )  # fmt: skip
    assert bar_exit(SHORT, 1.08600, 1.08200, 1.08100, 1.08700, 1.08050, slippage=0.0, precision=P) == (
        ExitReason.TAKE_PROFIT, 1.08100,
    )  # fmt: skip


@given(
    sl=st.integers(-100, 0),
    tp=st.integers(1, 100),
    o=st.integers(-150, 150),
    up=st.integers(0, 150),
    down=st.integers(0, 150),
    sign=st.sampled_from([LONG, SHORT]),
)
def test_a_bar_fill_is_the_tick_rules_fill_on_the_bars_path(sl, tp, o, up, down, sign):  # noqa: PLR0917
    # Prices in ticks around 1.00000, the stop below the target for a long and above it for a
    # short: walking bar_path's corners with the tick rule (the open a session's first price, each
    # later tick knowing the one before) gives the bar rule's exit, at the same price.
    def px(ticks: int) -> float:
        return (100_000 + ticks) / 1e5

    stop, target = (px(sl), px(tp)) if sign > 0 else (px(-sl), px(-tp))
    high, low = o + up, o - down
    on_bar = bar_exit(sign, stop, target, px(o), px(high), px(low), slippage=SLIP, precision=P)
    on_ticks, previous = None, None
    for tick in bar_path(px(o), px(high), px(low), px(o))[:3]:
        on_ticks = tick_exit(sign, stop, target, tick, tick, slippage=SLIP, precision=P, previous=previous)
        if on_ticks is not None:
            break
        previous = (tick, tick)
    assert (on_bar is None) == (on_ticks is None)
    if on_bar is not None and on_ticks is not None:
        assert on_bar[0] == on_ticks[0]
        assert on_bar[1] == pytest.approx(on_ticks[1])


def test_a_level_crossed_between_two_prices_of_a_session_fills_at_the_level():
    # A thinned stream: the bid went from above the stop to well below it between two prices; the
    # broker, seeing every price, filled the stop at its level (less the stop's slippage).
    previous = (1.08450, 1.08460)
    assert tick_exit(LONG, 1.08400, 1.08800, 1.08300, 1.08310, slippage=SLIP, precision=P, previous=previous) == (
        pytest.approx((ExitReason.STOP_LOSS, 1.08398))
    )
    assert tick_exit(LONG, 1.08400, 1.08800, 1.08900, 1.08910, slippage=SLIP, precision=P, previous=previous) == (
        ExitReason.TAKE_PROFIT, 1.08800,
    )  # fmt: skip
    previous = (1.08540, 1.08550)
    assert tick_exit(SHORT, 1.08600, 1.08200, 1.08690, 1.08700, slippage=SLIP, precision=P, previous=previous) == (
        pytest.approx((ExitReason.STOP_LOSS, 1.08602))
    )
    assert tick_exit(SHORT, 1.08600, 1.08200, 1.08090, 1.08100, slippage=SLIP, precision=P, previous=previous) == (
        ExitReason.TAKE_PROFIT, 1.08200,
    )  # fmt: skip


def test_a_level_the_previous_price_had_already_passed_or_none_known_fills_at_the_price():
    # A gap (a session's first price: no previous) or a level the previous price was already past
    # (a stop moved there): the price is what the broker had.
    assert tick_exit(LONG, 1.08400, None, 1.08300, 1.08310, slippage=0.0, precision=P) == (
        ExitReason.STOP_LOSS, 1.08300,
    )  # fmt: skip
    previous = (1.08350, 1.08360)
    assert tick_exit(LONG, 1.08400, None, 1.08300, 1.08310, slippage=0.0, precision=P, previous=previous) == (
        ExitReason.STOP_LOSS, 1.08300,
    )  # fmt: skip


# --- P&L -----------------------------------------------------------------------------------------


def test_pnl_in_the_quote_currency_has_the_trade_sign():
    assert pnl_quote(LONG, 100_000, 1.08500, 1.08700) == pytest.approx(200.0)
    assert pnl_quote(SHORT, 100_000, 1.08500, 1.08700) == pytest.approx(-200.0)


def test_pnl_of_a_jpy_quoted_trade_converts_to_usd_at_the_close():
    pnl = pnl_home(LONG, 100_000, 150.000, 150.300, instrument="USD_JPY", home_currency="USD",
                   mids={"USD_JPY": 150.300})  # fmt: skip
    assert pnl == pytest.approx(30_000 / 150.3)


def test_pnl_of_a_cross_converts_through_the_quote_currency():
    pnl = pnl_home(SHORT, 10_000, 0.85800, 0.85700, instrument="EUR_GBP", home_currency="USD",
                   mids={"GBP_USD": 1.25})  # fmt: skip
    assert pnl == pytest.approx(10.0 * 1.25)
    assert pnl_home(SHORT, 10_000, 0.858, 0.857, instrument="EUR_GBP", home_currency="USD", mids={}) is None
