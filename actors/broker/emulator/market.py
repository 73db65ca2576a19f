"""The emulator's market: its clock, quotes, candles and the price range scans for SL/TP.

``MarketClock`` maps wall time to market time (real time or ``speed`` times faster, plus
explicit jumps). ``Market`` answers everything from one price source (synthetic or replay), so
the pricing stream, the candles of every granularity and the SL/TP triggers all see the same
path. Halts (a fault) hide ticks without changing the path; ``freeze_candles`` stops candles at a
point in time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from actors.broker.emulator.instruments import InstrumentSpec
from actors.broker.emulator.path import HOUR_S, HourPath, hour_info
from actors.core import domain
from actors.core.timefmt import NS

__all__ = ["GRANULARITY_S", "Market", "MarketClock", "PathSource", "Quote", "TickRange"]

# The host's granularity table (``actors.core.bars``) plus the weekly candle the emulator also serves.
GRANULARITY_S = {**{g: domain.granularity_seconds(g) for g in domain.GRANULARITIES}, "W": 604800}


class PathSource(Protocol):
    """Where prices come from: one ``HourPath`` per instrument and UTC hour."""

    specs: dict[str, InstrumentSpec]

    def hour(self, name: str, hour: int) -> HourPath:
        """The path during ``hour``."""
        ...

    def price_before(self, name: str, hour: int) -> float:
        """The mid price in force when ``hour`` starts."""
        ...


class MarketClock:
    """Market time = start + (wall elapsed) x speed + jumps. Thread-safe.

    Args:
        start_ns: market time at creation (UTC ns).
        speed: market seconds per wall second.
        monotonic_ns: wall clock (injectable).
    """

    def __init__(
        self,
        start_ns: int,
        speed: float = 1.0,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.start_ns = start_ns
        self.speed = speed
        self._mono = monotonic_ns
        self._mono0 = monotonic_ns()
        self._offset_ns = 0
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        """Current market time in UTC ns."""
        with self._lock:
            elapsed = self._mono() - self._mono0
            return self.start_ns + int(elapsed * self.speed) + self._offset_ns

    def advance(self, seconds: float) -> None:
        """Jump the market forward by ``seconds`` (SL/TP in between still trigger)."""
        with self._lock:
            self._offset_ns += int(seconds * NS)


@dataclass(frozen=True, slots=True)
class Quote:
    """Best bid/ask at a moment; ``tick_s`` is the second of the last tick."""

    instrument: str
    tick_s: int
    bid: float
    ask: float
    tradeable: bool


@dataclass(frozen=True, slots=True)
class TickRange:
    """The ticks of one instrument within a span: seconds, bids and asks."""

    seconds: np.ndarray
    bids: np.ndarray
    asks: np.ndarray


class Market:
    """Quotes, candles and tick scans over one ``PathSource`` and one ``MarketClock``.

    Args:
        source: the price path.
        clock: the market clock.
        history_start_s: no ticks before this second (history begins here).
    """

    def __init__(self, source: PathSource, clock: MarketClock, *, history_start_s: int) -> None:
        self.source = source
        self.clock = clock
        self.specs = source.specs
        self.history_start_s = history_start_s
        self._halts: list[tuple[int, int | None]] = []
        self.freeze_s: int | None = None
        self._lock = threading.Lock()

    # Halts and freezes (faults) ------------------------------------------------------------
    def halt(self, now_s: int) -> None:
        """Halt trading from ``now_s`` until ``resume``."""
        with self._lock:
            if not self.halted(now_s):
                self._halts.append((now_s, None))

    def resume(self, now_s: int) -> None:
        """End the current halt."""
        with self._lock:
            self._halts = [(a, now_s if b is None else b) for a, b in self._halts]

    def halted(self, second: int) -> bool:
        """Whether ``second`` lies in a halt."""
        return any(a <= second and (b is None or second < b) for a, b in self._halts)

    def reset_faults(self) -> None:
        """Forget halts and the candle freeze."""
        with self._lock:
            self._halts = []
            self.freeze_s = None

    def _visible(self, name: str, hour: int, upto_s: int | None = None) -> HourPath:
        path = self.source.hour(name, hour)
        start = hour * HOUR_S
        cut_lo = self.history_start_s - start
        cut_hi = None if upto_s is None else upto_s - start + 1
        halts = [(a, b) for a, b in self._halts if a < start + HOUR_S and (b is None or b > start)]
        if cut_lo <= 0 and (cut_hi is None or cut_hi >= HOUR_S) and not halts:
            return path
        tick = path.tick.copy()
        if cut_lo > 0:
            tick[: min(cut_lo, HOUR_S)] = False
        if cut_hi is not None and cut_hi < HOUR_S:
            tick[max(cut_hi, 0) :] = False
        for a, b in halts:
            tick[max(a - start, 0) : HOUR_S if b is None else max(b - start, 0)] = False
        return HourPath(mid=path.mid, tick=tick, half_spread=path.half_spread)

    # Quotes ---------------------------------------------------------------------------------
    def now_s(self) -> int:
        """Current market second."""
        return self.clock.now_ns() // NS

    def is_open(self, second: int) -> bool:
        """Whether the instrument market is open and not halted at ``second``."""
        return hour_info(second // HOUR_S).open and not self.halted(second)

    def quote(self, name: str, second: int | None = None) -> Quote:
        """The price in force at ``second`` (default: now)."""
        second = self.now_s() if second is None else second
        hour, offset = divmod(second, HOUR_S)
        path = self.source.hour(name, hour)
        ticks = np.flatnonzero(path.tick[: offset + 1])
        if ticks.size:
            i = int(ticks[-1])
            mid, half, tick_s = float(path.mid[i]), float(path.half_spread[i]), hour * HOUR_S + i
        else:
            mid = self.source.price_before(name, hour)
            half, tick_s = float(path.half_spread[offset]), hour * HOUR_S
        return Quote(name, tick_s, mid - half, mid + half, self.is_open(second))

    def ticks(self, name: str, from_s: int, to_s: int) -> TickRange:
        """Every visible tick with ``from_s <= second <= to_s``, in order."""
        secs, bids, asks = [], [], []
        for hour in range(from_s // HOUR_S, to_s // HOUR_S + 1):
            path = self._visible(name, hour, upto_s=to_s)
            start = hour * HOUR_S
            idx = np.flatnonzero(path.tick[max(from_s - start, 0) :]) + max(from_s - start, 0)
            if idx.size:
                secs.append(idx + start)
                bids.append(path.mid[idx] - path.half_spread[idx])
                asks.append(path.mid[idx] + path.half_spread[idx])
        if not secs:
            empty = np.zeros(0)
            return TickRange(empty.astype(np.int64), empty, empty)
        return TickRange(np.concatenate(secs), np.concatenate(bids), np.concatenate(asks))

    # Candles --------------------------------------------------------------------------------
    def candle_cutoff_s(self) -> int:
        """Last second whose ticks count in candles (now, or the freeze point)."""
        now = self.now_s()
        return now if self.freeze_s is None else min(now, self.freeze_s)

    def hour_candles(
        self, name: str, hour: int, step_s: int, upto_s: int
    ) -> list[tuple[int, int, dict[str, tuple[float, float, float, float]]]]:
        """Candles of ``step_s`` seconds (dividing an hour) inside ``hour``: (start, volume, ohlc)."""
        path = self._visible(name, hour, upto_s=upto_s)
        idx = np.flatnonzero(path.tick)
        if not idx.size:
            return []
        bucket = idx // step_s
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], idx.size] - 1
        volumes = np.diff(np.r_[starts, idx.size])
        mid, half = path.mid[idx], path.half_spread[idx]
        series = {}
        for comp, values in (("mid", mid), ("bid", mid - half), ("ask", mid + half)):
            series[comp] = (
                values[starts].tolist(),
                np.maximum.reduceat(values, starts).tolist(),
                np.minimum.reduceat(values, starts).tolist(),
                values[ends].tolist(),
            )
        first = (hour * HOUR_S + bucket[starts] * step_s).tolist()
        vols = volumes.tolist()
        return [
            (
                first[r],
                vols[r],
                {comp: (o[r], h[r], lo[r], c[r]) for comp, (o, h, lo, c) in series.items()},
            )
            for r in range(len(first))
        ]
