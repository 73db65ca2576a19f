"""Exit management as pure decisions: breakeven, trailing stop and time exit for one open trade.

``exit_actions`` looks at an open trade and the current bid/ask and returns what to change at
the broker: ``MoveStopLoss(price)`` or ``CloseTrade(reason)``, or nothing. It never closes a trade
at a local stop level: stops live at the broker (its SL/TP orders trigger by themselves), and
the execution role turns these actions into broker-side order changes (``set_trade_orders``,
``close_trade``); ``tradehost backtest`` applies them to its simulated trade the same way.

The rules (``[execution]``), with R = the initial risk per unit (|entry - initial SL|) and profit
measured at the price the trade would close at (the bid for a long, the ask for a short). Every
key that switches a rule (or a way of measuring it) means the same by 0: off. ``time_exit_bars =
0`` never closes, ``breakeven_after_r = 0`` never moves to breakeven, ``trailing_after_r = 0``
never trails (0 is not "from the entry": a trail from the entry is a small positive threshold),
``trailing_atr_mult = 0`` trails by no ATR multiple and ``trailing_distance_pips = 0`` by no fixed
distance (both 0: no trailing). ``breakeven_offset_pips`` is a distance, not a switch: 0 puts the
breakeven stop at the entry itself.

1. **Time exit**: after ``time_exit_bars`` bars, close (``CloseTrade("time_exit")``); nothing
   else is proposed then.
2. **Breakeven**: from a profit of ``breakeven_after_r`` R, the SL goes to the entry moved
   ``breakeven_offset_pips`` towards profit.
3. **Trailing**: from a profit of ``trailing_after_r`` R, the SL trails ``trailing_atr_mult`` ATRs
   behind the price (or ``trailing_distance_pips`` when the ATR multiple is 0 or no ATR is known).

Of the candidate stops the tightest wins; it is rounded to a whole tick away from the price
(never tighter than the rule asks) and proposed only when it is **strictly tighter** than the
current SL (a long's higher, a short's lower: an SL never moves against the trade) and still
strictly on the safe side of the trigger price (below the bid for a long, above the ask for a
short), since a stop at or through the price would fill at once. A trade without an SL gets one
(nothing can be looser). A trade without a known R gets no breakeven or trailing, only the time
exit.

Every open trade is managed. The execution role remembers R and the entry bar of the trades it
opened (its memo: the intent's SL, the decision bar); a trade without that memo (adopted: opened
by hand or by another system; or the host's own whose outcome it never learned, or whose memo was
lost) gets them from the broker's trade (``entry_from_broker``): R = |entry - the SL it has when
first managed| (unknown when that SL is not on the losing side of the entry: the time exit only),
and the bars held counted from its open time, as if it had been decided at the close before it
opened.

Speed: ``exit_actions`` takes plain floats (the backtest calls it per open trade per bar);
``manage_trade`` is the same rule over the broker's ``TradeState`` for the execution role, with
what only the role remembers of the entry (the initial SL, the bars held).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from actors.core.bartime import bar_start, expected_bars
from actors.core.domain import Direction

if TYPE_CHECKING:
    from actors.core.config import ExecutionConfig
    from actors.core.domain import Instrument, TradeState

__all__ = [
    "BREAKEVEN",
    "TIME_EXIT",
    "TRAILING",
    "BrokerEntry",
    "CloseTrade",
    "ExitAction",
    "MoveStopLoss",
    "entry_from_broker",
    "exit_actions",
    "manage_trade",
    "protective_stops",
]

TIME_EXIT = "time_exit"
BREAKEVEN = "breakeven"
TRAILING = "trailing"
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class MoveStopLoss:
    """Replace the trade's SL at the broker with ``price`` (at ``displayPrecision``).

    Attributes:
        price: the new SL price.
        reason: ``breakeven`` or ``trailing``.
    """

    price: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class CloseTrade:
    """Close the trade at the market.

    Attributes:
        reason: ``time_exit``.
    """

    reason: str


ExitAction = MoveStopLoss | CloseTrade

_NOTHING: tuple[ExitAction, ...] = ()
_CLOSE_TIME = (CloseTrade(TIME_EXIT),)


def exit_actions(  # noqa: PLR0917 - the backtest's per-bar call: plain positional floats
    direction_sign: int,
    entry_price: float,
    initial_risk: float,
    stop_loss: float | None,
    bars_held: int,
    bid: float,
    ask: float,
    atr: float | None,
    *,
    pip: float,
    precision: int,
    config: ExecutionConfig,
) -> tuple[ExitAction, ...]:
    """The exit actions for one open trade now (the module's rules).

    Args:
        direction_sign: +1 for a long, -1 for a short.
        entry_price: the trade's fill price.
        initial_risk: R in price units (0 when unknown: no breakeven, no trailing).
        stop_loss: the current SL at the broker, None without one.
        bars_held: bars closed since the entry.
        bid: the current bid.
        ask: the current ask.
        atr: the instrument's current ATR in price units, None when unknown.
        pip: one pip in price units (10 ** ``pipLocation``).
        precision: the instrument's ``displayPrecision``.
        config: the ``[execution]`` section.

    Returns:
        No action, one ``CloseTrade``, or one ``MoveStopLoss``.
    """
    if config.time_exit_bars and bars_held >= config.time_exit_bars:
        return _CLOSE_TIME
    if not initial_risk > 0:
        return _NOTHING
    long = direction_sign > 0
    price = bid if long else ask
    profit_r = ((price - entry_price) if long else (entry_price - price)) / initial_risk
    breakeven = config.breakeven_after_r > 0 and profit_r >= config.breakeven_after_r
    trailing = config.trailing_after_r > 0 and profit_r >= config.trailing_after_r
    if not (breakeven or trailing):
        return _NOTHING
    scale = 10.0**precision
    # Whole ticks from here on: a stop strictly between the current SL and the price is valid.
    price_ticks = round(price * scale)
    # Without an SL any valid stop is tighter: nothing can be looser than none.
    current_ticks: float = (0 if long else math.inf) if stop_loss is None else round(stop_loss * scale)
    best: tuple[int, str] | None = None
    if breakeven:
        level = entry_price + direction_sign * config.breakeven_offset_pips * pip
        best = _tighter(best, level, BREAKEVEN, long, scale, price_ticks, current_ticks)
    if trailing:
        if config.trailing_atr_mult > 0 and atr is not None and atr > 0:
            distance = config.trailing_atr_mult * atr
        else:
            distance = config.trailing_distance_pips * pip
        if distance > 0:
            level = price - direction_sign * distance
            best = _tighter(best, level, TRAILING, long, scale, price_ticks, current_ticks)
    if best is None:
        return _NOTHING
    return (MoveStopLoss(Decimal(best[0]).scaleb(-precision), best[1]),)


def _tighter(  # noqa: PLR0917 - private helper of exit_actions
    best: tuple[int, str] | None,
    candidate: float,
    reason: str,
    long: bool,
    scale: float,
    price_ticks: int,
    current_ticks: float,
) -> tuple[int, str] | None:
    # ``candidate`` on a whole tick away from the price, if it is a valid stop tighter than ``best``.
    if not math.isfinite(candidate):
        return best
    if long:
        ticks = math.floor(candidate * scale + _EPS)
        valid = current_ticks < ticks < price_ticks
        return (ticks, reason) if valid and (best is None or ticks > best[0]) else best
    ticks = math.ceil(candidate * scale - _EPS)
    valid = price_ticks < ticks < current_ticks
    return (ticks, reason) if valid and (best is None or ticks < best[0]) else best


def manage_trade(
    trade: TradeState,
    *,
    initial_stop_loss: Decimal | None,
    bars_held: int,
    bid: float,
    ask: float,
    atr: float | None,
    instrument: Instrument,
    config: ExecutionConfig,
) -> tuple[ExitAction, ...]:
    """``exit_actions`` for an open trade as the broker reports it (the execution role's form of
    the same rule).

    Args:
        trade: the open trade (its entry price and current SL are the broker's).
        initial_stop_loss: the SL the trade opened with (R = |entry - initial SL|); None when
            unknown (``entry_from_broker`` found none on the losing side): no breakeven, no trailing.
        bars_held: bars closed since the entry (``bars_held``).
        bid: the current bid.
        ask: the current ask.
        atr: the instrument's current ATR in price units, None when unknown.
        instrument: the instrument's metadata (pip size, display precision).
        config: the ``[execution]`` section.
    """
    entry = float(trade.price)
    return exit_actions(
        trade.direction.sign,
        entry,
        0.0 if initial_stop_loss is None else abs(entry - float(initial_stop_loss)),
        None if trade.stop_loss_price is None else float(trade.stop_loss_price),
        bars_held,
        bid,
        ask,
        atr,
        pip=10.0**instrument.pip_location,
        precision=instrument.display_precision,
        config=config,
    )


PROTECTION_FALLBACK_FRACTION = 0.005  # the SL distance when no ATR is known: 0.5 % of the price


def protective_stops(
    direction: Direction,
    *,
    bid: float,
    ask: float,
    atr: float | None,
    instrument: Instrument,
    sl_atr_mult: float,
    reward_ratio: float,
) -> tuple[Decimal, Decimal]:
    """An SL and a TP for an open trade that lacks them (the reconciler's repair, the shutdown check).

    Measured from the current trigger price (the bid for a long, the ask for a short), so the SL
    is always on the safe side of the market: ``sl_atr_mult`` ATRs away (0.5 % of the price
    without an ATR), the TP ``reward_ratio`` times that on the other side; the SL rounded away from
    the price to a whole tick, the TP to the nearest tick.
    """
    trigger = bid if direction is Direction.LONG else ask
    distance = sl_atr_mult * atr if atr and atr > 0 else trigger * PROTECTION_FALLBACK_FRACTION
    tick = 10.0**-instrument.display_precision
    sign = direction.sign
    sl_ticks = math.floor((trigger - sign * distance) / tick) if sign > 0 else math.ceil((trigger + distance) / tick)
    tp_ticks = round((trigger + sign * distance * reward_ratio) / tick)
    q = Decimal(1).scaleb(-instrument.display_precision)
    return Decimal(sl_ticks) * q, Decimal(tp_ticks) * q


def bars_held(open_bar_ts: int, current_bar_ts: int, granularity: str) -> int:
    """Bars closed since the trade opened (the entry bar excluded), on the market calendar."""
    start = bar_start(open_bar_ts, granularity)
    if current_bar_ts <= start:
        return 0
    return len(expected_bars(start, current_bar_ts, granularity)) + 1


@dataclass(frozen=True, slots=True)
class BrokerEntry:
    """What the exit rules need of an entry, taken from the broker's trade alone (for a trade
    without the execution role's memo: adopted, or the host's own whose memo was lost).

    Attributes:
        initial_stop_loss: the SL that defines R, None when R is unknown.
        open_bar_ts: the start of the bar whose close the entry followed (``bars_held``'s origin).
    """

    initial_stop_loss: Decimal | None
    open_bar_ts: int


def entry_from_broker(trade: TradeState, granularity: str) -> BrokerEntry:
    """The entry of an open trade as the broker shows it, in the form the execution role's memo
    keeps it, so every exit rule applies to it.

    R is the distance from the entry to the trade's SL now (the first time the host manages it,
    kept from then on: a stop the rules move later does not shrink it), when that SL is on the
    losing side of the entry; an SL at or beyond the entry (already moved to breakeven) or none
    leaves R unknown: the time exit only. The bars held count from the bar the trade opened in,
    like a trade the host decided at the close before it (its entry bar excluded).

    Args:
        trade: the open trade (entry price, current SL, open time).
        granularity: the bars' granularity.
    """
    sl = trade.stop_loss_price
    losing_side = sl is not None and (sl - trade.price) * trade.direction.sign < 0
    opened_in = bar_start(trade.open_ts, granularity)
    return BrokerEntry(
        initial_stop_loss=sl if losing_side else None,
        open_bar_ts=bar_start(opened_in - 1, granularity),
    )
