"""The backtest's entry decisions: every prediction through the risk role's rule, at the bar's close.

``Decisions`` is the decision half of ``supervisor.offline.backtest.book.Simulation`` (a mixin over its
state): each prediction of the window becomes a ``risk.intent`` or a ``risk.skip`` through
``actors.core.entry.decide_entry`` (gate, zones, sizing, intent id), with the bar's closing bid/ask as
the quote, the bar's close as the decision time, the book of open trades and intents not yet
filled (as the risk role counts its intents in flight), and the ATR of
``actors.core.bars.average_true_range`` over the instrument's last ``risk.atr_period`` + 1 bars (what
``actors.runtime.marketview.MarketView`` keeps).

Speed: most predictions are below the threshold, and the rules are called only where a decision
needs them, each still the rule itself, with no input it reads left out:

- The gate's first checks (``invalid_signal``, ``below_threshold``) read nothing but P(up) and the
  configuration, a failing one is the whole decision (``decide_entry`` returns the gate's skip),
  and the threshold is monotone on each side of 0.5; so the two edges of the below-threshold band
  are found once by bisecting ``actors.core.gate.check_entry`` itself over the float64 values, and a
  signal strictly inside the band is that skip. Every other signal goes through ``check_entry``
  alone first (the same two checks), then ``decide_entry``.
- The margin available is the backtest account's, valued the way the emulator and the shadow book
  value it (and OANDA: ``marginAvailable`` = NAV - margin used): the NAV (balance + open P&L) less
  ``actors.core.money.position_margin`` of the open trades (at the close's mids, each instrument's
  ``marginRate``, converted as sizing converts) and less what the intents not filled yet took
  (``SizedEntry.margin_home``, as the risk role counts its intents in flight), so an entry the
  broker would cancel ``INSUFFICIENT_MARGIN`` is cut or skipped (``margin``) here as live.
- ``decide_entry`` is called with no ATR first: only sizing reads the ATR, and sizing's first check
  is ``no_atr``; that reason means sizing was reached, and the call is repeated with the ATR
  (Decimal arithmetic over ``MidBar`` objects, the one costly input, built only then).
"""

from __future__ import annotations

import math
import struct
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from actors.core.bars import MidBar, average_true_range
from actors.core.domain import OHLC, Position, Quote, Signal, SkipReason, bar_id
from actors.core.entry import EntryIntent, EntrySkip, decide_entry
from actors.core.gate import check_entry
from actors.core.money import position_margin
from supervisor.offline.backtest import rows as rows_
from supervisor.offline.backtest.rows import JournalRow

if TYPE_CHECKING:
    from actors.core.config import RiskConfig
    from actors.core.domain import Instrument
    from actors.core.zones import ZoneVerdict

__all__ = ["Decisions", "Pending"]

_EMPTY: Mapping[str, Any] = {}
# The gate's first two checks, which read only the signal and the configuration (see the docstring).
_INVALID_SIGNAL = SkipReason.INVALID_SIGNAL
_BELOW_THRESHOLD = SkipReason.BELOW_THRESHOLD
_NO_ATR = SkipReason.NO_ATR


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """An intent decided at a close, to fill at its instrument's next open."""

    intent: EntryIntent
    column: int
    corr: str


