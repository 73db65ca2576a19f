"""Watchdog role: watches the tree on its own, asks the supervisor for NO_TRADE, and sends every alert mail.

On every heartbeat tick the watchdog reads its checks (``actors.roles.watchdog.checks``,
``actors.roles.watchdog.memory``, ``actors.roles.watchdog.progress``): every role's heartbeats as heard on the bus, the
supervisor's own ``sys.state``, memory per process (root, emulator, every role; psutil, RSS against
a limit and USS growth), the broker connections as the feed and the reconciler report them, a bar
per instrument while the market is open, free disk of the run directory and the clock against the
broker's price times. A breach becomes a request to the supervisor on the control channel
(``NoTradeRequested`` with a reason code, ``RestartRequested`` for a role over its memory limit), a
recovery becomes ``CauseHealthy``; ``ctl status`` shows every check through the ``WatchdogReport``
sent with each heartbeat. The watchdog is also the one alert sender: every ``AlertRaised`` /
``AlertCleared`` on ``alert`` (and its own ``supervisor_silent``, which the supervisor cannot
relay) goes through ``AlertPolicy`` (dedup, hourly budget, digest, recovery), ``compose_mail`` and
a ``Mailer`` whose threads (and spool, ``<run_dir>/alert-spool``) this role owns; alerts published
before it listened (the host's start, its own restart) are caught up from the journal. Without
``alerts.smtp_host`` alerts are only logged (and journaled by their sources). Secrets (the OANDA
token, the SMTP password) are scrubbed from every mail and log line.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from typing import Any, ClassVar

import psutil

from actors.alerting.composition import MailContext
from actors.alerting.config import AlertsConfig
from actors.alerting.desk import AlertDesk, positions_of
from actors.broker.config import BrokerConfig, load_credentials
from actors.core.config import FeedConfig, WatchdogConfig
from actors.roles.watchdog.checks import (
    ROOT,
    Action,
    ClearOwnAlert,
    HeartbeatCheck,
    Judge,
    RaiseOwnAlert,
    Reading,
    ReportHealthy,
    RequestNoTrade,
    RestartRole,
    SupervisorCheck,
    Verdict,
    unjudged,
)
from actors.roles.watchdog.memory import MemoryCheck
from actors.roles.watchdog.progress import (
    AccountCheck,
    BarCheck,
    ClockSkewCheck,
    ConnectionCheck,
    DecisionCheck,
    disk_reading,
)
from actors.runtime.actor import NoResults, RoleActor
from actors.runtime.messages import (
    TOPIC_ALERT,
    TOPIC_HEARTBEAT,
    TOPIC_MD_BAR,
    TOPIC_MD_BARS,
    TOPIC_MD_HEALTH,
    TOPIC_MD_TICK,
    TOPIC_MODEL_SKIPPED,
    TOPIC_RECON_HEALTH,
    TOPIC_RECON_STATE,
    TOPIC_RISK_INTENT,
    TOPIC_RISK_SKIP,
    AccountSnapshot,
    AlertCleared,
    AlertRaised,
    Bar,
    BarsClosed,
    BrokerHealth,
    CauseHealthy,
    Envelope,
    Heartbeat,
    IntentSkipped,
    NoTradeRequested,
    PriceTick,
    RestartRequested,
    RiskIntent,
    SignalSkipped,
    SystemState,
    SystemStateChanged,
    WatchdogReport,
)
from actors.runtime.registry import EMULATOR, role_names

log = logging.getLogger(__name__)

JOURNAL_INDEX_ROWS_PER_TICK = 5_000  # a tick's share of indexing the journal (~0.1 s at most)

MB = 1_048_576
STALL_S = 2.5  # a tick this late means the watchdog itself did not run: silences meanwhile say nothing
# Wall seconds the host may take to publish a closed bar on top of feed.bar_wait_s (requests, the
# bus, a loaded machine): against an accelerated emulator the bar_overdue grace is at least
# speed x (feed.bar_wait_s + this) market seconds.
BAR_SLACK_S = 10.0
DECIDERS = ("model", "risk")  # a restart of either loses the bars it was given
FLUSH_WAIT_S = 0.5  # a mail waits this long at most for the sys.state that follows its alert
NOT_JUDGED = "not judged: the bus is silent (no fresh sys.state), so this silence says nothing about the roles"


def market_speed(broker: BrokerConfig) -> float:
    """Market seconds per wall second: the emulator's ``speed``, 1 for a real broker."""
    return broker.emulator.speed if broker.kind == "emulator" else 1.0


