"""Replay of candle files as the emulator's price path.

A CSV file (header ``time,open,high,low,close[,volume]``, time RFC3339 or epoch seconds) becomes
four ticks per candle (open, then low and high in the order the candle's direction suggests, then
close), so candles of the file's granularity and coarser come back exactly as in the file, and the
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
from actors.core.timefmt import NS
from actors.ml.candlefile import read_candle_file

__all__ = ["ReplaySource", "load_candle_file"]

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
        ticks = []
        for i in range(first, len(times)):
            t0 = times[i]
            if t0 >= hi:
                break
            o, h, low, c = rows[i]
            a, b = (low, h) if c >= o else (h, low)
            for offset, price in ((0, o), (step // 3, a), ((2 * step) // 3, b), (step - 1, c)):
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
