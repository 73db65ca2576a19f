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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.core import markethours
from actors.core.bartime import bar_end
from actors.core.domain import bar_id
from actors.core.timefmt import format_rfc3339
from actors.runtime.journal import JournalEntry

__all__ = [
    "MIN_MEMORY_SPAN_S",
    "CheckLine",
    "Difference",
    "ReportLimits",
    "Side",
    "Window",
    "check_crashes",
    "check_disconnections",
    "check_latency",
    "check_match",
    "check_memory",
    "check_slippage",
    "check_weekends",
    "check_win_rate",
    "compared_window",
    "cumulative_pnl",
    "latencies_ms",
    "model_versions",
    "percentiles",
    "slippages",
]

NOT_TRADING = frozenset({"no_permit", "not_ready"})
END_OF_DATA = "end_of_data"
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    """An entry one side took and the other did not (or took the other way)."""

    instrument: str
    bar_ts: int
    shadow: str
    backtest: str
    why: str


def _fmt_p(entry: JournalEntry | None) -> str:
    if entry is None:
        return ""
    p = entry.body.get("p_up")
    return f" (p_up {p:.4f})" if isinstance(p, float) else ""


def _what(side: Side, instrument: str, bar_ts: int, granularity: str) -> tuple[str, JournalEntry | None, str]:
    # What a side journaled about one bar of one instrument: a short text, its signal, a reason code.
    rows = side.by_corr.get(bar_id(instrument, granularity, bar_ts), [])
    signal = next((e for e in rows if e.kind == "model.signal"), None)
    for e in rows:
        if e.kind == "risk.intent":
            return f"entered {e.body.get('direction')}{_fmt_p(e)}", signal, "intent"
    for e in rows:
        if e.kind == "risk.skip":
            detail = f": {e.body['detail']}" if e.body.get("detail") else ""
            return f"skipped: {e.body.get('reason')}{detail}{_fmt_p(e)}", signal, str(e.body.get("reason"))
    for e in rows:
        if e.kind in ("feed.bar_rejected", "model.skipped"):
            return f"{e.kind}: {e.body.get('reason')}", signal, e.kind
    if signal is not None:
        return f"no decision journaled: below the threshold{_fmt_p(signal)}", signal, "below_threshold"
    return "no bar or signal journaled", None, "no_bar"


def _position_story(side: Side, instrument: str, bar_ts: int, granularity: str) -> str:
    # The side's latest entry on the instrument before the bar, and whether it had closed by the
    # time this bar was decided (journal order: each side writes in the order things happened).
    earlier = [e for e in side.rows("risk.intent") if e.body.get("instrument") == instrument]
    earlier = [e for e in earlier if isinstance(e.body.get("bar_ts"), int) and e.body["bar_ts"] < bar_ts]
    if not earlier:
        return f"{side.name} had no earlier {instrument} entry"
    last = max(earlier, key=lambda e: e.body["bar_ts"])
    opened = format_rfc3339(last.body["bar_ts"])[11:16]
    fill = next((f for f in side.rows("exec.filled") if f.body.get("intent_id") == last.body.get("intent_id")), None)
    if fill is None:
        return f"{side.name}'s {instrument} entry of the {opened} bar was not filled"
    close = next((c for c in side.rows("exec.closed") if c.body.get("trade_id") == fill.body.get("trade_id")), None)
    decision = next(
        (e for e in side.by_corr.get(bar_id(instrument, granularity, bar_ts), []) if e.kind.startswith("risk.")), None
    )
    if close is None:
        return f"{side.name}'s {instrument} entry of the {opened} bar was still open"
    when = "before" if decision is None or close.seq < decision.seq else "after"
    return (
        f"{side.name}'s {instrument} entry of the {opened} bar closed {when} this decision ({close.body.get('reason')})"
    )


def _no_trade_story(side: Side, instrument: str, bar_ts: int) -> str:
    # The state and reasons in force when the side skipped for want of a permit.
    skip = next(
        (
            e
            for e in side.rows("risk.skip")
            if e.body.get("instrument") == instrument and e.body.get("bar_ts") == bar_ts
        ),
        None,
    )
    if skip is None:
        return ""
    changes = [e for e in side.rows("state.changed") if e.seq < skip.seq]
    if not changes:
        return ""
    last = changes[-1].body
    reasons = ", ".join(str(r) for r in last.get("reasons", ())) or "none"
    realized = sum(_pl(e) for e in side.rows("exec.closed") if e.seq < skip.seq)
    return f": state {last.get('to')}, reasons {reasons}; realized P&L {realized:+.2f} by then"


def _pl(entry: JournalEntry) -> float:
    try:
        value = float(entry.body.get("realized_pl", 0.0))
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) else 0.0


