"""Candle history for the offline commands: from candle files or from the configured broker.

``tradehost train`` (and later ``tradehost backtest``) take either ``--data INSTR=CSV`` files
(``actors.ml.candlefile``: a malformed file is a one-line error naming the file and line) or, by
default, the configured broker's candles: for ``broker.kind = "emulator"`` an emulator is started
in this process on its configured market (seed, start, replayed files) and its history is read
through the real oandapyV20 client, exactly as the host would read it. Requests are paged (OANDA
serves at most 5000 candles per request) and paced by the broker layer.

Every bar then passes the live feed's checks (``actors.core.bars.validate_history``, with the
thresholds of the ``[feed]`` section): the broker's candles exactly as the feed checks them (bid
and ask), a file's from its mid prices and spread (``actors.ml.candlefile.validated_frame``). A
rejected bar is left out, as the live feed leaves it out of every window, and each instrument with
rejected bars gets one warning line in ``History.warnings`` for the command to print. Bars off
the granularity's grid are the exception: they stay for the commands' grid check, which refuses
the whole input (a file of other bars is not a file with a few bad bars).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from actors.broker import Broker
from actors.broker.config import BrokerConfig, load_credentials
from actors.core.bars import BarReason, RejectedBar, validate_candles
from actors.core.config import BarValidationConfig
from actors.core.domain import Candle, granularity_seconds
from actors.core.timefmt import NS, format_rfc3339
from actors.ml.candlefile import frame_from_candles, quote_frame_from_candles, read_candle_files, validated_frame

__all__ = [
    "History",
    "broker_candles",
    "from_broker",
    "from_candles",
    "from_files",
    "open_history_broker",
    "rejection_warning",
]

MAX_PER_REQUEST = 5000
# A warning line names this many rejected bars, then counts the rest.
_NAMED = 3
# The emulator's pipLocation of the majors, for files of instruments its table lacks.
_DEFAULT_PIP_LOCATION = -4


@dataclass(frozen=True, slots=True)
class History:
    """Candle frames per instrument (``actors.ml.candlefile`` columns), pip sizes and known spreads,
    and one warning line per instrument whose bars failed the live checks (left out)."""

    frames: dict[str, pd.DataFrame]
    pip_sizes: dict[str, float]
    spread_fallback: dict[str, float]
    warnings: tuple[str, ...] = ()
    # instrument -> its bid/ask OHLC (``actors.ml.candlefile.QUOTE_COLUMNS``, the frames' index)
    # where the source has bid/ask candles (the broker's, read with price=BA); files have none.
    quotes: dict[str, pd.DataFrame] = field(default_factory=dict)


def _dropped(rejected: Sequence[RejectedBar]) -> list[RejectedBar]:
    # Bars off the granularity's grid are not dropped one by one: they stay for the commands' grid
    # check (actors.ml.candlefile.grid_problem), which refuses the whole input with one clear line
    # (a file of other bars is not a file with bad bars).
    return [r for r in rejected if r.reason is not BarReason.MISALIGNED]


def _when(ts_ns: int) -> str:
    return format_rfc3339(ts_ns).replace(".000000000Z", "Z")  # bar starts are whole seconds


def rejection_warning(name: str, source: str, rejected: Sequence[RejectedBar]) -> str:
    """One line about the bars of ``name`` (read from ``source``) that failed the live checks."""
    named = [f"{_when(r.candle.ts)} {r.reason.value} ({r.detail})" for r in rejected[:_NAMED]]
    more = f" and {len(rejected) - _NAMED} more" if len(rejected) > _NAMED else ""
    bars = "bar fails" if len(rejected) == 1 else "bars fail"
    return (
        f"{name} ({source}): {len(rejected)} {bars} the live feed's checks and is left out: " + "; ".join(named) + more
    )


def _emulator_tables(names: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
    from actors.broker.emulator.instruments import SPECS  # noqa: PLC0415 - only the offline commands need it

    pips = {n: SPECS[n].pip for n in names if n in SPECS}
    spreads = {n: SPECS[n].spread_pips * SPECS[n].pip for n in names if n in SPECS}
    return pips, spreads


def _emulator_pip_locations(names: Sequence[str]) -> dict[str, int]:
    from actors.broker.emulator.instruments import SPECS  # noqa: PLC0415 - only the offline commands need it

    return {n: SPECS[n].pip_location for n in names if n in SPECS}


def from_files(
    items: Sequence[str],
    known: Sequence[str],
    *,
    granularity: str,
    validation: BarValidationConfig | None = None,
) -> History:
    """Read ``INSTR=PATH`` candle files (raises ``CandleFileError`` with file and line).

    Pip sizes and the spread assumed for files without one are those of the emulator's
    instrument table (the instruments it knows). Bars failing the live checks are left out.

    Args:
        items: ``INSTR=PATH`` specs.
        known: instruments a bare path may name.
        granularity: the bars' granularity.
        validation: the bar checks' thresholds (the ``[feed]`` section; default: its defaults).
    """
    config = validation if validation is not None else BarValidationConfig()
    files = read_candle_files(items, known=known)
    pips, spreads = _emulator_tables(list(files))
    locations = _emulator_pip_locations(list(files))
    frames: dict[str, pd.DataFrame] = {}
    warnings: list[str] = []
    for name, candle_file in files.items():
        _, rejected = validated_frame(
            candle_file.frame,
            granularity=granularity,
            pip_location=locations.get(name, _DEFAULT_PIP_LOCATION),
            config=config,
            spread_fallback=spreads.get(name),
        )
        dropped = _dropped(rejected)
        frames[name] = candle_file.frame.drop(index=[r.candle.ts for r in dropped])
        if dropped:
            warnings.append(rejection_warning(name, str(candle_file.path), dropped))
    return History(frames, pips, spreads, tuple(warnings))


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

    credentials = load_credentials(environ, kind="emulator", token_file=config.token_file)
    options = options_from_config(replace(config.emulator, port=0), credentials)
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
    validation: BarValidationConfig | None = None,
) -> History:
    """Complete candles (bid and ask) per instrument: the last ``bars``, or those in [from, to);
    bars failing the live checks (``validation``: the ``[feed]`` section) are left out."""
    candles = broker_candles(
        broker, instruments, granularity, bars=bars, from_ns=from_ns, to_ns=to_ns, progress=progress
    )
    return from_candles(broker, candles, granularity, validation=validation)


def from_candles(
    broker: Broker,
    candles: Mapping[str, Sequence[Candle]],
    granularity: str,
    *,
    validation: BarValidationConfig | None = None,
) -> History:
    """Frames of the broker's candles (bid and ask) that pass the live checks, as the feed checks
    them, with the broker's pip sizes.

    Args:
        broker: where the candles came from (for the instruments' metadata).
        candles: instrument -> complete candles, oldest first.
        granularity: their granularity.
        validation: the bar checks' thresholds (the ``[feed]`` section; default: its defaults).
    """
    config = validation if validation is not None else BarValidationConfig()
    metadata = {i.name: i for i in broker.instruments(list(candles))}
    frames: dict[str, pd.DataFrame] = {}
    quotes: dict[str, pd.DataFrame] = {}
    warnings: list[str] = []
    for name, series in candles.items():
        _, rejected = validate_candles(
            series, granularity=granularity, pip_location=metadata[name].pip_location, config=config
        )
        dropped = _dropped(rejected)
        gone = {r.candle.ts for r in dropped}
        kept = [c for c in series if c.ts not in gone]
        frames[name] = frame_from_candles(kept)
        quote = quote_frame_from_candles([c for c in kept if c.complete])
        if quote is not None:
            quotes[name] = quote
        if dropped:
            warnings.append(rejection_warning(name, "the broker's candles", dropped))
    pips = {name: 10.0**i.pip_location for name, i in metadata.items()}
    _, spreads = _emulator_tables(list(candles))
    return History(frames, pips, spreads, tuple(warnings), quotes)


def broker_candles(
    broker: Broker,
    instruments: Sequence[str],
    granularity: str,
    *,
    bars: int,
    from_ns: int | None = None,
    to_ns: int | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, list[Candle]]:
    """Complete candles (bid and ask) per instrument as the broker serves them, unchecked: the
    last ``bars``, or those in [from, to)."""
    step_ns = granularity_seconds(granularity) * NS
    out: dict[str, list[Candle]] = {}
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
        out[name] = candles
        progress(f"{name}: {len(candles)} {granularity} candles from the broker")
    return out
