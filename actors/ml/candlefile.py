"""Candle CSV files: reading them with checks, naming them ``INSTRUMENT=PATH``, broker candles too.

This module owns the candle file format that ``tradehost train``, backtests and the emulator's
``--data`` replay read: a header line and one row per candle,
``time,open,high,low,close[,volume][,spread | ,bid,ask]``, oldest first (UTF-8, with or without a
byte order mark). ``time`` is the bar start,
RFC3339 (``2024-03-05T14:00:00Z``, any fraction or offset) or epoch seconds; prices are mid. The
optional ``volume`` is the tick volume (>= 0). The spread at the close may be given either as
``spread`` (ask - bid in price units) or as the closing quotes ``bid`` and ``ask`` (then
spread = ask - bid); without them the spread is unknown (NaN). Columns may come in any order;
other columns are ignored, as the emulator always did. Blank lines are skipped.

Every row is checked: parsable time and numbers, finite values, prices > 0, ``low <= open,
close <= high``, ``bid <= ask``, times strictly increasing (no duplicates). The first problem
raises ``CandleFileError`` with a one-line message ``PATH:LINE: what is wrong``.

Those are checks of the format. Whether a well-formed candle is a bar the host would trade on
(a spike far beyond the recent ATR, an exact copy of the previous bar, a spread beyond
``feed.max_spread_pips``, ...) is the live feed's rule, ``actors.core.bars.validate_history``:
``validated_frame`` runs it over a frame (``tradehost train`` and ``backtest`` drop the bars it
rejects, with a warning), rebuilding each bar's bid and ask from its mid prices and closing
spread, as the emulator serves a replayed file.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from actors.core.bars import BarCandle, RejectedBar, validate_history
from actors.core.bartime import bar_start
from actors.core.candlespec import CANDLE_COLUMNS, CandleFileError, parse_spec
from actors.core.config import BarValidationConfig
from actors.core.domain import DAY_ALIGNED, OHLC, Candle, granularity_seconds
from actors.core.timefmt import NS, format_rfc3339, parse_time

__all__ = [
    "QUOTE_COLUMNS",
    "CandleFile",
    "frame_from_candles",
    "grid_problem",
    "quote_frame_from_candles",
    "read_candle_file",
    "read_candle_files",
    "validated_frame",
]


_PRICES = ("open", "high", "low", "close")
# Bar times are int64 UTC nanoseconds (pandas' and numpy's too): 1970 to 2262-04-11.
_MIN_NS = 0
_MAX_NS = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True, kw_only=True)
class CandleFile:
    """The candles of one file.

    Attributes:
        instrument: e.g. ``EUR_USD``.
        path: the file read.
        frame: float64 columns ``CANDLE_COLUMNS`` indexed by bar start (int64 UTC ns, named
            ``time``, strictly increasing); ``volume`` / ``spread`` are NaN when the file has none.
        step_s: the median spacing of the bars in seconds (the file's granularity).
        has_volume: the file has a ``volume`` column.
        has_spread: the file has ``spread`` or ``bid``/``ask`` columns.
    """

    instrument: str
    path: Path
    frame: pd.DataFrame
    step_s: int
    has_volume: bool
    has_spread: bool


def read_candle_files(items: Sequence[str], *, known: Collection[str]) -> dict[str, CandleFile]:
    """Read several ``INSTRUMENT=PATH`` specs (see ``parse_spec``), one file per instrument.

    Raises:
        CandleFileError: a bad spec, an instrument named twice, or a malformed file.
    """
    files: dict[str, CandleFile] = {}
    for item in items:
        name, path = parse_spec(item, known=known)
        if name in files:
            raise CandleFileError(f"{item}: {name} already comes from {files[name].path}")
        files[name] = read_candle_file(path, instrument=name)
    return files


def read_candle_file(path: Path, *, instrument: str) -> CandleFile:
    """Read and check one candle file (format in the module docstring).

    Args:
        path: the CSV file.
        instrument: the instrument it holds.

    Returns:
        The candles, with at least two rows.

    Raises:
        CandleFileError: ``PATH:LINE: problem`` for the first malformed line, or ``PATH: problem``
            for an unreadable or empty file.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # a byte order mark is not the header
            return _read(handle, path, instrument)
    except OSError as e:
        raise CandleFileError(f"{path}: cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise CandleFileError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except csv.Error as e:
        raise CandleFileError(f"{path}: not a CSV file: {e}") from e


def frame_from_candles(candles: Sequence[Candle], *, complete_only: bool = True) -> pd.DataFrame:
    """Turn broker candles into a candle frame (the same shape ``read_candle_file`` returns).

    Prices are the ``mid`` component, or the mean of ``bid`` and ``ask`` when mid is absent;
    ``spread`` is ask close - bid close when both are present, else NaN.

    Args:
        candles: oldest first, as ``Broker.candles`` returns them.
        complete_only: drop candles that are not complete (the bar still forming).

    Raises:
        ValueError: a candle has neither mid nor bid and ask.
    """
    times: list[int] = []
    rows: list[tuple[float, float, float, float, float, float]] = []
    for candle in candles:
        if complete_only and not candle.complete:
            continue
        bid, ask, mid = candle.bid, candle.ask, candle.mid
        if mid is not None:
            o, h, low, c = mid.o, mid.h, mid.l, mid.c
        elif bid is not None and ask is not None:
            o, h, low, c = ((bid.o + ask.o) / 2, (bid.h + ask.h) / 2, (bid.l + ask.l) / 2, (bid.c + ask.c) / 2)
        else:
            raise ValueError(f"candle at {format_rfc3339(candle.ts)} has neither mid nor bid and ask")
        spread = float(ask.c - bid.c) if bid is not None and ask is not None else math.nan
        times.append(candle.ts)
        rows.append((float(o), float(h), float(low), float(c), float(candle.volume), spread))
    return _frame(times, rows)


QUOTE_COLUMNS = tuple(f"{side}_{field}" for side in ("bid", "ask") for field in _PRICES)


def quote_frame_from_candles(candles: Sequence[Candle]) -> pd.DataFrame | None:
    """The bid and ask OHLC of broker candles (``QUOTE_COLUMNS``: ``bid_open`` ... ``ask_close``),
    indexed by bar start like ``frame_from_candles``; None when a candle lacks bid or ask (read
    without ``price=BA``): then only mid and the closing spread are known.

    Args:
        candles: oldest first, complete (as ``frame_from_candles`` keeps them).
    """
    times: list[int] = []
    rows: list[tuple[float, ...]] = []
    for candle in candles:
        if candle.bid is None or candle.ask is None:
            return None
        bid, ask = candle.bid, candle.ask
        times.append(candle.ts)
        rows.append(tuple(float(v) for v in (bid.o, bid.h, bid.l, bid.c, ask.o, ask.h, ask.l, ask.c)))
    index = pd.Index(np.asarray(times, dtype=np.int64), dtype=np.int64, name="time")
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(QUOTE_COLUMNS))
    return pd.DataFrame(values, index=index, columns=list(QUOTE_COLUMNS))


def _frame(times: list[int], rows: list[tuple[float, float, float, float, float, float]]) -> pd.DataFrame:
    index = pd.Index(np.asarray(times, dtype=np.int64), dtype=np.int64, name="time")
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(CANDLE_COLUMNS))
    return pd.DataFrame(values, index=index, columns=list(CANDLE_COLUMNS))


