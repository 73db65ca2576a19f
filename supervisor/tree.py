"""The ``Supervisor`` actor: spawns, watches and restarts the roles, and owns the system state.

Everything reaches it by ``tell()``: child exits from the ``ChildWatcher`` (at once, through
process sentinels), heartbeats and reports from the control channel, ctl requests, a 50 ms
``Tick`` from the root's socket thread, and shutdown requests from signals or ctl. This module
is the wiring; each job has its own home: a ``Child`` per role decides restarts, hangs and
failed starts (``supervisor.child``), the ``HealthPolicy`` turns health facts into no-trade
reasons (``supervisor.health``), the ``StateMachine`` owns the state and its phase
(``supervisor.state``), and a ``ShutdownSequence`` stops the roles one by one in reverse start
order (``supervisor.shutdown``). It publishes ``sys.state`` on every change and every
``state_interval_s`` with an expiry, so silence revokes the trading permit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pykka

from actors.core.clock import SYSTEM_CLOCK, Clock
from actors.runtime.journal import Journal
from actors.runtime.messages import (
    Body,
    Heartbeat,
    ProtectionReport,
    RoleStopping,
    StopRole,
    SystemState,
    encode,
    make_envelope,
)
from supervisor import statefile
from supervisor.child import Child, ChildStatus, KillCause, Tock, describe_exit, make_children
from supervisor.childspec import child_specs
from supervisor.ctl.operations import Operator
from supervisor.ctl.server import dispatch
from supervisor.health import HealthPolicy
from supervisor.inbox import (
    ChildExited,
    CtlCall,
    FromChild,
    HostExit,
    RunDirLost,
    Sender,
    ShutdownRequested,
    Spawner,
    Start,
    Tick,
)
from supervisor.publish import SRC, StatePublisher
from supervisor.records import Records
from supervisor.rolereports import RoleReports
from supervisor.shutdown import EXIT_UNPROTECTED, ShutdownSequence, state_summary, unprotected_detail
from supervisor.state import StateMachine

if TYPE_CHECKING:
    from supervisor.hostconfig import HostConfig
    from supervisor.metrics import MetricsBoard

log = logging.getLogger(__name__)

EXIT_SUPERVISOR_FAILED = 70
EXIT_CONFIG_REFUSED = 2  # the configuration does not fit the account (as a config error at start)
# The reconciler's own restart and the emulator's (a fresh account) call for a new reconciliation.
RECONCILE_AFTER_RESTART_OF = frozenset({"reconciler", "emulator"})
STOPPED_STATES = (SystemState.SHUTTING_DOWN, SystemState.STOPPED)
KILLS = {
    Tock.HUNG: KillCause.HUNG,
    Tock.START_TIMEOUT: KillCause.START_TIMEOUT,
    Tock.SHUTDOWN_DEADLINE: KillCause.SHUTDOWN_DEADLINE,
}


class Supervisor(pykka.ThreadingActor):
    """Owns the roles and the system state (see the module docstring)."""

    def __init__(
        self,
        cfg: HostConfig,
        *,
        journal: Journal,
        io: Sender,
        spawner: Spawner,
        done: HostExit,
        state_path: Path,
        saved: statefile.SavedState,
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsBoard | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.sup = cfg.supervisor
        self.io = io
        self.spawner = spawner
        self.done = done
        self.saved = saved
        self.clock = clock
        self.sm = StateMachine(self.sup.cooldown_s)
        self.health = HealthPolicy(
            self.sm,
            self.journal_event,
            monotonic=clock.monotonic,
            wall_ns=clock.time_ns,
            alert=self._alert,
            cleared=self._alert_cleared,
        )
        self.records = Records(
            journal, state_path, self.sm, clock, on_unsaved=lambda why: self.health.fault("state_unsaved", why)
        )
        self.children = make_children(child_specs(self.sup, with_emulator=cfg.broker.kind == "emulator"), self.sup)
        self.pending_start: list[str] = []
        self.started_at = clock.monotonic()
        self.publisher = StatePublisher(io, self.sup, cfg.host.mode, clock)
        self.shutdown_seq: ShutdownSequence | None = None
        self.reports = RoleReports(self)
        self.operator = Operator(self)
        self.last_tick = clock.monotonic()
        self.run_dir_lost = ""
        self.refused = ""  # why the configuration was refused at the first account read (exit 2)
        self.protection: ProtectionReport | None = None  # the shutdown check's outcome
        self.metrics = metrics  # offered the status document every second (supervisor.metrics)

    # --- dispatch ---

    def on_receive(self, message: Any) -> Any:
        """Route every message to its handler."""
        if isinstance(message, Tick):
            self._on_tick()
        elif isinstance(message, FromChild):
            self._on_child_message(message)
        elif isinstance(message, ChildExited):
            self._on_child_exited(message)
        elif isinstance(message, CtlCall):
            reply = dispatch(self.operator, message.request)
            self.io.send("ctl", [*message.request.route, reply])
        elif isinstance(message, ShutdownRequested):
            self.shutdown(message.trigger)
        elif isinstance(message, Start):
            self._start()
        elif isinstance(message, RunDirLost):
            self._on_run_dir_lost(message)
        return None

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """The supervisor must never limp on: end the root; children follow (parent death)."""
        log.critical("supervisor actor failed: %r; exiting", exception_value)
        logging.shutdown()
        os._exit(EXIT_SUPERVISOR_FAILED)

    # --- start ---

    def _start(self) -> None:
        if self.sm.state in STOPPED_STATES:
            return  # a signal came before the start: nothing to start
        now, now_ns = self.clock.monotonic(), self.clock.time_ns()
        for reason in self.saved.latched:
            self.sm.raise_reason(reason.code, reason.detail, latched=True, now_s=now, now_ns=now_ns)
        if self.saved.paused:
            self.sm.pause()
        self.journal_event(
            "host.started",
            {
                "pid": os.getpid(),
                "mode": self.cfg.host.mode,
                "config": self.cfg.source,
                "recovered_latched": [r.code for r in self.saved.latched],
                "recovered_paused": self.saved.paused,
            },
        )
        self.pending_start = list(self.children)
        self._spawn_pending()
        self.settle(force_publish=True)
        self._alert("info", "host_started", f"tradehost started (pid {os.getpid()}, mode {self.cfg.host.mode})")

    def _spawn_pending(self) -> None:
        # In start order; a child that others wait for (the emulator) holds the rest back until
        # it has heartbeated or has failed for good.
        while self.pending_start:
            waited = [c for c in self.children.values() if c.spec.others_wait and c.status is not ChildStatus.STOPPED]
            if any(c.status in (ChildStatus.STARTING, ChildStatus.RESTARTING) for c in waited):
                return
            self.spawn(self.children[self.pending_start.pop(0)])

    def spawn(self, child: Child) -> None:
        try:
            pid = self.spawner(child.role)
        except OSError as e:
            log.error("could not start %s: %s", child.role, e)
            self.journal_event("role.spawn_failed", {"role": child.role, "error": str(e)})
            child.pid = None
            self._after_crash(child, f"could not start: {e}", failed_start=True)
            return
        child.spawned(pid, self.clock.monotonic())
        self.journal_event("role.started", {"role": child.role, "pid": pid})
        log.info("started %s as pid %d", child.role, pid)

    # --- children ---

    def _on_child_message(self, message: FromChild) -> None:
        env = message.envelope
        child = self.children.get(env.src)
        if child is None or message.identity != child.identity:
            return  # a stale process or an impostor: ignore
        body = env.body
        if isinstance(body, Heartbeat):
            if child.heartbeat(body, self.clock.monotonic()):
                self._on_role_up(child)
        elif isinstance(body, RoleStopping):
            child.shutdown_outcome = "clean" if body.clean else f"hook failed: {body.detail}"
        else:
            self.reports.handle(child.role, body)

    def _on_role_up(self, child: Child) -> None:
        restarted = child.exited_at is not None
        if restarted:
            self.journal_event(
                "role.restarted",
                {
                    "role": child.role,
                    "pid": child.pid,
                    "restarts": child.restarts,
                    "down_ms": round((self.clock.monotonic() - (child.exited_at or 0.0)) * 1000, 1),
                    "first_heartbeat_ns": self.clock.time_ns(),
                },
            )
        self.health.role_healthy(child.role)
        if restarted and child.role in RECONCILE_AFTER_RESTART_OF:
            self.require_reconciliation(f"{child.role} restarted")
        self._spawn_pending()
        if all(c.status is ChildStatus.RUNNING for c in self.children.values()):
            self.sm.children_up()
        self.settle()

    def require_reconciliation(self, why: str) -> bool:
        """Reconcile before trading again; False when one is pending already."""
        if self.sm.require_reconciliation():
            self.journal_event("recon.required", {"why": why})
            return True
        return False

    def _on_child_exited(self, message: ChildExited) -> None:
        child = self.children[message.role]
        if child.pid != message.pid:
            return
        cause = child.kill_detail or describe_exit(message.exitcode)
        failed_start = child.exited(self.clock.monotonic())
        self.health.role_gone(child.role)
        if self.sm.state in STOPPED_STATES:
            if not child.shutdown_outcome:
                child.shutdown_outcome = cause if message.exitcode != 0 else "clean"
            child.status = ChildStatus.STOPPED
            self._shutdown_continue()
            return
        exited = {"role": child.role, "pid": message.pid, "exitcode": message.exitcode}  # None: unknown
        if child.restart_after_stop:
            self.journal_event("role.exited", {**exited, "cause": "restarted by operator"})
            child.restarts += 1
            self.health.role_unhealthy(child.role, f"{child.role} is restarting (ctl restart)")
            self.spawn(child)
            self.settle()
            return
        log.warning("%s (pid %d) %s", child.role, message.pid, cause)
        self.journal_event("role.exited", {**exited, "cause": cause})
        self._after_crash(child, cause, failed_start=failed_start)

    def _after_crash(self, child: Child, cause: str, *, failed_start: bool) -> None:
        role = child.role
        self.health.role_unhealthy(role, f"{role} {cause}; restarting")
        delay = child.crashed(self.clock.monotonic(), failed_start=failed_start)
        if delay is None:
            why = child.failed_why()
            detail = f"{role} {why} (last: {cause}); it stays down until `tradehost ctl restart {role}`"
            self.health.role_failed(role, detail)
            limits = {"max_restarts": self.sup.max_restarts, "period_s": self.sup.restart_period_s}
            self.journal_event("role.failed", {"role": role, "cause": cause, "why": why, **limits})
            self.save_state()
            self._spawn_pending()  # those that waited for it start anyway (and see it down)
        elif delay == 0:
            self.spawn(child)
        self.settle()

    # --- the clock ---

    def _on_tick(self) -> None:
        now = self.clock.monotonic()
        stalled_s, self.last_tick = now - self.last_tick, now
        if stalled_s > max(1.0, 2 * self.sup.heartbeat_interval_s):
            self._on_stall(stalled_s, now)
        for child in self.children.values():
            tock, detail = child.tick(
                now,
                heartbeat_interval_s=self.sup.heartbeat_interval_s,
                heartbeat_timeout_s=self.sup.heartbeat_timeout_s,
                start_timeout_s=self.sup.start_timeout_s,
            )
            if tock is Tock.RESTART_DUE:
                self.spawn(child)
            elif tock in KILLS:
                self._kill(child, KILLS[tock], detail)
            elif tock is Tock.LATE:  # unsure whether the role works: stop trading before a hang is certain
                self.health.role_unhealthy(child.role, detail)
            elif tock is Tock.HEALTHY:
                self.health.role_healthy(child.role)
        self.health.expire()
        self.settle()
        if self.metrics is not None:
            self.metrics.offer(now, self.operator.status)

    def _on_stall(self, stalled_s: float, now: float) -> None:
        # The root itself did not run (SIGSTOP, swap, a frozen VM): the roles' silence meanwhile
        # says nothing about them, so their heartbeat clocks start over instead of killing them.
        log.warning("the supervisor did not run for %.1fs", stalled_s)
        self.journal_event("host.stalled", {"stalled_s": round(stalled_s, 2)})
        for child in self.children.values():
            child.grace(now)

    def _on_run_dir_lost(self, lost: RunDirLost) -> None:
        if self.run_dir_lost:
            return
        self.run_dir_lost = detail = lost.detail
        if lost.still_ours:
            action = "no trading; graceful shutdown (systemd or the operator starts a fresh host)"
        else:
            self.records.frozen = detail
            action = "no trading; graceful shutdown without writing into the run directory (it may not be ours)"
        log.critical("%s: %s", detail, action)
        self.health.fault("run_dir_lost", f"{detail}; {action}")
        self.journal_event("host.run_dir_lost", {"detail": detail, "action": action})
        self.settle()
        self.shutdown("run_dir_lost")

    def refuse_configuration(self, detail: str) -> None:
        """The configuration cannot trade the account the broker showed (``detail``, one line: an
        instrument whose prices cannot be valued in its currency): journal ``host.refused``, alert,
        and shut down gracefully with exit 2, before any trading."""
        if self.refused:
            return
        self.refused = detail
        log.critical("configuration refused: %s", detail)
        self.journal_event("host.refused", {"detail": detail})
        self._alert("error", "config_refused", f"configuration refused: {detail}")
        self.shutdown("configuration refused")

    def _kill(self, child: Child, cause: KillCause, detail: str) -> None:
        if child.pid is None:
            return
        child.kill(cause, detail)
        log.error("killing %s (pid %d): %s", child.role, child.pid, detail)
        no_heartbeat = cause in (KillCause.HUNG, KillCause.START_TIMEOUT)
        kind = "role.heartbeat_lost" if no_heartbeat else "role.killed"
        self.journal_event(kind, {"role": child.role, "pid": child.pid, "cause": detail})
        if no_heartbeat:
            self.health.role_unhealthy(child.role, f"{child.role} {detail}; restarting")
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)

    # --- state ---

    def settle(self, *, force_publish: bool = False) -> None:
        previous = self.sm.state
        changed = self.sm.settle()
        if changed is not None:
            reasons = [r.code for r in self.sm.reasons(self.clock.time_ns())]
            self.journal_event("state.changed", {"from": previous.value, "to": changed.value, "reasons": reasons})
            log.info("state %s -> %s", previous.value, changed.value)
        if changed is not None or force_publish or self.publisher.due():
            self.publisher.state(self.sm)

    def _alert(self, severity: str, code: str, detail: str) -> None:
        self.journal_event("alert", {"severity": severity, "code": code, "detail": detail})
        self.publisher.alert(severity, code, detail)

    def _alert_cleared(self, code: str) -> None:
        self.journal_event("alert.cleared", {"code": code})
        self.publisher.cleared(code)

    def journal_event(self, kind: str, body: dict[str, Any]) -> None:
        """Append to the journal (a failure latches NO_TRADE; see ``supervisor.records``)."""
        self.records.journal(kind, body)

    def save_state(self) -> None:
        """Write the latched reasons and the pause to ``state.json`` (crash-safe)."""
        self.records.save_state()

    # --- shutdown ---

    def shutdown(self, trigger: str) -> dict[str, Any]:
        """Begin graceful shutdown (idempotent)."""
        previous = self.sm.state
        if not self.sm.begin_shutdown():
            log.info("shutdown already in progress (%s ignored)", trigger)
            return {"message": "already shutting down", "state": self.sm.state.value}
        log.info("graceful shutdown (%s)", trigger)
        reasons = [r.code for r in self.sm.reasons(self.clock.time_ns())]
        self.journal_event("shutdown.started", {"trigger": trigger, "state_before": previous.value, "reasons": reasons})
        self.journal_event(
            "state.changed", {"from": previous.value, "to": SystemState.SHUTTING_DOWN.value, "reasons": []}
        )
        self.publisher.state(self.sm)  # revokes the permit at once
        self._alert(
            "info",
            "host_shutdown",
            f"graceful shutdown ({trigger}): pending entries are cancelled and every open trade's SL/TP is "
            "checked at the broker before the roles stop",
        )
        self.pending_start.clear()
        self.shutdown_seq = ShutdownSequence.begin(trigger, self.clock.monotonic(), previous, self.children)
        self._shutdown_continue()
        return {"message": "shutting down", "state": self.sm.state.value}

    def command_role(self, role: str, body: Body) -> bool:
        """Send a command to a running role on the control channel; False when it is not running."""
        child = self.children.get(role)
        if child is None or child.status is not ChildStatus.RUNNING:
            return False
        self.io.send("control", [child.identity, encode(make_envelope(body, src=SRC))])
        return True

    def send_stop(self, child: Child, reason: str) -> None:
        was_starting = child.status is ChildStatus.STARTING
        child.stop_requested(self.clock.monotonic())
        if was_starting and child.pid is not None:
            # Not connected yet, so a StopRole would be dropped by the ROUTER; SIGTERM is the
            # same graceful path in the child (and ends it outright if it is still importing).
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
            return
        stop = StopRole(deadline_s=child.spec.shutdown_timeout_s, reason=reason, protection_s=child.spec.protection_s)
        env = make_envelope(stop, src=SRC)
        self.io.send("control", [child.identity, encode(env)])

    def _shutdown_continue(self) -> None:
        seq = self.shutdown_seq
        if seq is None:
            return
        child = seq.next_to_stop(self.children)
        if child is None:
            self._finish_shutdown(seq)
        elif child.status is not ChildStatus.STOPPING:
            self.send_stop(child, seq.trigger)

    def protection_reported(self, role: str, report: ProtectionReport) -> None:
        """The shutdown check of open trades (``ProtectionReport``): trades it could not verify
        protected become ``unprotected:<trade id>`` reasons and one critical alert that names them."""
        self.protection = report
        if report.complete:
            return
        for trade in report.unverified:
            detail = f"trade {trade.trade_id} {trade.instrument}: not verified protected at shutdown ({trade.outcome})"
            self.health.fault(f"unprotected:{trade.trade_id}", detail, alert=False)
        self._alert("critical", "shutdown_unprotected", unprotected_detail(report))

    def _protection_summary(self, seq: ShutdownSequence) -> dict[str, Any]:
        report = self.protection
        if report is None:
            checker = next((c for c in self.children.values() if c.spec.protection_s > 0), None)
            outcome = checker.shutdown_outcome if checker is not None else "no role checks"
            summary = f"NOT VERIFIED: the execution role sent no protection check ({outcome or 'not running'})"
            self.journal_event(
                "shutdown.protection", {"complete": False, "checked": False, "unverified": [], "summary": summary}
            )
            report = ProtectionReport(complete=False, summary=summary)
            self.protection = report
            self._alert("critical", "shutdown_unprotected", unprotected_detail(report))
        return {
            "complete": report.complete,
            "summary": report.summary,
            "unverified": [t.trade_id for t in report.unverified],
        }

    def _finish_shutdown(self, seq: ShutdownSequence) -> None:
        if self.sm.state is SystemState.STOPPED:
            return
        self.save_state()
        protection = self._protection_summary(seq)
        latched = [r.code for r in self.sm.reasons(self.clock.time_ns()) if r.latched]
        summary = seq.summary(self.children, latched, self.clock.monotonic())
        summary.update(state_summary(self.reports.account, self.protection), protection=protection)
        if not protection["complete"]:  # the role that checks says so beside how it stopped
            for role, child in self.children.items():
                if child.spec.protection_s > 0:
                    summary["roles"][role] = f"{summary['roles'][role]}; open trades NOT VERIFIED protected"
        self.journal_event("shutdown.completed", summary)
        self.sm.stopped()
        self.journal_event(
            "state.changed", {"from": SystemState.SHUTTING_DOWN.value, "to": SystemState.STOPPED.value, "reasons": []}
        )
        self.publisher.state(self.sm)
        log.info("shutdown complete in %.0f ms", summary["elapsed_ms"])
        if not protection["complete"]:
            log.critical("open trades not verified protected at the broker: %s", protection["summary"])
        code = 1 if self.run_dir_lost else (0 if protection["complete"] else EXIT_UNPROTECTED)
        if code == 0 and self.refused:
            code = EXIT_CONFIG_REFUSED
        self.done.finish(code)
