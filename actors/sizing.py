"""Position sizing, currency conversion, exposure, intent ids, and the one composed entry decision.

Sizing: units = NAV * ``risk.risk_per_trade`` * zone multiplier / (SL distance * value in the
home currency of one unit moving by one price unit). One unit of ``BASE_QUOTE`` gains or loses
its price move in the quote currency, so that value is ``quote_to_home(QUOTE)``: 1 when the
quote currency is the home currency (GBP_USD for a USD account), 1 / USD_JPY for USD_JPY, the
GBP_USD mid for EUR_GBP; conversions use mid prices, as OANDA's conversion factors do.

Prices (decided here, documented once):

- The entry reference price is the side an order fills on: the **ask for a long**, the **bid for
  a short** (``actors.fills``). The SL and TP are measured from it, so the loss when the stop
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
import re
from collections.abc import Collection, Container, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from actors.gate import Direction, OpenPosition, Quote, Signal, SkipReason, check_entry

if TYPE_CHECKING:
    from actors.broker import Instrument
    from actors.risk import RiskConfig
    from actors.zones import ZoneVerdict

__all__ = [
    "STRATEGY_RE",
    "EntryIntent",
    "EntrySkip",
    "SizedEntry",
    "conversion_instruments",
    "currency_exposure",
    "decide_entry",
    "intent_id",
    "position_margin",
    "quote_to_home",
    "size_entry",
]

# A float computed from prices can sit a hair off a whole tick (1.0850 - 0.0012 = 1.08379999...).
_EPS = 1e-6
_INSTRUMENT_RE = re.compile(r"[A-Za-z0-9]{1,16}_[A-Za-z0-9]{1,16}")
# ``risk.strategy`` is checked against this at load time (``actors.risk.RiskConfig``).
STRATEGY_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
_HUBS = ("USD", "EUR", "GBP", "JPY")


def quote_to_home(currency: str, home: str, mids: Mapping[str, float]) -> float | None:
    """The factor that converts an amount in ``currency`` to the home currency.

    Tries, in order: the same currency (1.0); a direct pair ``CCY_HOME`` (its mid); the inverse
    pair ``HOME_CCY`` (1 / its mid); then a cross through one other currency (USD, EUR, GBP, JPY
    first, then any other currency in ``mids``, in sorted order, so the choice is deterministic).

    Args:
        currency: the currency an amount is in (e.g. a trade's quote currency).
        home: the account's home currency.
        mids: mid prices by instrument name (``EUR_USD`` -> 1.0850).

    Returns:
        The factor, or None when ``mids`` cannot convert (or holds a non-positive price on the
        way).
    """
    if currency == home:
        return 1.0
    route = _route(currency, home, mids)
    if route is None:
        return None
    factor = 1.0
    for name, inverted in route:
        mid = mids[name]
        if not mid > 0:
            return None
        factor *= 1.0 / mid if inverted else mid
    return factor


def _leg(from_ccy: str, to_ccy: str, names: Container[str]) -> tuple[str, bool] | None:
    direct = f"{from_ccy}_{to_ccy}"
    if direct in names:
        return direct, False
    inverse = f"{to_ccy}_{from_ccy}"
    if inverse in names:
        return inverse, True
    return None


def _route(currency: str, home: str, names: Collection[str]) -> tuple[tuple[str, bool], ...] | None:
    # The instruments (and whether each is inverted) that take ``currency`` to ``home``.
    if currency == home:
        return ()
    leg = _leg(currency, home, names)
    if leg is not None:
        return (leg,)
    others = {c for name in names for c in name.split("_")} - {currency, home}
    for hub in (*[h for h in _HUBS if h in others], *sorted(others - set(_HUBS))):
        first = _leg(currency, hub, names)
        if first is not None:
            second = _leg(hub, home, names)
            if second is not None:
                return first, second
    return None


def conversion_instruments(instrument: str, home: str, available: Collection[str]) -> tuple[str, ...] | None:
    """The instruments whose prices ``quote_to_home`` uses to convert ``instrument``'s P&L.

    For a start-up check that the price stream covers every conversion the rules will need.

    Args:
        instrument: the traded instrument.
        home: the account's home currency.
        available: the instruments that can be streamed.

    Returns:
        The instruments used (empty when the quote currency is the home currency), or None when
        ``available`` cannot convert it.
    """
    _, quote = instrument.split("_", 1)
    route = _route(quote, home, available)
    return None if route is None else tuple(name for name, _ in route)


def currency_exposure(book: Mapping[str, OpenPosition], mids: Mapping[str, float], home: str) -> dict[str, float]:
    """Signed net exposure per currency in the home currency (positive: long the currency).

    A long of ``units`` BASE_QUOTE is long BASE and short QUOTE by the same notional: units * mid
    * quote_to_home(QUOTE). A position whose instrument has no mid is valued at its entry price.
    A currency that cannot be valued (no conversion rate) is NaN, which the gate and the sizing
    treat as "over the limit": unsure, no new exposure.

    Args:
        book: open positions by instrument.
        mids: mid prices by instrument.
        home: the account's home currency (it appears in the result like any other currency).
    """
    out: dict[str, float] = {}
    for name, position in book.items():
        base, quote = name.split("_", 1)
        factor = quote_to_home(quote, home, mids)
        price = mids.get(name, position.entry_price)
        notional = math.nan if factor is None else position.units * price * factor
        signed = notional if position.direction is Direction.LONG else -notional
        out[base] = out.get(base, 0.0) + signed
        out[quote] = out.get(quote, 0.0) - signed
    return out


def position_margin(
    book: Mapping[str, OpenPosition], instruments: Mapping[str, Instrument], mids: Mapping[str, float], home: str
) -> float:
    """The margin the broker holds for ``book``, in the home currency (the valuation ``size_entry`` uses).

    Each position: units * mid * ``quote_to_home(QUOTE)`` * its instrument's ``marginRate``; a
    position whose instrument has no mid is valued at its entry price. A position that cannot be
    valued (no metadata, no conversion rate) makes the total NaN, which sizing treats as no margin
    left: unsure, no new entry.

    Args:
        book: open positions by instrument.
        instruments: instrument metadata by name (``marginRate``).
        mids: mid prices by instrument.
        home: the account's home currency.
    """
    total = 0.0
    for name, position in book.items():
        meta = instruments.get(name)
        factor = quote_to_home(name.split("_", 1)[1], home, mids)
        if meta is None or factor is None:
            return math.nan
        total += position.units * mids.get(name, position.entry_price) * factor * float(meta.margin_rate)
    return total


def intent_id(strategy: str, instrument: str, bar_ts_ns: int, direction: Direction) -> str:
    """The deterministic id of the intent to trade ``instrument`` at bar ``bar_ts_ns``.

    ``<strategy>.<instrument>.<bar time ns>.<L|S>``, e.g. ``main.EUR_USD.1700000000000000000.L``:
    readable in the journal and at the broker, at most 80 characters, made only of
    ``[A-Za-z0-9._-]`` (OANDA's ``clientExtensions.id``, usable as ``@id`` in a URL), and
    different for different inputs (no part can contain the separator ``.``).

    Raises:
        ValueError: the strategy or the instrument has characters outside that set, or the bar
            time is negative.
    """
    if not STRATEGY_RE.fullmatch(strategy):
        raise ValueError(f"strategy {strategy!r} must match {STRATEGY_RE.pattern}")
    if not _INSTRUMENT_RE.fullmatch(instrument):
        raise ValueError(f"instrument {instrument!r} must match {_INSTRUMENT_RE.pattern}")
    if bar_ts_ns < 0:
        raise ValueError(f"bar time {bar_ts_ns} is negative")
    return f"{strategy}.{instrument}.{bar_ts_ns}.{'L' if direction is Direction.LONG else 'S'}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SizedEntry:
    """The size and the broker-side stops of an entry.

    Attributes:
        direction: long or short.
        units: the order size, positive, at ``tradeUnitsPrecision`` (OANDA's ``units`` is
            ``signed_units``).
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

    @property
    def signed_units(self) -> Decimal:
        """Units with OANDA's sign: positive buys, negative sells."""
        return self.units if self.direction is Direction.LONG else -self.units


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
    sign = direction.sign
    scale = 10.0**instrument.display_precision
    bid_ticks, ask_ticks = round(quote.bid * scale), round(quote.ask * scale)
    entry_ticks = ask_ticks if sign > 0 else bid_ticks
    sl_ticks = math.ceil(config.sl_atr_mult * atr * scale - _EPS)
    tp_ticks = math.floor(sl_ticks * config.reward_ratio + 0.5)
    stop_ticks, target_ticks = entry_ticks - sign * sl_ticks, entry_ticks + sign * tp_ticks
    if sl_ticks <= ask_ticks - bid_ticks or tp_ticks < 1 or stop_ticks <= 0 or target_ticks <= 0:
        return SkipReason.STOP_INSIDE_SPREAD, f"sl_ticks={sl_ticks} spread_ticks={ask_ticks - bid_ticks}"
    _, quote_ccy = instrument.name.split("_", 1)
    factor = quote_to_home(quote_ccy, home_currency, mids)
    if factor is None:
        return SkipReason.NO_CONVERSION_RATE, f"{quote_ccy}->{home_currency}"
    sl_distance = sl_ticks / scale
    units = nav * config.risk_per_trade * multiplier / (sl_distance * factor)
    if not units > 0:  # no NAV, or a zero multiplier
        return SkipReason.SIZE_ZERO, f"units={units:.6g}"
    units = min(units, config.max_units, float(instrument.maximum_order_units))
    capped = False
    base = instrument.name.split("_", 1)[0]
    limit = config.max_exposure_per_currency * nav
    unit_notional = (quote.bid + quote.ask) / 2.0 * factor
    for currency, side in ((base, sign), (quote_ccy, -sign)):
        if currency == home_currency:
            continue
        headroom = limit - side * exposure.get(currency, 0.0)
        if not headroom > 0:  # also NaN: the exposure is unknown
            return SkipReason.MAX_EXPOSURE, f"{currency} has no headroom"
        if units * unit_notional > headroom:
            units, capped = headroom / unit_notional, True
    unit_margin = unit_notional * float(instrument.margin_rate) + (quote.ask - quote.bid) * factor
    budget = margin_available - config.margin_reserve * nav
    if not budget > 0:  # also NaN: the margin available is unknown
        return SkipReason.MARGIN, f"margin_available={margin_available:.2f}" + _reserve(config, nav)
    margin_capped = units * unit_margin > budget
    if margin_capped:
        units = budget / unit_margin
    # The reason for a size the cuts left too small: the last cut that bit.
    cut = SkipReason.MARGIN if margin_capped else SkipReason.MAX_EXPOSURE if capped else None
    precision = instrument.trade_units_precision
    steps = math.floor(units * 10.0**precision + _EPS) if units > 0 else 0
    if steps <= 0:
        return cut or SkipReason.SIZE_ZERO, f"units={units:.6g}" + _margin_detail(margin_capped, budget)
    sized = Decimal(steps).scaleb(-precision)
    minimum = max(config.min_units, float(instrument.minimum_trade_size))
    if float(sized) < minimum:
        detail = f"units={sized} < {minimum:g}" + _margin_detail(margin_capped, budget)
        return cut or SkipReason.SIZE_BELOW_MINIMUM, detail
    dp = instrument.display_precision
    return SizedEntry(
        direction=direction,
        units=sized,
        stop_loss=Decimal(stop_ticks).scaleb(-dp),
        take_profit=Decimal(target_ticks).scaleb(-dp),
        entry_price=entry_ticks / scale,
        sl_distance=sl_distance,
        risk_home=float(sized) * sl_distance * factor,
        exposure_capped=capped,
        margin_capped=margin_capped,
        margin_home=float(sized) * unit_margin,
    )


def _margin_detail(margin_capped: bool, budget: float) -> str:
    return f" (margin {budget:.2f} left above the reserve)" if margin_capped else ""


def _reserve(config: RiskConfig, nav: float) -> str:
    return f", reserve={config.margin_reserve * nav:.2f}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryIntent:
    """A decision to enter: what the risk role publishes as ``risk.intent``.

    Attributes:
        intent_id: the deterministic id (``intent_id``): the order's client id.
        signal: the signal it came from.
        sized: units, SL, TP and the decision price.
        multiplier: the drawdown zone's size multiplier used.
    """

    intent_id: str
    signal: Signal
    sized: SizedEntry
    multiplier: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EntrySkip:
    """A decision not to enter: what the risk role publishes as ``risk.skip``.

    Attributes:
        signal: the signal it came from.
        reason: the stable reason code.
        direction: the direction the signal pointed to, when it got that far.
        detail: a short human-readable detail (may be empty).
    """

    signal: Signal
    reason: SkipReason
    direction: Direction | None = None
    detail: str = ""


def decide_entry(
    signal: Signal,
    quote: Quote | None,
    atr: float | None,
    *,
    instrument: Instrument,
    book: Mapping[str, OpenPosition],
    mids: Mapping[str, float],
    nav: float,
    home_currency: str,
    now_ns: int,
    last_loss_close_ns: Mapping[str, int],
    zone: ZoneVerdict,
    margin_available: float,
    config: RiskConfig,
) -> EntryIntent | EntrySkip:
    """The whole entry decision for one signal, in the one order both the role and the backtest use.

    1. The gate (``actors.gate.check_entry``): probability, market hours, book, spread, exposure.
    2. The zones (``actors.zones``): ``drawdown_stop``, then ``daily_loss_limit``.
    3. Sizing (``size_entry``) with the zone's multiplier, cut to the margin available.
    4. The intent id from (``risk.strategy``, instrument, bar time, direction).

    The permit is not checked here: the role checks it before and the execution role again at
    send time.

    Args:
        signal: the model's signal.
        quote: the instrument's current quote (None before the first).
        atr: the instrument's ATR in price units.
        instrument: the instrument's metadata.
        book: open positions by instrument.
        mids: mid prices by instrument (exposure and conversion).
        nav: NAV in the home currency.
        home_currency: the account currency.
        now_ns: the decision time (UTC ns).
        last_loss_close_ns: per instrument, when its last losing trade closed.
        zone: the latest verdict of ``actors.zones.update_zones``.
        margin_available: the account's ``marginAvailable`` less what the entries in ``book`` it
            does not show yet took (the intents in flight: their ``SizedEntry.margin_home``), in
            the home currency; NaN when unknown (a ``margin`` skip).
        config: the ``[risk]`` section.
    """
    exposure = currency_exposure(book, mids, home_currency) if book else {}
    gate = check_entry(
        signal,
        quote,
        instrument=instrument,
        book=book,
        exposure=exposure,
        nav=nav,
        home_currency=home_currency,
        now_ns=now_ns,
        last_loss_close_ns=last_loss_close_ns,
        config=config,
    )
    direction = gate.direction
    if direction is None or quote is None:
        return EntrySkip(signal=signal, reason=gate.reason or SkipReason.NOT_TRADEABLE)
    if zone.drawdown_stop:
        return EntrySkip(signal=signal, reason=SkipReason.DRAWDOWN_STOP, direction=direction,
                         detail=f"drawdown={zone.drawdown:.4f}")  # fmt: skip
    if zone.daily_loss_hit:
        return EntrySkip(signal=signal, reason=SkipReason.DAILY_LOSS_LIMIT, direction=direction,
                         detail=f"daily_pnl={zone.daily_pnl:.2f}")  # fmt: skip
    sized = size_entry(
        direction,
        quote,
        atr,
        instrument=instrument,
        nav=nav,
        multiplier=zone.multiplier,
        mids=mids,
        home_currency=home_currency,
        exposure=exposure,
        margin_available=margin_available,
        config=config,
    )
    if isinstance(sized, tuple):
        return EntrySkip(signal=signal, reason=sized[0], direction=direction, detail=sized[1])
    return EntryIntent(
        intent_id=intent_id(config.strategy, signal.instrument, signal.bar_ts_ns, direction),
        signal=signal,
        sized=sized,
        multiplier=zone.multiplier,
    )
