"""Candle queries over the market: granularities S5 to M, count/from/to paging, validation.

Candles up to H1 come straight from the one-second path of each hour; longer ones aggregate
hourly summaries (cached once an hour is complete). S5 to D align exactly as OANDA aligns them
and as the host's bar clock expects (``actors.core.bartime``: up to H1 on UTC, H2 to D on 17:00 New
York); W and M align to 17:00 New York too (weeks end Friday 17:00). Periods without ticks
produce no candle.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from actors.broker.emulator.market import GRANULARITY_S, Market
from actors.broker.emulator.path import HOUR_S, hour_info
from actors.broker.emulator.wire import Ts, fmt_price
from actors.core import bartime
from actors.core.timefmt import NS

__all__ = ["CandleQuery", "CandleQueryError", "CandleService"]

MAX_COUNT = 5000
_NEW_YORK = ZoneInfo("America/New_York")
Ohlc = dict[str, tuple[float, float, float, float]]
Row = tuple[int, int, int, Ohlc]  # start_s, end_s, volume, components


class CandleQueryError(ValueError):
    """An invalid candle request; the message is OANDA's ``errorMessage``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CandleQuery:
    """A parsed ``GET /v3/instruments/{instrument}/candles`` request."""

    instrument: str
    granularity: str = "S5"
    price: str = "M"
    count: int | None = None
    from_ns: int | None = None
    to_ns: int | None = None
    include_first: bool = True


def _calendar_bounds(granularity: str, second: int) -> tuple[int, int]:
    ny = datetime.fromtimestamp(second, tz=UTC).astimezone(_NEW_YORK)
    shifted = (ny + timedelta(hours=7)).replace(tzinfo=None)
    if granularity == "W":
        first = shifted.date() - timedelta(days=(shifted.weekday() - 5) % 7)
        nxt = first + timedelta(days=7)
    else:
        first = shifted.date().replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)

    def start_of(day: Any) -> int:
        local = datetime(day.year, day.month, day.day, tzinfo=_NEW_YORK) - timedelta(hours=7)
        return int(local.astimezone(UTC).timestamp())

    return start_of(first), start_of(nxt)


def bounds(granularity: str, second: int) -> tuple[int, int]:
    """Start and end second of the candle of ``granularity`` that contains ``second`` (S5 to D
    exactly as the host's bar clock aligns them: ``actors.core.bartime``, one rule for both)."""
    if granularity in ("W", "M"):
        return _calendar_bounds(granularity, second)
    ts_ns = second * NS
    return bartime.bar_start(ts_ns, granularity) // NS, bartime.bar_end(ts_ns, granularity) // NS


BAD_CANDLE_KINDS = ("spike", "crossed", "zero_volume", "jump", "absurd")


def corrupt(kind: str, volume: int, comps: Ohlc) -> tuple[int, Ohlc]:
    """A candle as a bad tick leaves it (the ``bad_candle`` fault): a 5 % spike in the highs, a
    crossed quote (ask below bid at the close), or no volume; or as a broken source serves it: the
    whole bar 5 % up (``jump``: its range is ordinary, its level is not), or every price 1e300
    (``absurd``: a flat bar)."""
    if kind == "zero_volume":
        return 0, comps
    out = dict(comps)
    if kind == "jump":
        for name, (o, h, lo, c) in comps.items():
            out[name] = (o * 1.05, h * 1.05, lo * 1.05, c * 1.05)
    elif kind == "absurd":
        for name in comps:
            out[name] = (1e300, 1e300, 1e300, 1e300)
    elif kind == "spike":
        for name, (o, h, lo, c) in comps.items():
            out[name] = (o, h * 1.05, lo, c)
    elif kind == "crossed":
        bo, bh, bl, bc = comps["bid"]
        ao, ah, al, ac = comps["ask"]
        out["bid"], out["ask"] = (bo, bh, bl, ac), (ao, ah, al, bc)
    return volume, out


