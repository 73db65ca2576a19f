"""What the supervisor's parts see of the ``Supervisor`` (``supervisor.tree``): a Protocol.

The ctl command bodies (``supervisor.ctl.operations.Operator``) and the roles' reports
(``supervisor.rolereports.RoleReports``) act on the supervisor that owns them. They name it by this
Protocol rather than by its class, so the owner imports its parts and no part imports its owner
(no import circle, not even one for the type checker); ``Supervisor`` satisfies it structurally.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from actors.core.clock import Clock
    from actors.runtime.messages import (
        AccountSnapshot,
        Body,
        MarketReport,
        ModelReport,
        ProtectionReport,
        WatchdogReport,
    )
    from supervisor.child import Child
    from supervisor.health import HealthPolicy
    from supervisor.hostconfig import HostConfig
    from supervisor.state import StateMachine

__all__ = ["ReportsView", "RoleRestarter", "Supervising"]


class ReportsView(Protocol):
    """The last report of each kind the roles sent (``ctl status`` shows them)."""

    account: AccountSnapshot | None
    model: ModelReport | None
    watchdog: WatchdogReport | None
    market: MarketReport | None


class RoleRestarter(Protocol):
    """Restarts a role on request (the watchdog's ``RestartRequested``)."""

    def restart_role(self, role: str) -> dict[str, Any]:
        """Stop ``role`` and start it again."""
        ...


class Supervising(Protocol):
    """The supervisor as its parts use it."""

    cfg: HostConfig
    sm: StateMachine
    health: HealthPolicy
    clock: Clock
    started_at: float
    pending_start: list[str]

    @property
    def children(self) -> Mapping[str, Child]:
        """The roles by name, in start order."""
        ...

    @property
    def reports(self) -> ReportsView:
        """The roles' last reports."""
        ...

    @property
    def operator(self) -> RoleRestarter:
        """The ctl command bodies."""
        ...

    def settle(self, *, force_publish: bool = False) -> None:
        """Move to the state the reasons call for and publish it."""
        ...

    def journal_event(self, kind: str, body: dict[str, Any]) -> None:
        """Append to the journal."""
        ...

    def save_state(self) -> None:
        """Write the latched reasons and the pause crash-safely."""
        ...

    def require_reconciliation(self, why: str) -> bool:
        """Reconcile before trading again."""
        ...

    def protection_reported(self, role: str, report: ProtectionReport) -> None:
        """The shutdown check of open trades."""
        ...

    def command_role(self, role: str, body: Body) -> bool:
        """Send a command to a running role."""
        ...

    def spawn(self, child: Child) -> None:
        """Start a role's process."""
        ...

    def send_stop(self, child: Child, reason: str) -> None:
        """Ask a role to stop."""
        ...

    def shutdown(self, trigger: str) -> dict[str, Any]:
        """Begin graceful shutdown."""
        ...

    def refuse_configuration(self, detail: str) -> None:
        """Refuse the configuration (one line why) and shut down with exit 2."""
        ...
