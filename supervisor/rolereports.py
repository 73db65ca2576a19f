"""What the roles report to the supervisor, and what the supervisor does about each report.

The ``Supervisor`` (``supervisor.tree``) keeps the life cycle of its children; every other message
a role sends on the control channel lands here: broker health (a reason, and a reconciliation once
the REST API is back), the account (``recon.state``: daily loss and drawdown reasons), the model's
and the market's reports (``ctl status``), the reconciler's verdict, and the watchdog's requests
(NO_TRADE with a reason code, a cause healthy again, a restart) and report. A ``NoTradeRequested``
from any role becomes a reason through ``HealthPolicy.requested`` (the table in
``supervisor.health`` says who may raise each code and whether it latches); a ``CauseHealthy``
starts the cool-down only of a transient code its sender may raise. The last report of each kind
is kept for ``ctl status``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from actors.core.config import FeedConfig
from actors.core.money import conversion_refusal
from actors.runtime.messages import (
    AccountSnapshot,
    Body,
    BrokerHealth,
    CauseHealthy,
    MarketReport,
    ModelReport,
    NoTradeRequested,
    ProtectionReport,
    ReconciliationCompleted,
    RestartRequested,
    WatchdogReport,
)
from supervisor.ctl.commands.errors import CommandError

if TYPE_CHECKING:
    from supervisor.supervising import Supervising


class RoleReports:
    """The roles' reports (see the module docstring); ``handle`` is told each one.

    Args:
        sup: the supervisor whose health, state and operator the reports act on.
    """

    def __init__(self, sup: Supervising) -> None:
        self.sup = sup
        self.account: AccountSnapshot | None = None
        self.model: ModelReport | None = None
        self.watchdog: WatchdogReport | None = None
        self.market: MarketReport | None = None

    def handle(self, role: str, body: Body) -> None:
        """A report from ``role`` (its process identity already checked)."""
        sup = self.sup
        if isinstance(body, ReconciliationCompleted):
            if not body.ok:
                sup.health.fault("reconciliation_mismatch", body.detail)
                sup.save_state()
            sup.sm.reconciled()
        elif isinstance(body, BrokerHealth):
            if sup.health.broker_report(body):
                sup.require_reconciliation("broker REST API reachable again")
        elif isinstance(body, AccountSnapshot):
            first, self.account = self.account is None, body
            # The account's currency is known from its first read: prices that cannot value a trade
            # in it would skip every signal of an instrument, silently. Refused before any trading.
            instruments = sup.cfg.section("feed", FeedConfig).instruments
            if first and (refusal := conversion_refusal(instruments, body.currency)):
                sup.refuse_configuration(refusal)
                return
            sup.health.account(body)
        elif isinstance(body, ModelReport):
            self.model = body
            sup.health.model_report(body)
        elif isinstance(body, MarketReport):
            self.market = body
            return
        elif isinstance(body, ProtectionReport):
            sup.protection_reported(role, body)
        elif isinstance(body, NoTradeRequested):
            # One path for every role: the request becomes a reason (never only an alert).
            if sup.health.requested(role, body.code, body.detail, latch=body.latch):
                sup.save_state()
        elif isinstance(body, CauseHealthy):
            # Only a transient cause the role may raise itself: it must never start the cool-down
            # of the supervisor's own reasons (a role it still hears while the supervisor sees it down).
            sup.health.healthy_from(role, body.code)
        elif role == "watchdog":
            self._from_watchdog(body)
        else:
            return
        sup.settle()

    def _from_watchdog(self, body: Body) -> None:
        sup = self.sup
        if isinstance(body, RestartRequested):
            sup.journal_event("role.restart_requested", {"role": body.role, "reason": body.reason, "by": "watchdog"})
            with contextlib.suppress(CommandError):
                sup.operator.restart_role(body.role)
        elif isinstance(body, WatchdogReport):
            self.watchdog = body
