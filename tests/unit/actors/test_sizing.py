"""Sizing: quote->home conversion, units from risk, SL/TP placement and rounding, limits, intent ids."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.broker.oanda.precision import CLIENT_ID_RE
from actors.core.config import RiskConfig
from actors.core.domain import Direction, Instrument, Position, Quote, Signal, SkipReason
from actors.core.entry import EntryIntent, EntrySkip, decide_entry, intent_id
from actors.core.money import currency_exposure, position_margin, quote_to_home
from actors.core.sizing import SizedEntry, size_entry
from actors.core.zones import ZoneVerdict

pytestmark = pytest.mark.unit

NS = 1_000_000_000
EUR_USD = Instrument(
    name="EUR_USD", type="CURRENCY", display_precision=5, pip_location=-4, trade_units_precision=0,
    minimum_trade_size=Decimal(1), maximum_order_units=Decimal(100_000_000), margin_rate=Decimal("0.0333"),
)  # fmt: skip
GBP_USD = dataclasses.replace(EUR_USD, name="GBP_USD")
EUR_GBP = dataclasses.replace(EUR_USD, name="EUR_GBP")
USD_JPY = dataclasses.replace(EUR_USD, name="USD_JPY", display_precision=3, pip_location=-2)
MIDS = {"EUR_USD": 1.08505, "GBP_USD": 1.26500, "USD_JPY": 150.005, "EUR_GBP": 0.85775}
# risk 1 % of 100 000 = 1000 USD at the stop; ATR x 1 = SL distance.
CONFIG = RiskConfig(risk_per_trade=0.01, sl_atr_mult=1.0, reward_ratio=2.0, max_units=10_000_000.0,
                    max_exposure_per_currency=50.0)  # fmt: skip


def size(
    direction: Direction = Direction.LONG,
    quote: Quote | None = None,
    atr: float | None = 0.0020,
    **overrides: Any,
) -> SizedEntry | tuple[SkipReason, str]:
    args: dict[str, Any] = {
        "instrument": EUR_USD,
        "nav": 100_000.0,
        "multiplier": 1.0,
        "mids": MIDS,
        "home_currency": "USD",
        "exposure": {},
        "margin_available": 100_000.0,  # an account without open trades: its NAV
        "config": CONFIG,
    }
    args.update(overrides)
    return size_entry(direction, quote or Quote(bid=1.08500, ask=1.08510, tradeable=True), atr, **args)


def sized(*args: Any, **kwargs: Any) -> SizedEntry:
    result = size(*args, **kwargs)
    assert isinstance(result, SizedEntry), result
    return result


# --- Conversion ----------------------------------------------------------------------------------


def test_the_home_currency_converts_at_one():
    assert quote_to_home("USD", "USD", {}) == 1.0


def test_a_direct_pair_converts_at_its_mid_and_an_inverse_pair_at_one_over_it():
    assert quote_to_home("GBP", "USD", MIDS) == pytest.approx(1.265)
    assert quote_to_home("JPY", "USD", MIDS) == pytest.approx(1 / 150.005)


def test_a_cross_converts_through_another_currency():
    # A GBP home account: JPY -> USD -> GBP
    assert quote_to_home("JPY", "GBP", MIDS) == pytest.approx(1 / 150.005 / 1.265)
    # An EUR home account: USD -> EUR by inverting EUR_USD
    assert quote_to_home("USD", "EUR", MIDS) == pytest.approx(1 / 1.08505)


def test_no_route_or_a_bad_price_cannot_convert():
    assert quote_to_home("CHF", "USD", MIDS) is None
    assert quote_to_home("GBP", "USD", {"GBP_USD": 0.0}) is None


# --- Units ---------------------------------------------------------------------------------------


def test_eur_usd_units_are_the_risk_over_the_stop_distance():
    entry = sized()
    assert entry.units == Decimal(500_000)  # 1000 USD / 0.0020
    assert entry.risk_home == pytest.approx(1000.0)


def test_usd_jpy_converts_its_jpy_pnl_with_the_usd_jpy_rate():
    quote = Quote(bid=150.000, ask=150.010, tradeable=True)
    entry = sized(quote=quote, atr=0.300, instrument=USD_JPY)
    # 0.300 JPY per unit at the stop = 0.002 USD at 150.005: 1000 / 0.0019999 = 500 016
    assert entry.units == Decimal(int(1000 / (0.3 / 150.005)))
    assert entry.risk_home == pytest.approx(1000.0, rel=1e-5)
    assert entry.stop_loss == Decimal("149.710") and entry.take_profit == Decimal("150.610")


def test_gbp_usd_quote_is_home_so_no_conversion():
    entry = sized(quote=Quote(bid=1.26490, ask=1.26510, tradeable=True), instrument=GBP_USD)
    assert entry.units == Decimal(500_000)


def test_eur_gbp_converts_through_gbp_usd():
    entry = sized(quote=Quote(bid=0.85770, ask=0.85780, tradeable=True), instrument=EUR_GBP)
    assert entry.units == Decimal(int(1000 / (0.0020 * 1.265)))
    assert entry.risk_home == pytest.approx(1000.0, rel=1e-5)


def test_an_eur_home_account_converts_usd_pnl_back_to_eur():
    entry = sized(home_currency="EUR")
    assert entry.units == Decimal(int(1000 / (0.0020 / 1.08505)))


def test_the_zone_multiplier_scales_the_size():
    assert sized(multiplier=0.25).units == Decimal(125_000)


def test_units_round_down_to_the_units_precision():
    fractional = dataclasses.replace(EUR_USD, trade_units_precision=2)
    assert sized(atr=0.0030).units == Decimal(333_333)
    assert sized(atr=0.0030, instrument=fractional).units == Decimal("333333.33")


def test_units_are_cut_to_the_configured_and_the_instrument_maximum():
    assert sized(config=dataclasses.replace(CONFIG, max_units=200_000.0)).units == Decimal(200_000)
    small_max = dataclasses.replace(EUR_USD, maximum_order_units=Decimal(100_000))
    assert sized(instrument=small_max).units == Decimal(100_000)


def test_a_size_that_rounds_to_zero_is_size_zero():
    assert size(nav=0.1)[0] is SkipReason.SIZE_ZERO  # type: ignore[index]
    assert size(nav=-5.0)[0] is SkipReason.SIZE_ZERO  # type: ignore[index]
    assert size(multiplier=0.0)[0] is SkipReason.SIZE_ZERO  # type: ignore[index]


def test_a_size_below_the_minimum_is_skipped_not_rounded_up():
    result = size(nav=100.0, config=dataclasses.replace(CONFIG, min_units=1000.0))  # 500 units
    assert result[0] is SkipReason.SIZE_BELOW_MINIMUM  # type: ignore[index]
    big_minimum = dataclasses.replace(EUR_USD, minimum_trade_size=Decimal(1000))
    assert size(nav=100.0, instrument=big_minimum)[0] is SkipReason.SIZE_BELOW_MINIMUM  # type: ignore[index]


def test_the_size_is_cut_to_the_exposure_headroom():
    # Limit 6 x NAV = 600 000 USD of EUR; 500 000 USD already long EUR: headroom 100 000 / 1.08505 units
    # (the risk alone would ask for 500 000 units, 542 525 USD).
    config = dataclasses.replace(CONFIG, max_exposure_per_currency=6.0)
    entry = sized(exposure={"EUR": 500_000.0}, config=config)
    assert entry.exposure_capped and entry.units == Decimal(int(100_000 / 1.08505))
    # The same exposure does not limit a short (it reduces EUR: headroom 1 100 000 USD).
    short = sized(Direction.SHORT, exposure={"EUR": 500_000.0}, config=config)
    assert not short.exposure_capped and short.units == Decimal(500_000)
    assert size(exposure={"EUR": 600_000.0}, config=config)[0] is SkipReason.MAX_EXPOSURE  # type: ignore[index]
    cut_below_minimum = dataclasses.replace(config, min_units=10_000.0)
    result = size(exposure={"EUR": 599_000.0}, config=cut_below_minimum)
    assert result[0] is SkipReason.MAX_EXPOSURE  # type: ignore[index]


# --- SL / TP -------------------------------------------------------------------------------------


def test_a_long_measures_its_stops_from_the_ask_and_a_short_from_the_bid():
    long = sized(Direction.LONG)
    assert long.entry_price == pytest.approx(1.08510)
    assert long.stop_loss == Decimal("1.08310") and long.take_profit == Decimal("1.08910")
    short = sized(Direction.SHORT)
    assert short.entry_price == pytest.approx(1.08500)
    assert short.stop_loss == Decimal("1.08700") and short.take_profit == Decimal("1.08100")


def test_the_stop_distance_rounds_up_to_a_whole_tick_and_sizes_from_it():
    entry = sized(atr=0.00123456)  # 123.456 ticks -> 124 ticks
    assert entry.stop_loss == Decimal("1.08386")
    assert entry.sl_distance == pytest.approx(0.00124)
    assert entry.units == Decimal(int(1000 / 0.00124))
    assert entry.take_profit == Decimal("1.08758")  # 2 x 124 ticks


def test_a_float_hair_below_a_whole_tick_is_not_rounded_a_tick_further():
    # 0.0012 * 1e5 is 119.99999999999999 in floats: still 120 ticks
    assert sized(atr=0.0012).stop_loss == Decimal("1.08390")


def test_a_stop_not_wider_than_the_spread_is_refused():
    assert size(atr=0.00010)[0] is SkipReason.STOP_INSIDE_SPREAD  # type: ignore[index]
    assert isinstance(size(atr=0.00011), SizedEntry)


def test_no_atr_or_no_conversion_rate_is_a_skip():
    assert size(atr=None)[0] is SkipReason.NO_ATR  # type: ignore[index]
    assert size(atr=float("nan"))[0] is SkipReason.NO_ATR  # type: ignore[index]
    assert size(atr=0.0)[0] is SkipReason.NO_ATR  # type: ignore[index]
    assert size(instrument=EUR_GBP, mids={})[0] is SkipReason.NO_CONVERSION_RATE  # type: ignore[index]


# --- Exposure ------------------------------------------------------------------------------------


def test_exposure_counts_both_currencies_in_the_home_currency():
    book = {
        "EUR_USD": Position(instrument="EUR_USD", direction=Direction.LONG, units=100_000, entry_price=1.08),
        "USD_JPY": Position(instrument="USD_JPY", direction=Direction.SHORT, units=50_000, entry_price=150.0),
    }
    exposure = currency_exposure(book, MIDS, "USD")
    assert exposure["EUR"] == pytest.approx(108_505.0)
    assert exposure["JPY"] == pytest.approx(50_000.0)
    assert exposure["USD"] == pytest.approx(-108_505.0 - 50_000.0)


def test_an_exposure_without_a_conversion_rate_is_unknown():
    book = {"EUR_GBP": Position(instrument="EUR_GBP", direction=Direction.LONG, units=1000, entry_price=0.85)}
    exposure = currency_exposure(book, {}, "USD")
    assert exposure["EUR"] != exposure["EUR"]  # NaN


# --- Intent ids ----------------------------------------------------------------------------------

STRATEGIES = st.from_regex(re.compile(r"[A-Za-z0-9_-]{1,40}"), fullmatch=True)
INSTRUMENTS = st.from_regex(re.compile(r"[A-Z0-9]{1,16}_[A-Z0-9]{1,16}"), fullmatch=True)
BAR_TIMES = st.integers(0, 2**63 - 1)
DIRECTIONS = st.sampled_from(Direction)


@given(STRATEGIES, INSTRUMENTS, BAR_TIMES, DIRECTIONS)
def test_an_intent_id_is_deterministic_url_safe_and_a_valid_oanda_client_id(strategy, instrument, bar_ns, direction):
    first = intent_id(strategy, instrument, bar_ns, direction)
    assert first == intent_id(strategy, instrument, bar_ns, direction)
    assert CLIENT_ID_RE.fullmatch(first) and len(first) <= 128


@given(
    st.tuples(STRATEGIES, INSTRUMENTS, BAR_TIMES, DIRECTIONS),
    st.tuples(STRATEGIES, INSTRUMENTS, BAR_TIMES, DIRECTIONS),
)
def test_different_intents_have_different_ids(a, b):
    if a != b:
        assert intent_id(*a) != intent_id(*b)


def test_an_intent_id_reads_as_its_parts():
    assert intent_id("main", "EUR_USD", 1_700_000_000 * NS, Direction.SHORT) == "main.EUR_USD.1700000000000000000.S"


@pytest.mark.parametrize(
    ("strategy", "instrument", "bar_ns"),
    [("a.b", "EUR_USD", 0), ("a b", "EUR_USD", 0), ("", "EUR_USD", 0), ("a", "EUR/USD", 0), ("a", "EUR_USD", -1)],
)
def test_an_intent_id_refuses_parts_that_would_break_it(strategy, instrument, bar_ns):
    with pytest.raises(ValueError):
        intent_id(strategy, instrument, bar_ns, Direction.LONG)


# --- The composed decision -----------------------------------------------------------------------

NOW = int(datetime(2024, 3, 6, 14, tzinfo=UTC).timestamp()) * NS
GREEN = ZoneVerdict(zone=0, multiplier=1.0, drawdown=0.0, daily_pnl=0.0, daily_loss_hit=False, drawdown_stop=False)


def decide(p_up: float = 0.7, zone: ZoneVerdict = GREEN, **overrides: Any) -> EntryIntent | EntrySkip:
    args: dict[str, Any] = {
        "instrument": EUR_USD,
        "book": {},
        "mids": MIDS,
        "nav": 100_000.0,
        "home_currency": "USD",
        "now_ns": NOW,
        "last_loss_close_ns": {},
        "zone": zone,
        "margin_available": 100_000.0,
        "config": CONFIG,
    }
    args.update(overrides)
    signal = Signal(instrument="EUR_USD", bar_ts_ns=NOW - 900 * NS, p_up=p_up, model_version="m1")
    quote = args.pop("quote", Quote(bid=1.08500, ask=1.08510, tradeable=True))
    atr = args.pop("atr", 0.0020)
    return decide_entry(signal, quote, atr, **args)


def test_an_entry_carries_its_deterministic_intent_id_and_size():
    intent = decide()
    assert isinstance(intent, EntryIntent)
    assert intent.intent_id == f"main.EUR_USD.{NOW - 900 * NS}.L"
    assert intent.sized.units == Decimal(500_000) and intent.multiplier == 1.0


def test_the_gate_speaks_before_the_zones_and_the_zones_before_sizing():
    stopped = dataclasses.replace(GREEN, zone=3, multiplier=0.0, drawdown_stop=True, daily_loss_hit=True)
    below = decide(0.5, zone=stopped)
    assert isinstance(below, EntrySkip) and below.reason is SkipReason.BELOW_THRESHOLD and below.direction is None
    dd = decide(zone=stopped, atr=None)
    assert isinstance(dd, EntrySkip) and dd.reason is SkipReason.DRAWDOWN_STOP and dd.direction is Direction.LONG
    daily = decide(zone=dataclasses.replace(GREEN, daily_loss_hit=True), atr=None)
    assert isinstance(daily, EntrySkip) and daily.reason is SkipReason.DAILY_LOSS_LIMIT
    no_atr = decide(atr=None)
    assert isinstance(no_atr, EntrySkip) and no_atr.reason is SkipReason.NO_ATR


def test_the_zone_multiplier_reaches_the_size():
    intent = decide(zone=dataclasses.replace(GREEN, zone=1, multiplier=0.5))
    assert isinstance(intent, EntryIntent) and intent.sized.units == Decimal(250_000) and intent.multiplier == 0.5


def test_open_positions_feed_the_exposure_check():
    book = {"EUR_GBP": Position(instrument="EUR_GBP", direction=Direction.LONG, units=1e9, entry_price=0.85)}
    skip = decide(book=book)
    assert isinstance(skip, EntrySkip) and skip.reason is SkipReason.MAX_EXPOSURE


# --- Margin ---------------------------------------------------------------------------------------
# A 100 000 USD account with the default [risk] section (0.5 % of NAV at the stop, SL = 1.5 ATR,
# at most 1 000 000 units, 10 NAVs of exposure per currency, 5 % of the NAV kept free of margin).
# A quiet market's ATR of 0.8 pips puts the stop 1.2 pips away: the risk rule alone asks for 4.2
# million units; the margin rule decides what the account can hold. An entry takes its margin
# (units x mid x quote->home x marginRate) plus the spread it loses when it fills.

DEFAULTS = RiskConfig()
TIGHT_ATR = 0.00008
EUR_USD_30 = EUR_USD  # marginRate 0.0333: 30:1
EUR_USD_50 = dataclasses.replace(EUR_USD, margin_rate=Decimal("0.02"))  # 50:1 (US accounts, majors)
GBP_USD_20 = dataclasses.replace(GBP_USD, margin_rate=Decimal("0.05"))
USD_JPY_25 = dataclasses.replace(USD_JPY, margin_rate=Decimal("0.04"))
EUR_USD_UNIT = 1.08505 * 0.0333 + 0.0001  # margin and spread of one EUR_USD unit, USD
RESERVE = 5_000.0  # 5 % of the NAV


def test_without_open_trades_a_tight_stop_is_cut_by_the_exposure_rule_and_fits_the_margin():
    # Risk asks 500 / 0.00012 = 4.2 M units; 10 NAVs of EUR exposure allow 921 616; they fit.
    entry = sized(atr=TIGHT_ATR, config=DEFAULTS)
    assert entry.units == Decimal(921_616) and entry.exposure_capped
    assert entry.margin_home == pytest.approx(921_616 * EUR_USD_UNIT)  # 33 392 USD
    assert not entry.margin_capped


def test_a_tight_stop_next_to_open_trades_is_cut_to_the_margin_available():
    # GBP_USD 1 000 000 and USD_JPY 500 000 are open: 83 250 USD of margin used, 16 750 available.
    available = 100_000.0 - 1_000_000 * 1.265 * 0.05 - 500_000 * 0.04
    entry = sized(atr=TIGHT_ATR, config=DEFAULTS, margin_available=available)
    budget = available - RESERVE
    assert entry.margin_capped
    assert entry.units == Decimal(int(budget / EUR_USD_UNIT))  # 324 297: rounded down
    assert entry.margin_home <= budget < (float(entry.units) + 1) * EUR_USD_UNIT  # the most that fits
    assert entry.risk_home < 500.0  # smaller than the risk budget: never larger


def test_a_50_to_1_margin_rate_holds_more_units_for_the_same_margin():
    # Most of the margin is in use: 15 000 USD left, 10 000 of it above the reserve.
    at_30 = sized(atr=TIGHT_ATR, config=DEFAULTS, margin_available=15_000.0)
    at_50 = sized(atr=TIGHT_ATR, config=DEFAULTS, margin_available=15_000.0, instrument=EUR_USD_50)
    assert at_30.units == Decimal(int(10_000 / EUR_USD_UNIT))  # 275 997
    assert at_50.units == Decimal(int(10_000 / (1.08505 * 0.02 + 0.0001)))  # 458 694
    assert at_30.margin_home == pytest.approx(10_000, abs=0.04) and at_50.margin_home == pytest.approx(10_000, abs=0.03)


def test_usd_jpy_margin_is_its_usd_units_times_the_rate():
    # A USD_JPY unit is worth one USD, whatever the price: margin 0.04 USD, spread 0.01 JPY.
    quote = Quote(bid=150.000, ask=150.010, tradeable=True)
    entry = sized(quote=quote, atr=0.012, instrument=USD_JPY_25, config=DEFAULTS, margin_available=20_000.0)
    assert entry.margin_capped
    assert entry.units == Decimal(int(15_000 / (0.04 + 0.010 / 150.005)))  # 374 376
    assert entry.margin_home <= 15_000.0


def test_a_usual_stop_is_not_touched_by_the_margin_rule():
    # The default ATR rule on an M15 ATR of 6 pips: 555 555 units, 20 129 USD of margin and spread.
    entry = sized(atr=0.0006, config=DEFAULTS, margin_available=50_000.0)
    assert entry.units == Decimal(int(500 / 0.0009)) and not entry.margin_capped


@pytest.mark.parametrize("available", [5_030.0, 5_000.0, 0.0, -250.0, float("nan")])
def test_when_not_even_the_minimum_fits_the_margin_the_skip_is_margin(available: float):
    # 30 USD above the reserve fits 827 units of EUR_USD, below a 1 000-unit minimum; none, or
    # unknown: nothing fits.
    config = dataclasses.replace(DEFAULTS, min_units=1000.0)
    result = size(atr=TIGHT_ATR, config=config, margin_available=available)
    assert isinstance(result, tuple) and result[0] is SkipReason.MARGIN


def test_the_instruments_minimum_trade_size_counts_too():
    result = size(atr=TIGHT_ATR, config=DEFAULTS, margin_available=5_030.0,
                  instrument=dataclasses.replace(EUR_USD, minimum_trade_size=Decimal(1000)))  # fmt: skip
    assert isinstance(result, tuple) and result[0] is SkipReason.MARGIN


def test_margin_is_the_reason_when_it_cut_after_the_exposure_rule():
    config = dataclasses.replace(DEFAULTS, max_exposure_per_currency=5.0, min_units=1000.0)
    # EUR exposure leaves 100 000 USD of headroom (cut to ~92 160 units), then the margin 30 USD.
    result = size(atr=TIGHT_ATR, config=config, exposure={"EUR": 400_000.0}, margin_available=5_030.0)
    assert isinstance(result, tuple) and result[0] is SkipReason.MARGIN


def test_a_zero_reserve_uses_all_the_margin_available():
    entry = sized(atr=TIGHT_ATR, config=dataclasses.replace(DEFAULTS, margin_reserve=0.0), margin_available=10_000.0)
    assert entry.units == Decimal(int(10_000 / EUR_USD_UNIT))


def test_position_margin_values_every_position_in_the_home_currency():
    book = {
        "EUR_USD": Position(instrument="EUR_USD", direction=Direction.LONG, units=100_000.0, entry_price=1.08),
        "USD_JPY": Position(instrument="USD_JPY", direction=Direction.SHORT, units=50_000.0, entry_price=149.0),
        "EUR_GBP": Position(instrument="EUR_GBP", direction=Direction.LONG, units=10_000.0, entry_price=0.85),
    }
    instruments = {"EUR_USD": EUR_USD_30, "USD_JPY": USD_JPY_25, "EUR_GBP": EUR_GBP}
    expected = 100_000 * 1.08505 * 0.0333 + 50_000 * 0.04 + 10_000 * 0.85775 * 1.265 * 0.0333
    assert position_margin(book, instruments, MIDS, "USD") == pytest.approx(expected)
    assert position_margin({}, instruments, MIDS, "USD") == 0.0


def test_a_position_margin_that_cannot_be_valued_is_unknown():
    book = {"USD_CHF": Position(instrument="USD_CHF", direction=Direction.LONG, units=1.0, entry_price=0.88)}
    assert math.isnan(position_margin(book, {"EUR_USD": EUR_USD}, MIDS, "USD"))  # no metadata
    chf = dataclasses.replace(EUR_USD, name="USD_CHF")
    assert math.isnan(position_margin(book, {"USD_CHF": chf}, {}, "USD"))  # no CHF->USD rate


def test_the_composed_decision_skips_as_margin_with_the_direction():
    skip = decide(atr=TIGHT_ATR, config=dataclasses.replace(DEFAULTS, min_units=1000.0), margin_available=5_030.0)
    assert isinstance(skip, EntrySkip) and skip.reason is SkipReason.MARGIN and skip.direction is Direction.LONG
    intent = decide(atr=TIGHT_ATR, config=DEFAULTS, margin_available=15_000.0)
    assert isinstance(intent, EntryIntent) and intent.sized.margin_capped