def _read(handle: TextIO, path: Path, instrument: str) -> CandleFile:
    reader = csv.reader(handle)
    header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    if header is None:
        raise CandleFileError(f"{path}: empty file (expected a header time,open,high,low,close[,volume])")
    columns = _columns(header, path, reader.line_num)
    has_volume = "volume" in columns
    quotes = "bid" in columns
    has_spread = quotes or "spread" in columns
    times: list[int] = []
    rows: list[tuple[float, float, float, float, float, float]] = []
    first_line: dict[int, int] = {}
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        where = f"{path}:{line}"
        if len(record) != len(header):
            raise CandleFileError(f"{where}: expected {len(header)} fields as in the header, found {len(record)}")
        raw_time = record[columns["time"]]
        try:
            ts = parse_time(raw_time)
        except ValueError:
            raise CandleFileError(f"{where}: time {raw_time.strip()!r} is neither RFC3339 nor epoch seconds") from None
        if not _MIN_NS <= ts <= _MAX_NS:
            raise CandleFileError(f"{where}: time {raw_time.strip()} is out of range (bar times run from 1970 to 2262)")
        if times and ts <= times[-1]:
            if ts in first_line:
                raise CandleFileError(f"{where}: duplicate time {format_rfc3339(ts)} (first on line {first_line[ts]})")
            raise CandleFileError(f"{where}: time {format_rfc3339(ts)} is before the previous row's; sort the file")
        first_line[ts] = line
        values = {name: _number(record[index], name, where) for name, index in columns.items() if name != "time"}
        o, h, low, c = (values[name] for name in _PRICES)
        for name in _PRICES:
            if values[name] <= 0:
                raise CandleFileError(f"{where}: {name} {record[columns[name]].strip()} is not > 0")
        if h < low:
            raise CandleFileError(f"{where}: high {h!r} is below low {low!r}")
        if not (low <= o <= h and low <= c <= h):
            raise CandleFileError(f"{where}: open/close outside [low, high] ({o!r}, {c!r} vs {low!r}..{h!r})")
        volume = values.get("volume", math.nan)
        if volume < 0:
            raise CandleFileError(f"{where}: volume {volume!r} is negative")
        if quotes:
            bid, ask = values["bid"], values["ask"]
            if bid <= 0 or ask < bid:
                raise CandleFileError(f"{where}: bid {bid!r} / ask {ask!r}: need 0 < bid <= ask")
            spread = ask - bid
        else:
            spread = values.get("spread", math.nan)
            if spread < 0:
                raise CandleFileError(f"{where}: spread {spread!r} is negative")
        times.append(ts)
        rows.append((o, h, low, c, volume, spread))
    if len(times) < 2:
        raise CandleFileError(f"{path}: a candle file needs at least two candles, found {len(times)}")
    step_s = int(np.median(np.diff(np.asarray(times, dtype=np.int64)))) // NS
    return CandleFile(
        instrument=instrument,
        path=path,
        frame=_frame(times, rows),
        step_s=step_s,
        has_volume=has_volume,
        has_spread=has_spread,
    )


