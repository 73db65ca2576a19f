"""What a trading role knows of the market: the latest quote and the recent bars of each instrument.

The risk and execution roles keep one ``MarketView`` each, fed from the bus (``md.tick.*`` and
``md.bar.*``) and, at start, from the broker's candles. It answers the rules' questions in the
rules' terms: a ``Quote`` (floats, for comparisons), mid prices for currency conversion, the
broker-form ``Price`` (Decimal, for the shadow book), and the ATR over the recent bars through the
one ATR rule (``actors.core.bars.average_true_range``). Market time is the latest price's time, so a
replayed or accelerated market decides as the live one would. Pure: no I/O.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from actors.core.bars import BarCandle, average_true_range
from actors.core.domain import OHLC, Price, Quote
from actors.runtime.messages import Bar, Prices, PriceTick

__all__ = ["MarketView", "bar_candle", "price_of"]


def _ohlc(p: Prices) -> OHLC:
    return OHLC(o=Decimal(p.o), h=Decimal(p.h), l=Decimal(p.l), c=Decimal(p.c))


def bar_candle(bar: Bar) -> BarCandle:
    """A ``Bar`` message as the candle the ATR and validation rules take."""
    return BarCandle(ts=bar.ts, volume=bar.volume, complete=True, bid=_ohlc(bar.bid), ask=_ohlc(bar.ask))


def price_of(tick: PriceTick) -> Price:
    """A ``PriceTick`` message as the broker's ``Price`` (Decimal), e.g. for the shadow book."""
    bid, ask = Decimal(tick.bid), Decimal(tick.ask)
    return Price(
        instrument=tick.instrument,
        ts=tick.ts,
        bid=bid,
        ask=ask,
        closeout_bid=bid,
        closeout_ask=ask,
        tradeable=tick.tradeable,
    )


class MarketView:
    """Latest quotes and recent bars per instrument.

    Args:
        keep_bars: bars kept per instrument (at least the ATR period + 1).
    """

    def __init__(self, keep_bars: int) -> None:
        self.keep_bars = keep_bars
        self.prices: dict[str, Price] = {}
        self.bars: dict[str, deque[BarCandle]] = {}
        self.now_ns = 0

    def on_tick(self, tick: PriceTick) -> Price:
        """Take a price; returns it in the broker's form."""
        price = price_of(tick)
        self.prices[tick.instrument] = price
        self.now_ns = max(self.now_ns, tick.ts)
        return price

    def on_bar(self, instrument: str, candle: BarCandle) -> None:
        """Take a closed bar (ignored when not newer than the last one held)."""
        bars = self.bars.setdefault(instrument, deque(maxlen=self.keep_bars))
        if bars and bars[-1].ts >= candle.ts:
            return
        bars.append(candle)

    def quote(self, instrument: str) -> Quote | None:
        """The latest quote as the gate takes it, or None before the first price."""
        price = self.prices.get(instrument)
        if price is None:
            return None
        return Quote(bid=float(price.bid), ask=float(price.ask), tradeable=price.tradeable)

    def mids(self) -> dict[str, float]:
        """Mid prices of every instrument with a quote (currency conversion, exposure)."""
        return {name: float((p.bid + p.ask) / 2) for name, p in self.prices.items()}

    def atr(self, instrument: str, period: int) -> float | None:
        """The ATR of the last ``period`` bars in price units, or None with too few bars."""
        value = average_true_range(self.bars.get(instrument, ()), period=period)
        return None if value is None else float(value)
