"""The one fill model: how a simulated order fills, on a tick (shadow book) or a bar (backtest).

The shadow book (``actors.broker.shadow``) and ``tradehost backtest`` both fill through these
functions, so a shadow run and a backtest of the same window fill alike. The rules:

- **Market fills** (entries, closes, time exits): a buy fills at the ask, a sell at the bid,
  each worse by the configured slippage (``execution.slippage_pips``), rounded to a whole tick
  against the trader (a buy up, a sell down).
- **SL/TP on a tick**: a long's SL and TP trigger on the **bid**, a short's on the **ask** (as at
  OANDA and in our emulator, ``actors/broker/emulator/account.py``). A triggered order fills at
  its **level** when the previous price of the same session (``previous``) was still on the near
  side of it: FX trades continuously through a session, so the market passed the level between
  two prices of a thinned stream (OANDA's, the emulator's), and the broker, which sees every
  price, filled it there. It fills at the tick's price on that side when the price **gapped**
  through the level: the first price of a session (after a closure, or with no previous price
  known), worse than the SL (and better than the TP). A stop loss becomes a market order, so it
  also pays the slippage; a take profit is a limit order and does not. When one tick crosses
  both (only possible if SL and TP cross each other), the SL wins.
- **The path inside a bar** (``bar_path``): open, then the **nearer** extreme, then the other
  one, then the close (a tie: the low first). The emulator's replay of candle files walks this
  path in small steps, and the bar rule below assumes it, so a replayed shadow run and a
  backtest see the same order.
- **On a bar** (backtest): an entry fills at the **next bar's open** on the right side of the
  spread (a market fill of the open). SL/TP are checked against the trigger side's OHLC (bid for
  a long, ask for a short): if the open is already through the SL (or the TP), the gap fills at
  the open; otherwise, when the bar's range reaches both the SL and the TP, the one on the side
  of the extreme ``bar_path`` visits first hit first; otherwise whichever the range reached fills
  at its own price.
- **P&L** of a closed trade: sign * units * (exit - entry) in the quote currency, converted to
  the home currency with ``actors.core.money.quote_to_home`` from the prices at the close.

Everything is plain floats (a bar call is a few comparisons: the backtest calls it per open trade
per bar); ``direction_sign`` is +1 for a long, -1 for a short; slippage is in price units
(``slippage_price``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from actors.core.money import quote_to_home

if TYPE_CHECKING:
    from actors.core.domain import Instrument

__all__ = [
    "ExitReason",
    "bar_exit",
    "bar_path",
    "market_fill",
    "pnl_home",
    "pnl_quote",
    "slippage_price",
    "tick_exit",
]

# Float prices sit a hair off a whole tick (1.0850 - 0.0002 = 1.08479999...).
_EPS = 1e-6


class ExitReason(enum.StrEnum):
    """Why a simulated trade closed by itself (wire vocabulary: journal rows, trades.csv)."""

    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


def slippage_price(slippage_pips: float, instrument: Instrument) -> float:
    """``slippage_pips`` in price units of ``instrument`` (a pip is 10 ** ``pipLocation``)."""
    return slippage_pips * 10.0**instrument.pip_location


def _worse(price: float, trader_sign: int, slippage: float, scale: float) -> float:
    # ``price`` made worse by ``slippage`` for a trader who buys (+1) or sells (-1), on a whole tick.
    if trader_sign > 0:
        return math.ceil((price + slippage) * scale - _EPS) / scale
    return math.floor((price - slippage) * scale + _EPS) / scale


def market_fill(direction_sign: int, bid: float, ask: float, *, slippage: float, precision: int) -> float:
    """The fill price of a market order: a buy at the ask, a sell at the bid, plus slippage.

    Args:
        direction_sign: +1 buys (opens a long or closes a short), -1 sells.
        bid: the bid (the open's bid for a bar entry).
        ask: the ask (the open's ask for a bar entry).
        slippage: how much worse the fill is, in price units (>= 0).
        precision: the instrument's ``displayPrecision`` (the fill is on a whole tick).
    """
    scale = 10.0**precision
    return _worse(ask if direction_sign > 0 else bid, direction_sign, slippage, scale)


def tick_exit(
    direction_sign: int,
    stop_loss: float | None,
    take_profit: float | None,
    bid: float,
    ask: float,
    *,
    slippage: float,
    precision: int,
    previous: tuple[float, float] | None = None,
) -> tuple[ExitReason, float] | None:
    """Whether a tick triggers an open trade's SL or TP, and the fill price.

    Args:
        direction_sign: +1 for a long trade, -1 for a short.
        stop_loss: the trade's SL price, None without one.
        take_profit: the trade's TP price, None without one.
        bid: the tick's bid.
        ask: the tick's ask.
        slippage: the stop loss's slippage in price units.
        precision: the instrument's ``displayPrecision``.
        previous: the (bid, ask) of the instrument's previous price in the same session, or None
            (the first price of a session, or none known): a level the previous price had not
            reached fills at the level, else at this tick's price (a gap).

    Returns:
        (reason, fill price), or None when neither triggers.
    """
    if direction_sign > 0:
        before = None if previous is None else previous[0]
        if stop_loss is not None and bid <= stop_loss:
            fill = stop_loss if before is not None and before > stop_loss else bid
            return ExitReason.STOP_LOSS, _worse(fill, -1, slippage, 10.0**precision)
        if take_profit is not None and bid >= take_profit:
            return ExitReason.TAKE_PROFIT, take_profit if before is not None and before < take_profit else bid
        return None
    before = None if previous is None else previous[1]
    if stop_loss is not None and ask >= stop_loss:
        fill = stop_loss if before is not None and before < stop_loss else ask
        return ExitReason.STOP_LOSS, _worse(fill, 1, slippage, 10.0**precision)
    if take_profit is not None and ask <= take_profit:
        return ExitReason.TAKE_PROFIT, take_profit if before is not None and before > take_profit else ask
    return None


def bar_path(open_: float, high: float, low: float, close: float) -> tuple[float, float, float, float]:
    """The path the fill model assumes inside a bar: open, nearer extreme, other extreme, close.

    The nearer of the high and the low to the open comes first (a tie: the low); the emulator's
    replay of candle files walks it (``actors.broker.emulator.replay``) and ``bar_exit`` assumes it.
    """
    if _low_first(open_, high, low):
        return open_, low, high, close
    return open_, high, low, close


def _low_first(open_: float, high: float, low: float) -> bool:
    # A tie within float noise (prices a tick apart are 1e-5 apart, float noise ~1e-16): the low.
    return open_ - low <= high - open_ + 1e-9 * abs(open_)


def bar_exit(  # noqa: PLR0917 - the backtest's per-bar call: the bar's prices positionally
    direction_sign: int,
    stop_loss: float | None,
    take_profit: float | None,
    open_: float,
    high: float,
    low: float,
    *,
    slippage: float,
    precision: int,
) -> tuple[ExitReason, float] | None:
    """Whether a bar triggers an open trade's SL or TP, and the fill price (the module's bar rule).

    Args:
        direction_sign: +1 for a long trade, -1 for a short.
        stop_loss: the trade's SL price, None without one.
        take_profit: the trade's TP price, None without one.
        open_: the trigger side's open (the bid's for a long, the ask's for a short).
        high: the trigger side's high.
        low: the trigger side's low.
        slippage: the stop loss's slippage in price units.
        precision: the instrument's ``displayPrecision``.

    Returns:
        (reason, fill price), or None when the bar triggers neither.
    """
    low_first = _low_first(open_, high, low)
    if direction_sign > 0:
        sl = -math.inf if stop_loss is None else stop_loss
        tp = math.inf if take_profit is None else take_profit
        if low > sl and high < tp:
            return None
        if open_ <= sl:  # gapped through the stop at the open
            return ExitReason.STOP_LOSS, _worse(open_, -1, slippage, 10.0**precision)
        if open_ >= tp:  # gapped through the target at the open
            return ExitReason.TAKE_PROFIT, open_
        if low <= sl and (high < tp or low_first):  # both reached: the extreme the path visits first
            return ExitReason.STOP_LOSS, _worse(sl, -1, slippage, 10.0**precision)
        return ExitReason.TAKE_PROFIT, tp
    sl = math.inf if stop_loss is None else stop_loss
    tp = -math.inf if take_profit is None else take_profit
    if high < sl and low > tp:
        return None
    if open_ >= sl:
        return ExitReason.STOP_LOSS, _worse(open_, 1, slippage, 10.0**precision)
    if open_ <= tp:
        return ExitReason.TAKE_PROFIT, open_
    if high >= sl and (low > tp or not low_first):
        return ExitReason.STOP_LOSS, _worse(sl, 1, slippage, 10.0**precision)
    return ExitReason.TAKE_PROFIT, tp


def pnl_quote(direction_sign: int, units: float, entry_price: float, exit_price: float) -> float:
    """A closed trade's P&L in the quote currency (``units`` positive)."""
    return direction_sign * units * (exit_price - entry_price)


def pnl_home(
    direction_sign: int,
    units: float,
    entry_price: float,
    exit_price: float,
    *,
    instrument: str,
    home_currency: str,
    mids: Mapping[str, float],
) -> float | None:
    """A closed trade's P&L in the home currency, converted at the ``mids`` of the close.

    Returns:
        The P&L, or None when ``mids`` cannot convert the quote currency.
    """
    factor = quote_to_home(instrument.split("_", 1)[1], home_currency, mids)
    if factor is None:
        return None
    return direction_sign * units * (exit_price - entry_price) * factor


def slippage_pips(direction: str, decision_price: float, fill_price: float, pip: float) -> float:
    """How much worse than the decision price the fill was, in pips (negative: better)."""
    sign = 1 if direction == "long" else -1
    return round((fill_price - decision_price) * sign / pip, 3)