def skew_off(cfg: WatchdogConfig, broker: BrokerConfig) -> str:
    """Why the clock-skew check is off (empty: it is on)."""
    if cfg.max_clock_skew_s == 0:
        return "watchdog.max_clock_skew_s = 0"
    if broker.kind == "emulator":
        emulator = broker.emulator
        if emulator.speed != 1:
            return f"the emulator runs at {emulator.speed:g}x: its prices are not on the wall clock"
        if emulator.start or emulator.data:
            return "the emulator starts at a set time or replays files: its prices are not on the wall clock"
    return ""


class WatchdogActor(RoleActor[WatchdogConfig, NoResults]):
    """The watchdog's actor (see the module docstring)."""

    ROLE: ClassVar[str] = "watchdog"
    TOPICS: ClassVar[tuple[str, ...]] = (
        TOPIC_HEARTBEAT,
        TOPIC_MD_HEALTH,
        TOPIC_RECON_HEALTH,
        TOPIC_MD_TICK,
        TOPIC_MD_BAR,
        TOPIC_MD_BARS,
        TOPIC_MODEL_SKIPPED,
        TOPIC_RISK_INTENT,
        TOPIC_RISK_SKIP,
        TOPIC_RECON_STATE,
        TOPIC_ALERT,
    )
    CONFIG: ClassVar[type[WatchdogConfig]] = WatchdogConfig

    def on_start(self) -> None:
        """Set up the checks and start the alert mailer."""
        cfg = self.cfg
        self.broker_cfg = self.shared("broker", BrokerConfig)
        feed = self.shared("feed", FeedConfig)
        alerts = self.shared("alerts", AlertsConfig)
        credentials = load_credentials(os.environ, kind=self.broker_cfg.kind, token_file=self.broker_cfg.token_file)
        self.account_id = credentials.account_id
        now = self.clock.monotonic()
        self.started_s = self.last_tick_s = now
        self.tick_s = float("inf")  # the shortest tick gap seen: the heartbeat interval
        watched = [r for r in role_names(with_emulator=self.broker_cfg.kind == "emulator") if r != self.ROLE]
        self.heartbeats = HeartbeatCheck(watched, silence_s=cfg.heartbeat_silence_s, now_s=now)
        self.supervisor = SupervisorCheck(silence_s=cfg.supervisor_silence_s, now_s=now)
        self.memory = MemoryCheck(
            rss_limit_mb=cfg.rss_limit_mb,
            max_growth_mb_per_h=cfg.max_growth_mb_per_h,
            growth_window_s=cfg.growth_window_s,
            growth_by_design=frozenset({EMULATOR}),
        )
        self.connections = ConnectionCheck(down_alert_s=cfg.stream_down_alert_s)
        self.bars = BarCheck(
            feed.instruments,
            granularity=feed.granularity,
            speed=market_speed(self.broker_cfg),
            grace_s=cfg.bar_grace_s,
            wall_floor_s=feed.bar_wait_s + BAR_SLACK_S,
        )
        self.skew = ClockSkewCheck(max_skew_s=cfg.max_clock_skew_s, off=skew_off(cfg, self.broker_cfg))
        self.decisions = DecisionCheck(feed.instruments, deadline_s=cfg.decision_deadline_s)
        self.account_reads = AccountCheck(max_age_s=cfg.account_max_age_s, now_s=now)
        self.judge = Judge()
        self.run_dir = self.runtime.journal_db.path.parent
        self.procs: dict[int, psutil.Process] = {}
        self.last_uss_s = float("-inf")
        self.bus_alive = False
        self.state: SystemStateChanged | None = None
        self.account: AccountSnapshot | None = None
        self.readings: list[Reading] = []
        self.desk = AlertDesk(
            alerts,
            run_dir=self.run_dir,
            journal=self.runtime.journal,
            recent=self.runtime.journal_db.recent,
            context=self._mail_context,
            wall_ns=self.clock.time_ns,
            secrets=(credentials.token,),
            environ=os.environ,
        )
        self.desk.start()
        self.runtime.journal(
            "watchdog.started",
            {"mail": "on" if self.desk.enabled else "off", "watched": watched, "clock_skew": self.skew.off or "on"},
        )

    # --- what the bus says ---

    def on_message(self, envelope: Envelope) -> None:
        """Heartbeats, health, prices, bars, the account and alerts."""
        body = envelope.body
        now = self.clock.monotonic()
        if isinstance(body, Heartbeat):
            if body.role in DECIDERS and self.heartbeats.pids().get(body.role, body.pid) != body.pid:
                self.decisions.forget()  # a new process: the bus does not replay what the old one missed
            self.heartbeats.heard(body.role, body.pid, now)
        elif isinstance(body, PriceTick):
            self.bars.price(body.instrument, body.ts, body.tradeable, now)
            self.skew.price(body.instrument, body.ts, self.clock.time_ns(), tradeable=body.tradeable, now_s=now)
        elif isinstance(body, Bar):
            self.bars.bar(body.instrument, body.ts, now)
        elif isinstance(body, BarsClosed):
            self.decisions.closed(body.ts, body.published, now)
        elif isinstance(body, RiskIntent | IntentSkipped | SignalSkipped):
            self.decisions.outcome(body.instrument, body.bar_ts, now)
        elif isinstance(body, BrokerHealth):
            if body.source == "stream" and body.connected:
                self.skew.reconnected()  # on change only: the stream's next prices are a snapshot
            self.connections.health(body.source, connected=body.connected, detail=body.detail, now_s=now)
        elif isinstance(body, AccountSnapshot):
            self.account = body
            self.account_reads.read(now)
        elif isinstance(body, AlertRaised):
            self.desk.raised(body.code, body.severity, body.detail, ts_ns=envelope.ts, src=envelope.src)
        elif isinstance(body, AlertCleared):
            self.desk.cleared(body.code, body.detail, ts_ns=envelope.ts, src=envelope.src)

    def on_state_seen(self, message: SystemStateChanged) -> None:
        """Every ``sys.state``: the supervisor speaks."""
        self.supervisor.heard(self.clock.monotonic(), message.ttl_s)
        self.state = message
        self.desk.flush()

    # --- the checks, every heartbeat ---

    def on_heartbeat(self) -> None:
        """Read every check, act on changes, hand mail decisions on, report to the supervisor.

        Raises:
            RuntimeError: the mailer died (the role fails and the supervisor restarts it).
        """
        why = self.desk.dead()
        if why is not None:
            raise RuntimeError(why)
        now = self.clock.monotonic()
        gap_s, self.last_tick_s = now - self.last_tick_s, now
        self.tick_s = min(self.tick_s, gap_s) if gap_s > 0 else self.tick_s
        if gap_s > max(STALL_S, 3 * self.tick_s):
            log.warning("the watchdog itself did not run for %.1f s; silences meanwhile are not counted", gap_s)
            self.runtime.journal("watchdog.stalled", {"stalled_s": round(gap_s, 2)})
            self._grace(now)
        alive = self.supervisor.bus_alive(now)
        if alive and not self.bus_alive:
            self._grace(now)
        self.bus_alive = alive
        if not self.desk.caught_up and (self.state is not None or now - self.started_s > self.cfg.supervisor_silence_s):
            caught = self.desk.catch_up()
            if caught:
                self.runtime.journal("watchdog.caught_up", {"alerts": caught})
        self.readings = self._read(now)
        stopping = self.state is not None and self.state.state in (SystemState.SHUTTING_DOWN, SystemState.STOPPED)
        if not stopping:  # the roles stop on purpose: their silence is no fault
            self._act(self.readings, now)
        self._index_journal()
        self.desk.tick()
        self.desk.flush(older_than_s=FLUSH_WAIT_S if self._state_known(now) else 0.0)
        checks = tuple(r.result() for r in self.readings)
        self.runtime.to_supervisor(WatchdogReport(checks=checks, **self.desk.report()))

    def _index_journal(self) -> None:
        # The rows written since the last tick go into the journal's word index here, a few at a
        # time, so an alert mail's journal look-up (``Journal.recent``) finds it current.
        try:
            self.runtime.journal_db.index_new_rows(max_rows=JOURNAL_INDEX_ROWS_PER_TICK)
        except sqlite3.Error as e:  # the look-up itself indexes what is left (or scans)
            log.warning("journal word index not brought up to date: %s", e)

    def _grace(self, now: float) -> None:
        self.heartbeats.grace(now)
        self.bars.grace(now)
        self.decisions.grace(now)
        self.account_reads.grace(now)

    def _read(self, now: float) -> list[Reading]:
        readings = [self.supervisor.reading(now)]
        heartbeats = self.heartbeats.readings(now, bus_heard_s=self.supervisor.last_heard_s)
        bus_checks = heartbeats + self.bars.readings(now) + self.decisions.readings(now)
        bus_checks.append(self.account_reads.reading(now))
        readings += bus_checks if self.bus_alive else unjudged(bus_checks, NOT_JUDGED)
        self._sample_memory(now)
        readings += self.memory.readings(now)
        readings += self.connections.readings(now)
        readings.append(disk_reading(self._free_mb(), min_free_mb=self.cfg.min_free_disk_mb, path=str(self.run_dir)))
        readings.append(self.skew.reading(now))
        return readings

    def _sample_memory(self, now: float) -> None:
        wanted = {ROOT: self.runtime.root_pid, self.ROLE: os.getpid(), **self.heartbeats.pids()}
        sample_uss = now - self.last_uss_s >= self.cfg.memory_sample_s
        if sample_uss:
            self.last_uss_s = now
        for pid in set(self.procs) - set(wanted.values()):
            del self.procs[pid]
        samples: list[dict[str, Any]] = []
        for name, pid in wanted.items():
            try:
                proc = self.procs.get(pid)
                if proc is None:
                    proc = self.procs[pid] = psutil.Process(pid)
                rss_mb = proc.memory_info().rss / MB
                self.memory.rss(name, pid, rss_mb)
                if sample_uss:
                    uss_mb = proc.memory_full_info().uss / MB
                    self.memory.uss(name, pid, uss_mb, now)
                    samples.append({"name": name, "pid": pid, "rss_mb": round(rss_mb, 2), "uss_mb": round(uss_mb, 2)})
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                self.procs.pop(pid, None)
                self.memory.gone(name)
        if samples:  # one row per sample of every process: `tradehost report` fits its slopes
            self.runtime.journal("watchdog.memory", {"processes": samples})

    def _free_mb(self) -> float | None:
        try:
            return shutil.disk_usage(self.run_dir).free / MB
        except OSError:
            return None

    def _act(self, readings: list[Reading], now: float) -> None:
        before = {r.name: self.judge.verdict(r.name) for r in readings}
        reasons = None
        if self.bus_alive and self.state is not None:
            reasons = {r.code: r.latched for r in self.state.reasons}
        actions = self.judge.judge(readings, now, reasons)
        for r in readings:
            was = before[r.name]
            if was is not r.verdict and Verdict.BREACH in (was, r.verdict) and r.verdict is not Verdict.UNKNOWN:
                body = {"check": r.name, "verdict": r.verdict.value, "value": r.value, "limit": r.limit}
                self.runtime.journal("watchdog.check", {**body, "detail": r.detail, "code": r.code})
                level = logging.WARNING if r.verdict is Verdict.BREACH else logging.INFO
                log.log(level, "check %s: %s (%s)", r.name, r.verdict.value, r.detail)
        for action in actions:
            self._do(action)

    def _do(self, action: Action) -> None:
        now_ns = self.clock.time_ns()
        if isinstance(action, RequestNoTrade):
            self.runtime.to_supervisor(NoTradeRequested(code=action.code, detail=action.detail))
        elif isinstance(action, ReportHealthy):
            self.runtime.to_supervisor(CauseHealthy(code=action.code))
        elif isinstance(action, RestartRole):
            self.runtime.journal("watchdog.restart_requested", {"role": action.role, "reason": action.reason})
            self.runtime.to_supervisor(RestartRequested(role=action.role, reason=action.reason))
        elif isinstance(action, RaiseOwnAlert):
            body = {"severity": action.severity, "code": action.code, "detail": action.detail}
            self.runtime.journal("alert", body)
            self.desk.raised(action.code, action.severity, action.detail, ts_ns=now_ns, src=self.ROLE)
        elif isinstance(action, ClearOwnAlert):
            self.runtime.journal("alert.cleared", {"code": action.code})
            self.desk.cleared(action.code, action.detail, ts_ns=now_ns, src=self.ROLE)

    def _state_known(self, now: float) -> bool:
        # The last sys.state still stands: fresh, and the supervisor is not silent.
        return self.supervisor.bus_alive(now) and self.supervisor.silent_s(now) <= self.cfg.supervisor_silence_s

    def _mail_context(self) -> MailContext:
        state = self.state
        known = state is not None and self._state_known(self.clock.monotonic())
        positions, pnl = positions_of(self.account)
        return MailContext(
            account_id=self.account_id,
            mode=state.mode if state is not None else self.runtime.mode,
            state=state.state.value if known and state is not None else "UNKNOWN",
            reasons=state.reasons if known and state is not None else (),
            positions=positions,
            daily_pnl=pnl,
            currency=self.account.currency if self.account is not None else "",
        )

    def on_shutdown(self, deadline_s: float) -> str:
        """Let queued mail go out, then stop the mailer within the deadline (unsent mail stays spooled)."""
        return self.desk.stop(deadline_s * 0.8)


ACTOR = WatchdogActor
