"""The deterministic synthetic price path, generated lazily one hour at a time.

The log-price of an instrument at every whole hour (its *anchor*) comes from a dyadic
midpoint-displacement tree over ``2**19`` hours starting 2000-01-01: each node is the mean of its
two ends plus a Gaussian seeded only by (seed, instrument, node), so any anchor costs at most 19
cheap hash draws and no history has to be stored. Inside an hour, one tick may occur per second
(probability following intraday seasonality and a volatility regime); the ticks form a Brownian
bridge that ends exactly on the next anchor, seeded by (seed, instrument, hour). Volatility
clusters through a smooth multi-scale regime factor; the spread widens around the 17:00 New York
rollover and after each opening; the market keeps the host's calendar (``actors.core.markethours``), as
OANDA does: closed from Friday 17:00 to Sunday 17:00 New York time and on the expected holidays
(the trading days of 25 December and 1 January, as the recorded EURUSD hours of 2017/18 show),
and the hidden path keeps moving, so prices gap at the open.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from actors.broker.emulator.instruments import InstrumentSpec
from actors.core import markethours

__all__ = ["HOUR_S", "HourPath", "SyntheticSource", "hour_info"]

HOUR_S = 3600
_EPOCH_H = 262_968  # hours from 1970-01-01 to 2000-01-01
_LEVELS = 19
_TOP = 1 << _LEVELS
_WEEK_H = 168
_NS = 1_000_000_000
_NEW_YORK = ZoneInfo("America/New_York")
# Relative activity by UTC hour of day: quiet late Asia, busy London/New York overlap.
_SEASON = (
    0.75, 0.7, 0.7, 0.65, 0.6, 0.65, 0.8, 1.1, 1.25, 1.2, 1.1, 1.05,
    1.35, 1.45, 1.5, 1.4, 1.15, 0.95, 0.85, 0.8, 0.7, 0.5, 0.55, 0.7,
)  # fmt: skip

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class HourInfo:
    """Calendar facts about one UTC hour."""

    open: bool
    ny_hour: int
    after_open: bool
    season: float


@functools.lru_cache(maxsize=16384)
def hour_info(hour: int) -> HourInfo:
    """Whether the FX market is open during UTC hour number ``hour`` (hours since the epoch).

    Open and closed as the calendar says (``markethours.is_open``: the weekly session less the
    expected holidays); closures are whole trading days from 17:00 New York, always on a UTC hour.
    """
    utc = datetime.fromtimestamp(hour * HOUR_S, tz=UTC)
    ny_hour = utc.astimezone(_NEW_YORK).hour
    is_open = markethours.is_open(hour * HOUR_S * _NS)
    return HourInfo(
        open=is_open,
        ny_hour=ny_hour,
        after_open=is_open and not markethours.is_open((hour - 1) * HOUR_S * _NS),
        season=_SEASON[utc.hour],
    )


@dataclass(frozen=True, slots=True)
class HourPath:
    """One hour of one instrument at one-second resolution.

    Attributes:
        mid: mid price at each second (the last tick's price; before the first tick, the price
            the hour started with).
        tick: whether a tick happened in that second.
        half_spread: half the bid/ask spread at each second.
    """

    mid: FloatArray
    tick: BoolArray
    half_spread: FloatArray


def _normal(*key: int) -> float:
    digest = hashlib.blake2b(struct.pack(f"<{len(key)}q", *key), digest_size=16).digest()
    a, b = struct.unpack("<QQ", digest)
    u1 = (a + 1) / 18446744073709551617.0
    u2 = b / 18446744073709551616.0
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


# An instrument's id is part of its path's seed, so it must not change when the table grows: the
# nine instruments of the first table keep the ids they had (their sorted positions), every later
# one gets an id derived from its name alone.
_FIRST_TABLE = ("AUD_USD", "EUR_GBP", "EUR_JPY", "EUR_USD", "GBP_USD", "USD_CAD", "USD_CHF", "USD_JPY", "XAU_USD")


def path_id(name: str) -> int:
    """The id that seeds ``name``'s path (stable whatever else the instrument table holds)."""
    if name in _FIRST_TABLE:
        return _FIRST_TABLE.index(name) + 1
    return 1000 + int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")


