"""Candle history for the offline commands: from candle files or from the configured broker.

``tradehost train`` (and later ``tradehost backtest``) take either ``--data INSTR=CSV`` files
(``actors.candlefile``: a malformed file is a one-line error naming the file and line) or, by
default, the configured broker's candles: for ``broker.kind = "emulator"`` an emulator is started
in this process on its configured market (seed, start, replayed files) and its history is read
through the real oandapyV20 client, exactly as the host would read it. Requests are paged (OANDA
serves at most 5000 candles per request) and paced by the broker layer.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from actors.bars import granularity_seconds
from actors.broker import Broker, Candle
from actors.broker.config import BrokerConfig, load_credentials
from actors.broker.timefmt import NS
from actors.candlefile import frame_from_candles, read_candle_files

__all__ = ["History", "from_broker", "from_files", "open_history_broker"]

MAX_PER_REQUEST = 5000


@dataclass(frozen=True, slots=True)
class History:
    """Candle frames per instrument (``actors.candlefile`` columns), pip sizes and known spreads."""

    frames: dict[str, pd.DataFrame]
    pip_sizes: dict[str, float]
    spread_fallback: dict[str, float]


def _emulator_tables(names: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
    from actors.broker.emulator.instruments import SPECS  # noqa: PLC0415 - only the offline commands need it

    pips = {n: SPECS[n].pip for n in names if n in SPECS}
    spreads = {n: SPECS[n].spread_pips * SPECS[n].pip for n in names if n in SPECS}
    return pips, spreads


def from_files(items: Sequence[str], known: Sequence[str]) -> History:
    """Read ``INSTR=PATH`` candle files (raises ``CandleFileError`` with file and line).

    Pip sizes and the spread assumed for files without one are those of the emulator's
    instrument table (the instruments it knows).
    """
    files = read_candle_files(items, known=known)
    pips, spreads = _emulator_tables(list(files))
    return History({n: f.frame for n, f in files.items()}, pips, spreads)


@contextlib.contextmanager
def open_history_broker(config: BrokerConfig, environ: Mapping[str, str] | None = None) -> Iterator[Broker]:
    """A broker to read history from: the configured one, or an emulator started here for it."""
    from actors.broker.connect import open_broker  # noqa: PLC0415 - loads oandapyV20

    environ = os.environ if environ is None else environ
    if config.kind != "emulator" or config.api_url:
        broker = open_broker(config, environ)
        try:
            yield broker
        finally:
            broker.close()
        return
    from actors.broker.emulator import options_from_config, running_emulator  # noqa: PLC0415

    options = options_from_config(replace(config.emulator, port=0), load_credentials(environ, kind="emulator"))
    with running_emulator(options) as (url, _admin):
        broker = open_broker(replace(config, api_url=url), environ)
        try:
            yield broker
        finally:
            broker.close()


def from_broker(
    broker: Broker,
    instruments: Sequence[str],
    granularity: str,
    *,
    bars: int,
    from_ns: int | None = None,
    to_ns: int | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> History:
    """Complete candles (bid and ask) per instrument: the last ``bars``, or those in [from, to)."""
    step_ns = granularity_seconds(granularity) * NS
    frames: dict[str, pd.DataFrame] = {}
    for name in instruments:
        by_ts: dict[int, Candle] = {}  # pages may overlap by a candle: keyed by time
        if from_ns is not None:
            cursor = from_ns
            while True:
                page = broker.candles(name, granularity, from_ts=cursor, count=MAX_PER_REQUEST, price="BA")
                kept = [c for c in page if c.complete and (to_ns is None or c.ts < to_ns)]
                by_ts.update((c.ts, c) for c in kept)
                if len(kept) < MAX_PER_REQUEST - 1:
                    break
                cursor = kept[-1].ts + step_ns
        else:
            to_cursor = to_ns
            while len(by_ts) < bars:
                count = min(MAX_PER_REQUEST, bars - len(by_ts) + 1)
                page = [c for c in broker.candles(name, granularity, count=count, to_ts=to_cursor, price="BA")]
                kept = [c for c in page if c.complete and c.ts not in by_ts]
                if not kept:
                    break
                by_ts.update((c.ts, c) for c in kept)
                if len(page) < count - 1:
                    break
                to_cursor = kept[0].ts
        candles = [by_ts[ts] for ts in sorted(by_ts)][-bars:] if from_ns is None else [by_ts[t] for t in sorted(by_ts)]
        frames[name] = frame_from_candles(candles)
        progress(f"{name}: {len(frames[name])} {granularity} candles from the broker")
    metadata = broker.instruments(list(instruments))
    pips = {i.name: 10.0**i.pip_location for i in metadata}
    _, spreads = _emulator_tables(instruments)
    return History(frames, pips, spreads)
