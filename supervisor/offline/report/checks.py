"""The go-live checklist of ``tradehost report``: pure checks over a shadow run's and a backtest's journal.

Each check returns a ``CheckLine``: PASS or FAIL with its figures. The rules (``ReportLimits``
holds the thresholds):

- **Compared window**: the bars both sides decided on: from the later of the backtest's first bar
  and the shadow run's first bar decided with a trading permit (``risk.skip`` reasons
  ``no_permit`` and ``not_ready`` before it are the host not trading yet), to the earlier of their
  last bars (a later loss of the permit is a difference, explained as such).
- **Win rate**: closed trades whose signal bar lies in the window (``exec.filled`` joined to
  ``exec.closed`` by trade id; a win has a realized P&L above 0; the backtest's ``end_of_data``
  closes are left out: the shadow run had not closed those either). PASS when both sides closed
  trades and the rates differ by at most ``max_win_rate_gap`` points.
- **No crashes**: ``role.exited`` rows (except operator restarts), ``role.failed`` and
  ``role.spawn_failed`` in the shadow journal. PASS at zero.
- **Weekends handled**: no false gap (a ``feed.bar_rejected`` ``missing`` bar while the calendar
  says the market was closed, ``actors.core.markethours``) and no order while the market was closed (an
  ``exec.sending`` whose bar closed in closed hours, or while the feed's last ``feed.market`` row
  for the instrument said closed). The figures say how many closures the run went through.
- **Every disconnection recovered**: each ``broker.down`` is followed by a ``broker.up`` of the
  same source (stream, REST). PASS when none is left down at the end.
- **Memory stable**: the watchdog's samples in the journal (``watchdog.memory``: every process's
  USS, else RSS; or any row with a numeric ``rss_mb`` and a process ``name``/``role``) give a
  least-squares slope per process; PASS when every slope is at most
  ``max_growth_mb_per_h`` over at least ``MIN_MEMORY_SPAN_S``. A journaled memory breach of the
  watchdog (``watchdog.check`` ``memory_*``) is a FAIL; no samples at all is FAIL "unknown".
- **Trade match**: entries are ``risk.intent`` rows keyed by (instrument, bar, direction); the
  match rate is |shadow and backtest| / |shadow or backtest| over the window. PASS at
  ``min_match`` or more; the first differences are listed with both sides' journal rows.
- **Slippage**: ``exec.filled`` ``slippage_pips`` of the shadow run (p50/p90/p99, the backtest's
  beside it). PASS when there are fills and the p99 is at most ``max_slippage_pips``.
- **Bar -> order latency**: from the ``md.bar`` row of a bar to the ``exec.sending`` row of its
  order (same corr; journal times, wall clock). PASS when there are orders and the p99 is at most
  ``max_latency_ms``.

The journals are read through ``sides`` (a ``Side`` per journal, the compared ``Window``); the trade
match and the story of its differences is ``match``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors.core import markethours
from actors.core.bartime import bar_end
from actors.core.timefmt import format_rfc3339
from actors.runtime.journal import JournalEntry
from supervisor.offline.report.sides import END_OF_DATA, Side, Window, latencies_ms, percentiles, slippages

__all__ = [
    "MIN_MEMORY_SPAN_S",
    "CheckLine",
    "ReportLimits",
    "check_crashes",
    "check_disconnections",
    "check_latency",
    "check_memory",
    "check_slippage",
    "check_weekends",
    "check_win_rate",
]


MIN_MEMORY_SPAN_S = 600.0
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportLimits:
    """The thresholds of the checklist (``tradehost report`` flags)."""

    min_match: float = 0.95
    max_win_rate_gap: float = 5.0
    max_slippage_pips: float = 2.0
    max_latency_ms: float = 1000.0
    max_growth_mb_per_h: float = 50.0

    def __post_init__(self) -> None:
        """Refuse thresholds that make a line pass or fail whatever the run did.

        Raises:
            ValueError: naming the flag.
        """
        if not 0.0 < self.min_match <= 1.0:
            raise ValueError(f"--min-match: {self.min_match!r} must be above 0 and at most 1")
        for flag, value in (
            ("--max-win-rate-gap", self.max_win_rate_gap),
            ("--max-slippage-pips", self.max_slippage_pips),
            ("--max-latency-ms", self.max_latency_ms),
            ("--max-growth-mb-per-h", self.max_growth_mb_per_h),
        ):
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{flag}: {value!r} must be a finite number, 0 or more")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckLine:
    """One line of the checklist.

    Attributes:
        name: what is checked.
        passed: PASS or FAIL.
        figures: the numbers behind the verdict, in words.
        details: more lines for report.md (differences, per-process slopes ...).
    """

    name: str
    passed: bool
    figures: str
    details: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        """``PASS`` or ``FAIL``."""
        return "PASS" if self.passed else "FAIL"


def _win_rate(trades: list[tuple[str, float, str]]) -> float | None:
    return sum(1 for _, pnl, _ in trades if pnl > 0) / len(trades) if trades else None


def check_win_rate(shadow: Side, backtest: Side, window: Window, limits: ReportLimits) -> CheckLine:
    """Win rate within ``max_win_rate_gap`` points of the backtest's over the window."""
    s = shadow.closed_trades(window)
    b = [t for t in backtest.closed_trades(window) if t[2] != END_OF_DATA]
    ws, wb = _win_rate(s), _win_rate(b)
    name = f"win rate within {limits.max_win_rate_gap:g} points of the backtest's"
    if ws is None or wb is None:
        return CheckLine(name=name, passed=False, figures=f"unknown: closed trades shadow {len(s)}, backtest {len(b)}")
    gap = abs(ws - wb) * 100
    figures = f"shadow {ws:.1%} ({len(s)} trades), backtest {wb:.1%} ({len(b)} trades): gap {gap:.1f} points"
    return CheckLine(name=name, passed=gap <= limits.max_win_rate_gap, figures=figures)


