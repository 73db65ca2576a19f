"""Reconciler role: brings local state in line with the broker, which is the truth.

The supervisor enters RECONCILING once every role is up and moves on only when this role
reports. A worker thread does the blocking broker reads: whenever the system enters
RECONCILING it reads the account summary, the open trades and the pending orders (the broker
is the truth: with no local positions yet there is nothing that can disagree, so what it finds
is adopted and journaled) and reports completion; while the broker cannot be read it keeps
trying and the system stays out of TRADING. Between reconciliations it polls the account every
``reconciler.poll_interval_s`` and publishes ``recon.state``; the REST connection's health goes to
the supervisor with every heartbeat and at once when a request fails: the first timeout is
already a health fact (the broker client reports every attempt, before its retries). Transactions
since the last known id and the comparison with local positions arrive with the orders issue.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from actors.backoff import Backoff
from actors.base import RoleActor
from actors.broker import AccountState
from actors.errors import BrokerError
from actors.messages import (
    TOPIC_EXEC_REPORT,
    TOPIC_RECON_HEALTH,
    TOPIC_RECON_STATE,
    AccountSnapshot,
    BrokerHealth,
    ReconciliationCompleted,
    SystemState,
)

NOT_READ = "not read yet"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcilerConfig:
    """The ``[reconciler]`` section."""

    poll_interval_s: float = field(
        default=5.0, metadata={"doc": "How often the account summary is read from the broker.", "min": 0.1}
    )
    retry_initial_s: float = field(
        default=0.5, metadata={"doc": "First delay before retrying a failed reconciliation.", "min": 0.01}
    )
    retry_max_s: float = field(
        default=15.0, metadata={"doc": "Upper bound of the retry delay (doubles, with jitter).", "min": 0.01}
    )


@dataclass(frozen=True, slots=True)
class _Polled:
    account: AccountState
    open_trades: int
    pending_orders: int
    full: bool


@dataclass(frozen=True, slots=True)
class _PollFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class _RequestOutcome:
    ok: bool
    detail: str


class ReconcilerActor(RoleActor[ReconcilerConfig]):
    """The reconciler's actor."""

    ROLE: ClassVar[str] = "reconciler"
    TOPICS: ClassVar[tuple[str, ...]] = (TOPIC_EXEC_REPORT,)
    CONFIG: ClassVar[type[ReconcilerConfig]] = ReconcilerConfig

    def on_start(self) -> None:
        """Start the broker worker."""
        self.want_full = threading.Event()
        self.connected = False
        self.last_ok_ns: int | None = None
        self.detail = NOT_READ
        self._published: tuple[bool, str] | None = None
        self.worker = self.start_worker("broker", self._poll_loop)

    def on_state_changed(self, previous: SystemState | None, current: SystemState) -> None:
        """Reconcile whenever the supervisor enters RECONCILING."""
        if current is SystemState.RECONCILING:
            self.want_full.set()

    def _poll_loop(self, stop: threading.Event) -> None:
        last_ok: list[bool | None] = [None]

        def on_outcome(ok: bool, detail: str) -> None:
            # Every REST attempt, retries included: tell the actor only about changes.
            if ok != last_ok[0]:
                last_ok[0] = ok
                self.actor_ref.tell(_RequestOutcome(ok, detail))

        broker = self.runtime.open_broker(on_request_outcome=on_outcome)  # ConfigError: the role fails
        backoff = Backoff(self.cfg.retry_initial_s, self.cfg.retry_max_s)
        while not stop.is_set():
            full = self.want_full.is_set()
            try:
                account = broker.account_summary()
                trades = len(broker.open_trades()) if full else account.open_trade_count
                pending = len(broker.pending_orders()) if full else account.pending_order_count
            except BrokerError as e:
                self.actor_ref.tell(_PollFailed(f"{type(e).__name__}: {e}"))
                stop.wait(backoff.next_delay())
                continue
            backoff.reset()
            if full:
                self.want_full.clear()
            self.actor_ref.tell(_Polled(account, trades, pending, full))
            # Wake early when a reconciliation is asked for.
            deadline = self.clock.monotonic() + self.cfg.poll_interval_s
            while not stop.is_set() and not self.want_full.is_set() and self.clock.monotonic() < deadline:
                stop.wait(0.05)

    def on_other(self, message: Any) -> None:
        """Results of the broker worker."""
        if isinstance(message, _Polled):
            account = message.account
            self.connected, self.last_ok_ns, self.detail = True, self.clock.time_ns(), "ok"
            snapshot = AccountSnapshot(
                currency=account.currency,
                balance=str(account.balance),
                nav=str(account.nav),
                unrealized_pl=str(account.unrealized_pl),
                margin_used=str(account.margin_used),
                open_trades=message.open_trades,
                pending_orders=message.pending_orders,
                last_transaction_id=account.last_transaction_id,
                ts=self.last_ok_ns,
            )
            self.runtime.publish(TOPIC_RECON_STATE, snapshot)
            self.runtime.to_supervisor(snapshot)
            if message.full:
                detail = (
                    f"broker is the truth: {message.open_trades} open trades and {message.pending_orders} "
                    f"pending orders adopted; balance {account.balance} {account.currency}, "
                    f"last transaction {account.last_transaction_id}"
                )
                self.runtime.journal("recon.completed", {"ok": True, "detail": detail})
                self.runtime.to_supervisor(ReconciliationCompleted(ok=True, detail=detail))
            self._report()
        elif isinstance(message, _PollFailed):
            self.connected, self.detail = False, message.reason
            self.runtime.journal("recon.broker_unreachable", {"reason": message.reason})
            self._report()
        elif isinstance(message, _RequestOutcome) and not message.ok and self.connected:
            # Unhealthy at the first failed attempt; healthy again only after a whole read.
            self.connected, self.detail = False, f"request failed (retrying): {message.detail}"
            self.runtime.journal("recon.broker_unreachable", {"reason": self.detail})
            self._report()

    def on_heartbeat(self) -> None:
        """Re-send the REST health with every heartbeat."""
        if self.detail != NOT_READ:
            self._report()  # nothing to say before the first read has an outcome

    def _report(self) -> None:
        health = BrokerHealth(source="rest", connected=self.connected, last_ok_ns=self.last_ok_ns, detail=self.detail)
        self.runtime.to_supervisor(health)
        if (health.connected, health.detail) != self._published:  # the bus (the watchdog) hears changes
            self._published = (health.connected, health.detail)
            self.runtime.publish(TOPIC_RECON_HEALTH, health)

    def on_shutdown(self, deadline_s: float) -> str:
        """Stop the broker worker."""
        stopped = self.worker.stop(min(0.5, deadline_s / 2))
        return "broker worker stopped" if stopped else "broker worker still blocked in a request; exiting anyway"


ACTOR = ReconcilerActor
