"""Everything ``tradehost backtest`` reads before it replays: candles, instrument metadata, the account.

Two sources, as for ``tradehost train`` (``supervisor.offline.history``):

- ``--data INSTR=CSV`` files (``actors.ml.candlefile``: a malformed file is a one-line error naming
  the file and line). Instrument metadata (precisions, size limits) and the spread assumed for a
  file without one come from the emulator's instrument table; the account is the emulator's: USD,
  opening with ``broker.emulator.balance``.
- The configured broker (by default the embedded emulator, started in this process on its
  configured market: seed, start, replayed files). Its metadata and account summary (currency,
  NAV) are read from it, and the candles of the window with the model's window of history before
  it, bid and ask, through the real client as the host reads them. For a comparison with a
  replayed shadow run, this is the source to use: the emulator serves the replayed files with its
  own spread and tick volume, exactly the candles the shadow run's feed fetched.

Either way every bar passes the live feed's checks first (``supervisor.offline.history``): the candles of
the window and of the history before it are checked as one series, so the first bars of the
window are checked against the bars before them as they were live, and the backtest leaves out
the bars the live feed left out. Each instrument with rejected bars is one warning line
(``coverage_warnings``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from actors.core.bartime import bar_end
from actors.core.config import BarValidationConfig
from actors.core.domain import granularity_seconds
from actors.core.money import conversion_refusal
from actors.core.timefmt import format_rfc3339
from actors.ml.candlefile import grid_problem
from supervisor.offline import history
from supervisor.offline.backtest.run import BacktestError, ordered_instruments

if TYPE_CHECKING:
    from actors.broker.config import BrokerConfig
    from actors.core.domain import Candle, Instrument

__all__ = ["Inputs", "from_broker", "from_files", "history_until", "window_of"]

# Bars read before the window beyond the model's window (the ATR and a missing bar or two).
EXTRA_HISTORY_BARS = 64
_APART_NS = 3 * 86_400 * 10**9  # candles starting or ending further apart than this are worth a warning


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    """What the replay needs besides the model and the configuration.

    Attributes:
        history: candle frames, pip sizes and fallback spreads.
        instruments: in the order decisions are taken.
        meta: instrument metadata by name.
        home_currency: the account currency.
        opening_nav: the account's NAV at the start.
    """

    history: history.History
    instruments: tuple[str, ...]
    meta: dict[str, Instrument]
    home_currency: str
    opening_nav: float


def _emulator_metadata(names: Sequence[str]) -> dict[str, Instrument]:
    from actors.broker.emulator.instruments import SPECS, instrument_json  # noqa: PLC0415 - offline only
    from actors.broker.oanda.parse import instrument  # noqa: PLC0415

    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise BacktestError(f"no instrument metadata for {', '.join(unknown)} (the emulator's table lacks it)")
    return {n: instrument(instrument_json(SPECS[n])) for n in names}


def from_files(
    items: Sequence[str],
    *,
    configured: Sequence[str],
    balance: Decimal,
    granularity: str,
    validation: BarValidationConfig | None = None,
) -> Inputs:
    """Candle files (``INSTR=PATH``); raises ``CandleFileError`` for a malformed file. Bars that
    fail the live checks (``validation``: the ``[feed]`` section) are left out."""
    data = history.from_files(items, known=configured, granularity=granularity, validation=validation)
    names = ordered_instruments(list(data.frames), configured)
    return Inputs(
        history=data,
        instruments=names,
        meta=_emulator_metadata(names),
        home_currency="USD",
        opening_nav=float(balance),
    )


def from_broker(
    config: BrokerConfig,
    instruments: Sequence[str],
    granularity: str,
    *,
    from_ns: int | None,
    to_ns: int | None,
    bars: int,
    history_bars: int,
    progress: Callable[[str], None],
    validation: BarValidationConfig | None = None,
) -> Inputs:
    """The configured broker's candles of the window and the history before it.

    Args:
        config: the ``[broker]`` section.
        instruments: the instruments (``feed.instruments``).
        granularity: the bars' granularity.
        from_ns: the window's first bar; None: the last ``bars`` bars before ``to_ns``.
        to_ns: the window's end (exclusive); None: up to the broker's latest complete bar.
        bars: without ``from_ns``, the window's length in bars.
        history_bars: bars of history the model needs before the window (its ``window_bars``).
        progress: one line per step.
        validation: the bar checks' thresholds (the ``[feed]`` section; default: its defaults).
    """
    want = history_bars + EXTRA_HISTORY_BARS
    with history.open_history_broker(config) as broker:
        summary = broker.account_summary()
        meta = {i.name: i for i in broker.instruments(list(instruments))}
        if from_ns is None:  # the model's window of history, then the last ``bars`` bars
            candles = history.broker_candles(
                broker, instruments, granularity, bars=bars + history_bars, to_ns=to_ns, progress=progress
            )
        else:
            window = history.broker_candles(
                broker, instruments, granularity, bars=0, from_ns=from_ns, to_ns=to_ns, progress=progress
            )
            before = history.broker_candles(
                broker, instruments, granularity, bars=want, to_ns=from_ns, progress=progress
            )
            candles = {n: _joined(before[n], window[n]) for n in instruments}
        data = history.from_candles(broker, candles, granularity, validation=validation)
    empty = [n for n in instruments if data.frames[n].empty]
    if empty:
        where = f"from {format_rfc3339(from_ns)}" if from_ns is not None else "in its history"
        step = granularity_seconds(granularity)
        raise BacktestError(
            f"the broker has no complete {granularity} ({step} s) candles of {', '.join(empty)} {where}"
        )
    return Inputs(
        history=data,
        instruments=tuple(instruments),
        meta=meta,
        home_currency=summary.currency,
        opening_nav=float(summary.nav),
    )


def _joined(before: Sequence[Candle], window: Sequence[Candle]) -> list[Candle]:
    by_ts = {c.ts: c for c in before}
    by_ts.update((c.ts, c) for c in window)
    return [by_ts[ts] for ts in sorted(by_ts)]


def summary_line(inputs: Inputs, extra: Mapping[str, int] | None = None) -> str:
    """One line about what was read (for the progress output)."""
    counts = ", ".join(f"{n} {len(inputs.history.frames[n])}" for n in inputs.instruments)
    return f"candles: {counts}; account {inputs.opening_nav:.2f} {inputs.home_currency}" + (
        "" if not extra else "; " + ", ".join(f"{k} {v}" for k, v in extra.items())
    )


def window_of(journal: Path, granularity: str, archives: Sequence[Path] = ()) -> tuple[int, int]:
    """The window a shadow run decided on: its first bar decided with a trading permit to its last.

    Returns:
        (first bar start, the last bar's end) in UTC ns: ``--from`` and ``--to``.

    Raises:
        BacktestError: the journal is unreadable or holds no decision.
    """
    from supervisor.offline.report.run import ReportError, read_journal  # noqa: PLC0415 - only this option reads a journal
    from supervisor.offline.report.sides import Side  # noqa: PLC0415

    try:
        bars = Side("shadow", read_journal(journal, archives)).decided_bars()
    except ReportError as e:
        raise BacktestError(str(e)) from e
    if bars is None:
        raise BacktestError(f"{journal}: no bar was decided with a trading permit (no risk.intent or risk.skip row)")
    return bars[0], bar_end(bars[1], granularity)


def history_until(config: BrokerConfig, to_ns: int) -> BrokerConfig:
    """``config`` with the embedded emulator's clock started at ``to_ns`` if it would start before it
    (its history then holds the window); any other broker is returned as it is."""
    from actors.broker.config import start_ns  # noqa: PLC0415

    if config.kind != "emulator" or config.api_url:
        return config
    start = config.emulator.start.strip()
    if start and start_ns(start) >= to_ns:
        return config
    return replace(config, emulator=replace(config.emulator, start=format_rfc3339(to_ns)))


def check_conversion(inputs: Inputs) -> None:
    """Refuse instruments whose quote currency the inputs' prices cannot convert into the account
    currency (``actors.core.money.conversion_refusal``, the rule ``tradehost run`` refuses at its
    first account read): every signal of theirs would be skipped as ``no_conversion_rate``.

    Raises:
        BacktestError: naming the instrument and the pair to add.
    """
    refusal = conversion_refusal(inputs.instruments, inputs.home_currency)
    if refusal:
        raise BacktestError(refusal)


def check_bars(data: history.History, granularity: str) -> None:
    """Refuse candles that are not bars of ``granularity`` (``actors.ml.candlefile.grid_problem``, the
    rule ``tradehost train`` applies), and instruments whose candles share no time at all.

    Raises:
        BacktestError: naming the instrument and the problem.
    """
    for name, frame in data.frames.items():
        problem = grid_problem(name, frame.index.to_numpy(), granularity)
        if problem:
            raise BacktestError(problem)
    spans = _spans(data)
    if spans and max(lo for lo, _ in spans.values()) > min(hi for _, hi in spans.values()):
        raise BacktestError(f"the candles of the instruments do not overlap in time ({_described(spans)})")


def coverage_warnings(data: history.History, from_ns: int | None, window_bars: int) -> list[str]:
    """What a careful operator should hear before a backtest that runs anyway: bars left out because
    they fail the live feed's checks (one line per instrument), an instrument with less history
    before ``--from`` than the model's window (its first decisions are the model's skips, as they
    would be live), and instruments whose candles start or end far apart."""
    warnings = list(data.warnings)
    if from_ns is not None:
        for name, frame in data.frames.items():
            before = int((frame.index < from_ns).sum())
            if before < window_bars:
                warnings.append(
                    f"{name}: {before} bars before --from, the model needs {window_bars}: "
                    "its first decisions are skipped (model.skipped), as they would be live"
                )
    spans = _spans(data)
    if len(spans) > 1:
        starts, ends = [lo for lo, _ in spans.values()], [hi for _, hi in spans.values()]
        if max(starts) - min(starts) > _APART_NS or max(ends) - min(ends) > _APART_NS:
            warnings.append(f"the instruments' candles cover different days ({_described(spans)})")
    return warnings


def _spans(data: history.History) -> dict[str, tuple[int, int]]:
    # Each instrument's first and last bar (UTC ns); instruments without candles are left out.
    return {n: (int(f.index[0]), int(f.index[-1])) for n, f in data.frames.items() if len(f)}


def _described(spans: Mapping[str, tuple[int, int]]) -> str:
    return ", ".join(f"{n} {format_rfc3339(lo)[:10]}..{format_rfc3339(hi)[:10]}" for n, (lo, hi) in spans.items())