def check_crashes(shadow: Side) -> CheckLine:
    """No role crashed (restarts from the journal)."""
    crashes = [e for e in shadow.rows("role.exited") if e.body.get("cause") != "restarted by operator"]
    failed = shadow.rows("role.failed") + shadow.rows("role.spawn_failed")
    restarts = len(shadow.rows("role.restarted"))
    details = tuple(
        f"{format_rfc3339(e.ts_ns)[:19]}Z {e.kind}: {e.body.get('role')} {e.body.get('cause', e.body.get('why', ''))}"
        for e in [*crashes, *failed]
    )
    figures = f"{len(crashes)} role exits, {restarts} restarts, {len(failed)} roles given up"
    if crashes:
        roles = sorted({str(e.body.get("role")) for e in crashes})
        figures += f" ({', '.join(roles)})"
    return CheckLine(name="no crashes", passed=not crashes and not failed, figures=figures, details=details)


def _bar_of(entry: JournalEntry) -> int | None:
    bar = entry.body.get("bar_ts")
    if isinstance(bar, int):
        return bar
    if entry.corr and entry.corr.startswith("bar-"):
        tail = entry.corr.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else None
    return None


def check_weekends(shadow: Side, granularity: str) -> CheckLine:
    """No false gap and no order while the market was closed."""
    closures = [e for e in shadow.rows("feed.market") if e.body.get("open") is False]
    weekends = {e.body.get("since_ns") for e in closures if e.body.get("why") == "weekend"}
    false_gaps = [
        e
        for e in shadow.rows("feed.bar_rejected")
        if e.body.get("reason") == "missing"
        and isinstance(_bar_of(e), int)
        and not markethours.is_open(_bar_of(e) or 0)
    ]
    market_open: dict[str, bool] = {}
    closed_orders = []
    for e in shadow.entries:
        if e.kind == "feed.market":
            market_open[str(e.body.get("instrument"))] = bool(e.body.get("open"))
        elif e.kind == "exec.sending":
            bar = _bar_of(e)
            when_closed = bar is not None and not markethours.is_open(bar_end(bar, granularity) - 1)
            if when_closed or market_open.get(str(e.body.get("instrument"))) is False:
                closed_orders.append(e)
    details = tuple(f"false gap: {e.body.get('instrument')} bar {_bar_of(e)}" for e in false_gaps) + tuple(
        f"order while closed: {e.body.get('intent_id')}" for e in closed_orders
    )
    figures = (
        f"{len(weekends)} weekend closures, {len(closures)} market closures journaled; "
        f"{len(false_gaps)} false gaps, {len(closed_orders)} orders while closed"
    )
    return CheckLine(
        name="weekends handled", passed=not false_gaps and not closed_orders, figures=figures, details=details
    )


def check_disconnections(shadow: Side) -> CheckLine:
    """Every ``broker.down`` followed by a ``broker.up`` of the same source."""
    down: dict[str, JournalEntry] = {}
    outages: list[float] = []
    count = 0
    for e in shadow.entries:
        source = str(e.body.get("source"))
        if e.kind == "broker.down" and source not in down:
            down[source] = e
            count += 1
        elif e.kind == "broker.up" and source in down:
            outages.append((e.ts_ns - down.pop(source).ts_ns) / _NS)
    figures = f"{count} disconnections, {len(outages)} recovered"
    if outages:
        figures += f" (longest {max(outages):.1f} s)"
    if down:
        figures += f"; still down at the end: {', '.join(sorted(down))}"
    return CheckLine(name="every disconnection recovered", passed=not down, figures=figures)