class Decisions:
    """The decision methods of the backtest's simulation (see the module docstring).

    The attributes below are the simulation's state these methods read and write.
    """

    names: tuple[str, ...]
    meta: list[Instrument]
    meta_by_name: dict[str, Instrument]
    risk: RiskConfig
    granularity: str
    home: str
    version: str
    level: str
    times: list[int]
    mid: dict[str, np.ndarray]
    close_bid: list[list[float]]
    close_ask: list[list[float]]
    mids: dict[str, float]
    recent: list[deque[int]]
    candles: list[dict[int, MidBar]]
    book: dict[str, Position]
    pending: dict[int, Pending]
    last_loss_close_ns: dict[str, int]
    zone: ZoneVerdict | None
    counts: dict[str, int]

    def _threshold_band(self) -> tuple[float, float]:
        # The P(up) values the gate turns down as below_threshold, found by asking the gate: its
        # threshold check reads only P(up) and the configuration and is monotone on either side of
        # 0.5 (long from min_probability up, short from 1 - min_probability down), so bisecting the
        # float64 values finds its two edges exactly. A signal strictly between them is a skip.
        name, meta = self.names[0], self.meta[0]

        def below(p: float) -> bool:
            signal = Signal(instrument=name, bar_ts_ns=0, p_up=p, model_version=self.version)
            gate = check_entry(
                signal,
                None,
                instrument=meta,
                book=_EMPTY,
                exposure=_EMPTY,
                nav=1.0,
                home_currency=self.home,
                now_ns=0,
                last_loss_close_ns=_EMPTY,
                config=self.risk,
            )
            return gate.reason is _BELOW_THRESHOLD

        def first(lo: float, hi: float, wanted: bool) -> float:
            # The smallest float in [lo, hi] where below() == wanted (below() changes once there).
            a, b = _bits(lo), _bits(hi)
            while a < b:
                mid = (a + b) // 2
                if below(_float(mid)) == wanted:
                    b = mid
                else:
                    a = mid + 1
            return _float(a)

        if not below(0.5):
            return 0.5, 0.5  # no band: every signal goes to the full decision
        high = first(0.5, 1.0, wanted=False) if not below(1.0) else math.inf
        low = _float(_bits(first(0.0, 0.5, wanted=True)) - 1) if not below(0.0) else -math.inf
        return low, high

    def _journal_below(self, j: int, t: int, close_ns: int, p_up: float, rows: list[JournalRow]) -> None:
        name = self.names[j]
        corr = bar_id(name, self.granularity, t)
        if self.level == "all":
            rows.append(rows_.md_bar(name, t, self.mids[name], corr, close_ns))
        rows.append(rows_.model_signal(name, t, p_up, version=self.version, corr=corr, ts_ns=close_ns))
        if self.level == "all":
            rows.append(
                rows_.risk_skip(
                    name,
                    t,
                    reason=_BELOW_THRESHOLD,
                    detail="",
                    direction=None,
                    p_up=p_up,
                    version=self.version,
                    corr=corr,
                    ts_ns=close_ns,
                )
            )

    def _decide(
        self,
        row: int,
        j: int,
        *,
        t: int,
        close_ns: int,
        p_up: float,
        valid: bool,
        skipped: Callable[[int], dict[str, Any]],
        nav: float,
        rows: list[JournalRow],
    ) -> None:
        name = self.names[j]
        level = self.level
        counts = self.counts
        if valid:
            signal = Signal(instrument=name, bar_ts_ns=t, p_up=p_up, model_version=self.version)
            screen = check_entry(
                signal,
                None,
                instrument=self.meta[j],
                book=_EMPTY,
                exposure=_EMPTY,
                nav=nav,
                home_currency=self.home,
                now_ns=close_ns,
                last_loss_close_ns=_EMPTY,
                config=self.risk,
            )
            reason = screen.reason
            if reason is _BELOW_THRESHOLD or reason is _INVALID_SIGNAL:  # the whole decision (docstring)
                counts[reason] = counts.get(reason, 0) + 1
                if level == "trades":
                    return
                decision: EntryIntent | EntrySkip = EntrySkip(signal=signal, reason=reason)
            else:
                decision = self._decision(row, j, signal, close_ns, nav)
        elif level == "trades":
            return
        corr = bar_id(name, self.granularity, t)
        if level == "all":
            rows.append(rows_.md_bar(name, t, self.mids[name], corr, close_ns))
        if not valid:
            rows.append(("model.skipped", skipped(j), corr, close_ns))
            return
        signal_row = rows_.model_signal(name, t, p_up, version=self.version, corr=corr, ts_ns=close_ns)
        if isinstance(decision, EntrySkip):
            self._skipped(decision, signal_row, name=name, t=t, close_ns=close_ns, p_up=p_up, corr=corr, rows=rows)
            return
        counts["intent"] = counts.get("intent", 0) + 1
        rows += [signal_row, rows_.risk_intent(decision, version=self.version, corr=corr, ts_ns=close_ns)]
        self.pending[j] = Pending(intent=decision, column=j, corr=corr)
        self.book[name] = decision.position()

    def _skipped(
        self,
        decision: EntrySkip,
        signal_row: JournalRow,
        *,
        name: str,
        t: int,
        close_ns: int,
        p_up: float,
        corr: str,
        rows: list[JournalRow],
    ) -> None:
        # A skip is counted (a below-threshold or invalid one was counted when screened) and
        # journaled as the level asks: below-threshold skips only at "all", none at "trades".
        reason = decision.reason
        if reason is not _BELOW_THRESHOLD and reason is not _INVALID_SIGNAL:
            self.counts[reason] = self.counts.get(reason, 0) + 1
        if self.level == "trades":
            return
        rows.append(signal_row)
        if self.level == "all" or reason is not _BELOW_THRESHOLD:
            direction = decision.direction.value if decision.direction else None
            rows.append(
                rows_.risk_skip(
                    name,
                    t,
                    reason=reason,
                    detail=decision.detail,
                    direction=direction,
                    p_up=p_up,
                    version=self.version,
                    corr=corr,
                    ts_ns=close_ns,
                )
            )

    def _decision(self, row: int, j: int, signal: Signal, now_ns: int, nav: float) -> EntryIntent | EntrySkip:
        meta, risk = self.meta[j], self.risk
        quote = Quote(bid=self.close_bid[row][j], ask=self.close_ask[row][j], tradeable=True)
        zone = self.zone
        if zone is None:  # step() folds the NAV into the zones before any decision
            raise RuntimeError("a decision before the first NAV observation")

        # The account's margin available: the NAV less the open trades' margin, less what the
        # intents not filled yet took (their spread is not in the NAV yet either).
        pending = {p.intent.signal.instrument: p.intent.sized.margin_home for p in self.pending.values()}
        held = {name: position for name, position in self.book.items() if name not in pending}
        margin_available = nav - position_margin(held, self.meta_by_name, self.mids, self.home) - sum(pending.values())

        def decide(atr: float | None) -> EntryIntent | EntrySkip:
            return decide_entry(
                signal,
                quote,
                atr,
                instrument=meta,
                book=self.book,
                mids=self.mids,
                nav=nav,
                home_currency=self.home,
                now_ns=now_ns,
                last_loss_close_ns=self.last_loss_close_ns,
                zone=zone,
                margin_available=margin_available,
                config=risk,
            )

        decision = decide(None)
        if isinstance(decision, EntrySkip) and decision.reason is _NO_ATR:
            atr = self._atr(j)
            if atr is not None:
                decision = decide(atr)
        return decision

    def _atr(self, j: int) -> float | None:
        cache = self.candles[j]
        wanted = list(self.recent[j])
        bars = [cache.get(r) or self._candle(j, r) for r in wanted]
        if len(cache) > 4 * len(wanted) + 8:
            keep = set(wanted)
            self.candles[j] = {r: c for r, c in cache.items() if r in keep}
        value = average_true_range(bars, period=self.risk.atr_period)
        return None if value is None else float(value)

    def _candle(self, j: int, row: int) -> MidBar:
        # The ATR rule reads mid prices: the bar's mids (as the broker's (bid + ask) / 2).
        o, h, low, c = self.mid["open"], self.mid["high"], self.mid["low"], self.mid["close"]
        candle = MidBar(
            OHLC(
                o=_decimal(o.item(row, j)),
                h=_decimal(h.item(row, j)),
                l=_decimal(low.item(row, j)),
                c=_decimal(c.item(row, j)),
            )
        )
        self.candles[j][row] = candle
        return candle


# A float's Decimal (its repr's digits); prices repeat a tick apart, so each is made once. Bounded:
# cleared when full (a run of years over many instruments stays far below it).
_DECIMALS: dict[float, Decimal] = {}
_DECIMALS_MAX = 1 << 20


def _decimal(value: float) -> Decimal:
    found = _DECIMALS.get(value)
    if found is None:
        if len(_DECIMALS) >= _DECIMALS_MAX:
            _DECIMALS.clear()
        found = _DECIMALS[value] = Decimal(repr(value))
    return found


def _bits(value: float) -> int:
    # The order-preserving integer of a non-negative float64.
    return int(struct.unpack("<q", struct.pack("<d", value))[0])


def _float(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<q", bits))[0])
