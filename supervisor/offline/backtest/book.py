"""The backtest's simulated account: the live roles' rules applied bar by bar to one book.

``Simulation`` walks the rows of the union bar index once and, at each step, calls the pure
functions the roles call (never a copy of one):

- **At a bar's open**: intents decided at the instrument's previous close fill with
  ``actors.core.fills.market_fill`` at the open's bid/ask (a buy at the ask, a sell at the bid,
  ``execution.slippage_pips`` worse).
- **Inside the bar**: SL/TP with ``actors.core.fills.bar_exit`` on the trigger side's OHLC (a long's on
  the bid, a short's on the ask; a gap through a level fills at the open; when the range reaches
  both, the one on the side of the extreme nearer the open, ``actors.core.fills.bar_path``).
- **At the bar's close**, in the order the execution and risk roles follow live
  (``actors.core.closing.at_close``, the one sequence both call): the SL/TP hits above are settled,
  then every open trade goes through ``actors.core.exits.exit_actions`` (a stop moved now protects
  from the next bar on; a time exit closes now with ``market_fill`` at the close's bid/ask, as the
  execution role closes it before the risk role decides), then the entries are decided (the
  decision time, in market time, as the risk role decides on market time): the NAV (balance +
  open P&L at the closing side, ``actors.core.fills.pnl_home``) is folded into
  ``actors.core.zones.update_zones``; every prediction goes through ``actors.core.entry.decide_entry``
  (gate, zones, sizing, intent id) with the bar's closing bid/ask as the quote, the ATR of
  ``actors.core.bars.average_true_range`` over the instrument's last ``risk.atr_period`` + 1 bars
  (what ``actors.runtime.marketview.MarketView`` keeps) and the account's margin available (NAV
  less the open trades' margin and what pending intents took).

Bars carry mid OHLC and the closing spread (``actors.ml.candlefile``'s columns); bid and ask are the
source's bid/ask candles where it has them (the broker's, read with ``price=BA``: OANDA and the
emulator), else the mid minus and plus half the closing spread (candle files), on the instrument's
tick. Journal rows are the live
roles' kinds with their body fields and the bar id as ``corr``, stamped with market time.

Speed (a year of ten instruments in seconds): the rules are called only where a decision or an
open trade needs them (``supervisor.offline.backtest.decisions`` says how for the decisions), each still
the rule itself, with no input it reads left out. For exits:

- ``exit_actions`` reads the ATR only for the trailing stop, whose level falls as the ATR grows:
  when the tightest trailing stop (half a tick) and none at all (an infinite ATR) give the same
  actions, every ATR does, and the ATR is not computed.
- ``exit_actions`` compares the bars held only with ``execution.time_exit_bars``; below it the
  backtest passes an upper bound (bar slots since the entry) instead of counting the market
  calendar's bars with ``actors.core.exits.bars_held``, which it does once the bound reaches it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from actors.core.bars import MidBar
from actors.core.bartime import bar_end
from actors.core.closing import at_close
from actors.core.domain import DAY_ALIGNED, Position, SkipReason, granularity_seconds
from actors.core.exits import CloseTrade, ExitAction, MoveStopLoss, bars_held, exit_actions
from actors.core.fills import bar_exit, market_fill, pnl_home, pnl_quote, slippage_pips, slippage_price
from actors.core.money import quote_to_home
from actors.core.zones import ZoneState, ZoneVerdict, update_zones
from supervisor.offline.backtest import rows as rows_
from supervisor.offline.backtest.decisions import Decisions, Pending
from supervisor.offline.backtest.records import END_OF_DATA, BarGrid, _OpenTrade, _Outcome
from supervisor.offline.backtest.rows import JournalRow

if TYPE_CHECKING:
    from actors.core.config import ExecutionConfig, RiskConfig
    from actors.core.domain import Instrument

__all__ = ["JOURNAL_LEVELS", "Simulation"]

# What the backtest journals (``--journal``): "all" is every row a live run writes about these
# bars; "decisions" leaves out md.bar and the below-threshold skips (the signal's row says why);
# "trades" keeps only the story of each entry (its signal, intent, fill, exit changes and close).
JOURNAL_LEVELS = ("all", "decisions", "trades")


_BELOW_THRESHOLD = SkipReason.BELOW_THRESHOLD
_SIDES = ("open", "high", "low", "close")


class Simulation(Decisions):
    """One backtest account over a ``BarGrid``.

    Args:
        grid: the bars.
        meta: instrument metadata by name (precisions, size limits).
        risk: the ``[risk]`` section.
        execution: the ``[execution]`` section.
        granularity: the bars' granularity.
        home_currency: the account currency.
        nav: the opening balance (home currency).
        model_version: the model's short version (journaled with every decision).
        journal_level: one of ``JOURNAL_LEVELS``.
        emit: receives the journal rows of each step.
    """

    def __init__(
        self,
        grid: BarGrid,
        *,
        meta: Mapping[str, Instrument],
        risk: RiskConfig,
        execution: ExecutionConfig,
        granularity: str,
        home_currency: str,
        nav: float,
        model_version: str,
        journal_level: str,
        emit: Callable[[list[JournalRow]], None],
    ) -> None:
        if journal_level not in JOURNAL_LEVELS:
            raise ValueError(f"journal level {journal_level!r} is not one of {', '.join(JOURNAL_LEVELS)}")
        self.grid = grid
        self.names = grid.instruments
        self.meta = [meta[name] for name in self.names]
        self.meta_by_name = dict(meta)
        self.risk = risk
        self.execution = execution
        self.granularity = granularity
        self.step_ns = granularity_seconds(granularity) * 1_000_000_000
        self.day_aligned = granularity in DAY_ALIGNED
        self.home = home_currency
        self.balance = nav
        self.version = model_version
        self.level = journal_level
        self.emit = emit
        self.times = [int(t) for t in grid.times]
        self.present = np.isfinite(grid.mid["close"]) & (grid.mid["close"] > 0)
        self.mid = {side: grid.mid[side] for side in _SIDES}
        self.bid, self.ask = self._quotes(grid)
        # The closing prices of every row as Python floats (read for every bar of every instrument).
        self.close_mid = self.mid["close"].tolist()
        self.close_bid = self.bid["close"].tolist()
        self.close_ask = self.ask["close"].tolist()
        every = list(range(len(self.names)))
        self.columns = [
            every if full else np.flatnonzero(cells).tolist()
            for full, cells in zip(self.present.all(axis=1).tolist(), self.present, strict=True)
        ]
        self.pips = [10.0**m.pip_location for m in self.meta]
        self.slippage = [slippage_price(execution.slippage_pips, m) for m in self.meta]
        self.mids: dict[str, float] = {}
        self.last_quote: list[tuple[float, float] | None] = [None] * len(self.names)
        self.recent: list[deque[int]] = [deque(maxlen=risk.atr_period + 1) for _ in self.names]
        self.candles: list[dict[int, MidBar]] = [{} for _ in self.names]
        self.trades: dict[int, _OpenTrade] = {}  # by column: one position per instrument (the gate's rule)
        self.pending: dict[int, Pending] = {}
        self.book: dict[str, Position] = {}
        self.last_loss_close_ns: dict[str, int] = {}
        self.zone_state: ZoneState | None = None
        self.zone: ZoneVerdict | None = None
        self.next_trade_id = 1
        self.out = _Outcome()
        self.counts = self.out.decisions
        self.band = self._threshold_band()

    def _quotes(self, grid: BarGrid) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        # Bid and ask OHLC on each instrument's tick: the source's bid/ask candles where it has them
        # (a stop sees the bid's or the ask's own extreme, wider than the closing spread when the
        # spread widened inside the bar), else mid -/+ half the closing spread.
        half = grid.spread / 2.0
        decimals = np.array([m.display_precision for m in self.meta])
        bid, ask = {}, {}
        for side in _SIDES:
            bid[side] = np.empty_like(half)
            ask[side] = np.empty_like(half)
            for j, dp in enumerate(decimals):
                bid[side][:, j] = np.round(grid.mid[side][:, j] - half[:, j], int(dp))
                ask[side][:, j] = np.round(grid.mid[side][:, j] + half[:, j], int(dp))
                if grid.bid is not None and grid.ask is not None:
                    given = np.isfinite(grid.bid[side][:, j]) & np.isfinite(grid.ask[side][:, j])
                    bid[side][given, j] = np.round(grid.bid[side][given, j], int(dp))
                    ask[side][given, j] = np.round(grid.ask[side][given, j], int(dp))
        return bid, ask

    # --- the walk ---------------------------------------------------------------------------

    def warm_up(self, row: int) -> None:
        """Take the bars of a row as history: the ATR's bars, the conversion prices, the last quotes.

        Rows before the window get only this (the live roles load as much history at start).
        """
        mids, bids, asks = self.close_mid[row], self.close_bid[row], self.close_ask[row]
        for j in self.columns[row]:
            self.recent[j].append(row)
            self.mids[self.names[j]] = mids[j]
            self.last_quote[j] = (bids[j], asks[j])

    def step(
        self, row: int, p_up: Sequence[float], valid: Sequence[bool], skipped: Callable[[int], dict[str, Any]]
    ) -> None:
        """One bar of every instrument: fills at the open, SL/TP inside, exits and decisions at the close.

        Args:
            row: the row of the grid.
            p_up: the model's P(up) per instrument for this bar (NaN where not valid).
            valid: whether each prediction is usable.
            skipped: column -> the ``model.skipped`` body for an instrument whose prediction is
                not valid.
        """
        t = self.times[row]
        close_ns = bar_end(t, self.granularity)  # the decision time: the bar's close, in market time
        columns = self.columns[row]
        rows: list[JournalRow] = []
        if self.pending:
            for j in columns:
                if j in self.pending:
                    self._open(row, j, t, rows)
        self.warm_up(row)
        # The close, in the live roles' order (actors.core.closing.at_close): stops inside the bar,
        # the exit rules (a time exit closes now, at this close), then this close's entries.
        at_close(_Close(self, row, columns, t, close_ns, p_up, valid, skipped, rows))
        if rows:
            self.emit(rows)

    def _decide_close(  # noqa: PLR0917 - the decision step of one close (_Close.decide_entries)
        self,
        row: int,
        columns: list[int],
        t: int,
        close_ns: int,
        p_up: Sequence[float],
        valid: Sequence[bool],
        skipped: Callable[[int], dict[str, Any]],
        rows: list[JournalRow],
    ) -> None:
        trades = self.trades
        nav = self._nav() if trades else self.balance
        self.zone_state, self.zone = update_zones(self.zone_state, nav=nav, now_ns=close_ns, config=self.risk)
        self.out.equity_ns.append(close_ns)
        self.out.equity.append(nav)
        self.out.exposed_at.append(bool(trades))
        if trades:
            self.out.exposed += 1
        low, high = self.band
        counts = self.out.decisions
        for j in columns:
            p = p_up[j]
            if valid[j] and low < p < high:  # below the threshold: the whole decision (see the docstring)
                counts[_BELOW_THRESHOLD] = counts.get(_BELOW_THRESHOLD, 0) + 1
                if self.level != "trades":
                    self._journal_below(j, t, close_ns, p, rows)
                continue
            self._decide(row, j, t=t, close_ns=close_ns, p_up=p, valid=valid[j], skipped=skipped, nav=nav, rows=rows)

    def finish(self) -> _Outcome:
        """Close what is still open at its instrument's last close (``end_of_data``).

        Such a trade is marked, not filled: at the last close's bid (a long) or ask (a short),
        without slippage, the price the NAV marks it at (``_nav``); so ``trades.csv`` and the
        metrics' ``net_pnl`` / ``final_nav`` (the last equity point, set to the balance after the
        marks) count it the same way.
        """
        rows: list[JournalRow] = []
        end_ns = self.out.equity_ns[-1] if self.out.equity_ns else 0
        for j, trade in sorted(self.trades.items()):
            quote = self.last_quote[j]
            if quote is None:
                continue
            price = quote[0] if trade.sign > 0 else quote[1]
            self._close(trade, price, reason=END_OF_DATA, ts_ns=end_ns, bar_ns=self._last_bar_ns(j), rows=rows)
        self.pending.clear()
        if rows and self.out.equity:
            self.out.equity[-1] = self.balance  # the same marks, each P&L rounded as in trades.csv
        if rows:
            self.emit(rows)
        return self.out

    # --- the book ---------------------------------------------------------------------------

    def _open(self, row: int, j: int, t: int, rows: list[JournalRow]) -> None:
        meta = self.meta[j]
        pending = self.pending.pop(j, None)
        if pending is not None:  # an intent decided at the previous close fills at this open
            sized = pending.intent.sized
            sign = sized.direction.sign
            price = market_fill(
                sign,
                self.bid["open"].item(row, j),
                self.ask["open"].item(row, j),
                slippage=self.slippage[j],
                precision=meta.display_precision,
            )
            trade = _OpenTrade(
                trade_id=str(self.next_trade_id),
                intent_id=pending.intent.intent_id,
                column=j,
                instrument=meta.name,
                sign=sign,
                units=float(sized.units),
                units_text=format(sized.units, "f"),
                entry_price=price,
                initial_stop_loss=float(sized.stop_loss),
                stop_loss=float(sized.stop_loss),
                take_profit=float(sized.take_profit),
                open_bar_ts=pending.intent.signal.bar_ts_ns,
                open_start_ns=pending.intent.signal.bar_ts_ns,
                entry_ns=t,
                corr=pending.corr,
                risk_home=sized.risk_home,
                p_up=pending.intent.signal.p_up,
                open_factor=quote_to_home(meta.name.split("_", 1)[1], self.home, self.mids) or 0.0,
            )
            self.next_trade_id += 1
            self.trades[j] = trade
            self.book[meta.name] = trade.position()
            slip = slippage_pips(sized.direction.value, sized.entry_price, price, self.pips[j])
            rows.append(
                rows_.exec_filled(
                    trade.intent_id,
                    meta.name,
                    trade_id=trade.trade_id,
                    units=trade.units_text,
                    fill_price=self._price(j, price),
                    slippage_pips=slip,
                    version=self.version,
                    corr=trade.corr,
                    ts_ns=t,
                )
            )
            return

    def _inside(self, row: int, j: int, trade: _OpenTrade, close_ns: int, rows: list[JournalRow]) -> None:
        side = self.bid if trade.sign > 0 else self.ask
        hit = bar_exit(
            trade.sign,
            trade.stop_loss,
            trade.take_profit,
            side["open"].item(row, j),
            side["high"].item(row, j),
            side["low"].item(row, j),
            slippage=self.slippage[j],
            precision=self.meta[j].display_precision,
        )
        if hit is not None:
            # Closed at the broker; the host learns it at this bar's close (its cool-down starts then).
            self._close(trade, hit[1], reason=hit[0].value, ts_ns=close_ns, bar_ns=self.times[row], rows=rows)

    def _close(
        self, trade: _OpenTrade, price: float, *, reason: str, ts_ns: int, bar_ns: int, rows: list[JournalRow]
    ) -> None:
        j = trade.column
        pnl = round(self._pnl(trade, price), 4)
        self.balance += pnl
        del self.trades[j]
        del self.book[trade.instrument]
        if pnl < 0:
            self.last_loss_close_ns[trade.instrument] = ts_ns
        held = bars_held(trade.open_bar_ts, bar_ns, self.granularity)
        self.out.trades.append(
            trade.closed(exit_ns=ts_ns, exit_price=price, exit_reason=reason, pnl_home=pnl, bars_held=held)
        )
        rows.append(
            rows_.exec_closed(
                trade.trade_id,
                trade.instrument,
                reason=reason,
                price=self._price(j, price),
                realized_pl=f"{pnl:.4f}",
                version=self.version,
                corr=trade.corr,
                ts_ns=ts_ns,
            )
        )

    def _pnl(self, trade: _OpenTrade, price: float) -> float:
        # In the home currency; without a conversion price now, at the rate of the open (as the
        # shadow book does).
        pnl = pnl_home(
            trade.sign,
            trade.units,
            trade.entry_price,
            price,
            instrument=trade.instrument,
            home_currency=self.home,
            mids=self.mids,
        )
        if pnl is None:
            return pnl_quote(trade.sign, trade.units, trade.entry_price, price) * trade.open_factor
        return pnl

    def _nav(self) -> float:
        nav = self.balance
        for j, trade in self.trades.items():
            quote = self.last_quote[j]
            if quote is None:
                continue
            nav += self._pnl(trade, quote[0] if trade.sign > 0 else quote[1])
        return nav

    # --- exits ------------------------------------------------------------------------------

    def _move_stop(
        self, j: int, trade: _OpenTrade, action: MoveStopLoss, close_ns: int, rows: list[JournalRow]
    ) -> None:
        was = trade.stop_loss
        trade.stop_loss = float(action.price)
        rows.append(
            rows_.exec_exit_changed(
                trade.trade_id,
                trade.instrument,
                reason=action.reason,
                stop_loss=format(action.price, "f"),
                was=self._price(j, was),
                corr=trade.corr,
                ts_ns=close_ns,
            )
        )

    def _close_now(self, row: int, trade: _OpenTrade, reason: str, close_ns: int, rows: list[JournalRow]) -> None:
        # A market close at this close's bid/ask (a long sells at the bid), as the execution role
        # closes a trade at the close and the broker fills it at the price then.
        j = trade.column
        price = market_fill(
            -trade.sign,
            self.close_bid[row][j],
            self.close_ask[row][j],
            slippage=self.slippage[j],
            precision=self.meta[j].display_precision,
        )
        self._close(trade, price, reason=reason, ts_ns=close_ns, bar_ns=self.times[row], rows=rows)

    def _held(self, trade: _OpenTrade, t: int) -> int:
        limit = self.execution.time_exit_bars
        if limit and not self.day_aligned:
            # Bar slots since the entry bar: never fewer than the calendar's bars held.
            bound = (t - trade.open_start_ns) // self.step_ns
            if bound < limit:
                return bound
        return bars_held(trade.open_bar_ts, t, self.granularity) if limit else 0

    def _exit_actions(self, j: int, trade: _OpenTrade, held: int, bid: float, ask: float) -> tuple[ExitAction, ...]:
        meta = self.meta[j]

        def actions(atr: float | None) -> tuple[ExitAction, ...]:
            return exit_actions(
                trade.sign,
                trade.entry_price,
                abs(trade.entry_price - trade.initial_stop_loss),
                trade.stop_loss,
                held,
                bid,
                ask,
                atr,
                pip=self.pips[j],
                precision=meta.display_precision,
                config=self.execution,
            )

        mult = self.execution.trailing_atr_mult
        if not mult > 0:
            return actions(None)
        loosest = actions(math.inf)
        tightest = actions(0.5 * 10.0**-meta.display_precision / mult)
        if loosest == tightest:
            return loosest
        return actions(self._atr(j))

    # --- helpers ----------------------------------------------------------------------------

    def _price(self, j: int, price: float) -> str:
        return f"{price:.{self.meta[j].display_precision}f}"

    def _last_bar_ns(self, j: int) -> int:
        recent = self.recent[j]
        return self.times[recent[-1]] if recent else 0


class _Close:
    """The backtest book's steps at one close, for ``actors.core.closing.at_close`` (the order the
    execution and risk roles follow live)."""

    __slots__ = ("close_ns", "columns", "p_up", "row", "rows", "sim", "skipped", "t", "valid")

    def __init__(  # noqa: PLR0917 - one close's inputs
        self,
        sim: Simulation,
        row: int,
        columns: list[int],
        t: int,
        close_ns: int,
        p_up: Sequence[float],
        valid: Sequence[bool],
        skipped: Callable[[int], dict[str, Any]],
        rows: list[JournalRow],
    ) -> None:
        self.sim, self.row, self.columns, self.t, self.close_ns = sim, row, columns, t, close_ns
        self.p_up, self.valid, self.skipped, self.rows = p_up, valid, skipped, rows

    def settle_stops(self) -> bool:
        sim = self.sim
        if sim.trades:
            for j in self.columns:
                trade = sim.trades.get(j)
                if trade is not None:
                    sim._inside(self.row, j, trade, self.close_ns, self.rows)
        return True  # the backtest always knows its closes

    def open_trades(self) -> list[_OpenTrade]:
        trades = self.sim.trades
        return [trades[j] for j in self.columns if j in trades] if trades else []

    def exit_actions(self, trade: _OpenTrade) -> tuple[ExitAction, ...]:
        sim, j = self.sim, trade.column
        held = sim._held(trade, self.t)
        return sim._exit_actions(j, trade, held, sim.close_bid[self.row][j], sim.close_ask[self.row][j])

    def move_stop(self, trade: _OpenTrade, action: MoveStopLoss) -> None:
        self.sim._move_stop(trade.column, trade, action, self.close_ns, self.rows)

    def close_now(self, trade: _OpenTrade, action: CloseTrade) -> None:
        self.sim._close_now(self.row, trade, action.reason, self.close_ns, self.rows)

    def decide_entries(self) -> None:
        self.sim._decide_close(
            self.row, self.columns, self.t, self.close_ns, self.p_up, self.valid, self.skipped, self.rows
        )
