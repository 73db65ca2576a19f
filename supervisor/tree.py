"""The ``Supervisor`` actor: spawns, watches and restarts the roles, and owns the system state.

Everything reaches it by ``tell()``: child exits from the ``ChildWatcher`` (at once, through
process sentinels), heartbeats and reports from the control channel, ctl requests, a 50 ms
``Tick`` from the root's socket thread, and shutdown requests from signals or ctl. Restarts
are one_for_one with OTP intensity and backoff; a role that is down, restarting or hung puts
the system in NO_TRADE (transient), a role past its intensity latches NO_TRADE. Graceful
shutdown stops the roles one by one in reverse start order, each with a deadline, then saves
state and journals a summary. It publishes ``sys.state`` on every change and every
``state_interval_s`` with an expiry, so silence revokes the trading permit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pykka

from actors.journal import Journal
from actors.messages import (
    TOPIC_ALERT,
    TOPIC_SYS_STATE,
    AccountSnapshot,
    AlertRaised,
    Body,
    BrokerHealth,
    Heartbeat,
    ReconciliationCompleted,
    RoleStopping,
    StopRole,
    SystemState,
    SystemStateChanged,
    encode,
    make_envelope,
    to_jsonable,
)
from supervisor import statefile
from supervisor.childspec import ChildSpec, Intensity, child_roles
from supervisor.commands.errors import REFUSED, CommandError
from supervisor.control import dispatch
from supervisor.inbox import (
    ChildExited,
    CtlCall,
    FromChild,
    Sender,
    ShutdownRequested,
    Spawner,
    Start,
    Tick,
)
from supervisor.slot import RoleSlot, broker_status, describe_exit, slot_status
from supervisor.state import StateMachine

if TYPE_CHECKING:
    from supervisor.hostconfig import HostConfig

log = logging.getLogger(__name__)

SRC = "supervisor"
EXIT_SUPERVISOR_FAILED = 70
# The reconciler's own restart and the emulator's (a fresh account) call for a new reconciliation.
RECONCILE_AFTER_RESTART_OF = frozenset({"reconciler", "emulator"})
LATE_HEARTBEATS = 3  # heartbeat intervals of silence before a role counts as unhealthy


class Supervisor(pykka.ThreadingActor):
    """Owns the roles and the system state (see the module docstring)."""

    def __init__(
        self,
        cfg: HostConfig,
        *,
        journal: Journal,
        io: Sender,
        spawner: Spawner,
        done: threading.Event,
        state_path: Path,
        saved: statefile.SavedState,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.sup = cfg.supervisor
        self.journal = journal
        self.io = io
        self.spawner = spawner
        self.done = done
        self.state_path = state_path
        self.sm = StateMachine(self.sup.cooldown_s)
        self.roles = child_roles(cfg.broker.kind == "emulator")
        self.slots = {
            role: RoleSlot(
                spec=ChildSpec(role=role, shutdown_timeout_s=self.sup.shutdown_timeout_s),
                intensity=Intensity(
                    self.sup.max_restarts, self.sup.restart_period_s, self.sup.backoff_initial_s, self.sup.backoff_max_s
                ),
            )
            for role in self.roles
        }
        self.started_at = time.monotonic()
        self.last_published = 0.0
        self.seq_by_topic: dict[str, int] = {}
        self.stop_queue: list[str] = []
        self.shutdown_trigger = ""
        self.shutdown_started = 0.0
        self.state_before_shutdown: SystemState | None = None
        self.saved = saved
        self.broker_health: dict[str, BrokerHealth] = {}
        self.account: AccountSnapshot | None = None

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
            reply = dispatch(self, message.request)
            self.io.send("ctl", [*message.request.route, reply])
        elif isinstance(message, ShutdownRequested):
            self.shutdown(message.trigger)
        elif isinstance(message, Start):
            self._start()
        return None

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """The supervisor must never limp on: end the root; children follow (parent death)."""
        log.critical("supervisor actor failed: %r; exiting", exception_value)
        logging.shutdown()
        os._exit(EXIT_SUPERVISOR_FAILED)

    # --- start ---

    def _start(self) -> None:
        if self.sm.state in (SystemState.SHUTTING_DOWN, SystemState.STOPPED):
            return  # a signal came before the start: nothing to start
        now, now_ns = time.monotonic(), time.time_ns()
        for reason in self.saved.latched:
            self.sm.raise_reason(reason.code, reason.detail, latched=True, now_s=now, now_ns=now_ns)
        if self.saved.paused:
            self.sm.pause()
        self._journal(
            "host.started",
            {
                "pid": os.getpid(),
                "mode": self.cfg.host.mode,
                "config": self.cfg.source,
                "recovered_latched": [r.code for r in self.saved.latched],
                "recovered_paused": self.saved.paused,
            },
        )
        for role in self.roles:
            self._spawn(role)
        self._settle(force_publish=True)

    def _spawn(self, role: str) -> None:
        slot = self.slots[role]
        now = time.monotonic()
        try:
            pid = self.spawner(role)
        except OSError as e:
            log.error("could not start %s: %s", role, e)
            self._journal("role.spawn_failed", {"role": role, "error": str(e)})
            slot.pid = None
            self._after_crash(role, slot, f"could not start: {e}")
            return
        slot.status = "starting"
        slot.pid = pid
        slot.identity = f"{role}/{pid}".encode()
        slot.started_at = now
        slot.last_heartbeat_at = None
        slot.last_heartbeat = None
        slot.kill_cause = None
        slot.stop_deadline = None
        slot.restart_at = None
        slot.restart_after_stop = False
        slot.shutdown_outcome = ""
        log.info("started %s as pid %d", role, pid)

    # --- children ---

    def _on_child_message(self, message: FromChild) -> None:
        env = message.envelope
        slot = self.slots.get(env.src)
        if slot is None or message.identity != slot.identity:
            return  # a stale process or an impostor: ignore
        body = env.body
        if isinstance(body, Heartbeat):
            slot.last_heartbeat_at = time.monotonic()
            slot.last_heartbeat = body
            if slot.status == "starting":
                self._on_role_up(env.src, slot)
        elif isinstance(body, ReconciliationCompleted):
            self._on_reconciled(body)
        elif isinstance(body, RoleStopping):
            slot.shutdown_outcome = "clean" if body.clean else f"hook failed: {body.detail}"
        elif isinstance(body, BrokerHealth):
            self._on_broker_health(body)
        elif isinstance(body, AccountSnapshot):
            self.account = body

    def _on_role_up(self, role: str, slot: RoleSlot) -> None:
        slot.status = "running"
        now = time.monotonic()
        if slot.exited_at is not None:
            self._journal(
                "role.restarted",
                {
                    "role": role,
                    "pid": slot.pid,
                    "restarts": slot.restarts,
                    "down_ms": round((now - slot.exited_at) * 1000, 1),
                    "first_heartbeat_ns": time.time_ns(),
                },
            )
        self.sm.cause_healthy(f"role_down:{role}", now)
        if slot.exited_at is not None and role in RECONCILE_AFTER_RESTART_OF:
            self._require_reconciliation(f"{role} restarted")
        if not self.sm.ready and all(s.status == "running" for s in self.slots.values()):
            self.sm.reconciling = True
        self._settle()

    def _on_broker_health(self, body: BrokerHealth) -> None:
        previous = self.broker_health.get(body.source)
        self.broker_health[body.source] = body
        code = f"broker_unreachable:{body.source}"
        if not body.connected:
            what = "price stream" if body.source == "stream" else "REST API"
            self._raise(code, f"broker {what} down: {body.detail}", latched=False)
            if previous is None or previous.connected:
                self._journal("broker.down", {"source": body.source, "detail": body.detail})
        else:
            self.sm.cause_healthy(code, time.monotonic())
            if previous is not None and not previous.connected:
                self._journal("broker.up", {"source": body.source, "reconnects": body.reconnects})
                if body.source == "rest":
                    self._require_reconciliation("broker REST API reachable again")
        self._settle()

    def _require_reconciliation(self, why: str) -> None:
        """Local state may no longer match the broker: reconcile again before any trading."""
        if not self.sm.ready:
            return  # a reconciliation is pending anyway
        self.sm.ready = False
        self.sm.reconciling = True
        self._journal("recon.required", {"why": why})

    def _on_reconciled(self, body: ReconciliationCompleted) -> None:
        now, now_ns = time.monotonic(), time.time_ns()
        self._journal("recon.completed", {"ok": body.ok, "detail": body.detail})
        if not body.ok:
            self.sm.raise_reason("reconciliation_mismatch", body.detail, latched=True, now_s=now, now_ns=now_ns)
            self._save_state()
        if self.sm.reconciling:
            self.sm.ready = True
        self._settle()

    def _on_child_exited(self, message: ChildExited) -> None:
        role = message.role
        slot = self.slots[role]
        if slot.pid != message.pid:
            return
        cause = slot.kill_cause or describe_exit(message.exitcode)
        slot.pid = None
        slot.exited_at = time.monotonic()
        if self.sm.state in (SystemState.SHUTTING_DOWN, SystemState.STOPPED):
            if not slot.shutdown_outcome:
                slot.shutdown_outcome = cause if message.exitcode != 0 else "clean"
            slot.status = "stopped"
            self._shutdown_continue()
            return
        if slot.restart_after_stop:
            self._journal(
                "role.exited",
                {"role": role, "pid": message.pid, "exitcode": message.exitcode, "cause": "restarted by operator"},
            )
            slot.restarts += 1
            self._raise(f"role_down:{role}", f"{role} is restarting (ctl restart)", latched=False)
            self._spawn(role)
            self._settle()
            return
        log.warning("%s (pid %d) %s", role, message.pid, cause)
        self._journal("role.exited", {"role": role, "pid": message.pid, "exitcode": message.exitcode, "cause": cause})
        self._after_crash(role, slot, cause)

    def _after_crash(self, role: str, slot: RoleSlot, cause: str) -> None:
        now = time.monotonic()
        self._raise(f"role_down:{role}", f"{role} {cause}; restarting", latched=False)
        delay = slot.intensity.record(now)
        if delay is None:
            slot.status = "failed"
            detail = (
                f"{role} restarted {self.sup.max_restarts} times within {self.sup.restart_period_s:g}s "
                f"(last: {cause}); it stays down until `tradehost ctl restart {role}`"
            )
            self._raise(f"restart_intensity:{role}", detail, latched=True)
            self._journal(
                "role.failed",
                {
                    "role": role,
                    "cause": cause,
                    "max_restarts": self.sup.max_restarts,
                    "period_s": self.sup.restart_period_s,
                },
            )
            self._alert("critical", f"restart_intensity:{role}", detail)
            self._save_state()
        else:
            slot.status = "restarting"
            slot.restart_at = now + delay
            slot.restarts += 1
            if delay == 0:
                self._spawn(role)
        self._settle()

    # --- the clock ---

    def _on_tick(self) -> None:
        now = time.monotonic()
        for role, slot in self.slots.items():
            if slot.status == "restarting" and slot.restart_at is not None and slot.restart_at <= now:
                self._spawn(role)
            elif slot.status in ("running", "starting") and slot.pid is not None and slot.kill_cause is None:
                if slot.status == "running":
                    silent = now - (slot.last_heartbeat_at or slot.started_at)
                    limit = self.sup.heartbeat_timeout_s
                else:
                    silent, limit = now - slot.started_at, self.sup.start_timeout_s
                if silent > limit:
                    self._kill(role, slot, f"hung: no heartbeat for {silent:.1f}s")
                elif slot.status == "running" and silent > LATE_HEARTBEATS * self.sup.heartbeat_interval_s:
                    # Unsure whether the role works: stop trading before the hang is certain.
                    self._raise(f"role_down:{role}", f"{role} heartbeat late ({silent:.1f}s)", latched=False)
                elif slot.status == "running":
                    self.sm.cause_healthy(f"role_down:{role}", now)
            elif (
                slot.status == "stopping"
                and slot.stop_deadline is not None
                and now > slot.stop_deadline
                and slot.pid is not None
                and slot.kill_cause is None
            ):
                slot.shutdown_outcome = "killed after missing its shutdown deadline"
                self._kill(role, slot, f"missed its shutdown deadline of {slot.spec.shutdown_timeout_s:g}s")
        for code in self.sm.expire(now):
            self._journal("reason.cleared", {"code": code, "by": "cooldown"})
        self._settle()

    def _kill(self, role: str, slot: RoleSlot, cause: str) -> None:
        if slot.pid is None:
            return
        slot.kill_cause = cause
        log.error("killing %s (pid %d): %s", role, slot.pid, cause)
        kind = "role.heartbeat_lost" if cause.startswith("hung") else "role.killed"
        self._journal(kind, {"role": role, "pid": slot.pid, "cause": cause})
        if cause.startswith("hung"):
            self._raise(f"role_down:{role}", f"{role} {cause}; restarting", latched=False)
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.pid, signal.SIGKILL)

    # --- state ---

    def _raise(self, code: str, detail: str, *, latched: bool) -> None:
        if self.sm.raise_reason(code, detail, latched=latched, now_s=time.monotonic(), now_ns=time.time_ns()):
            self._journal("reason.raised", {"code": code, "detail": detail, "latched": latched})

    def _settle(self, *, force_publish: bool = False) -> None:
        previous = self.sm.state
        changed = self.sm.settle()
        if changed is not None:
            self._journal(
                "state.changed",
                {
                    "from": previous.value,
                    "to": changed.value,
                    "reasons": [r.code for r in self.sm.reasons(time.time_ns())],
                },
            )
            log.info("state %s -> %s", previous.value, changed.value)
        now = time.monotonic()
        if changed is not None or force_publish or now - self.last_published >= self.sup.state_interval_s:
            self._publish_state()

    def _publish_state(self) -> None:
        now_ns = time.time_ns()
        self.last_published = time.monotonic()
        body = SystemStateChanged(
            state=self.sm.state,
            reasons=self.sm.reasons(now_ns),
            paused=self.sm.paused,
            expires_ns=now_ns + int(self.sup.permit_ttl_s * 1e9),
            ttl_s=self.sup.permit_ttl_s,
            mode=self.cfg.host.mode,
        )
        self._publish(TOPIC_SYS_STATE, body)

    def _alert(self, severity: str, code: str, detail: str) -> None:
        self._journal("alert", {"severity": severity, "code": code, "detail": detail})
        self._publish(TOPIC_ALERT, AlertRaised(severity=severity, code=code, detail=detail))

    def _publish(self, topic: str, body: Body) -> None:
        seq = self.seq_by_topic[topic] = self.seq_by_topic.get(topic, 0) + 1  # numbered per topic
        self.io.send("pub", [topic.encode(), encode(make_envelope(body, src=SRC, seq=seq))])

    def _journal(self, kind: str, body: dict[str, Any]) -> None:
        try:
            self.journal.write(kind, body)
        except sqlite3.Error as e:
            log.error("journal write failed (%s): %s", kind, e)
            now = time.monotonic()
            self.sm.raise_reason(
                "journal_unwritable", f"journal write failed: {e}", latched=True, now_s=now, now_ns=time.time_ns()
            )

    def _save_state(self) -> None:
        latched = tuple(
            statefile.LatchedReason(r.code, r.detail)
            for r in self.sm.reasons(time.time_ns())
            if r.latched and r.code != "operator_pause"
        )
        state = statefile.SavedState(paused=self.sm.paused, latched=latched)
        try:
            statefile.save(self.state_path, state)
        except OSError as e:
            log.error("could not save state: %s", e)
            self._raise("state_unsaved", f"could not save {self.state_path}: {e}", latched=True)

    # --- Controllable (ctl commands) ---

    def status(self) -> dict[str, Any]:
        """The status document of ``ctl status``."""
        now, now_ns = time.monotonic(), time.time_ns()
        actors = {role: slot_status(slot, now) for role, slot in self.slots.items()}
        return {
            "state": self.sm.state.value,
            "reasons": [
                {"code": r.code, "detail": r.detail, "latched": r.latched, "since_ns": r.since_ns}
                for r in self.sm.reasons(now_ns)
            ],
            "paused": self.sm.paused,
            "mode": self.cfg.host.mode,
            "pid": os.getpid(),
            "uptime_s": round(now - self.started_at, 1),
            "actors": actors,
            "broker": broker_status(self.cfg.broker.kind, self.cfg.broker.api_url, self.broker_health),
            "account": to_jsonable(self.account) if self.account else None,
            "positions": None,
            "daily_pnl": None,
            "dd_zone": None,
        }

    def _refuse_when_stopping(self, what: str) -> None:
        if self.sm.state in (SystemState.SHUTTING_DOWN, SystemState.STOPPED):
            raise CommandError(REFUSED, f"cannot {what}: the host is shutting down")

    def pause(self) -> dict[str, Any]:
        """Set the operator pause latch."""
        self._refuse_when_stopping("pause")
        changed = self.sm.pause()
        if changed:
            self._journal("operator.pause", {})
            self._save_state()
        self._settle(force_publish=changed)
        message = "paused: no new entries until `tradehost ctl resume`" if changed else "already paused"
        return {"message": message, "changed": changed, "state": self.sm.state.value}

    def resume(self) -> dict[str, Any]:
        """Clear the pause and latched reasons; refused while a role is down for good."""
        self._refuse_when_stopping("resume")
        failed = [role for role, slot in self.slots.items() if slot.status == "failed"]
        if failed:
            raise CommandError(
                REFUSED,
                f"refused: {', '.join(failed)} is down after exceeding its restart intensity; "
                f"fix the cause, run `tradehost ctl restart {failed[0]}`, then resume",
            )
        cleared = self.sm.resume()
        if cleared:
            self._journal("operator.resume", {"cleared": cleared})
            self._save_state()
        self._settle(force_publish=bool(cleared))
        message = f"resumed; cleared {', '.join(cleared)}" if cleared else "nothing to resume"
        return {"message": message, "cleared": cleared, "state": self.sm.state.value}

    def restart_role(self, role: str) -> dict[str, Any]:
        """Stop ``role`` gracefully and start it again (also revives a failed role)."""
        self._refuse_when_stopping(f"restart {role}")
        slot = self.slots.get(role)
        if slot is None:
            raise CommandError(REFUSED, f"{role} is not part of this tree (broker.kind = {self.cfg.broker.kind!r})")
        if slot.kill_cause is not None:
            # Already being killed (hung, or past a deadline): that restart counts as a crash.
            return {"message": f"{role} is already being restarted ({slot.kill_cause})", "pid": slot.pid}
        slot.intensity.reset()
        self._journal("operator.restart", {"role": role, "status": slot.status})
        if slot.status in ("failed", "restarting", "stopped"):
            slot.restarts += 1
            self._spawn(role)
            self._settle()
            return {"message": f"{role} started (pid {slot.pid})", "pid": slot.pid}
        if slot.restart_after_stop:
            return {"message": f"{role} is already restarting", "pid": slot.pid}
        slot.restart_after_stop = True
        # The role stops working now: no trading until its successor has been healthy a while.
        self._raise(f"role_down:{role}", f"{role} is restarting (ctl restart)", latched=False)
        self._send_stop(role, slot, "ctl restart")
        self._settle()
        return {"message": f"{role} (pid {slot.pid}) is stopping and will be started again", "pid": slot.pid}

    def shutdown(self, trigger: str) -> dict[str, Any]:
        """Begin graceful shutdown (idempotent)."""
        previous = self.sm.state
        if not self.sm.begin_shutdown():
            log.info("shutdown already in progress (%s ignored)", trigger)
            return {"message": "already shutting down", "state": self.sm.state.value}
        self.shutdown_trigger = trigger
        self.shutdown_started = time.monotonic()
        self.state_before_shutdown = previous
        log.info("graceful shutdown (%s)", trigger)
        self._journal(
            "shutdown.started",
            {
                "trigger": trigger,
                "state_before": previous.value,
                "reasons": [r.code for r in self.sm.reasons(time.time_ns())],
            },
        )
        self._journal("state.changed", {"from": previous.value, "to": SystemState.SHUTTING_DOWN.value, "reasons": []})
        self._publish_state()  # revokes the permit at once
        for slot in self.slots.values():
            if slot.status in ("restarting", "failed"):
                slot.shutdown_outcome = f"was {slot.status}"
                slot.status = "stopped"
        self.stop_queue = list(reversed(self.roles))
        self._shutdown_continue()
        return {"message": "shutting down", "state": self.sm.state.value}

    # --- shutdown ---

    def _send_stop(self, role: str, slot: RoleSlot, reason: str) -> None:
        was_starting = slot.status == "starting"
        slot.status = "stopping"
        slot.stop_deadline = time.monotonic() + slot.spec.shutdown_timeout_s
        if was_starting and slot.pid is not None:
            # Not connected yet, so a StopRole would be dropped by the ROUTER; SIGTERM is the
            # same graceful path in the child (and ends it outright if it is still importing).
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.pid, signal.SIGTERM)
            return
        env = make_envelope(StopRole(deadline_s=slot.spec.shutdown_timeout_s, reason=reason), src=SRC)
        self.io.send("control", [slot.identity, encode(env)])

    def _shutdown_continue(self) -> None:
        while self.stop_queue:
            role = self.stop_queue[0]
            slot = self.slots[role]
            if slot.pid is None:
                self.stop_queue.pop(0)
                continue
            if slot.status != "stopping":
                self._send_stop(role, slot, self.shutdown_trigger)
            return
        self._finish_shutdown()

    def _finish_shutdown(self) -> None:
        if self.sm.state is SystemState.STOPPED:
            return
        self._save_state()
        elapsed_ms = round((time.monotonic() - self.shutdown_started) * 1000, 1)
        summary = {
            "trigger": self.shutdown_trigger,
            "elapsed_ms": elapsed_ms,
            "state_before": self.state_before_shutdown.value if self.state_before_shutdown else None,
            "latched": [r.code for r in self.sm.reasons(time.time_ns()) if r.latched],
            "roles": {role: slot.shutdown_outcome or "not running" for role, slot in self.slots.items()},
            "restarts": {role: slot.restarts for role, slot in self.slots.items()},
        }
        self._journal("shutdown.completed", summary)
        self.sm.stopped()
        self._journal(
            "state.changed", {"from": SystemState.SHUTTING_DOWN.value, "to": SystemState.STOPPED.value, "reasons": []}
        )
        self._publish_state()
        log.info("shutdown complete in %.0f ms", elapsed_ms)
        self.done.set()
