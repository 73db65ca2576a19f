"""What the backtest's simulation reads and writes: the bar grid in, its trades and outcome out.

``BarGrid`` holds every instrument's bars on one row grid (the union of their bar starts); an open
trade is an ``_OpenTrade`` (the simulation's mutable state of it); a round trip, closed, is a
``ClosedTrade`` (a row of ``trades.csv``; ``END_OF_DATA`` is the close of a trade still open at the
last bar); ``_Outcome`` gathers the trades, the equity curve and the decision counts of a run.
``supervisor.offline.backtest.book.Simulation`` walks the grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from actors.core.domain import Direction, Position

__all__ = ["END_OF_DATA", "BarGrid", "ClosedTrade"]


END_OF_DATA = "end_of_data"


@dataclass(frozen=True, slots=True, kw_only=True)
class BarGrid:
    """The bars of every instrument on one row grid (the union of their bar starts).

    Attributes:
        times: bar starts, int64 UTC ns, increasing (T,).
        instruments: the columns, in the order decisions are taken (the feed's order).
        mid: ``open``, ``high``, ``low``, ``close`` -> float64 (T, I), NaN where an instrument
            has no bar.
        spread: ask - bid at the close, price units (T, I).
        volume: tick volume (T, I).
        bid: ``open``, ``high``, ``low``, ``close`` -> the bid OHLC (T, I) where the source has bid/ask
            candles (OANDA's ``price=BA``, the emulator), NaN elsewhere; None: none has them.
        ask: the same for the ask.
    """

    times: np.ndarray
    instruments: tuple[str, ...]
    mid: Mapping[str, np.ndarray]
    spread: np.ndarray
    volume: np.ndarray
    bid: Mapping[str, np.ndarray] | None = None
    ask: Mapping[str, np.ndarray] | None = None


# An open simulated trade, mutable and in floats (the walk reads it every bar): the shadow book's
# trade and the execution role's memo of it in one; ``position`` and ``closed`` are what the
# entry rules and ``trades.csv`` take of it.
@dataclass(slots=True, kw_only=True)
class _OpenTrade:
    trade_id: str
    intent_id: str
    column: int
    instrument: str
    sign: int
    units: float
    units_text: str
    entry_price: float
    initial_stop_loss: float
    stop_loss: float
    take_profit: float
    open_bar_ts: int
    open_start_ns: int
    entry_ns: int
    corr: str
    risk_home: float
    p_up: float
    open_factor: float

    def position(self) -> Position:
        """The trade as the entry rules count it (``decide_entry``'s book)."""
        direction = Direction.LONG if self.sign > 0 else Direction.SHORT
        return Position(instrument=self.instrument, direction=direction, units=self.units, entry_price=self.entry_price)

    def closed(
        self, *, exit_ns: int, exit_price: float, exit_reason: str, pnl_home: float, bars_held: int
    ) -> ClosedTrade:
        """The round trip, once the trade has closed (a row of ``trades.csv``)."""
        return ClosedTrade(
            trade_id=self.trade_id,
            intent_id=self.intent_id,
            instrument=self.instrument,
            direction="long" if self.sign > 0 else "short",
            signal_bar_ns=self.open_bar_ts,
            entry_ns=self.entry_ns,
            entry_price=self.entry_price,
            units=self.units,
            stop_loss=self.initial_stop_loss,
            take_profit=self.take_profit,
            exit_ns=exit_ns,
            exit_price=exit_price,
            exit_reason=exit_reason,
            pnl_home=pnl_home,
            risk_home=self.risk_home,
            bars_held=bars_held,
            p_up=self.p_up,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosedTrade:
    """One round trip (a row of ``trades.csv``).

    Attributes:
        trade_id: the backtest's trade id (1, 2, ... in fill order).
        intent_id: the intent id (the live order's client id).
        instrument: the instrument.
        direction: ``long`` or ``short``.
        signal_bar_ns: start of the bar the decision was taken on (UTC ns).
        entry_ns: fill time: the next bar's open (UTC ns).
        entry_price: the fill price.
        units: size.
        stop_loss: the initial SL.
        take_profit: the TP.
        exit_ns: when it closed (UTC ns): the close of the bar whose range hit SL/TP, the open a
            time exit filled at, or the last close (``end_of_data``).
        exit_price: the closing fill price.
        exit_reason: ``stop_loss``, ``take_profit``, ``time_exit`` or ``end_of_data``.
        pnl_home: realized P&L in the home currency.
        risk_home: the planned loss at the initial SL (home currency): 1 R.
        bars_held: bars on the market calendar from the signal bar to the exit bar.
        p_up: the model's probability at the decision.
    """

    trade_id: str
    intent_id: str
    instrument: str
    direction: str
    signal_bar_ns: int
    entry_ns: int
    entry_price: float
    units: float
    stop_loss: float
    take_profit: float
    exit_ns: int
    exit_price: float
    exit_reason: str
    pnl_home: float
    risk_home: float
    bars_held: int
    p_up: float

    @property
    def r_multiple(self) -> float:
        """P&L in units of the planned risk (0 when the risk is unknown)."""
        return self.pnl_home / self.risk_home if self.risk_home > 0 else 0.0


@dataclass(slots=True)
class _Outcome:
    trades: list[ClosedTrade] = field(default_factory=list)
    equity_ns: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    exposed: int = 0
    exposed_at: list[bool] = field(default_factory=list)  # per bar close: a trade was open
    decisions: dict[str, int] = field(default_factory=dict)
