"""The backtest's journal rows: the live roles' kinds with their body fields, stamped with market time.

One function per kind, each building the body the live role journals (``actors.roles.feed``
``md.bar``, ``actors.roles.model`` ``model.signal``; the order path's ``risk.intent`` / ``risk.skip``
/ ``exec.filled`` / ``exec.exit_changed`` / ``exec.closed`` through the very records the risk and
execution roles write, ``actors.runtime.journalrows``), so a report reads
a backtest's journal and a shadow run's alike. Every row is (kind, body, corr, ts_ns) as
``actors.runtime.journal.Journal.write_many`` takes it; ``corr`` is the bar id of the decision the row
belongs to, ``ts_ns`` the market time it happened at. Where the backtest knows more than the live
row says (an SL/TP close's price and which of the two hit), the body carries it in the same fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.runtime.journalrows import ExecClosedRow, ExecFilledRow, ExecStopMovedRow, RiskIntentRow, RiskSkipRow

if TYPE_CHECKING:
    from actors.core.domain import SkipReason
    from actors.core.entry import EntryIntent

__all__ = [
    "JournalRow",
    "exec_closed",
    "exec_exit_changed",
    "exec_filled",
    "md_bar",
    "model_signal",
    "risk_intent",
    "risk_skip",
]

JournalRow = tuple[str, dict[str, Any], str | None, int]  # kind, body, corr, ts_ns (Journal.write_many)


def md_bar(instrument: str, bar_ts: int, close: float, corr: str, ts_ns: int) -> JournalRow:
    """``md.bar``: a bar the feed published (its mid close)."""
    return ("md.bar", {"instrument": instrument, "bar_ts": bar_ts, "close": repr(close)}, corr, ts_ns)


def model_signal(instrument: str, bar_ts: int, p_up: float, *, version: str, corr: str, ts_ns: int) -> JournalRow:
    """``model.signal``: the model's P(up) for a bar."""
    body = {"instrument": instrument, "bar_ts": bar_ts, "p_up": p_up, "model_version": version}
    return ("model.signal", body, corr, ts_ns)


def risk_skip(
    instrument: str,
    bar_ts: int,
    *,
    reason: SkipReason,
    detail: str,
    direction: str | None,
    p_up: float,
    version: str,
    corr: str,
    ts_ns: int,
) -> JournalRow:
    """``risk.skip``: a signal that did not become an entry, with the rule's reason."""
    row = RiskSkipRow(
        instrument=instrument,
        bar_ts=bar_ts,
        reason=reason,
        detail=detail,
        direction=direction,
        p_up=p_up,
        model_version=version,
    )
    return (row.KIND, row.body(), corr, ts_ns)


def risk_intent(decision: EntryIntent, *, version: str, corr: str, ts_ns: int) -> JournalRow:
    """``risk.intent``: an entry decision (``actors.core.entry.decide_entry``'s intent)."""
    sized, signal = decision.sized, decision.signal
    row = RiskIntentRow(
        intent_id=decision.intent_id,
        instrument=signal.instrument,
        direction=sized.direction.value,
        units=format(sized.units, "f"),
        stop_loss=format(sized.stop_loss, "f"),
        take_profit=format(sized.take_profit, "f"),
        decision_price=sized.entry_price,
        risk_home=round(sized.risk_home, 4),
        margin_home=round(sized.margin_home, 4),
        multiplier=decision.multiplier,
        p_up=signal.p_up,
        bar_ts=signal.bar_ts_ns,
        model_version=version,
    )
    return (row.KIND, row.body(), corr, ts_ns)


def exec_filled(
    intent_id: str,
    instrument: str,
    *,
    trade_id: str,
    units: str,
    fill_price: str,
    slippage_pips: float,
    version: str,
    corr: str,
    ts_ns: int,
) -> JournalRow:
    """``exec.filled``: an entry filled (no latency: nothing was sent)."""
    row = ExecFilledRow(
        intent_id=intent_id,
        instrument=instrument,
        trade_id=trade_id,
        units=units,
        fill_price=fill_price,
        slippage_pips=slippage_pips,
        latency_ms=None,
        model_version=version,
    )
    return (row.KIND, row.body(), corr, ts_ns)


def exec_exit_changed(
    trade_id: str, instrument: str, *, reason: str, stop_loss: str, was: str, corr: str, ts_ns: int
) -> JournalRow:
    """``exec.exit_changed``: exit management moved a trade's stop loss."""
    row = ExecStopMovedRow(trade_id=trade_id, instrument=instrument, reason=reason, stop_loss=stop_loss, was=was)
    return (row.KIND, row.body(), corr, ts_ns)


def exec_closed(
    trade_id: str, instrument: str, *, reason: str, price: str, realized_pl: str, version: str, corr: str, ts_ns: int
) -> JournalRow:
    """``exec.closed``: a trade closed (SL/TP, time exit or the end of the data)."""
    row = ExecClosedRow(
        trade_id=trade_id,
        instrument=instrument,
        reason=reason,
        price=price,
        realized_pl=realized_pl,
        model_version=version,
    )
    return (row.KIND, row.body(), corr, ts_ns)
