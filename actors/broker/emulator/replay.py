"""Replay of candle files as the emulator's price path.

A CSV file (header ``time,open,high,low,close[,volume]``, time RFC3339 or epoch seconds) becomes
a price path through each candle in small steps, the path the fill model assumes
(``actors.core.fills.bar_path``): the open, held for the first third of the candle (where an order
decided at the previous close fills, as ``tradehost backtest`` fills it at the open), then
``STEPS`` evenly spaced ticks to the nearer extreme, as many to the other extreme and as many to
the close, on the instrument's tick. A stop therefore fills at about its level, as on a real
market, not at the far end of a jump to the candle's extreme; candles of the file's granularity
and coarser come back exactly as in the file (the extremes are ticks of the path), and the
stream and SL/TP see the same ticks. Instruments without a file fall back to the synthetic path.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np

from actors.broker.config import data_item
from actors.broker.emulator.instruments import InstrumentSpec
from actors.broker.emulator.path import HOUR_S, HourPath, SyntheticSource
from actors.core.candlespec import CandleFileError
from actors.core.fills import bar_path
from actors.core.timefmt import NS
from actors.ml.candlefile import read_candle_file

__all__ = ["STEPS", "ReplaySource", "load_candle_file"]

# Ticks per leg of a candle's path (open -> nearer extreme -> other extreme -> close).
STEPS = 6

Candles = tuple[list[int], list[tuple[float, float, float, float]], int]


def load_candle_file(path: Path, instrument: str) -> Candles:
    """Read a candle CSV with the host's one reader (``actors.ml.candlefile``: the same checks as
    ``tradehost train``); returns start seconds, (o, h, l, c) rows and the granularity in s.

    Raises:
        ValueError: the file is malformed (one line naming the file and line).
    """
    try:
        candles = read_candle_file(path, instrument=instrument)
    except CandleFileError as e:
        raise ValueError(str(e)) from e
    frame = candles.frame
    times = [int(t) // NS for t in frame.index]
    rows = [
        (float(o), float(h), float(lo), float(c)) for o, h, lo, c in frame[["open", "high", "low", "close"]].to_numpy()
    ]
    return times, rows, max(candles.step_s, 4)


class ReplaySource:
    """A ``PathSource`` replaying candle files.

    Args:
        items: ``INSTRUMENT=PATH`` or paths whose file name starts with the instrument.
        fallback: source for instruments without a file.
    """

    def __init__(self, items: tuple[str, ...], *, fallback: SyntheticSource) -> None:
        self.fallback = fallback
        self.specs: dict[str, InstrumentSpec] = fallback.specs
        self.files: dict[str, Candles] = {}
        for item in items:
            name, path = data_item(item)
            self.files[name] = load_candle_file(path, name)

    def default_start_s(self) -> int:
        """A start time that leaves history behind it: candle 5000 or the middle of the file."""
        times = min((f[0] for f in self.files.values()), key=len)
        return times[min(5000, len(times) // 2)]

    def _ticks(self, name: str, lo: int, hi: int) -> list[tuple[int, float]]:
        times, rows, step = self.files[name]
        first = max(bisect.bisect_right(times, lo - step) - 1, 0)
        decimals = self.specs[name].display_precision if name in self.specs else 10
        ticks = []
        for i in range(first, len(times)):
            t0 = times[i]
            if t0 >= hi:
                break
            for offset, price in _candle_path(rows[i], step, decimals):
                if lo <= t0 + offset < hi:
                    ticks.append((t0 + offset, price))
        return ticks

    def hour(self, name: str, hour: int) -> HourPath:
        """The replayed path of ``name`` during ``hour``."""
        if name not in self.files:
            return self.fallback.hour(name, hour)
        start = hour * HOUR_S
        tick = np.zeros(HOUR_S, dtype=np.bool_)
        values = np.full(HOUR_S, np.nan)
        for second, price in self._ticks(name, start, start + HOUR_S):
            tick[second - start] = True
            values[second - start] = price
        values[0] = values[0] if tick[0] else self.price_before(name, hour)
        idx = np.where(tick | (np.arange(HOUR_S) == 0), np.arange(HOUR_S), 0)
        mid = values[np.maximum.accumulate(idx)]
        spec = self.specs[name]
        half = np.full(HOUR_S, spec.spread_pips * spec.pip / 2)
        return HourPath(mid=mid, tick=tick, half_spread=half)

    def price_before(self, name: str, hour: int) -> float:
        """The last replayed price before ``hour`` (the first open if none)."""
        if name not in self.files:
            return self.fallback.price_before(name, hour)
        start = hour * HOUR_S
        times, rows, step = self.files[name]
        earlier = self._ticks(name, start - step - 1, start)
        if earlier:
            return earlier[-1][1]
        i = bisect.bisect_right(times, start) - 1
        return rows[i][3] if i >= 0 else rows[0][0]


def _candle_path(row: tuple[float, float, float, float], step: int, decimals: int) -> list[tuple[int, float]]:
    # (offset in s, mid) of one candle: the open until a third of it, then three legs of STEPS
    # ticks each through bar_path's points, the close one second before the candle ends (in a
    # candle of a few seconds, legs share seconds: their ends win).
    points = bar_path(*row)
    marks = [step // 3, (5 * step) // 9, (7 * step) // 9, step - 1]
    path = {0: points[0]}
    for leg in range(3):
        t_a, t_b, p_a, p_b = marks[leg], marks[leg + 1], points[leg], points[leg + 1]
        for k in range(1, STEPS + 1):
            offset = t_a + ((t_b - t_a) * k) // STEPS
            if k == STEPS:
                path[offset] = p_b  # a leg's end (an extreme, the close) is never overwritten
            else:
                path.setdefault(offset, round(p_a + (p_b - p_a) * k / STEPS, decimals))
    return sorted(path.items())