class CandleService:
    """Builds candle responses from a ``Market``.

    Args:
        market: the market.
    """

    def __init__(self, market: Market) -> None:
        self.market = market
        self._hourly: dict[tuple[str, int], Row | None] = {}
        self._lock = threading.Lock()
        # instrument -> (market second, kind): the candles containing that second are served bad.
        self.bad_candles: dict[str, tuple[int, str]] = {}

    def clear_cache(self) -> None:
        """Forget cached hourly summaries (after halts are reset)."""
        with self._lock:
            self._hourly.clear()

    def _hour_rows(self, name: str, hour: int, step: int, cutoff: int) -> list[Row]:
        if not hour_info(hour).open or hour * HOUR_S > cutoff:
            return []
        if hour * HOUR_S + HOUR_S <= self.market.history_start_s:
            return []
        complete = (hour + 1) * HOUR_S - 1 <= cutoff
        if step == HOUR_S and complete:
            with self._lock:
                if (name, hour) in self._hourly:
                    row = self._hourly[(name, hour)]
                    return [] if row is None else [row]
        rows = [
            (start, start + step, volume, comps)
            for start, volume, comps in self.market.hour_candles(name, hour, step, cutoff)
        ]
        if step == HOUR_S and complete:
            with self._lock:
                self._hourly[(name, hour)] = rows[0] if rows else None
        return rows

    def _aggregate(self, name: str, start: int, end: int, cutoff: int) -> Row | None:
        parts = [
            row
            for hour in range(start // HOUR_S, (end - 1) // HOUR_S + 1)
            for row in self._hour_rows(name, hour, HOUR_S, cutoff)
        ]
        if not parts:
            return None
        comps: Ohlc = {}
        for comp in parts[0][3]:
            comps[comp] = (
                parts[0][3][comp][0],
                max(p[3][comp][1] for p in parts),
                min(p[3][comp][2] for p in parts),
                parts[-1][3][comp][3],
            )
        return start, end, sum(p[2] for p in parts), comps

    def _forward(self, name: str, gran: str, from_s: int, cutoff: int) -> Iterator[Row]:
        step = GRANULARITY_S[gran]
        if step <= HOUR_S:
            for hour in range(from_s // HOUR_S, cutoff // HOUR_S + 1):
                for row in self._hour_rows(name, hour, step, cutoff):
                    if row[1] > from_s:
                        yield row
            return
        second = from_s
        while second <= cutoff:
            start, end = bounds(gran, second)
            found = self._aggregate(name, start, end, cutoff)
            if found is not None:
                yield found
            second = end

    def _backward(self, name: str, gran: str, to_s: int, cutoff: int) -> Iterator[Row]:
        step = GRANULARITY_S[gran]
        floor = self.market.history_start_s
        if step <= HOUR_S:
            for hour in range(to_s // HOUR_S, floor // HOUR_S - 1, -1):
                for row in reversed(self._hour_rows(name, hour, step, cutoff)):
                    if row[0] <= to_s:
                        yield row
            return
        second = to_s
        while second >= floor:
            start, end = bounds(gran, second)
            found = self._aggregate(name, start, end, cutoff)
            if found is not None:
                yield found
            second = start - 1

    def query(self, q: CandleQuery, *, now_ns: int) -> dict[str, Any]:
        """Answer ``q`` as OANDA's candles response body.

        Raises:
            CandleQueryError: invalid parameters (the message is OANDA's wording).
        """
        spec = self.market.specs.get(q.instrument)
        if spec is None:
            raise CandleQueryError("Invalid value specified for 'instrument'")
        if q.granularity not in GRANULARITY_S and q.granularity != "M":
            raise CandleQueryError("Invalid value specified for 'granularity'")
        if not q.price or any(c not in "MBA" for c in q.price):
            raise CandleQueryError("Invalid value specified for 'price'")
        if q.to_ns is not None and q.to_ns > now_ns:
            raise CandleQueryError("Invalid value specified for 'to'. Time is in the future")
        if q.count is not None and q.from_ns is not None and q.to_ns is not None:
            raise CandleQueryError("Parameters 'count', 'from' and 'to' cannot all be specified")
        count = 500 if q.count is None else q.count
        if count > MAX_COUNT:
            raise CandleQueryError("Maximum value for 'count' exceeded")
        if count < 1:
            raise CandleQueryError("Invalid value specified for 'count'")
        cutoff = self.market.candle_cutoff_s()
        rows: list[Row] = []
        if q.from_ns is not None:
            from_s = q.from_ns // NS
            first_start = bounds(q.granularity, from_s)[0]
            to_s = cutoff if q.to_ns is None else min(q.to_ns // NS, cutoff)
            for row in self._forward(q.instrument, q.granularity, from_s, cutoff):
                if row[0] > to_s or (q.to_ns is None and len(rows) >= count):
                    break
                if row[0] < from_s and not (q.include_first and row[0] == first_start):
                    continue
                if row[0] == from_s and not q.include_first:
                    continue
                rows.append(row)
                if len(rows) > MAX_COUNT:
                    raise CandleQueryError("Maximum value for 'count' exceeded")
        else:
            to_s = cutoff if q.to_ns is None else min(q.to_ns // NS, cutoff)
            for row in self._backward(q.instrument, q.granularity, to_s, cutoff):
                rows.append(row)
                if len(rows) >= count:
                    break
            rows.reverse()
        components = {"M": "mid", "B": "bid", "A": "ask"}
        p = spec.display_precision
        candles = []
        bad = self.bad_candles.get(q.instrument)
        for start, end, served_volume, served in rows:
            volume, comps = (served_volume, served)
            if bad is not None and start <= bad[0] < end:
                volume, comps = corrupt(bad[1], served_volume, served)
            candle: dict[str, Any] = {
                "complete": end - 1 <= cutoff and end <= now_ns // NS,
                "volume": volume,
                "time": Ts(start * NS),
            }
            for letter in q.price:
                o, h, lo, c = comps[components[letter]]
                candle[components[letter]] = {
                    "o": fmt_price(o, p),
                    "h": fmt_price(h, p),
                    "l": fmt_price(lo, p),
                    "c": fmt_price(c, p),
                }
            candles.append(candle)
        return {"instrument": q.instrument, "granularity": q.granularity, "candles": candles}