class SyntheticSource:
    """Seeded synthetic market for a set of instruments; thread-safe; O(1) memory per hour.

    Args:
        seed: the market seed; the same seed always gives the same path.
        specs: instrument specifications by name.
        cache_hours: how many generated hour paths to keep (LRU).
    """

    def __init__(self, seed: int, specs: dict[str, InstrumentSpec], *, cache_hours: int = 512) -> None:
        self.seed = seed
        self.specs = specs
        self._ids = {name: path_id(name) for name in specs}
        self._nodes: dict[tuple[int, int], float] = {}
        self._regimes: dict[tuple[int, int], float] = {}
        self._cache: OrderedDict[tuple[str, int], HourPath] = OrderedDict()
        self._cache_hours = cache_hours
        self._lock = threading.Lock()

    def _regime(self, iid: int, hour: int) -> float:
        cached = self._regimes.get((iid, hour))
        if cached is not None:
            return cached
        total = 0.0
        for scale, salt in ((6, 11), (36, 12), (200, 13)):
            knot, frac = divmod(hour, scale)
            t = frac / scale
            t = t * t * (3 - 2 * t)
            n0 = _normal(self.seed, iid, salt, knot)
            n1 = _normal(self.seed, iid, salt, knot + 1)
            total += n0 + (n1 - n0) * t
        value = math.exp(0.3 * total / math.sqrt(3.0))
        self._regimes[(iid, hour)] = value
        return value

    def vol(self, name: str, hour: int) -> float:
        """Hourly volatility (log units) during ``hour``: base x regime x seasonality."""
        iid = self._ids[name]
        return self.specs[name].hourly_vol * self._regime(iid, hour) * hour_info(hour).season

    def anchor(self, name: str, hour: int) -> float:
        """Log-price offset at the start of ``hour`` (relative to the instrument's base price)."""
        iid = self._ids[name]
        pos = min(max(hour - _EPOCH_H, 0), _TOP)
        lo, hi, x_lo, x_hi = 0, _TOP, 0.0, 0.0
        sigma = self.specs[name].hourly_vol
        while True:
            if pos == lo:
                return x_lo
            if pos == hi:
                return x_hi
            mid = (lo + hi) // 2
            key = (iid, mid)
            x_mid = self._nodes.get(key)
            if x_mid is None:
                length = hi - lo
                if length <= _WEEK_H:
                    sd = math.sqrt(length) / 2 * self.vol(name, _EPOCH_H + mid)
                else:
                    sd = sigma * math.sqrt(_WEEK_H) / 2 * (length / _WEEK_H) ** 0.25
                x_mid = (x_lo + x_hi) / 2 + sd * _normal(self.seed, iid, 1, mid)
                self._nodes[key] = x_mid
            if pos < mid:
                hi, x_hi = mid, x_mid
            else:
                lo, x_lo = mid, x_mid

    def _generate(self, name: str, hour: int) -> HourPath:
        spec = self.specs[name]
        iid = self._ids[name]
        info = hour_info(hour)
        a0, a1 = self.anchor(name, hour), self.anchor(name, hour + 1)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, iid, hour])
        z = rng.standard_normal(HOUR_S)
        u = rng.random(HOUR_S)
        vol = self.vol(name, hour)
        if info.open:
            p_tick = min(0.9, 0.3 * info.season * (0.5 + 0.5 * vol / spec.hourly_vol))
            tick = u < p_tick
            tick[-1] = True  # the hour always ends on its anchor
        else:
            tick = np.zeros(HOUR_S, dtype=np.bool_)
        count = np.cumsum(tick)
        total = int(count[-1])
        if total:
            walk = np.cumsum(np.where(tick, z, 0.0)) * (vol / math.sqrt(total))
            log_mid = a0 + walk + (count / total) * (a1 - a0 - walk[-1])
        else:
            log_mid = np.full(HOUR_S, a0)
        mid = spec.base_price * np.exp(log_mid)
        minute_factor = np.ones(60)
        if info.ny_hour == 16:
            minute_factor[55:] = 2.5
        elif info.ny_hour == 17:
            minute_factor[:15] = 6.0 if info.after_open else 3.5
            minute_factor[15:] = 2.0 if info.after_open else 1.0
        half = spec.spread_pips * spec.pip / 2 * (0.8 + 0.2 * vol / spec.hourly_vol)
        half_spread = np.repeat(minute_factor * half, 60)
        return HourPath(mid=mid, tick=tick, half_spread=half_spread)

    def hour(self, name: str, hour: int) -> HourPath:
        """The path of ``name`` during UTC hour number ``hour`` (cached)."""
        key = (name, hour)
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
            path = self._generate(name, hour)
            self._cache[key] = path
            if len(self._cache) > self._cache_hours:
                self._cache.popitem(last=False)
            return path

    def price_before(self, name: str, hour: int) -> float:
        """Mid price in force when ``hour`` starts (the last tick of the last open hour)."""
        probe = hour - 1
        for _ in range(24 * 4):
            if hour_info(probe).open:
                return self.specs[name].base_price * math.exp(self.anchor(name, probe + 1))
            probe -= 1
        return self.specs[name].base_price * math.exp(self.anchor(name, hour))