def _columns(header: list[str], path: Path, line: int) -> dict[str, int]:
    names = [cell.strip().lower() for cell in header]
    where = f"{path}:{line}"
    wanted = ("time", *_PRICES, "volume", "spread", "bid", "ask")
    columns: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in wanted:
            if name in columns:
                raise CandleFileError(f"{where}: column {name!r} appears twice in the header")
            columns[name] = index
    missing = [name for name in ("time", *_PRICES) if name not in columns]
    if missing:
        raise CandleFileError(
            f"{where}: missing column {', '.join(repr(m) for m in missing)} (header: {','.join(names)})"
        )
    if ("bid" in columns) != ("ask" in columns):
        raise CandleFileError(f"{where}: give both 'bid' and 'ask', or neither")
    if "bid" in columns and "spread" in columns:
        raise CandleFileError(f"{where}: give the spread as 'spread' or as 'bid','ask', not both")
    return columns


def _number(text: str, name: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CandleFileError(f"{where}: {name} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise CandleFileError(f"{where}: {name} is {text.strip()}, not a finite number")
    return value


def grid_problem(name: str, index_ns: np.ndarray, granularity: str) -> str | None:
    """Whether a frame's bars are bars of ``granularity``: ``granularity`` apart (the closest two,
    and over 20 bars or more the median: closures only lengthen gaps) and each on its grid
    (``actors.core.bartime.bar_start``). A file of other bars would be decided on as if it were of this
    granularity.

    Args:
        name: the instrument (for the message).
        index_ns: the bars' times, UTC nanoseconds, ascending.
        granularity: e.g. ``M15``.

    Returns:
        One line naming the instrument and the first problem, or None.
    """
    step_ns = granularity_seconds(granularity) * NS
    # The 17:00 New York grid moves by an hour in UTC at a DST change: one gap an hour off.
    slack_ns = 3600 * NS if granularity in DAY_ALIGNED else 0
    gaps = np.diff(np.asarray(index_ns, dtype=np.int64))
    # The closest two bars are one bar apart (closures only lengthen gaps); over a longer file the
    # typical gap is one bar too (a file of every other bar passes the first test once).
    spacings = [int(gaps.min())] if len(gaps) >= 2 else []
    if len(gaps) >= 20:
        spacings.append(int(np.median(gaps)))
    for spacing_ns in spacings:
        if abs(spacing_ns - step_ns) > slack_ns:
            return f"{name}: bars are {spacing_ns // NS} s apart, not {granularity} ({step_ns // NS} s)"
    if granularity in DAY_ALIGNED:
        off = [int(t) for t in index_ns if bar_start(int(t), granularity) != int(t)]
    else:
        off = [int(t) for t in index_ns[np.asarray(index_ns) % step_ns != 0][:1]]
    if off:
        return f"{name}: the bar at {format_rfc3339(off[0])} is not on the {granularity} grid"
    return None


def _decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def validated_frame(
    frame: pd.DataFrame,
    *,
    granularity: str,
    pip_location: int,
    config: BarValidationConfig,
    spread_fallback: float | None = None,
) -> tuple[pd.DataFrame, list[RejectedBar]]:
    """The bars of a candle frame that pass the live feed's checks (``validate_history``).

    Each row becomes a ``BarCandle`` whose bid and ask OHLC are the mid prices -/+ half the
    closing spread (``spread_fallback`` where the frame has none, else 0), with the row's volume
    (1 where the frame has none: unknown is not zero).

    Args:
        frame: a candle frame (``CANDLE_COLUMNS``, indexed by bar start).
        granularity: the bars' granularity.
        pip_location: the instrument's ``pipLocation``.
        config: the thresholds (the ``[feed]`` section).
        spread_fallback: the spread (price units) of bars without one.

    Returns:
        The frame without the rejected rows, and the rejected bars with their reasons.
    """
    fallback = 0.0 if spread_fallback is None or not math.isfinite(spread_fallback) else spread_fallback
    bars = []
    columns = frame[list(CANDLE_COLUMNS)].to_numpy(dtype=np.float64).tolist()
    # A file's prices repeat (a tick apart): each distinct float becomes a Decimal once.
    decimals: dict[float, Decimal] = {}

    def decimal(value: float) -> Decimal:
        found = decimals.get(value)
        if found is None:
            found = decimals[value] = _decimal(value)
        return found

    for ts, (o, h, low, c, volume, spread) in zip(frame.index.to_numpy(dtype=np.int64).tolist(), columns, strict=True):
        half = decimal(spread if math.isfinite(spread) else fallback) / 2
        mid = (decimal(o), decimal(h), decimal(low), decimal(c))
        bars.append(
            BarCandle(
                ts=int(ts),
                volume=int(volume) if math.isfinite(volume) else 1,
                complete=True,
                bid=OHLC(o=mid[0] - half, h=mid[1] - half, l=mid[2] - half, c=mid[3] - half),
                ask=OHLC(o=mid[0] + half, h=mid[1] + half, l=mid[2] + half, c=mid[3] + half),
            )
        )
    _, rejected = validate_history(bars, granularity=granularity, pip_location=pip_location, config=config)
    if not rejected:
        return frame, rejected
    dropped = {r.candle.ts for r in rejected}
    return frame[~frame.index.isin(list(dropped))], rejected
