"""Exit management: time exit, breakeven, trailing, and never an SL that loosens or crosses the price."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.config import ExecutionConfig
from actors.core.domain import Instrument, TradeState
from actors.core.exits import (
    BREAKEVEN,
    TIME_EXIT,
    TRAILING,
    CloseTrade,
    ExitAction,
    MoveStopLoss,
    bars_held,
    entry_from_broker,
    exit_actions,
    manage_trade,
)
from supervisor.config import build_section

pytestmark = pytest.mark.unit

EUR_USD = Instrument(
    name="EUR_USD", type="CURRENCY", display_precision=5, pip_location=-4, trade_units_precision=0,
    minimum_trade_size=Decimal(1), maximum_order_units=Decimal(100_000_000), margin_rate=Decimal("0.0333"),
)  # fmt: skip
CONFIG = ExecutionConfig(
    breakeven_after_r=1.0, breakeven_offset_pips=0.5, trailing_after_r=2.0, trailing_atr_mult=1.0,
    trailing_distance_pips=0.0, time_exit_bars=10,
)  # fmt: skip
# A long from 1.08500 with its SL 20 pips below (R = 0.00200), as the broker reports it; the
# short's SL 20 pips above.
LONG = TradeState(
    id="7", instrument="EUR_USD", price=Decimal("1.08500"), open_ts=0, state="OPEN", initial_units=Decimal(100_000),
    current_units=Decimal(100_000), realized_pl=Decimal(0), unrealized_pl=Decimal(0),
    stop_loss_price=Decimal("1.08300"), take_profit_price=Decimal("1.09100"),
)  # fmt: skip
SHORT = dataclasses.replace(
    LONG, initial_units=Decimal(-100_000), current_units=Decimal(-100_000), stop_loss_price=Decimal("1.08700"),
    take_profit_price=Decimal("1.07900"),
)  # fmt: skip
INITIAL_SL = {LONG.direction: Decimal("1.08300"), SHORT.direction: Decimal("1.08700")}
AT_ENTRY = "the SL the trade opened with"


def with_sl(trade: TradeState, stop_loss: str | None) -> TradeState:
    return dataclasses.replace(trade, stop_loss_price=None if stop_loss is None else Decimal(stop_loss))


def actions(
    trade: TradeState,
    bid: float,
    atr: float | None = 0.0010,
    *,
    initial: str | None = AT_ENTRY,
    bars_held: int = 3,
    **config: Any,
) -> tuple[ExitAction, ...]:
    # ``initial``: the SL the trade opened with (what the execution role remembers), None unknown.
    return manage_trade(
        trade,
        initial_stop_loss=INITIAL_SL[trade.direction] if initial is AT_ENTRY else initial and Decimal(initial),
        bars_held=bars_held,
        bid=bid,
        ask=bid + 0.00010,
        atr=atr,
        instrument=EUR_USD,
        config=dataclasses.replace(CONFIG, **config),
    )


def test_nothing_happens_below_one_r():
    assert actions(LONG, 1.08690) == ()  # 0.95 R at the bid


def test_a_long_moves_to_breakeven_plus_the_offset_after_one_r():
    assert actions(LONG, 1.08700) == (MoveStopLoss(Decimal("1.08505"), BREAKEVEN),)


def test_a_short_moves_to_breakeven_minus_the_offset_after_one_r_measured_at_the_ask():
    assert actions(SHORT, 1.08290) == (MoveStopLoss(Decimal("1.08495"), BREAKEVEN),)  # ask 1.08300
    assert actions(SHORT, 1.08300) == ()  # ask 1.08310: 0.95 R


def test_breakeven_is_not_proposed_again_once_in_place():
    at_breakeven = with_sl(LONG, "1.08505")
    assert actions(at_breakeven, 1.08750) == ()


def test_the_trailing_stop_follows_the_price_by_atr_multiples_and_beats_breakeven():
    # 2.5 R: breakeven would be 1.08505, the trail is 1.09000 - 0.00100 = 1.08900.
    assert actions(LONG, 1.09000) == (MoveStopLoss(Decimal("1.08900"), TRAILING),)
    assert actions(SHORT, 1.07990) == (MoveStopLoss(Decimal("1.08100"), TRAILING),)  # ask 1.08000


def test_the_trailing_stop_uses_the_fixed_distance_without_an_atr_multiple_or_an_atr():
    assert actions(LONG, 1.09000, trailing_atr_mult=0.0, trailing_distance_pips=15.0) == (
        MoveStopLoss(Decimal("1.08850"), TRAILING),
    )
    assert actions(LONG, 1.09000, atr=None, trailing_distance_pips=15.0) == (
        MoveStopLoss(Decimal("1.08850"), TRAILING),
    )
    # Neither: only breakeven is left.
    assert actions(LONG, 1.09000, atr=None) == (MoveStopLoss(Decimal("1.08505"), BREAKEVEN),)


def test_the_trailing_stop_never_loosens():
    trailed = with_sl(LONG, "1.08900")
    assert actions(trailed, 1.08950) == ()  # the trail would be 1.08850: looser
    assert actions(trailed, 1.09050) == (MoveStopLoss(Decimal("1.08950"), TRAILING),)


def test_the_trail_rounds_away_from_the_price_to_a_whole_tick():
    assert actions(LONG, 1.09000, atr=0.000987) == (MoveStopLoss(Decimal("1.08901"), TRAILING),)
    assert actions(SHORT, 1.07990, atr=0.000987) == (MoveStopLoss(Decimal("1.08099"), TRAILING),)


def test_after_n_bars_the_trade_closes_and_nothing_else_is_proposed():
    assert actions(LONG, 1.09000, bars_held=10) == (CloseTrade(TIME_EXIT),)
    assert actions(LONG, 1.09000, bars_held=10, time_exit_bars=0) == (MoveStopLoss(Decimal("1.08900"), TRAILING),)


def test_zero_turns_breakeven_off():
    assert actions(LONG, 1.08750, breakeven_after_r=0.0) == ()


# Issue 16, defect 8: a long from 1.08500 with its SL at 1.08355 (R = 14.5 pips), the bid 0.4 pip
# up (+0.03 R), the ATR 2.2 pips and the default 2-ATR trail: a trail from the entry would move the
# stop to 1.08504 - 0.00044 = 1.08460.
ISSUE_LONG = dataclasses.replace(LONG, stop_loss_price=Decimal("1.08355"))


def _issue_actions(**config: Any) -> tuple[ExitAction, ...]:
    return manage_trade(
        ISSUE_LONG,
        initial_stop_loss=Decimal("1.08355"),
        bars_held=1,
        bid=1.08504,
        ask=1.08514,
        atr=0.00022,
        instrument=EUR_USD,
        config=ExecutionConfig(**{"trailing_atr_mult": 2.0, **config}),
    )


def test_zero_turns_the_trailing_stop_off_as_it_does_every_exit_rule():
    # Any positive threshold the profit passes trails (the level the issue measured) ...
    assert _issue_actions(trailing_after_r=0.02) == (MoveStopLoss(Decimal("1.08460"), TRAILING),)
    # ... and 0 is off, not "from the entry".
    assert _issue_actions(trailing_after_r=0.0) == ()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("breakeven_after_r", 0.0),
        ("trailing_after_r", 0.0),
        ("time_exit_bars", 0),
    ],
)
def test_a_zero_exit_key_turns_its_rule_off_for_every_trade(key: str, value: float) -> None:
    # Far in profit (3 R), held 500 bars, with every other rule on: the rule whose key is 0 never
    # acts, the others still do.
    on = ExecutionConfig(breakeven_after_r=1.0, trailing_after_r=1.5, trailing_atr_mult=2.0, time_exit_bars=96)
    off = dataclasses.replace(on, **{key: value})
    rule = {"breakeven_after_r": BREAKEVEN, "trailing_after_r": TRAILING, "time_exit_bars": TIME_EXIT}[key]

    def reasons(config: ExecutionConfig, bars: int) -> set[str]:
        got = manage_trade(LONG, initial_stop_loss=Decimal("1.08300"), bars_held=bars, bid=1.09100, ask=1.09110,
                           atr=0.00200, instrument=EUR_USD, config=config)  # fmt: skip
        return {a.reason for a in got}

    if rule == TIME_EXIT:
        assert reasons(on, 500) == {TIME_EXIT} and TIME_EXIT not in reasons(off, 500)
    else:
        both_off = dataclasses.replace(on, breakeven_after_r=0.0, trailing_after_r=0.0)
        only = dataclasses.replace(both_off, **{key: getattr(on, key)})
        assert reasons(only, 5) == {rule}  # on by itself, it acts here ...
        assert reasons(dataclasses.replace(only, **{key: value}), 5) == set()  # ... and 0 turns it off


def test_a_trade_without_a_known_initial_risk_only_gets_the_time_exit():
    for trade in (LONG, with_sl(LONG, None)):  # with or without an SL now: R is the SL at the entry
        assert actions(trade, 1.10000, initial=None) == ()
        assert actions(trade, 1.10000, initial=None, bars_held=99) == (CloseTrade(TIME_EXIT),)


def test_a_trade_without_an_sl_gets_one():
    no_sl = with_sl(LONG, None)
    assert actions(no_sl, 1.08700) == (MoveStopLoss(Decimal("1.08505"), BREAKEVEN),)


def test_a_breakeven_level_at_or_through_the_price_is_not_proposed():
    # A tiny R: 1 R of profit is less than the 5-pip offset, so breakeven + offset is above the bid.
    tight = with_sl(LONG, "1.08490")
    assert actions(tight, 1.08520, initial="1.08490", breakeven_offset_pips=5.0, trailing_after_r=100.0) == ()


def test_the_execution_section_loads_and_checks_its_ranges():
    problems: list[str] = []
    cfg = build_section(ExecutionConfig, {"time_exit_bars": 0, "slippage_pips": 0.5}, "execution", problems)
    assert problems == [] and cfg.time_exit_bars == 0 and cfg.slippage_pips == 0.5
    build_section(ExecutionConfig, {"slippage_pips": -1.0, "time_exit_bars": 1.5}, "execution", problems)
    assert any(p.startswith("execution.slippage_pips:") for p in problems)
    assert any(p.startswith("execution.time_exit_bars:") for p in problems)


# --- Never against the trade ---------------------------------------------------------------------

TICK = 1e-5


@settings(max_examples=500, deadline=None)
@given(
    sign=st.sampled_from([1, -1]),
    entry=st.integers(50_000, 200_000),
    risk=st.integers(0, 500),
    sl_offset=st.one_of(st.none(), st.integers(-600, 600)),
    price_move=st.integers(-2_000, 4_000),
    spread=st.integers(0, 30),
    atr=st.one_of(st.none(), st.floats(0.0, 0.01, allow_nan=False)),
    bars=st.integers(0, 20),
    breakeven_r=st.floats(0.0, 5.0),
    offset_pips=st.floats(0.0, 20.0),
    trail_r=st.floats(0.0, 5.0),
    trail_atr=st.floats(0.0, 5.0),
    trail_pips=st.floats(0.0, 100.0),
    time_exit=st.integers(0, 30),
)
def test_no_rule_ever_moves_the_stop_against_the_trade_or_through_the_price(  # noqa: PLR0917 - drawn values
    sign, entry, risk, sl_offset, price_move, spread, atr, bars, breakeven_r, offset_pips, trail_r, trail_atr,
    trail_pips, time_exit,
):  # fmt: skip
    # Arrange: prices in whole ticks; the current SL anywhere around the entry (or none).
    config = ExecutionConfig(
        breakeven_after_r=breakeven_r, breakeven_offset_pips=offset_pips, trailing_after_r=trail_r,
        trailing_atr_mult=trail_atr, trailing_distance_pips=trail_pips, time_exit_bars=time_exit,
    )  # fmt: skip
    stop = None if sl_offset is None else (entry + sl_offset) * TICK
    bid = (entry + sign * price_move) * TICK
    ask = bid + spread * TICK
    # Act
    result = exit_actions(
        sign, entry * TICK, risk * TICK, stop, bars, bid, ask, atr, pip=1e-4, precision=5, config=config
    )
    # Assert
    assert len(result) <= 1
    for action in result:
        if isinstance(action, CloseTrade):
            assert time_exit and bars >= time_exit
            continue
        new = float(action.price)
        assert action.price == action.price.quantize(Decimal("0.00001"))
        if sign > 0:
            assert stop is None or new > stop
            assert new < bid
        else:
            assert stop is None or new < stop
            assert new > ask


# --- a trade without the execution role's memo: its entry from the broker (issue 16, defect 9) -----

WED_14_07 = 1709734050 * 10**9  # 2024-03-06 14:07:30 UTC: inside the 14:00 M15 bar
BAR_13_45 = 1709732700 * 10**9


def test_a_trade_opened_by_hand_gets_r_from_its_stop_and_bars_from_its_open_time():
    # Arrange: a long opened by hand at 14:07:30 with its SL 15 pips below, no memo; time exit 4 bars.
    trade = dataclasses.replace(with_sl(LONG, "1.08350"), open_ts=WED_14_07)
    config = dataclasses.replace(CONFIG, time_exit_bars=4)

    # Act
    entry = entry_from_broker(trade, "M15")
    closes = [BAR_13_45 + k * 900 * 10**9 for k in range(1, 6)]  # the bars of 14:00 ... 15:00
    held = [bars_held(entry.open_bar_ts, bar_ts, "M15") for bar_ts in closes]
    at_14_45 = manage_trade(trade, initial_stop_loss=entry.initial_stop_loss, bars_held=held[3], bid=1.08510,
                            ask=1.08520, atr=0.0010, instrument=EUR_USD, config=config)  # fmt: skip
    up_1_r = manage_trade(trade, initial_stop_loss=entry.initial_stop_loss, bars_held=1, bid=1.08650, ask=1.08660,
                          atr=0.0010, instrument=EUR_USD, config=config)  # fmt: skip

    # Assert: R = 15 pips; the bar it opened in (14:00) is its first bar held, the 14:45 bar its fourth
    assert entry.initial_stop_loss == Decimal("1.08350")
    assert entry.open_bar_ts == BAR_13_45
    assert held == [1, 2, 3, 4, 5]
    assert at_14_45 == (CloseTrade(TIME_EXIT),)
    # With that R, the same rules as for the host's own trades: +1 R moves the stop to breakeven.
    assert up_1_r == (MoveStopLoss(Decimal("1.08505"), BREAKEVEN),)


@pytest.mark.parametrize(
    ("trade", "sl"),
    [(LONG, "1.08500"), (LONG, "1.08600"), (SHORT, "1.08400"), (LONG, None)],
    ids=["long at breakeven", "long locked in profit", "short locked in profit", "no SL"],
)
def test_a_broker_entry_whose_stop_is_not_on_the_losing_side_has_no_r(trade: TradeState, sl: str | None):
    assert entry_from_broker(with_sl(trade, sl), "M15").initial_stop_loss is None


def test_a_short_opened_by_hand_gets_r_from_its_stop_above():
    entry = entry_from_broker(dataclasses.replace(SHORT, open_ts=WED_14_07), "M15")
    assert entry.initial_stop_loss == Decimal("1.08700")
