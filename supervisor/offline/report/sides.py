"""The two journals ``tradehost report`` compares, indexed, and the figures read off them.

A ``Side`` is one journal (the shadow run's or the backtest's) with its rows by kind and by corr:
the bars it decided on, its entry decisions, its closed trades. ``compared_window`` is the bars
both sides decided on (from the later first bar decided with a trading permit to the earlier last
bar); ``slippages``, ``latencies_ms``, ``model_versions``, ``cumulative_pnl`` and ``percentiles``
are what the checks (``checks``, ``match``) and the report's tables and plots read.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from actors.core.timefmt import format_rfc3339
from actors.runtime.journal import JournalEntry

__all__ = [
    "END_OF_DATA",
    "NOT_TRADING",
    "Side",
    "Window",
    "compared_window",
    "cumulative_pnl",
    "latencies_ms",
    "model_versions",
    "percentiles",
    "slippages",
]


NOT_TRADING = frozenset({"no_permit", "not_ready"})
END_OF_DATA = "end_of_data"


@dataclass(frozen=True, slots=True)
class Window:
    """The compared bars: starts from ``first_ns`` to ``last_ns``, both included."""

    first_ns: int
    last_ns: int

    def __contains__(self, bar_ts: object) -> bool:
        """Whether a bar start lies in the window."""
        return isinstance(bar_ts, int) and self.first_ns <= bar_ts <= self.last_ns

    def describe(self) -> str:
        """The window in words."""
        return f"{format_rfc3339(self.first_ns)[:16]}Z .. {format_rfc3339(self.last_ns)[:16]}Z (bar starts)"


@dataclass(slots=True)
class Side:
    """One journal, indexed for the checks.

    Args:
        name: ``shadow`` or ``backtest``.
        entries: the journal's rows, in sequence order.
    """

    name: str
    entries: list[JournalEntry]
    by_kind: dict[str, list[JournalEntry]] = field(init=False)
    by_corr: dict[str, list[JournalEntry]] = field(init=False)

    def __post_init__(self) -> None:
        """Index the rows by kind and by corr."""
        self.by_kind = {}
        self.by_corr = {}
        for e in self.entries:
            self.by_kind.setdefault(e.kind, []).append(e)
            if e.corr:
                self.by_corr.setdefault(e.corr, []).append(e)

    def rows(self, kind: str) -> list[JournalEntry]:
        """The rows of ``kind``."""
        return self.by_kind.get(kind, [])

    def decided_bars(self) -> tuple[int, int] | None:
        """The first bar decided with a trading permit and the last bar decided at all (None: none).

        A backtest decides every bar it predicts (its below-threshold skips may be left out of
        its journal, so its signals count too).
        """
        intents = [e.body.get("bar_ts") for e in self.rows("risk.intent")]
        skips = self.rows("risk.skip")
        permitted = [*intents, *(e.body.get("bar_ts") for e in skips if e.body.get("reason") not in NOT_TRADING)]
        every = [*intents, *(e.body.get("bar_ts") for e in skips)]
        if self.name == "backtest":
            signals = [e.body.get("bar_ts") for e in self.rows("model.signal")]
            permitted, every = permitted + signals, every + signals
        first = [b for b in permitted if isinstance(b, int)]
        last = [b for b in every if isinstance(b, int)]
        return (min(first), max(last)) if first and last else None

    def entries_in(self, window: Window) -> dict[tuple[str, int, str], JournalEntry]:
        """The entry decisions in the window by (instrument, bar, direction)."""
        out: dict[tuple[str, int, str], JournalEntry] = {}
        for e in self.rows("risk.intent"):
            bar = e.body.get("bar_ts")
            if isinstance(bar, int) and bar in window:
                out[(str(e.body.get("instrument")), bar, str(e.body.get("direction")))] = e
        return out

    def closed_trades(self, window: Window) -> list[tuple[str, float, str]]:
        """(intent id, realized P&L, close reason) of the trades entered in the window and closed."""
        fills = {str(e.body.get("trade_id")): e for e in self.rows("exec.filled") + self.rows("exec.resolved")}
        bars = {e.body.get("intent_id"): e.body.get("bar_ts") for e in self.rows("risk.intent")}
        out = []
        for close in self.rows("exec.closed"):
            fill = fills.get(str(close.body.get("trade_id")))
            if fill is None:
                continue
            intent = fill.body.get("intent_id")
            if bars.get(intent) not in window:
                continue
            try:
                pnl = float(close.body.get("realized_pl", "nan"))
            except (TypeError, ValueError):
                continue
            if math.isfinite(pnl):
                out.append((str(intent), pnl, str(close.body.get("reason", ""))))
        return out


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99 and the mean (nearest rank); empty when there are no values."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "mean": sum(ordered) / len(ordered)}


def compared_window(shadow: Side, backtest: Side) -> Window | None:
    """The bars both sides decided on (see the module docstring); None when they do not overlap."""
    a, b = shadow.decided_bars(), backtest.decided_bars()
    if a is None or b is None:
        return None
    first, last = max(a[0], b[0]), min(a[1], b[1])
    return Window(first, last) if first <= last else None


def slippages(side: Side, window: Window | None) -> list[float]:
    """The ``slippage_pips`` of a side's fills whose signal bar lies in ``window`` (all when None)."""
    bars = {e.body.get("intent_id"): e.body.get("bar_ts") for e in side.rows("risk.intent")}
    out = []
    for e in side.rows("exec.filled"):
        slip = e.body.get("slippage_pips")
        if isinstance(slip, int | float) and (window is None or bars.get(e.body.get("intent_id")) in window):
            out.append(float(slip))
    return out


def latencies_ms(shadow: Side) -> list[float]:
    """Bar -> order latencies: ``exec.sending`` time minus its bar's ``md.bar`` time (ms)."""
    out = []
    for e in shadow.rows("exec.sending"):
        bar = next((r for r in shadow.by_corr.get(e.corr or "", []) if r.kind == "md.bar"), None)
        if bar is not None:
            out.append((e.ts_ns - bar.ts_ns) / 1e6)
    return out


def model_versions(side: Side) -> list[str]:
    """The model versions of a side's signals, most used first."""
    counts: dict[str, int] = {}
    for e in side.rows("model.signal"):
        version = str(e.body.get("model_version", ""))
        counts[version] = counts.get(version, 0) + 1
    return sorted(counts, key=lambda v: -counts[v])


def cumulative_pnl(side: Side, window: Window, *, skip: Iterable[str] = ()) -> list[tuple[int, float]]:
    """(signal bar, cumulative realized P&L) of the closed trades in the window, in bar order."""
    bars = {e.body.get("intent_id"): e.body.get("bar_ts") for e in side.rows("risk.intent")}
    left_out = set(skip)
    trades = sorted(
        (bar, pnl)
        for i, pnl, reason in side.closed_trades(window)
        if reason not in left_out and isinstance(bar := bars.get(i), int)
    )
    total, out = 0.0, []
    for bar, pnl in trades:
        total += pnl
        out.append((bar, total))
    return out
