"""Health reports in, no-trade reasons out: the supervisor's health policy.

Every fact the supervisor learns about the tree's health (a role down, late, failed for good; a
broker connection down or back; a journal or state file that cannot be written; later the
watchdog's requests) goes through ``HealthPolicy``, which raises or clears the matching reason
on the ``StateMachine`` and journals what changed. ``REASONS`` is the table of reason codes:
whether each is transient (clears by itself once its cause has been healthy for
``supervisor.cooldown_s``) or latched (clears only with ``tradehost ctl resume``). Health from a
role that is not running is *unknown*, never its last good value: the broker sources a role
reports (``REPORTERS``) turn unknown the moment that role is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from actors.runtime.messages import AccountSnapshot, BrokerHealth, ModelReport
from supervisor.state import StateMachine

__all__ = [
    "REASONS",
    "REPORTERS",
    "SUPERVISOR",
    "UNKNOWN_CODE",
    "HealthPolicy",
    "ReasonInfo",
    "may_raise",
    "reason_info",
]

SUPERVISOR = "supervisor"
WATCHDOG = "watchdog"

Journal = Callable[[str, dict[str, Any]], None]
Alert = Callable[[str, str, str], None]  # severity, code, detail
Cleared = Callable[[str], None]  # code


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    """One reason code: latched or transient, what it means, and who may raise (and clear) it.

    ``raised_by`` names the roles whose ``NoTradeRequested`` / ``CauseHealthy`` carry the code on
    the control channel (``supervisor`` when only the supervisor's own observations raise it:
    heartbeats, exits, broker health, the account's zones). A role may clear only what it may
    raise, and only a transient code; a raise from anyone else is still honoured (unsure: no
    trading) but latched and journaled as unexpected.
    """

    latched: bool
    meaning: str
    raised_by: frozenset[str] = frozenset({SUPERVISOR})
    resumable: bool = True  # False: ``ctl resume`` cannot clear it (only its own rule lifts it)


def _by(*roles: str) -> frozenset[str]:
    return frozenset(roles)


# The prefix before ':' names the code; the part after it names the role, source or trade.
REASONS: Mapping[str, ReasonInfo] = {
    "role_down": ReasonInfo(False, "a role is down, restarting, starting, or late with its heartbeats"),
    "restart_intensity": ReasonInfo(True, "a role crashed too often (or never came up) and stays down"),
    "broker_unreachable": ReasonInfo(False, "the price stream or the REST API of the broker is down"),
    "reconciliation_mismatch": ReasonInfo(True, "the reconciler found local state that disagrees with the broker"),
    "journal_unwritable": ReasonInfo(True, "the journal could not be written"),
    "state_unsaved": ReasonInfo(True, "state.json could not be written"),
    "run_dir_lost": ReasonInfo(True, "the run directory, its lock, journal or a socket was removed or replaced"),
    "model_missing": ReasonInfo(True, "the model directory (model.dir) does not exist or lacks its files"),
    "model_mismatch": ReasonInfo(True, "the model does not fit the configuration (features, granularity, instruments)"),
    "order_unresolved": ReasonInfo(
        True, "an order's outcome stayed unknown by its client id past resolve_timeout_s", _by("execution")
    ),
    "another_host": ReasonInfo(
        True, "a trade tagged by another tradehost instance: two hosts trade one account", _by("reconciler")
    ),
    "broker_fatal": ReasonInfo(True, "the broker refused the token or the account (401/403)", _by("execution")),
    "unprotected": ReasonInfo(
        False,
        "an open trade has no SL or TP at the broker: repaired with backoff, closed past "
        "reconciler.repair_deadline_s; latched when even the close fails",
        _by(SUPERVISOR, "reconciler", "execution"),
    ),
    "daily_loss_limit": ReasonInfo(
        True,
        "today's loss reached risk.daily_loss_limit: clears at the next trading day (17:00 New York), never by resume",
        resumable=False,
    ),
    "drawdown_stop": ReasonInfo(True, "the drawdown from the peak NAV is beyond the last risk.drawdown_zones zone"),
    # Raised by the watchdog (NoTradeRequested); its table in README "The watchdog" says when.
    "heartbeat_missing": ReasonInfo(False, "the watchdog hears no heartbeat of a role on the bus", _by(WATCHDOG)),
    "memory_limit": ReasonInfo(True, "a process is over watchdog.rss_limit_mb (the role is restarted)", _by(WATCHDOG)),
    "memory_growth": ReasonInfo(
        True, "a process's memory grows faster than watchdog.max_growth_mb_per_h", _by(WATCHDOG)
    ),
    "disk_low": ReasonInfo(
        False, "the run directory's disk has less than watchdog.min_free_disk_mb free", _by(WATCHDOG)
    ),
    "clock_skew": ReasonInfo(
        False, "the local clock differs from the broker's by more than watchdog.max_clock_skew_s", _by(WATCHDOG)
    ),
    "bar_overdue": ReasonInfo(
        False, "no bar of an instrument within its granularity plus watchdog.bar_grace_s", _by(WATCHDOG)
    ),
    "stream_silent": ReasonInfo(
        False, "the price stream was down longer than watchdog.stream_down_alert_s", _by(WATCHDOG)
    ),
    "decision_overdue": ReasonInfo(
        False, "a published bar got no decision within watchdog.decision_deadline_s", _by(WATCHDOG)
    ),
    "account_stale": ReasonInfo(
        False, "no account read from the broker within watchdog.account_max_age_s", _by(WATCHDOG)
    ),
}
UNKNOWN_CODE = ReasonInfo(True, "a reason this version does not know (latched to be safe)", frozenset())


def reason_info(code: str) -> ReasonInfo:
    """The table's entry for ``code`` (its prefix before ':'); unknown codes latch."""
    return REASONS.get(code.partition(":")[0], UNKNOWN_CODE)


def may_raise(role: str, code: str) -> bool:
    """True when ``role`` is one of the raisers the table names for ``code``."""
    return role in reason_info(code).raised_by


# Which role reports which broker source.
REPORTERS: Mapping[str, str] = {"stream": "feed", "rest": "reconciler"}


class HealthPolicy:
    """Maps health facts to reasons on ``sm`` and journals the changes.

    Args:
        sm: the state machine whose reasons this policy raises and clears.
        journal: append one entry (kind, body) to the journal.
        monotonic: the clock for cool-downs.
        wall_ns: the wall clock for ``since_ns``.
    """

    def __init__(
        self,
        sm: StateMachine,
        journal: Journal,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
        alert: Alert | None = None,
        cleared: Cleared | None = None,
    ) -> None:
        self.sm = sm
        self._journal = journal
        self._alert = alert or (lambda severity, code, detail: None)
        self._cleared = cleared or (lambda code: None)
        self._mono = monotonic
        self._wall_ns = wall_ns
        self.broker: dict[str, BrokerHealth] = {}
        self._unknown: dict[str, str] = {}  # source -> why its health is unknown
        # ``ctl resume`` cleared drawdown_stop; the reconciler's reads before it took the resume
        # still say stop: they do not raise it again.
        self._drawdown_resumed = False

    # --- reasons ---

    def fault(self, code: str, detail: str, *, latch: bool = False, alert: bool = True) -> bool:
        """Raise ``code`` (latched or not as ``REASONS`` says, or latched when ``latch``; an unknown
        code latches); True when it is new, and then it is journaled and alerted (critical when
        latched; ``alert`` False when the caller sends one alert for several reasons). A transient
        reason raised again with ``latch`` becomes latched, and that is journaled and alerted too."""
        latched = latch or reason_info(code).latched
        was_latched = self.sm.is_latched(code)
        if self.sm.raise_reason(code, detail, latched=latched, now_s=self._mono(), now_ns=self._wall_ns()):
            self._journal("reason.raised", {"code": code, "detail": detail, "latched": latched})
            if alert:
                self._alert("critical" if latched else "warning", code, detail)
            return True
        if latched and not was_latched:
            self._journal("reason.raised", {"code": code, "detail": detail, "latched": True, "was": "transient"})
            self._alert("critical", code, detail)
        return False

    def requested(self, role: str, code: str, detail: str, *, latch: bool = False) -> bool:
        """A role asks for NO_TRADE with ``code`` (``NoTradeRequested``): every role's request
        becomes a reason the same way. One from a role the table does not name as a raiser is
        honoured all the same (unsure: no trading), latched and journaled as unexpected."""
        if not may_raise(role, code):
            self._journal("reason.unexpected_raiser", {"code": code, "role": role, "detail": detail})
            return self.fault(code, f"{detail} (raised by {role}, which this version does not expect)", latch=True)
        return self.fault(code, detail, latch=latch)

    def healthy_from(self, role: str, code: str) -> bool:
        """A role reports the cause of ``code`` healthy (``CauseHealthy``): its cool-down starts,
        but only for a transient code that role may raise; returns whether it was taken."""
        info = reason_info(code)
        if info.latched or role not in info.raised_by:
            return False
        self.healthy(code)
        return True

    def cleared_by_operator(self, codes: Iterable[str]) -> None:
        """Latched reasons (and the pause) cleared by ``ctl resume``: their alerts are resolved."""
        for code in codes:
            self._cleared(code)
            if code == "drawdown_stop":
                self._drawdown_resumed = True

    def healthy(self, code: str) -> None:
        """The cause of a transient reason is healthy again; its cool-down starts."""
        self.sm.cause_healthy(code, self._mono())

    def expire(self) -> list[str]:
        """Clear transient reasons past their cool-down; returns and journals their codes."""
        cleared = self.sm.expire(self._mono())
        for code in cleared:
            self._journal("reason.cleared", {"code": code, "by": "cooldown"})
            self._cleared(code)
        return cleared

    # --- roles ---

    def role_unhealthy(self, role: str, detail: str) -> None:
        """A role is down, restarting, starting or late: unsure, so no trading."""
        self.fault(f"role_down:{role}", detail)

    def role_healthy(self, role: str) -> None:
        """A role heartbeats on time."""
        self.healthy(f"role_down:{role}")

    def role_failed(self, role: str, detail: str) -> None:
        """A role is down for good (past its intensity)."""
        self.fault(f"role_down:{role}", detail)
        self.fault(f"restart_intensity:{role}", detail)

    def role_gone(self, role: str) -> None:
        """A role's process is gone: what it reported is unknown from now on."""
        for source, reporter in REPORTERS.items():
            if reporter == role and source in self.broker:
                self._unknown[source] = f"unknown: {role} is not running"

    # --- model ---

    def model_report(self, report: ModelReport) -> None:
        """A model that is missing or does not fit: no signals, so no trading until resolved."""
        if report.state in ("missing", "mismatch"):
            self.fault(f"model_{report.state}", report.detail)

    # --- the account's zones ---

    def account(self, snapshot: AccountSnapshot) -> None:
        """The reconciler's zone verdict: the daily loss limit latches until the next trading day
        (then it lifts itself), the drawdown stop until an operator resumes."""
        if snapshot.daily_loss_hit:
            self.fault(
                "daily_loss_limit",
                f"today's P&L {snapshot.daily_pnl} {snapshot.currency} against the day-start NAV "
                f"{snapshot.day_start_nav}: no new entries until the next trading day (17:00 New York); "
                "`tradehost ctl resume` cannot lift it",
            )
        elif self.sm.clear("daily_loss_limit"):
            self._journal("reason.cleared", {"code": "daily_loss_limit", "by": "new trading day"})
            self._cleared("daily_loss_limit")
        if snapshot.drawdown_resumed or not snapshot.drawdown_stop:
            self._drawdown_resumed = False  # the reconciler took the resume (or there is no stop)
        if snapshot.drawdown_stop and not self._drawdown_resumed:
            self.fault(
                "drawdown_stop",
                f"drawdown {snapshot.drawdown:.2%} from the peak NAV {snapshot.peak_nav} "
                "is beyond the last zone: no new trades until `tradehost ctl resume`",
            )

    # --- broker ---

    def broker_report(self, body: BrokerHealth) -> bool:
        """A role reports one broker connection; returns True when the REST API is back (the
        broker may have changed meanwhile: reconcile before trading)."""
        previous = self.broker.get(body.source)
        was_unknown = self._unknown.pop(body.source, None) is not None
        self.broker[body.source] = body
        code = f"broker_unreachable:{body.source}"
        if not body.connected:
            what = "price stream" if body.source == "stream" else "REST API"
            self.fault(code, f"broker {what} down: {body.detail}")
            if previous is None or previous.connected or was_unknown:
                self._journal("broker.down", {"source": body.source, "detail": body.detail})
            return False
        self.healthy(code)
        if previous is not None and not previous.connected:
            self._journal("broker.up", {"source": body.source, "reconnects": body.reconnects})
            return body.source == "rest"
        return False

    def broker_status(self, kind: str, api_url: str) -> dict[str, Any]:
        """The ``broker`` entry of the status document; unknown sources show ``connected: null``."""
        sources: dict[str, Any] = {}
        for source, h in sorted(self.broker.items()):
            unknown = self._unknown.get(source)
            sources[source] = {
                "connected": None if unknown else h.connected,
                "last_ok_ns": h.last_ok_ns,
                "detail": unknown or h.detail,
                "reconnects": h.reconnects,
            }
        states = [s["connected"] for s in sources.values()]
        # Known down beats unknown; unknown (or nothing heard yet) is never reported as up.
        connected = False if False in states else (None if not states or None in states else True)
        last = [h.last_ok_ns for h in self.broker.values() if h.last_ok_ns]
        return {
            "kind": kind,
            "api_url": api_url or None,
            "connected": connected,
            "last_ok": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(last) / 1e9)) if last else None,
            "sources": sources,
        }
