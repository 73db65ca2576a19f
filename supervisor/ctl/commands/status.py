"""``ctl status [--json]``: state, reasons and every role's health.

Request ``{"command": "status", "args": {}}``. Reply (``--json`` prints it as one object)::

    {"state": "TRADING", "reasons": [{"code", "detail", "latched", "since_ns"}], "paused": false,
     "mode": "shadow", "pid": 4242, "uptime_s": 12.3, "gc_full": 9, "gc_max_ms": 8.1,
     "actors": {"feed": {"pid", "alive", "status", "restarts", "heartbeat_age_s", "rss_mb",
                         "queue_depth", "handled", "decode_errors", "gaps", "dropped",
                         "handler_errors", "gc_full", "gc_max_ms", "uptime_s"}, ...},
     "broker": {"kind", "api_url", "connected", "last_ok",
                "sources": {"stream": {"connected", "last_ok_ns", "detail", "reconnects"}, "rest": ...}},
     "account": {...} | null,
     "model": {"state", "version", "detail", "loaded_at_ns", "last_prediction_ns", "predictions",
               "skipped"} | null,
     "market": {"instruments": [{"instrument", "open", "since_ns", "why", "next_open_ns"}],
                "last_bar_ns", "bars_published", "bars_rejected", "ticks_rejected"} | null,
     "watchdog": {"checks": [{"name", "value", "limit", "verdict", "detail"}], "mail",
                  "mail_queued", "mail_sent", "mail_failed"} | null,
     "positions": [{"trade_id", "instrument", "units", "price", "stop_loss", "take_profit",
                    "unrealized_pl"}] | null,
     "daily_pnl": "-12.50" | null, "dd_zone": 0 | null,
     "journal": {"mb": 612.3, "warn_mb": 2048.0, "warn": false}}

``broker`` shows each connection (``stream``, ``rest``) as its role last reported it; a source whose
role is not running shows ``connected: null`` ("unknown"), never its last good value, and
``broker.connected`` is null unless every source is known. ``positions``, ``daily_pnl`` and
``dd_zone`` are null until the reconciler has read the account once; ``watchdog`` until the
watchdog has reported. ``account`` is the reconciler's last ``AccountSnapshot`` (``currency``, ``nav``,
``balance``, ``unrealized_pl``, ``margin_used``, ``margin_available``, ``day_start_nav``, ``daily_pnl``,
``peak_nav``, ``drawdown``, ``zone``, ``multiplier``, ``daily_loss_hit``, ``drawdown_stop``,
``drawdown_resumed``, ``trades``...); the table shows it as one ``account:`` line. ``journal`` is the
journal's size on disk (the file and its ``-wal``, MB) and ``warn`` whether it is over
``host.journal_warn_mb`` (0: off): the ``journal:`` line then says to archive old rows.
"""

from __future__ import annotations

from typing import Any, ClassVar

from supervisor.ctl.commands.base import Command, Controllable


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}{unit}"
    return f"{value}{unit}"


def _account_line(a: dict[str, Any]) -> str:
    # NAV with its currency, unrealized P&L, day start, today's P&L, peak, drawdown and its zone.
    currency = a.get("currency") or ""
    drawdown, size = a.get("drawdown"), a.get("multiplier")
    size = f"{size:g}" if isinstance(size, float) else size
    line = (
        f"account: NAV {_fmt(a.get('nav'))} {currency}  unrealized {_fmt(a.get('unrealized_pl'))}  "
        f"day start {_fmt(a.get('day_start_nav') or None)}  today {_fmt(a.get('daily_pnl') or None)}  "
        f"peak {_fmt(a.get('peak_nav') or None)}  "
        f"drawdown {'-' if not isinstance(drawdown, int | float) else f'{drawdown:.2%}'}  "
        f"zone {_fmt(a.get('zone'))} (size x{_fmt(size)})"
    )
    if a.get("drawdown_resumed"):
        line += "  resumed after drawdown_stop: the last zone's size until a new peak"
    return line


