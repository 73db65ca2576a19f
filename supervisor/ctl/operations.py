"""``Operator``: the bodies of the ctl commands, carried out on the supervisor's thread.

``tradehost ctl`` requests are checked by ``supervisor.ctl.server`` and executed here, in the
supervisor actor (``dispatch(supervisor.ctl.operations, request)``), so they see and change the same
state as everything else the supervisor does. Each method is idempotent and answers with a
readable message; a request that cannot be honoured raises ``CommandError`` with a code. This
class implements ``supervisor.ctl.commands.base.Controllable``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actors.runtime import gcpace
from actors.runtime.messages import AccountSnapshot, FlattenRequested, ReconcileNow, SystemState, to_jsonable
from supervisor.child import ChildStatus, child_status
from supervisor.ctl.commands.errors import REFUSED, CommandError
from supervisor.health import reason_info

if TYPE_CHECKING:
    from supervisor.supervising import Supervising

__all__ = ["Operator", "journal_size"]


class Operator:
    """The ctl command bodies over one supervisor (see the module docstring)."""

    def __init__(self, supervisor: Supervising) -> None:
        self.sup = supervisor

    def status(self) -> dict[str, Any]:
        """The status document of ``ctl status``."""
        s, r = self.sup, self.sup.reports
        now = s.clock.monotonic()
        return {
            "state": s.sm.state.value,
            "reasons": [
                {"code": r.code, "detail": r.detail, "latched": r.latched, "since_ns": r.since_ns}
                for r in s.sm.reasons(s.clock.time_ns())
            ],
            "paused": s.sm.paused,
            "mode": s.cfg.host.mode,
            "pid": os.getpid(),
            "uptime_s": round(now - s.started_at, 1),
            "gc_full": gcpace.full_collections(),  # the root's own (host.gc_interval_s)
            "gc_max_ms": gcpace.longest_ms(),
            "actors": {role: child_status(child, now) for role, child in s.children.items()},
            "broker": s.health.broker_status(s.cfg.broker.kind, s.cfg.broker.api_url),
            "account": to_jsonable(r.account) if r.account else None,
            "model": to_jsonable(r.model) if r.model else None,
            "market": to_jsonable(r.market) if r.market else None,
            "watchdog": to_jsonable(r.watchdog) if r.watchdog else None,
            "positions": positions(r.account) if r.account else None,
            "daily_pnl": r.account.daily_pnl or None if r.account else None,
            "dd_zone": r.account.zone if r.account else None,
            "journal": journal_size(s.cfg.run_dir / "journal.sqlite", s.cfg.host.journal_warn_mb),
        }

    def _refuse_when_stopping(self, what: str) -> None:
        if self.sup.sm.state in (SystemState.SHUTTING_DOWN, SystemState.STOPPED):
            raise CommandError(REFUSED, f"cannot {what}: the host is shutting down")

    def pause(self) -> dict[str, Any]:
        """Set the operator pause latch."""
        s = self.sup
        self._refuse_when_stopping("pause")
        changed = s.sm.pause()
        if changed:
            s.journal_event("operator.pause", {})
            s.save_state()
        s.settle(force_publish=changed)
        message = "paused: no new entries until `tradehost ctl resume`" if changed else "already paused"
        return {"message": message, "changed": changed, "state": s.sm.state.value}

    def resume(self) -> dict[str, Any]:
        """Clear the pause and latched reasons; refused while a role is down for good."""
        s = self.sup
        self._refuse_when_stopping("resume")
        failed = [role for role, child in s.children.items() if child.status is ChildStatus.FAILED]
        if failed:
            raise CommandError(
                REFUSED,
                f"refused: {', '.join(failed)} is down after exceeding its restart intensity; "
                f"fix the cause, run `tradehost ctl restart {failed[0]}`, then resume",
            )
        cleared = s.sm.resume(keep=lambda code: not reason_info(code).resumable)
        refused = sorted(r.code for r in s.sm.reasons(s.clock.time_ns()) if not reason_info(r.code).resumable)
        if cleared or refused:
            s.journal_event("operator.resume", {"cleared": cleared, "refused": refused})
        if cleared:
            s.health.cleared_by_operator(cleared)
            s.save_state()
        s.settle(force_publish=bool(cleared))
        if refused:
            # One line, exit 1: the reason stays, and nothing says it was resolved.
            done = f"cleared {', '.join(cleared)}; " if cleared else ""
            raise CommandError(REFUSED, f"{done}refused: {_refusal(refused, s.reports.account)}")
        message = f"resumed; cleared {', '.join(cleared)}" if cleared else "nothing to resume"
        if "drawdown_stop" in cleared:
            message += (
                "; the peak NAV stays: new entries at the last drawdown zone's size until the NAV makes a new peak"
            )
        return {"message": message, "cleared": cleared, "state": s.sm.state.value}

    def restart_role(self, role: str) -> dict[str, Any]:
        """Stop ``role`` gracefully and start it again (also revives a failed role)."""
        s = self.sup
        self._refuse_when_stopping(f"restart {role}")
        child = s.children.get(role)
        if child is None:
            raise CommandError(REFUSED, f"{role} is not part of this tree (broker.kind = {s.cfg.broker.kind!r})")
        if child.kill_cause is not None:
            # Already being killed (hung, or past a deadline): that restart counts as a crash.
            return {"message": f"{role} is already being restarted ({child.kill_detail})", "pid": child.pid}
        child.revived()
        s.journal_event("operator.restart", {"role": role, "status": child.status.value})
        if child.status in (ChildStatus.FAILED, ChildStatus.RESTARTING, ChildStatus.STOPPED):
            if role in s.pending_start:
                s.pending_start.remove(role)
            child.restarts += 1
            s.spawn(child)
            s.settle()
            return {"message": f"{role} started (pid {child.pid})", "pid": child.pid}
        if child.restart_after_stop:
            return {"message": f"{role} is already restarting", "pid": child.pid}
        child.restart_after_stop = True
        # The role stops working now: no trading until its successor has been healthy a while.
        s.health.role_unhealthy(role, f"{role} is restarting (ctl restart)")
        s.send_stop(child, "ctl restart")
        s.settle()
        return {"message": f"{role} (pid {child.pid}) is stopping and will be started again", "pid": child.pid}

    def shutdown(self, trigger: str) -> dict[str, Any]:
        """Begin graceful shutdown (idempotent)."""
        return self.sup.shutdown(trigger)

    def reconcile(self) -> dict[str, Any]:
        """Reconcile with the broker now: no entries until it is through."""
        s = self.sup
        self._refuse_when_stopping("reconcile")
        s.journal_event("operator.reconcile", {})
        asked = s.require_reconciliation("ctl reconcile")
        if not s.command_role("reconciler", ReconcileNow(why="ctl reconcile")):
            raise CommandError(REFUSED, "the reconciler is not running; see `tradehost ctl status`")
        s.settle(force_publish=True)
        message = "reconciling now" if asked else "a reconciliation was already pending; the reconciler was nudged"
        return {"message": message, "state": s.sm.state.value}

    def flatten(self, confirmed: bool) -> dict[str, Any]:
        """Close every open trade, then stay paused; without ``confirmed`` only say what would close."""
        s = self.sup
        self._refuse_when_stopping("flatten")
        trades = positions(s.reports.account) if s.reports.account else []
        listing = "; ".join(f"{t['instrument']} {t['units']} @ {t['price']} (trade {t['trade_id']})" for t in trades)
        if not confirmed:
            what = f"would close {len(trades)} open trades: {listing}" if trades else "no open trades known"
            raise CommandError(REFUSED, f"{what}; run `tradehost ctl flatten --yes` to close them and pause")
        changed = s.sm.pause()
        s.journal_event("operator.flatten", {"trades": [t["trade_id"] for t in trades], "paused": True})
        if changed:
            s.save_state()
        s.settle(force_publish=True)
        if not s.command_role("execution", FlattenRequested(why="ctl flatten")):
            raise CommandError(REFUSED, "paused, but the execution role is not running: nothing was closed")
        return {
            "message": f"closing {len(trades)} open trades; paused (resume with `tradehost ctl resume`)",
            "trades": trades,
            "state": s.sm.state.value,
        }


def _refusal(codes: list[str], account: AccountSnapshot | None) -> str:
    # Why a resume leaves these reasons raised (today only daily_loss_limit).
    pnl = f" (today's P&L {account.daily_pnl} {account.currency})" if account and account.daily_pnl else ""
    return (
        f"{', '.join(codes)}{pnl} holds until the next trading day (17:00 New York): "
        "a resume cannot lift the daily loss limit"
    )


def positions(account: AccountSnapshot) -> list[dict[str, Any]]:
    """The open trades of the last reconciliation, for status and flatten."""
    return [
        {
            "trade_id": t.trade_id,
            "instrument": t.instrument,
            "units": t.units,
            "price": t.price,
            "stop_loss": t.stop_loss,
            "take_profit": t.take_profit,
            "unrealized_pl": t.unrealized_pl,
        }
        for t in account.trades
    ]


def journal_size(path: Path, warn_mb: float) -> dict[str, Any]:
    """The journal's size on disk (the file and its ``-wal``) against ``host.journal_warn_mb``:
    ``{"mb", "warn_mb", "warn"}`` (``warn_mb`` 0: never warns)."""
    size = 0
    for p in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(OSError):
            size += p.stat().st_size
    mb = round(size / 1e6, 1)
    return {"mb": mb, "warn_mb": warn_mb, "warn": bool(warn_mb) and mb > warn_mb}
