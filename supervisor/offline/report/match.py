"""The trade match of ``tradehost report``: the shadow run's entries against the backtest's, and
why the first ones differ.

Entries are ``risk.intent`` rows keyed by (instrument, bar, direction); the match rate is
|shadow and backtest| / |shadow or backtest| over the compared window. Each ``Difference`` tells
what each side did at that bar (an entry, a skip and its reason, a position already open, no
trading permit) from both sides' journal rows, so a reader sees why they parted.
"""

import math
from dataclasses import dataclass

from actors.core.domain import bar_id
from actors.core.timefmt import format_rfc3339
from actors.runtime.journal import JournalEntry
from supervisor.offline.report.checks import CheckLine, ReportLimits
from supervisor.offline.report.sides import NOT_TRADING, Side, Window

__all__ = ["Difference", "check_match"]


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
        line = CheckLine(
            key="match", name=name, passed=False, figures="no entries on either side in the window", observed=False
        )
        return line, []
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
    line = CheckLine(key="match", name=name, passed=rate >= limits.min_match, figures=figures, details=details)
    return line, differences
