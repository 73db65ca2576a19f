"""Replay of candle files as the emulator's price path.

A CSV file (header ``time,open,high,low,close[,volume]``, time RFC3339 or epoch seconds) becomes
four ticks per candle (open, then low and high in the order the candle's direction suggests, then
close), so candles of the file's granularity and coarser come back exactly as in the file, and the
stream and SL/TP see the same ticks. Instruments without a file fall back to the synthetic path.
"""

from __future__ import annotations

import bisect
import csv
from pathlib import Path

import numpy as np

from actors.broker.config import data_item
from actors.broker.emulator.instruments import InstrumentSpec
from actors.broker.emulator.path import HOUR_S, HourPath, SyntheticSource
from actors.broker.timefmt import NS, parse_time

__all__ = ["ReplaySource", "load_candle_file"]

Candles = tuple[list[int], list[tuple[float, float, float, float]], int]


def load_candle_file(path: Path) -> Candles:
    """Read a candle CSV; returns start seconds, (o, h, l, c) rows and the granularity in s.

    Raises:
        ValueError: the file cannot be read or a row is not a candle (the message names the line).
    """
    times: list[int] = []
    rows: list[tuple[float, float, float, float]] = []
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            for record in reader:
                try:
                    times.append(parse_time(record["time"]) // NS)
                    ohlc = tuple(float(record[key]) for key in ("open", "high", "low", "close"))
                except (KeyError, TypeError, ValueError, ArithmeticError) as e:
                    raise ValueError(f"{path}:{reader.line_num}: not a candle row ({type(e).__name__}: {e})") from e
                rows.append((ohlc[0], ohlc[1], ohlc[2], ohlc[3]))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path}: cannot read the candle file ({e})") from e
    if len(times) < 2:
        raise ValueError(f"{path}: a candle file needs at least two rows")
    order = sorted(range(len(times)), key=times.__getitem__)
    times = [times[i] for i in order]
    rows = [rows[i] for i in order]
    step = int(np.median(np.diff(np.asarray(times))))
    return times, rows, max(step, 4)


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
            self.files[name] = load_candle_file(path)

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
