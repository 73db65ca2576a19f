"""The go-live checklist of ``tradehost report``: pure checks over a shadow run's and a backtest's journal.

Each check returns a ``CheckLine`` with its figures: PASS or FAIL; NOT OBSERVED when the run gave
the line nothing to judge (no weekend, no disconnection, no memory samples over long enough, no
entry, no order): such a line fails unless the operator names it in ``--allow-unobserved``, so a
report never passes what it did not see; NOT JUDGED for slippage on a shadow run, whose fills are
the quote plus the configured ``execution.slippage_pips`` (the configuration, not a measurement).
The rules (``ReportLimits`` holds the thresholds):

- **Duration**: the market days (open trading days of ``actors.core.markethours``, in market time:
  a replayed run counts the window it replayed) from the shadow run's first bar decided with a
  trading permit to the end of its last decided bar. PASS at ``min_days`` or more.

- **Compared window**: the bars both sides decided on: from the later of the backtest's first bar
  and the shadow run's first bar decided with a trading permit (``risk.skip`` reasons
  ``no_permit`` and ``not_ready`` before it are the host not trading yet), to the earlier of their
  last bars (a later loss of the permit is a difference, explained as such).
- **Win rate**: closed trades whose signal bar lies in the window (``exec.filled`` joined to
  ``exec.closed`` by trade id; a win has a realized P&L above 0; the backtest's ``end_of_data``
  closes are left out: the shadow run had not closed those either). FAIL "too few trades" unless
  each side closed at least ``min_trades`` (each side's 95 % Wilson interval is printed); then PASS
  when the rates differ by at most ``max_win_rate_gap`` points.
- **No crashes**: ``role.exited`` rows (except operator restarts), ``role.failed`` and
  ``role.spawn_failed`` in the shadow journal, and crashes of the whole host: a ``host.started``
  with no ``shutdown.completed`` since the one before it (the root killed and started again).
  PASS at zero.
- **Weekends handled**: no false gap (a ``feed.bar_rejected`` ``missing`` bar while the calendar
  says the market was closed, ``actors.core.markethours``) and no order while the market was closed (an
  ``exec.sending`` whose bar closed in closed hours, or while the feed's last ``feed.market`` row
  for the instrument said closed). The figures say how many closures the run went through; NOT
  OBSERVED without a weekend closure.
- **Every disconnection recovered**: each ``broker.down`` is followed by a ``broker.up`` of the
  same source (stream, REST). PASS when none is left down at the end; NOT OBSERVED without one.
- **Memory stable**: the watchdog's samples in the journal (``watchdog.memory``: every process's
  USS, else RSS; or any row with a numeric ``rss_mb`` and a process ``name``/``role``) give a
  least-squares slope per process in MB per hour of *market* time (each sample's journal time
  mapped through the ``md.bar`` rows, which are journaled as their bars end; a journal without
  bars keeps its own times): a real-time run's market hour is an hour, a replay at 14400x packs
  each market hour's bars, ticks and trades into 0.25 s, so a leak per message weighs as it would
  live (a leak per wall second is not exercised by a replay). Samples outside the bars (start-up,
  shutdown) are left out. PASS when every slope is at most ``max_growth_mb_per_h`` over at least
  ``min_memory_span_s`` of market time. A journaled memory breach of the
  watchdog (``watchdog.check`` ``memory_*``) is a FAIL; samples over less than
  ``min_memory_span_s`` are NOT OBSERVED.
- **Trade match**: entries are ``risk.intent`` rows keyed by (instrument, bar, direction); the
  match rate is |shadow and backtest| / |shadow or backtest| over the window. PASS at
  ``min_match`` or more; the first differences are listed with both sides' journal rows.
- **Slippage**: ``exec.filled`` ``slippage_pips`` of the run (p50/p90/p99, the backtest's beside
  it). Judged only on a live run (``host.started`` ``mode``): PASS when the p99 is at most
  ``max_slippage_pips``. A shadow run's line is labelled "simulated" and NOT JUDGED.
- **Bar -> order latency**: from the ``md.bar`` row of a bar to the ``exec.sending`` row of its
  order (same corr; journal times, wall clock). PASS when there are orders and the p99 is at most
  ``max_latency_ms``.
- **Data quality**: ``feed.bar_rejected`` (a missing bar is a gap), the rejected ticks
  (``feed.tick_rejected`` ``counts``), ``model.skipped`` and the messages lost in ``bus.gap`` rows,
  per 100 bars the feed expected (``md.bar`` + ``feed.bar_rejected``): a rejected tick weighs as
  much as a rejected bar (the journal does not count the accepted ticks). PASS at
  ``max_rejected_pct`` or less.

The journals are read through ``sides`` (a ``Side`` per journal, the compared ``Window``); the trade
match and the story of its differences is ``match``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from actors.core import markethours
from actors.core.bartime import bar_end
from actors.core.timefmt import format_rfc3339
from actors.runtime.journal import JournalEntry
from supervisor.offline.report.sides import END_OF_DATA, Side, Window, latencies_ms, percentiles, slippages

__all__ = [
    "LINE_KEYS",
    "MIN_MEMORY_SPAN_S",
    "CheckLine",
    "ReportLimits",
    "check_crashes",
    "check_data_quality",
    "check_disconnections",
    "check_duration",
    "check_latency",
    "check_memory",
    "check_slippage",
    "check_weekends",
    "check_win_rate",
    "market_days",
    "run_mode",
    "wilson_interval",
]


MIN_MEMORY_SPAN_S = 600.0
_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS
# The short names of the lines (``--allow-unobserved LINE``, ``report.json``), in report order.
LINE_KEYS = (
    "duration",
    "win_rate",
    "crashes",
    "weekends",
    "disconnections",
    "memory",
    "match",
    "slippage",
    "latency",
    "data_quality",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportLimits:
    """The thresholds of the checklist (``tradehost report`` flags)."""

    min_match: float = 0.95
    max_win_rate_gap: float = 5.0
    max_slippage_pips: float = 2.0
    max_latency_ms: float = 1000.0
    max_growth_mb_per_h: float = 50.0
    min_days: float = 14.0
    min_trades: int = 30
    max_rejected_pct: float = 1.0
    min_memory_span_s: float = MIN_MEMORY_SPAN_S
    allow_unobserved: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        """Refuse thresholds that make a line pass or fail whatever the run did.

        Raises:
            ValueError: naming the flag.
        """
        if not 0.0 < self.min_match <= 1.0:
            raise ValueError(f"--min-match: {self.min_match!r} must be above 0 and at most 1")
        if not (math.isfinite(self.min_days) and self.min_days > 0.0):
            raise ValueError(f"--min-days: {self.min_days!r} must be a finite number of market days above 0")
        if self.min_trades < 1:
            raise ValueError(f"--min-trades: {self.min_trades!r} must be 1 or more")
        if not (math.isfinite(self.max_rejected_pct) and 0.0 <= self.max_rejected_pct < 100.0):
            raise ValueError(f"--max-rejected-pct: {self.max_rejected_pct!r} must be 0 or more and below 100")
        if not (math.isfinite(self.min_memory_span_s) and self.min_memory_span_s > 0.0):
            raise ValueError(f"--min-memory-span-s: {self.min_memory_span_s!r} must be a finite number above 0")
        unknown = sorted(set(self.allow_unobserved) - set(LINE_KEYS))
        if unknown:
            raise ValueError(f"--allow-unobserved: {', '.join(unknown)}: not a line (one of {', '.join(LINE_KEYS)})")
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
        passed: whether the line lets the report pass (a NOT OBSERVED line only when allowed).
        figures: the numbers behind the verdict, in words.
        details: more lines for report.md (differences, per-process slopes ...).
        key: the line's short name (``LINE_KEYS``).
        observed: False when the run gave the line nothing to judge.
        judged: False when the line only informs (slippage of simulated fills).
    """

    name: str
    passed: bool
    figures: str
    details: tuple[str, ...] = ()
    key: str = ""
    observed: bool = True
    judged: bool = True

    @property
    def verdict(self) -> str:
        """``PASS``, ``FAIL``, ``NOT OBSERVED`` (``(allowed)`` when the operator allowed it) or ``NOT JUDGED``."""
        if not self.judged:
            return "NOT JUDGED"
        if not self.observed:
            return "NOT OBSERVED (allowed)" if self.passed else "NOT OBSERVED"
        return "PASS" if self.passed else "FAIL"


