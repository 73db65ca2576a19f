"""Position sizing, currency conversion, exposure, intent ids, and the one composed entry decision.

Sizing: units = NAV * ``risk.risk_per_trade`` * zone multiplier / (SL distance * value in the
home currency of one unit moving by one price unit). One unit of ``BASE_QUOTE`` gains or loses
its price move in the quote currency, so that value is ``quote_to_home(QUOTE)``: 1 when the
quote currency is the home currency (GBP_USD for a USD account), 1 / USD_JPY for USD_JPY, the
GBP_USD mid for EUR_GBP; conversions use mid prices, as OANDA's conversion factors do.

Prices (decided here, documented once):

- The entry reference price is the side an order fills on: the **ask for a long**, the **bid for
  a short** (``actors.core.fills``). The SL and TP are measured from it, so the loss when the stop
  fills is exactly the SL distance per unit (plus slippage and gaps).
- The SL distance is ``risk.sl_atr_mult`` * ATR, **rounded up to a whole tick** (the instrument's
  ``displayPrecision``): the stop never sits tighter than the ATR rule asks, and the units are
  sized from the rounded distance, so the planned loss stays exactly within the risk budget.
- The TP distance is ``risk.reward_ratio`` * the rounded SL distance, to the nearest tick.
- A long's SL and TP trigger on the **bid**, a short's on the **ask** (as at OANDA): an SL
  distance not wider than the spread would trigger at once (OANDA cancels such an order with
  ``STOP_LOSS_ON_FILL_LOSS``), so it is a skip (``stop_inside_spread``).
- Units are rounded **down** to ``tradeUnitsPrecision``, cut to ``risk.max_units`` and the
  instrument's ``maximumOrderUnits``, and cut further so that neither currency's exposure passes
  ``risk.max_exposure_per_currency`` * NAV. A size that rounds to zero is ``size_zero``, one below
  ``risk.min_units`` or the instrument's ``minimumTradeSize`` is ``size_below_minimum`` (never
  rounded up: that would break the risk budget); when the exposure cut caused either, the reason
  is ``max_exposure``.
- Units are cut last so that the entry fits the margin the account has. An entry takes from the
  margin available its margin, units * mid * ``quote_to_home(QUOTE)`` * the instrument's
  ``marginRate`` (how OANDA, the emulator and the shadow book value it), plus the spread it is
  worth less the moment it fills (units * (ask - bid) * ``quote_to_home(QUOTE)``: the NAV drops by
  that, and with it the margin available). Together at most ``margin_available`` -
  ``risk.margin_reserve`` * NAV. The caller's ``margin_available`` is the account's
  ``marginAvailable`` less what the entries it counts and the account does not show yet took
  (intents in flight: their ``SizedEntry.margin_home``). When the margin cut leaves nothing that
  rounds to a size at least the minimum, the reason is ``margin`` (never rounded up: the broker
  would cancel the order with ``INSUFFICIENT_MARGIN``).

Numbers: the rules compute in floats (fast, and nothing is lost: tick arithmetic is done in
integers), and what is sent to the broker (units, SL and TP prices) is returned as ``Decimal``
built from those integers, so it is exact at the instrument's precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from actors.core.domain import Direction, Quote, SkipReason
from actors.core.money import quote_to_home

if TYPE_CHECKING:
    from actors.core.config import RiskConfig
    from actors.core.domain import Instrument

__all__ = [
    "SizedEntry",
    "size_entry",
]

# A float computed from prices can sit a hair off a whole tick (1.0850 - 0.0012 = 1.08379999...).
_EPS = 1e-6


@dataclass(frozen=True, slots=True, kw_only=True)
class SizedEntry:
    """The size and the broker-side stops of an entry.

    Attributes:
        direction: long or short.
        units: the order size, positive, at ``tradeUnitsPrecision`` (OANDA's ``units`` carries
            the direction's sign).
        stop_loss: the SL price at ``displayPrecision`` (triggers on the bid for a long).
        take_profit: the TP price at ``displayPrecision``.
        entry_price: the decision price (the ask for a long, the bid for a short).
        sl_distance: |entry_price - stop_loss| in price units (the initial risk R per unit).
        risk_home: the planned loss at the stop, in the home currency.
        exposure_capped: the size was cut to respect ``risk.max_exposure_per_currency``.
        margin_capped: the size was cut to fit the margin available.
        margin_home: what the entry takes from the margin available, in the home currency: its
            margin at the decision's mid plus the spread it loses when it fills.
    """

    direction: Direction
    units: Decimal
    stop_loss: Decimal
    take_profit: Decimal
    entry_price: float
    sl_distance: float
    risk_home: float
    exposure_capped: bool = False
    margin_capped: bool = False
    margin_home: float = 0.0


def size_entry(
    direction: Direction,
    quote: Quote,
    atr: float | None,
    *,
    instrument: Instrument,
    nav: float,
    multiplier: float,
    mids: Mapping[str, float],
    home_currency: str,
    exposure: Mapping[str, float],
    margin_available: float,
    config: RiskConfig,
) -> SizedEntry | tuple[SkipReason, str]:
    """Size an entry and place its SL/TP (the rules in the module docstring).

    Args:
        direction: the gate's direction.
        quote: the instrument's current quote.
        atr: the instrument's ATR in price units (``risk.atr_period`` bars); None if unknown.
        instrument: the instrument's metadata (precisions, size limits).
        nav: NAV in the home currency.
        multiplier: the drawdown zone's size multiplier.
        mids: mid prices by instrument, for the quote→home conversion.
        home_currency: the account currency.
        exposure: signed net exposure per currency (``currency_exposure``).
        margin_available: the margin the account has for this entry, in the home currency: its
            ``marginAvailable`` less what entries it does not show yet took (NaN: unknown).
        config: the ``[risk]`` section.

    Returns:
        The sized entry, or a skip reason with a short detail for the journal.
    """
    if atr is None or not atr > 0 or not math.isfinite(atr):
        return SkipReason.NO_ATR, f"atr={atr!r}"
    stops = _stops(direction, quote, atr, instrument=instrument, config=config)
    if not isinstance(stops, _Stops):
        return stops
    scale = stops.scale
    _, quote_ccy = instrument.name.split("_", 1)
    factor = quote_to_home(quote_ccy, home_currency, mids)
    if factor is None:
        return SkipReason.NO_CONVERSION_RATE, f"{quote_ccy}->{home_currency}"
    sl_distance = stops.sl_ticks / scale
    units = nav * config.risk_per_trade * multiplier / (sl_distance * factor)
    if not units > 0:  # no NAV, or a zero multiplier
        return SkipReason.SIZE_ZERO, f"units={units:.6g}"
    units = min(units, config.max_units, float(instrument.maximum_order_units))
    unit_notional = (quote.bid + quote.ask) / 2.0 * factor
    cut_to = _exposure_cut(
        units,
        direction.sign,
        instrument=instrument,
        unit_notional=unit_notional,
        exposure=exposure,
        nav=nav,
        home_currency=home_currency,
        config=config,
    )
    if not isinstance(cut_to, _Cut):
        return cut_to
    units, capped = cut_to.units, cut_to.capped
    unit_margin = unit_notional * float(instrument.margin_rate) + (quote.ask - quote.bid) * factor
    budget = margin_available - config.margin_reserve * nav
    if not budget > 0:  # also NaN: the margin available is unknown
        return SkipReason.MARGIN, f"margin_available={margin_available:.2f}" + _reserve(config, nav)
    margin_capped = units * unit_margin > budget
    if margin_capped:
        units = budget / unit_margin
    # The reason for a size the cuts left too small: the last cut that bit.
    cut = SkipReason.MARGIN if margin_capped else SkipReason.MAX_EXPOSURE if capped else None
    sized = _tradeable_units(
        units, instrument=instrument, config=config, cut=cut, margin_capped=margin_capped, budget=budget
    )
    if not isinstance(sized, Decimal):
        return sized
    dp = instrument.display_precision
    return SizedEntry(
        direction=direction,
        units=sized,
        stop_loss=Decimal(stops.stop_ticks).scaleb(-dp),
        take_profit=Decimal(stops.target_ticks).scaleb(-dp),
        entry_price=stops.entry_ticks / scale,
        sl_distance=sl_distance,
        risk_home=float(sized) * sl_distance * factor,
        exposure_capped=capped,
        margin_capped=margin_capped,
        margin_home=float(sized) * unit_margin,
    )


@dataclass(frozen=True, slots=True)
class _Stops:
    """An entry's price and its SL/TP in ticks of the instrument's display precision (``scale``
    ticks a price unit)."""

    scale: float
    entry_ticks: int
    sl_ticks: int
    stop_ticks: int
    target_ticks: int


def _stops(
    direction: Direction, quote: Quote, atr: float, *, instrument: Instrument, config: RiskConfig
) -> _Stops | tuple[SkipReason, str]:
    # The stop sl_atr_mult ATRs from the entry side (rounded away from it), the target
    # reward_ratio stops beyond it; a stop inside the spread or a level at or below zero: no entry.
    sign = direction.sign
    scale = 10.0**instrument.display_precision
    bid_ticks, ask_ticks = round(quote.bid * scale), round(quote.ask * scale)
    entry_ticks = ask_ticks if sign > 0 else bid_ticks
    sl_ticks = math.ceil(config.sl_atr_mult * atr * scale - _EPS)
    tp_ticks = math.floor(sl_ticks * config.reward_ratio + 0.5)
    stop_ticks, target_ticks = entry_ticks - sign * sl_ticks, entry_ticks + sign * tp_ticks
    if sl_ticks <= ask_ticks - bid_ticks or tp_ticks < 1 or stop_ticks <= 0 or target_ticks <= 0:
        return SkipReason.STOP_INSIDE_SPREAD, f"sl_ticks={sl_ticks} spread_ticks={ask_ticks - bid_ticks}"
    return _Stops(scale, entry_ticks, sl_ticks, stop_ticks, target_ticks)


@dataclass(frozen=True, slots=True)
class _Cut:
    units: float
    capped: bool


def _exposure_cut(
    units: float,
    sign: int,
    *,
    instrument: Instrument,
    unit_notional: float,
    exposure: Mapping[str, float],
    nav: float,
    home_currency: str,
    config: RiskConfig,
) -> _Cut | tuple[SkipReason, str]:
    # The units cut to the headroom each currency of the pair (but the home currency) has left
    # under max_exposure_per_currency; no headroom at all (or an unknown exposure): no entry.
    capped = False
    base, quote_ccy = instrument.name.split("_", 1)
    limit = config.max_exposure_per_currency * nav
    for currency, side in ((base, sign), (quote_ccy, -sign)):
        if currency == home_currency:
            continue
        headroom = limit - side * exposure.get(currency, 0.0)
        if not headroom > 0:  # also NaN: the exposure is unknown
            return SkipReason.MAX_EXPOSURE, f"{currency} has no headroom"
        if units * unit_notional > headroom:
            units, capped = headroom / unit_notional, True
    return _Cut(units, capped)


def _tradeable_units(
    units: float,
    *,
    instrument: Instrument,
    config: RiskConfig,
    cut: SkipReason | None,
    margin_capped: bool,
    budget: float,
) -> Decimal | tuple[SkipReason, str]:
    # Rounded down to the instrument's units precision; too small, the reason is the last cut
    # that bit (``cut``), else the size itself.
    precision = instrument.trade_units_precision
    steps = math.floor(units * 10.0**precision + _EPS) if units > 0 else 0
    if steps <= 0:
        return cut or SkipReason.SIZE_ZERO, f"units={units:.6g}" + _margin_detail(margin_capped, budget)
    sized = Decimal(steps).scaleb(-precision)
    minimum = max(config.min_units, float(instrument.minimum_trade_size))
    if float(sized) < minimum:
        detail = f"units={sized} < {minimum:g}" + _margin_detail(margin_capped, budget)
        return cut or SkipReason.SIZE_BELOW_MINIMUM, detail
    return sized


def _margin_detail(margin_capped: bool, budget: float) -> str:
    return f" (margin {budget:.2f} left above the reserve)" if margin_capped else ""


def _reserve(config: RiskConfig, nav: float) -> str:
    return f", reserve={config.margin_reserve * nav:.2f}"