def _explain(shadow: Side, backtest: Side, instrument: str, bar_ts: int, granularity: str) -> Difference:
    s_text, s_signal, s_code = _what(shadow, instrument, bar_ts, granularity)
    b_text, b_signal, b_code = _what(backtest, instrument, bar_ts, granularity)
    why = []
    ps, pb = (s_signal.body.get("p_up") if s_signal else None), (b_signal.body.get("p_up") if b_signal else None)
    if isinstance(ps, float) and isinstance(pb, float) and abs(ps - pb) > 1e-9:
        why.append(f"the model's inputs differed (p_up {ps:.6f} vs {pb:.6f})")
    for code, side in ((s_code, shadow), (b_code, backtest)):
        if code in ("position_open", "max_open_positions"):
            why.append(
                f"the books differed: {_position_story(shadow, instrument, bar_ts, granularity)}; "
                f"{_position_story(backtest, instrument, bar_ts, granularity)}"
            )
        elif code in NOT_TRADING:
            why.append(f"the {side.name} host was not trading ({code}{_no_trade_story(side, instrument, bar_ts)})")
        elif code in ("feed.bar_rejected", "no_bar", "model.skipped"):
            why.append(f"the {side.name} side had no usable bar")
        elif code in ("cooldown", "rollover", "weekly_close", "daily_loss_limit", "drawdown_stop"):
            why.append(f"{side.name}: {code} (a time or account boundary: decision time or NAV differ)")
    return Difference(
        instrument=instrument,
        bar_ts=bar_ts,
        shadow=s_text,
        backtest=b_text,
        why="; ".join(dict.fromkeys(why)) or "see both sides' rows",
    )


def check_match(
    shadow: Side, backtest: Side, window: Window, limits: ReportLimits, granularity: str, *, show: int = 10
) -> tuple[CheckLine, list[Difference]]:
    """Trade-by-trade match over the window; the first ``show`` differences explained."""
    s, b = shadow.entries_in(window), backtest.entries_in(window)
    both = set(s) & set(b)
    union = set(s) | set(b)
    name = f"trade-by-trade match at least {limits.min_match:.0%} (instrument, bar, direction)"
    if not union:
        return CheckLine(name=name, passed=False, figures="unknown: no entries on either side in the window"), []
    rate = len(both) / len(union)
    keys = sorted({(k[0], k[1]) for k in union - both}, key=lambda k: (k[1], k[0]))
    differences = [_explain(shadow, backtest, inst, bar, granularity) for inst, bar in keys]
    figures = (
        f"{rate:.1%}: {len(both)} matched, {len(set(s) - both)} shadow only, {len(set(b) - both)} backtest only "
        f"({len(s)} shadow entries, {len(b)} backtest entries)"
    )
    details = tuple(
        f"{d.instrument} {format_rfc3339(d.bar_ts)[:16]}Z: shadow {d.shadow}; backtest {d.backtest} -- {d.why}"
        for d in differences[:show]
    )
    return CheckLine(name=name, passed=rate >= limits.min_match, figures=figures, details=details), differences


def slippages(side: Side, window: Window | None) -> list[float]:
    """The ``slippage_pips`` of a side's fills whose signal bar lies in ``window`` (all when None)."""
    bars = {e.body.get("intent_id"): e.body.get("bar_ts") for e in side.rows("risk.intent")}
    out = []
    for e in side.rows("exec.filled"):
        slip = e.body.get("slippage_pips")
        if isinstance(slip, int | float) and (window is None or bars.get(e.body.get("intent_id")) in window):
            out.append(float(slip))
    return out


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


def latencies_ms(shadow: Side) -> list[float]:
    """Bar -> order latencies: ``exec.sending`` time minus its bar's ``md.bar`` time (ms)."""
    out = []
    for e in shadow.rows("exec.sending"):
        bar = next((r for r in shadow.by_corr.get(e.corr or "", []) if r.kind == "md.bar"), None)
        if bar is not None:
            out.append((e.ts_ns - bar.ts_ns) / 1e6)
    return out


def check_latency(shadow: Side, limits: ReportLimits) -> CheckLine:
    """Bar -> order latency distribution of the shadow run."""
    values = latencies_ms(shadow)
    name = f"bar -> order latency p99 at most {limits.max_latency_ms:g} ms"
    if not values:
        return CheckLine(name=name, passed=False, figures="unknown: no order with its bar in the journal")
    p = percentiles(values)
    figures = f"p50 {p['p50']:.1f} / p90 {p['p90']:.1f} / p99 {p['p99']:.1f} ms ({len(values)} orders)"
    return CheckLine(name=name, passed=p["p99"] <= limits.max_latency_ms, figures=figures)


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