class Status(Command):
    """Show the system state, no-trade reasons and per-role pid/restarts/heartbeat/rss."""

    name: ClassVar[str] = "status"

    def execute(self, supervisor: Controllable, args: dict[str, Any]) -> dict[str, Any]:
        """Snapshot of the supervisor."""
        return supervisor.status()

    def render(self, result: dict[str, Any]) -> str:
        """A table for people."""
        lines = [
            f"state: {result.get('state')}   mode: {result.get('mode')}   pid: {result.get('pid')}   "
            f"uptime: {_fmt(result.get('uptime_s'), 's')}"
        ]
        reasons = result.get("reasons") or []
        if reasons:
            lines.append("reasons:")
            lines.extend(
                f"  - {r.get('code')}{' (latched)' if r.get('latched') else ''}: {r.get('detail')}" for r in reasons
            )
        lines.append(f"{'role':<11} {'status':<10} {'pid':>7} {'restarts':>8} {'hb age':>7} {'rss':>9}")
        for role, a in (result.get("actors") or {}).items():
            lines.append(
                f"{role:<11} {_fmt(a.get('status')):<10} {_fmt(a.get('pid')):>7} {_fmt(a.get('restarts')):>8} "
                f"{_fmt(a.get('heartbeat_age_s'), 's'):>7} {_fmt(a.get('rss_mb'), ' MB'):>9}"
            )
        broker = result.get("broker") or {}
        connected = broker.get("connected")
        connected_text = "unknown" if connected is None else connected
        positions = result.get("positions")
        lines.append(
            f"broker: connected={connected_text} last_ok={_fmt(broker.get('last_ok'))}   "
            f"positions={_fmt(None if positions is None else len(positions))} "
            f"daily_pnl={_fmt(result.get('daily_pnl'))} dd_zone={_fmt(result.get('dd_zone'))}"
        )
        account = result.get("account")
        if isinstance(account, dict):
            lines.append(_account_line(account))
        for t in positions or []:
            if isinstance(t, dict):
                lines.append(
                    f"  trade {t.get('trade_id')} {t.get('instrument')} {t.get('units')} @ {t.get('price')}  "
                    f"SL={_fmt(t.get('stop_loss'))} TP={_fmt(t.get('take_profit'))} P&L={_fmt(t.get('unrealized_pl'))}"
                )
        for source, h in (broker.get("sources") or {}).items():
            state = "unknown" if h.get("connected") is None else ("up" if h.get("connected") else "down")
            lines.append(f"  {source:<7} {state:<8} {h.get('detail') or ''}")
        model = result.get("model")
        if isinstance(model, dict):
            lines.append(
                f"model: {model.get('state')} {model.get('version') or ''}  predictions={model.get('predictions')} "
                f"skipped={model.get('skipped')}  {model.get('detail') or ''}".rstrip()
            )
        market = result.get("market")
        if isinstance(market, dict):
            shown = [
                f"{m.get('instrument')} {'open' if m.get('open') else 'closed (' + str(m.get('why')) + ')'}"
                for m in market.get("instruments") or []
                if isinstance(m, dict)
            ]
            lines.append(
                f"market: {', '.join(shown) or '-'}  bars={market.get('bars_published')} "
                f"rejected={market.get('bars_rejected')} ticks_rejected={market.get('ticks_rejected')}"
            )
        watchdog = result.get("watchdog")
        if isinstance(watchdog, dict):
            checks = [c for c in watchdog.get("checks") or [] if isinstance(c, dict)]
            bad = [f"{c.get('name')} {c.get('verdict')}" for c in checks if c.get("verdict") != "ok"]
            lines.append(
                f"watchdog: {len(checks) - len(bad)}/{len(checks)} checks ok{': ' + ', '.join(bad) if bad else ''}  "
                f"mail={watchdog.get('mail')} sent={watchdog.get('mail_sent')} queued={watchdog.get('mail_queued')} "
                f"failed={watchdog.get('mail_failed')}"
            )
        journal = result.get("journal")
        if isinstance(journal, dict):
            line = f"journal: {_fmt(journal.get('mb'), ' MB')}"
            if journal.get("warn"):
                line += (
                    f"  WARNING: larger than host.journal_warn_mb ({journal.get('warn_mb'):g} MB): move old rows out "
                    "with `tradehost journal archive --before DATE --out FILE` (stop the host first)"
                )
            lines.append(line)
        return "\n".join(lines)