def _unobserved(key: str, name: str, figures: str, details: tuple[str, ...] = ()) -> CheckLine:
    # Fails until the report applies the operator's --allow-unobserved.
    return CheckLine(key=key, name=name, passed=False, figures=figures, details=details, observed=False)


def market_days(first_ns: int, end_ns: int) -> float:
    """Open market time in [first_ns, end_ns), in trading days of 24 hours (weekends and the
    expected holidays of ``actors.core.markethours`` count nothing)."""
    total, t = 0, first_ns
    while t < end_ns:
        day_end = markethours.next_rollover(t)
        if markethours.is_open(t):
            total += min(day_end, end_ns) - t
        t = day_end
    return total / _DAY_NS


def run_mode(shadow: Side) -> str:
    """``live`` when a ``host.started`` row of the run says so, else ``shadow``."""
    modes = {str(e.body.get("mode")) for e in shadow.rows("host.started")}
    return "live" if "live" in modes else "shadow"


def check_duration(shadow: Side, window: Window | None, granularity: str, limits: ReportLimits) -> CheckLine:
    """At least ``min_days`` market days decided (market time, so a replay counts its window)."""
    name = f"duration at least {limits.min_days:g} market days"
    bars = shadow.decided_bars()
    if bars is None:
        return CheckLine(key="duration", name=name, passed=False, figures="0 market days: no bar decided with a permit")
    first, last = bars
    end = bar_end(last, granularity)
    days = market_days(first, end)
    figures = f"{days:.1f} market days decided ({format_rfc3339(first)[:16]}Z .. {format_rfc3339(end)[:16]}Z)"
    if window is not None:
        figures += f", {market_days(window.first_ns, bar_end(window.last_ns, granularity)):.1f} compared"
    passed = days >= limits.min_days
    if not passed:
        figures += (
            f": fewer than --min-days {limits.min_days:g}; a shorter shadow run has not met enough of the market "
            "(weekends, news, reconnections, a slow leak) to go live on"
        )
    return CheckLine(key="duration", name=name, passed=passed, figures=figures)


