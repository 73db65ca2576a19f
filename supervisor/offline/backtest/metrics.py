"""The backtest's results: the metrics' definitions, ``trades.csv``, ``metrics.json`` and ``equity.png``.

Metrics (``metrics``), each computed from the closed trades (``trades.csv``) and the equity curve
(the NAV at every bar close of the window: balance + open P&L at the closing side):

- ``trades``: round trips closed, ``end_of_data`` closes included (``open_at_end`` counts those).
  A trade still open at the end is marked, not filled: at its instrument's last close's bid (a
  long) or ask (a short), without slippage, the price the NAV marks open trades at; its
  ``trades.csv`` row and ``net_pnl`` / ``final_nav`` use that one mark, so ``net_pnl`` is the sum
  of ``trades.csv``'s ``pnl`` (``open_at_end_mark`` says so in the file).
- ``win_rate``: share of trades with a P&L above 0 (null without trades).
- ``profit_factor``: gross profit / gross loss (null when nothing was lost).
- ``sharpe``: mean / standard deviation of the per-bar NAV returns, times the square root of the
  bars in a trading year (252 trading days of 24 h of bars); ``sortino`` the same over the
  downside deviation (root mean square of the negative returns). Risk-free rate 0; null when
  the returns are constant or fewer than two.
- ``max_drawdown``: the largest fall of the NAV from its running peak, as a fraction of the peak
  (``max_drawdown_home`` in the home currency).
- ``exposure``: share of the window's bar closes with at least one open trade.
- ``average_r``: mean P&L per trade in units of its planned risk (the loss at the initial stop:
  ``risk_home`` of the intent), so a stop-out is about -1 and a take profit about
  ``risk.reward_ratio``.

In-sample and out-of-sample (``sample_split``): the model's ``model.json`` names the last bar of its
training window (``window_to_ns``); a trade whose signal bar is at or before it is ``in_sample`` (the
model was fitted or scored on that bar), a later one ``out_of_sample``. Each block holds the metrics
above over its trades and its part of the equity curve (the bar closes up to the end of that bar,
and those after it, starting from the NAV at the split), with ``first_bar`` / ``last_bar`` of the
signal bars it covers; ``training_window_end`` is the split.

Every number is rounded (6 decimals, money 4) and the JSON is written with sorted keys, so the same
run gives the same bytes. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actors.core.domain import granularity_seconds
from actors.core.timefmt import format_rfc3339
from supervisor.offline.backtest.records import END_OF_DATA, ClosedTrade

__all__ = [
    "TRADE_COLUMNS",
    "compute_metrics",
    "plot_equity",
    "sample_lines",
    "sample_split",
    "trades_csv",
    "write_json",
]

TRADING_DAYS_PER_YEAR = 252
# How a trade still open at the end is valued, in trades.csv and in net_pnl alike (the module docstring).
OPEN_AT_END_MARK = "last close bid (long) / ask (short), no slippage, as the NAV marks it; in trades.csv and net_pnl"
TRADE_COLUMNS = (
    "trade_id",
    "intent_id",
    "instrument",
    "direction",
    "signal_bar",
    "entry_time",
    "entry_price",
    "units",
    "stop_loss",
    "take_profit",
    "exit_time",
    "exit_price",
    "exit_reason",
    "pnl",
    "r_multiple",
    "bars_held",
    "p_up",
)


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def compute_metrics(
    trades: Sequence[ClosedTrade],
    *,
    equity: Sequence[float],
    exposed_bars: int,
    opening_nav: float,
    granularity: str,
) -> dict[str, Any]:
    """The metrics of the module docstring.

    Args:
        trades: the closed trades.
        equity: the NAV at each bar close of the window.
        exposed_bars: bar closes with at least one open trade.
        opening_nav: the NAV before the first bar.
        granularity: the bars' granularity (annualisation).
    """
    pnl = np.array([t.pnl_home for t in trades], dtype=np.float64)
    wins = pnl[pnl > 0]
    losses = pnl[pnl < 0]
    curve = np.array([opening_nav, *equity], dtype=np.float64)
    returns = curve[1:] / curve[:-1] - 1.0 if len(curve) > 1 else np.zeros(0)
    per_year = math.sqrt(TRADING_DAYS_PER_YEAR * 86400 / granularity_seconds(granularity))
    sharpe = sortino = None
    if len(returns) >= 2:
        sd = float(returns.std())
        downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
        mean = float(returns.mean())
        sharpe = mean / sd * per_year if sd > 0 else None
        sortino = mean / downside * per_year if downside > 0 else None
    peak = np.maximum.accumulate(curve)
    drawdown = (peak - curve) / peak
    final = float(curve[-1])
    reasons: dict[str, int] = {}
    for t in trades:
        reasons[t.exit_reason] = reasons.get(t.exit_reason, 0) + 1
    return {
        "trades": len(trades),
        "open_at_end": reasons.get(END_OF_DATA, 0),
        "open_at_end_mark": OPEN_AT_END_MARK,
        "exits": dict(sorted(reasons.items())),
        "win_rate": _round(len(wins) / len(trades)) if len(trades) else None,
        "profit_factor": _round(float(wins.sum()) / -float(losses.sum())) if len(losses) else None,
        "sharpe": _round(sharpe),
        "sortino": _round(sortino),
        "max_drawdown": _round(float(drawdown.max())) if len(drawdown) else 0.0,
        "max_drawdown_home": _round(float((peak - curve).max()), 4) if len(curve) else 0.0,
        "exposure": _round(exposed_bars / len(equity)) if len(equity) else None,
        "average_r": _round(float(np.mean([t.r_multiple for t in trades]))) if len(trades) else None,
        "net_pnl": _round(final - opening_nav, 4),
        "return": _round(final / opening_nav - 1.0) if opening_nav else None,
        "opening_nav": _round(opening_nav, 4),
        "final_nav": _round(final, 4),
        "bars": len(equity),
    }


def sample_split(
    trades: Sequence[ClosedTrade],
    *,
    equity_ns: Sequence[int],
    equity: Sequence[float],
    exposed: Sequence[bool],
    opening_nav: float,
    granularity: str,
    training_to_ns: int,
) -> dict[str, Any]:
    """``in_sample`` and ``out_of_sample`` metrics, split at the model's training window end (the
    module docstring), and ``training_window_end``.

    Args:
        trades: the closed trades.
        equity_ns: the bar closes of the window (UTC ns).
        equity: the NAV at each of them.
        exposed: whether a trade was open at each of them.
        opening_nav: the NAV before the first bar.
        granularity: the bars' granularity.
        training_to_ns: the start of the last bar of the model's training window (``window_to_ns``).
    """
    split_ns = training_to_ns + granularity_seconds(granularity) * 1_000_000_000  # that bar's close
    cut = int(np.searchsorted(np.asarray(equity_ns, dtype=np.int64), split_ns, side="right"))
    blocks: dict[str, Any] = {}
    parts = (
        ("in_sample", [t for t in trades if t.signal_bar_ns <= training_to_ns], slice(0, cut), opening_nav),
        ("out_of_sample", [t for t in trades if t.signal_bar_ns > training_to_ns], slice(cut, None),
         float(equity[cut - 1]) if cut > 0 else opening_nav),
    )  # fmt: skip
    for name, chosen, span, start_nav in parts:
        block = compute_metrics(
            chosen,
            equity=list(equity[span]),
            exposed_bars=sum(exposed[span]),
            opening_nav=start_nav,
            granularity=granularity,
        )
        closes = list(equity_ns[span])
        step = granularity_seconds(granularity) * 1_000_000_000
        block["first_bar"] = format_rfc3339(closes[0] - step) if closes else None
        block["last_bar"] = format_rfc3339(closes[-1] - step) if closes else None
        blocks[name] = block
    blocks["training_window_end"] = format_rfc3339(training_to_ns)
    return blocks


def sample_lines(metrics: Mapping[str, Any], currency: str) -> list[str]:
    """One line per block of ``sample_split`` (for the console and ``report.md``); none without them."""
    lines = []
    for name, label in (("in_sample", "in-sample"), ("out_of_sample", "out-of-sample")):
        block = metrics.get(name)
        if not isinstance(block, Mapping):
            continue
        if not block.get("bars"):
            lines.append(f"{label}: no bar of the window")
            continue
        win = "n/a" if block["win_rate"] is None else f"{block['win_rate']:.1%}"
        pf = "n/a" if block["profit_factor"] is None else f"{block['profit_factor']:.2f}"
        sharpe = "n/a" if block["sharpe"] is None else f"{block['sharpe']:.2f}"
        lines.append(
            f"{label} ({block['first_bar'][:16]}Z .. {block['last_bar'][:16]}Z, model trained to "
            f"{str(metrics.get('training_window_end'))[:16]}Z): {block['trades']} trades, win rate {win}, "
            f"profit factor {pf}, Sharpe {sharpe}, net {block['net_pnl']:+.2f} {currency}"
        )
    return lines


def trades_csv(trades: Sequence[ClosedTrade], precision: Mapping[str, int]) -> str:
    """``trades.csv``: one row per closed trade in trade-id order (columns ``TRADE_COLUMNS``).

    Args:
        trades: the closed trades.
        precision: instrument -> ``displayPrecision`` (prices are written at it).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TRADE_COLUMNS)
    for t in sorted(trades, key=lambda t: int(t.trade_id)):
        dp = precision[t.instrument]
        writer.writerow(
            (
                t.trade_id,
                t.intent_id,
                t.instrument,
                t.direction,
                format_rfc3339(t.signal_bar_ns),
                format_rfc3339(t.entry_ns),
                f"{t.entry_price:.{dp}f}",
                f"{t.units:g}",
                f"{t.stop_loss:.{dp}f}",
                f"{t.take_profit:.{dp}f}",
                format_rfc3339(t.exit_ns),
                f"{t.exit_price:.{dp}f}",
                t.exit_reason,
                f"{t.pnl_home:.4f}",
                f"{t.r_multiple:.4f}",
                t.bars_held,
                f"{t.p_up:.6f}",
            )
        )
    return out.getvalue()


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as indented JSON with sorted keys (the same dict gives the same bytes)."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def plot_equity(path: Path, times_ns: Sequence[int], equity: Sequence[float], *, title: str) -> None:
    """``equity.png``: the NAV over the window, and its drawdown from the running peak below it."""
    import matplotlib  # noqa: PLC0415 - plotting loads only when an image is written

    matplotlib.use("Agg")
    import matplotlib.dates  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415

    curve = np.asarray(equity, dtype=np.float64)
    when = np.asarray(times_ns, dtype="datetime64[ns]")
    peak = np.maximum.accumulate(curve) if len(curve) else curve
    drawdown = (peak - curve) / peak * 100 if len(curve) else curve
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True
    )
    top.plot(when, curve, color="tab:blue", linewidth=1.0)
    top.set_ylabel("NAV")
    top.set_title(title)
    top.grid(alpha=0.3)
    bottom.fill_between(when, -drawdown, 0.0, color="tab:red", alpha=0.5, linewidth=0)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    dates: Any = matplotlib.dates  # its locators are untyped
    locator = dates.AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