def _process(body: Mapping[str, Any]) -> str | None:
    for key in ("name", "role", "process"):
        value = body.get(key)
        if isinstance(value, str):
            return value
    return None


def _slope_mb_per_h(points: list[tuple[float, float]]) -> float:
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600.0 if var > 0 else 0.0


def check_memory(shadow: Side, limits: ReportLimits) -> CheckLine:
    """RSS slope per process from the journal's samples (see the module docstring)."""
    name = f"memory stable (growth at most {limits.max_growth_mb_per_h:g} MB/h)"
    breaches = [
        e
        for e in shadow.rows("watchdog.check")
        if str(e.body.get("check", "")).startswith("memory") and e.body.get("verdict") == "breach"
    ]
    samples: dict[str, list[tuple[float, float]]] = {}
    for e in shadow.entries:
        listed = e.body.get("processes") if e.kind == "watchdog.memory" else None
        for body in listed if isinstance(listed, list) else [e.body]:
            if not isinstance(body, Mapping):
                continue
            # Private memory (USS) where the watchdog sampled it: forked roles share pages, so RSS
            # moves with what their siblings touch.
            mb, process = body.get("uss_mb", body.get("rss_mb")), _process(body)
            if process is not None and isinstance(mb, int | float) and not isinstance(mb, bool) and math.isfinite(mb):
                samples.setdefault(process, []).append((e.ts_ns / _NS, float(mb)))
    details = tuple(f"watchdog breach: {e.body.get('check')} {e.body.get('detail', '')}" for e in breaches)
    if breaches:
        return CheckLine(name=name, passed=False, figures=f"{len(breaches)} memory breaches journaled", details=details)
    if not samples:
        return CheckLine(
            name=name,
            passed=False,
            figures="unknown: the journal holds no memory samples (watchdog.memory)",
        )
    slopes = {p: _slope_mb_per_h(pts) for p, pts in sorted(samples.items()) if len(pts) >= 2}
    span = max((pts[-1][0] - pts[0][0] for pts in samples.values()), default=0.0)
    details = tuple(f"{p}: {s:+.1f} MB/h over {len(samples[p])} samples" for p, s in slopes.items())
    if not slopes or span < MIN_MEMORY_SPAN_S:
        return CheckLine(
            name=name,
            passed=False,
            figures=f"unknown: samples span {span:.0f} s (< {MIN_MEMORY_SPAN_S:.0f} s)",
            details=details,
        )
    worst = max(slopes, key=lambda p: slopes[p])
    figures = f"largest slope {slopes[worst]:+.1f} MB/h ({worst}) over {span / 60:.0f} min, {len(slopes)} processes"
    return CheckLine(name=name, passed=slopes[worst] <= limits.max_growth_mb_per_h, figures=figures, details=details)


def check_slippage(shadow: Side, backtest: Side, window: Window | None, limits: ReportLimits) -> CheckLine:
    """Slippage of the shadow fills against the decision price (pips), the backtest's beside it."""
    s, b = slippages(shadow, window), slippages(backtest, window)
    name = f"slippage p99 at most {limits.max_slippage_pips:g} pips"
    if not s:
        return CheckLine(name=name, passed=False, figures="unknown: no shadow fills")
    ps, pb = percentiles(s), percentiles(b)
    figures = f"shadow p50 {ps['p50']:.2f} / p90 {ps['p90']:.2f} / p99 {ps['p99']:.2f} pips ({len(s)} fills)"
    if pb:
        figures += f"; backtest p50 {pb['p50']:.2f} / p99 {pb['p99']:.2f} ({len(b)} fills)"
    return CheckLine(name=name, passed=ps["p99"] <= limits.max_slippage_pips, figures=figures)


def check_latency(shadow: Side, limits: ReportLimits) -> CheckLine:
    """Bar -> order latency distribution of the shadow run."""
    values = latencies_ms(shadow)
    name = f"bar -> order latency p99 at most {limits.max_latency_ms:g} ms"
    if not values:
        return CheckLine(name=name, passed=False, figures="unknown: no order with its bar in the journal")
    p = percentiles(values)
    figures = f"p50 {p['p50']:.1f} / p90 {p['p90']:.1f} / p99 {p['p99']:.1f} ms ({len(values)} orders)"
    return CheckLine(name=name, passed=p["p99"] <= limits.max_latency_ms, figures=figures)