def wilson_interval(wins: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default); (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = wins / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate_figures(label: str, trades: list[tuple[str, float, str]]) -> str:
    wins = sum(1 for _, pnl, _ in trades if pnl > 0)
    if not trades:
        return f"{label} no closed trade (95% interval 0-100%)"
    low, high = wilson_interval(wins, len(trades))
    return f"{label} {wins / len(trades):.1%} of {len(trades)} trades (95% interval {low:.1%}-{high:.1%})"


def check_win_rate(shadow: Side, backtest: Side, window: Window, limits: ReportLimits) -> CheckLine:
    """Win rate within ``max_win_rate_gap`` points of the backtest's over the window, on at least
    ``min_trades`` closed trades a side."""
    s = shadow.closed_trades(window)
    b = [t for t in backtest.closed_trades(window) if t[2] != END_OF_DATA]
    name = f"win rate within {limits.max_win_rate_gap:g} points of the backtest's"
    figures = f"{_rate_figures('shadow', s)}, {_rate_figures('backtest', b)}"
    if min(len(s), len(b)) < limits.min_trades:
        return CheckLine(
            key="win_rate",
            name=name,
            passed=False,
            figures=f"too few trades (--min-trades {limits.min_trades} a side): {figures}",
        )
    ws = sum(1 for _, pnl, _ in s if pnl > 0) / len(s)
    wb = sum(1 for _, pnl, _ in b if pnl > 0) / len(b)
    gap = abs(ws - wb) * 100
    return CheckLine(
        key="win_rate", name=name, passed=gap <= limits.max_win_rate_gap, figures=f"{figures}: gap {gap:.1f} points"
    )


def check_crashes(shadow: Side) -> CheckLine:
    """No role crashed (restarts from the journal)."""
    crashes = [e for e in shadow.rows("role.exited") if e.body.get("cause") != "restarted by operator"]
    failed = shadow.rows("role.failed") + shadow.rows("role.spawn_failed")
    restarts = len(shadow.rows("role.restarted"))
    host_crashes = _host_crashes(shadow)
    details = tuple(
        f"{format_rfc3339(e.ts_ns)[:19]}Z {e.kind}: {e.body.get('role')} {e.body.get('cause', e.body.get('why', ''))}"
        for e in [*crashes, *failed]
    ) + tuple(
        f"{format_rfc3339(e.ts_ns)[:19]}Z host.started (pid {e.body.get('pid')}) with no shutdown.completed "
        "since the start before it: the host died"
        for e in host_crashes
    )
    figures = (
        f"{len(crashes)} role exits, {restarts} restarts, {len(failed)} roles given up, "
        f"{len(host_crashes)} host crashes"
    )
    if crashes:
        roles = sorted({str(e.body.get("role")) for e in crashes})
        figures += f" ({', '.join(roles)})"
    if host_crashes:
        figures += " (a host.started without a shutdown.completed before it)"
    passed = not crashes and not failed and not host_crashes
    return CheckLine(key="crashes", name="no crashes", passed=passed, figures=figures, details=details)


def _host_crashes(shadow: Side) -> list[JournalEntry]:
    # Each start of the host after one that never completed its shutdown: the root was killed.
    out, running = [], False
    for e in shadow.entries:
        if e.kind == "host.started":
            if running:
                out.append(e)
            running = True
        elif e.kind == "shutdown.completed":
            running = False
    return out


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
    passed = not false_gaps and not closed_orders
    if passed and not weekends:
        return _unobserved("weekends", "weekends handled", f"{figures}: the run went through no weekend", details)
    return CheckLine(key="weekends", name="weekends handled", passed=passed, figures=figures, details=details)


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
    name = "every disconnection recovered"
    if count == 0:
        return _unobserved("disconnections", name, f"{figures}: the run saw no disconnection to recover from")
    return CheckLine(key="disconnections", name=name, passed=not down, figures=figures)


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


def _market_clock(shadow: Side, granularity: str) -> Callable[[int], float | None] | None:
    """Journal (wall) time -> market seconds, from the ``md.bar`` rows (each journaled when its bar
    ended): linear between two bars, None outside the first and last; None without two bars."""
    points: list[tuple[int, int]] = []
    seen: set[int] = set()
    for e in shadow.rows("md.bar"):
        bar = e.body.get("bar_ts")
        if isinstance(bar, int) and bar not in seen:
            seen.add(bar)
            market = bar_end(bar, granularity)
            if not points or (e.ts_ns >= points[-1][0] and market > points[-1][1]):
                points.append((e.ts_ns, market))
    if len(points) < 2:
        return None
    walls = [w for w, _ in points]

    def at(wall_ns: int) -> float | None:
        if not walls[0] <= wall_ns <= walls[-1]:
            return None
        i = max(1, bisect.bisect_left(walls, wall_ns))
        (w0, m0), (w1, m1) = points[i - 1], points[i]
        share = (wall_ns - w0) / (w1 - w0) if w1 > w0 else 1.0
        return (m0 + share * (m1 - m0)) / _NS

    return at


def check_memory(shadow: Side, limits: ReportLimits, granularity: str = "M15") -> CheckLine:
    """Memory slope per process from the journal's samples, per hour of market time (see the module
    docstring)."""
    name = f"memory stable (growth at most {limits.max_growth_mb_per_h:g} MB/h of market time)"
    breaches = [
        e
        for e in shadow.rows("watchdog.check")
        if str(e.body.get("check", "")).startswith("memory") and e.body.get("verdict") == "breach"
    ]
    clock = _market_clock(shadow, granularity)
    samples: dict[str, list[tuple[float, float]]] = {}
    for e in shadow.entries:
        listed = e.body.get("processes") if e.kind == "watchdog.memory" else None
        for body in listed if isinstance(listed, list) else [e.body]:
            if not isinstance(body, Mapping):
                continue
            # Private memory (USS) where the watchdog sampled it: forked roles share pages, so RSS
            # moves with what their siblings touch.
            mb, process = body.get("uss_mb", body.get("rss_mb")), _process(body)
            when = e.ts_ns / _NS if clock is None else clock(e.ts_ns)
            if (
                when is not None
                and process is not None
                and isinstance(mb, int | float)
                and not isinstance(mb, bool)
                and math.isfinite(mb)
            ):
                samples.setdefault(process, []).append((when, float(mb)))
    details = tuple(f"watchdog breach: {e.body.get('check')} {e.body.get('detail', '')}" for e in breaches)
    if breaches:
        return CheckLine(
            key="memory", name=name, passed=False, figures=f"{len(breaches)} memory breaches journaled", details=details
        )
    if not samples:
        return _unobserved("memory", name, "the journal holds no memory samples (watchdog.memory) while bars came")
    slopes = {p: _slope_mb_per_h(pts) for p, pts in sorted(samples.items()) if len(pts) >= 2}
    span = max((pts[-1][0] - pts[0][0] for pts in samples.values()), default=0.0)
    details = tuple(f"{p}: {s:+.2f} MB/h over {len(samples[p])} samples" for p, s in slopes.items())
    if not slopes or span < limits.min_memory_span_s:
        return _unobserved(
            "memory",
            name,
            f"samples span {span:.0f} s of market time (< --min-memory-span-s {limits.min_memory_span_s:g} s)",
            details,
        )
    worst = max(slopes, key=lambda p: slopes[p])
    figures = (
        f"largest slope {slopes[worst]:+.2f} MB/h ({worst}) over {span / 3600:.1f} market hours, "
        f"{len(slopes)} processes"
    )
    return CheckLine(
        key="memory", name=name, passed=slopes[worst] <= limits.max_growth_mb_per_h, figures=figures, details=details
    )


def check_slippage(shadow: Side, backtest: Side, window: Window | None, limits: ReportLimits) -> CheckLine:
    """Slippage of the run's fills against the decision price (pips), the backtest's beside it;
    judged only on a live run (a shadow fill is the quote plus the configured slippage)."""
    mode = run_mode(shadow)
    s, b = slippages(shadow, window), slippages(backtest, window)
    ps, pb = percentiles(s), percentiles(b)
    figures = (
        f"{mode} p50 {ps['p50']:.2f} / p90 {ps['p90']:.2f} / p99 {ps['p99']:.2f} pips ({len(s)} fills)" if s else ""
    )
    if pb:
        figures += f"{'; ' if figures else ''}backtest p50 {pb['p50']:.2f} / p99 {pb['p99']:.2f} ({len(b)} fills)"
    if mode != "live":
        return CheckLine(
            key="slippage",
            name="slippage (simulated: judged only on live runs)",
            passed=True,
            judged=False,
            figures="shadow fills are the quote plus execution.slippage_pips, the configuration: "
            + (figures or "no fills"),
        )
    name = f"slippage p99 at most {limits.max_slippage_pips:g} pips"
    if not s:
        return _unobserved("slippage", name, "no live fills")
    return CheckLine(key="slippage", name=name, passed=ps["p99"] <= limits.max_slippage_pips, figures=figures)


def check_latency(shadow: Side, limits: ReportLimits) -> CheckLine:
    """Bar -> order latency distribution of the shadow run."""
    values = latencies_ms(shadow)
    name = f"bar -> order latency p99 at most {limits.max_latency_ms:g} ms"
    if not values:
        return _unobserved("latency", name, "no order with its bar in the journal")
    p = percentiles(values)
    figures = f"p50 {p['p50']:.1f} / p90 {p['p90']:.1f} / p99 {p['p99']:.1f} ms ({len(values)} orders)"
    return CheckLine(key="latency", name=name, passed=p["p99"] <= limits.max_latency_ms, figures=figures)


def _tick_rejections(shadow: Side) -> int:
    # The rows' counts add up to every rejected tick (``actors.core.ticks``: rate-limited rows).
    total = 0
    for e in shadow.rows("feed.tick_rejected"):
        counts = e.body.get("counts")
        if isinstance(counts, Mapping):
            total += sum(v for v in counts.values() if isinstance(v, int) and not isinstance(v, bool))
        else:
            total += 1
    return total


def check_data_quality(shadow: Side, limits: ReportLimits) -> CheckLine:
    """Rejected or lost inputs per 100 bars the feed expected (see the module docstring)."""
    name = f"data quality: at most {limits.max_rejected_pct:g}% rejected"
    published = len(shadow.rows("md.bar"))
    rejected_rows = shadow.rows("feed.bar_rejected")
    missing = sum(1 for e in rejected_rows if e.body.get("reason") == "missing")
    rejected = len(rejected_rows) - missing
    ticks = _tick_rejections(shadow)
    skipped = len(shadow.rows("model.skipped"))
    lost = 0
    for e in shadow.rows("bus.gap"):
        expected, got = e.body.get("expected"), e.body.get("got")
        lost += max(1, got - expected) if isinstance(expected, int) and isinstance(got, int) else 1
    expected_bars = published + len(rejected_rows)
    if expected_bars == 0:
        return _unobserved("data_quality", name, "no bar published or rejected")
    bad = rejected + missing + ticks + skipped + lost
    pct = 100.0 * bad / expected_bars
    figures = (
        f"{pct:.2f}% ({bad} per {expected_bars} bars expected): {rejected} bars rejected, {missing} missing (gaps), "
        f"{ticks} ticks rejected, {skipped} model skips, {lost} bus messages lost"
    )
    return CheckLine(key="data_quality", name=name, passed=pct <= limits.max_rejected_pct, figures=figures)
