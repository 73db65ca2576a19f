"""The execution role's order desk: every broker call of the role, one at a time, on its worker.

Intents, exits, protection and flattening arrive as jobs (``actors.roles.execution.jobs``) on one
queue and are carried out in order, so nothing races on the account. The rules are the pure
modules' (``actors.roles.execution.orders``, ``actors.core.exits``); what goes out (reports,
alerts, no-trade requests) is handed back to the actor as ``Publish`` / ``ToSupervisor`` (only
the actor's thread touches the runtime's sockets); journal rows are written here, before and
after each request, so the journal always knows what was attempted. The desk is put together from
its parts, one module each: ``deskbase`` (its state and shared steps), ``entries`` (orders sent
and their outcome), ``exits`` (the exit pass at each close) and ``protection`` (SL/TP repairs and
the shutdown check); this module owns the worker's loop. See ``actors.roles.execution.actor`` for
the behaviour in full.
"""

from __future__ import annotations

import queue
import threading

from actors.broker import Broker
from actors.core.errors import BrokerError
from actors.roles.execution.entries import EntryDesk
from actors.roles.execution.exits import ExitDesk
from actors.roles.execution.jobs import BarRange, Exits, Flatten, Job, Protect, Protection, Snapshot, Submit
from actors.runtime.journalrows import ExecErrorRow, ShadowMigratedRow


class OrderDesk(EntryDesk, ExitDesk):
    """The orders worker of the execution role.

    Args:
        cfg: the ``[execution]`` section.
        risk: the ``[risk]`` section (ATR period and stop distances for repairs).
        granularity: the bars' granularity (bars held).
        market: the role's market view (quotes, ATR), read here, written by the actor.
        state_path: where the trade memos are kept.
        journal: append a typed journal row (``RoleActor.record``: ``exec.*``, ``shutdown.protection``).
        journal_db: the journal, read at start for intents whose outcome was lost.
        post: hand a ``Publish`` / ``ToSupervisor`` to the actor (``RoleActor.hand_back``).
        permit: the role's trading permit, checked again at send time; held by the desk's own
            no-trade requests until the supervisor's state carries them.
        open_broker: the runtime's broker factory (``RoleRuntime.open_broker``).
        host_id: this host's instance id (every order's tag).
        clock: the clock.
        bar_checks: the feed's bar checks (``[feed]``), for history read from the broker.
    """

    def run(self, stop: threading.Event) -> None:
        """The worker's body: open the broker, resolve what a restart left open, then do the jobs."""
        broker = self.open_broker(slippage_pips=self.cfg.slippage_pips)
        self.broker = broker
        migrated = getattr(broker, "migrated", None)  # the shadow book moved from its JSON file
        if isinstance(migrated, dict):
            self.journal(ShadowMigratedRow(**migrated))
        self._resolve_leftovers(broker, stop)
        while not stop.is_set():
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._do(broker, job, stop)
            except BrokerError as e:  # one failed job must not end the worker (reads are retried next time)
                self.journal(ExecErrorRow(job=type(job).__name__, error=f"{type(e).__name__}: {e}"))
                if isinstance(job, Snapshot):
                    job.error = f"{type(e).__name__}: {e}"
            if isinstance(job, Protection | Snapshot):
                job.done.set()

    def _do(self, broker: Broker, job: Job, stop: threading.Event) -> None:
        if isinstance(job, Submit):
            self._submit(broker, job.intent, job.corr, stop)
        elif isinstance(job, BarRange):
            broker.on_bar(job.instrument, job.candle, job.end_ns)
        elif isinstance(job, Exits):
            self._exits(broker, job.bar_ts)  # then ExitsChecked: the risk role decides the close's signals
        elif isinstance(job, Protect):
            self._protect_requested(broker, job)
        elif isinstance(job, Flatten):
            for trade in broker.open_trades():
                self._close(broker, trade, reason=f"flatten: {job.why}")
        elif isinstance(job, Protection):
            job.report = self._shutdown_protection(broker, job, stop)
        elif isinstance(job, Snapshot):
            job.last_id = broker.account_summary().last_transaction_id  # first: replay starts after it
            job.trades = {t.id: t.instrument for t in broker.open_trades()}
