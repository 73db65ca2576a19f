"""The watchdog's checks, pure: readings with a verdict, and what to do when a verdict changes.

Each check keeps what the watchdog has heard (heartbeats on the bus, the supervisor's
``sys.state``, memory samples, connection health, prices and bars) and turns it into
``Reading`` records at a time passed in: a name, the last value, the limit, a verdict (``ok``,
``breach`` or ``unknown``) and what a breach means: the no-trade reason code to ask the
supervisor for (``heartbeat_missing:feed``), a role to restart, or an alert of the watchdog's own
(``supervisor_silent``, which the supervisor cannot relay). ``Judge`` turns readings into
``Action`` records on every verdict change, and re-asserts them against the reasons of the last
``sys.state`` (a request lost while the supervisor was busy or restarting is sent again; a
transient reason whose cause is healthy is reported healthy again, so a restarted watchdog leaves
nothing behind). Nothing here reads a clock, a socket, a process table or a disk: the role
(``actors.roles.watchdog.actor``) passes every value and every time in.

The checks themselves live beside this module by theme: ``actors.roles.watchdog.memory`` (RSS and USS
growth) and ``actors.roles.watchdog.progress`` (connections, bars, decisions, account reads, disk, clock).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from actors.runtime.messages import CheckResult

__all__ = [
    "ROOT",
    "SUPERVISOR_SILENT",
    "WATCHDOG_CODES",
    "Action",
    "ClearOwnAlert",
    "HeartbeatCheck",
    "Judge",
    "RaiseOwnAlert",
    "Reading",
    "ReportHealthy",
    "RequestNoTrade",
    "RestartRole",
    "SupervisorCheck",
    "Verdict",
    "unjudged",
]

ROOT = "root"  # the name of the root process (supervisor, bus, ctl) among the memory checks
SUPERVISOR_SILENT = "supervisor_silent"  # the watchdog's own alert: it mails this itself
# The reason codes the watchdog asks for (the prefix before ':'; supervisor.health.REASONS says
# which latch).
WATCHDOG_CODES: frozenset[str] = frozenset(
    {
        "heartbeat_missing",
        "memory_limit",
        "memory_growth",
        "disk_low",
        "clock_skew",
        "bar_overdue",
        "stream_silent",
        "decision_overdue",
        "account_stale",
    }
)
RESEND_S = 3.0  # a request or healthy report the last sys.state does not reflect yet goes again after this
DEFAULT_TTL_S = 3.0  # how long a sys.state counts as fresh when it carries no ttl


class Verdict(enum.StrEnum):
    """A check's verdict (wire vocabulary: ``CheckResult.verdict``)."""

    OK = "ok"
    BREACH = "breach"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One check at one moment, and what its breach means.

    Attributes:
        name: the check (``heartbeat:feed``, ``memory_rss:root``, ``bar:EUR_USD`` ...).
        value: the last value, with its unit.
        limit: the limit, with its unit.
        verdict: ok, breach or unknown.
        detail: one sentence an operator understands.
        code: the no-trade reason to ask for on a breach (None: nothing to ask).
        restart: the role to restart on a breach (None: no restart).
        own_alert: the watchdog's own alert code on a breach (None: the supervisor alerts).
    """

    name: str
    value: str
    limit: str
    verdict: Verdict
    detail: str = ""
    code: str | None = None
    restart: str | None = None
    own_alert: str | None = None

    def result(self) -> CheckResult:
        """The wire form for ``WatchdogReport``."""
        return CheckResult(
            name=self.name, value=self.value, limit=self.limit, verdict=self.verdict.value, detail=self.detail
        )


def unjudged(readings: Iterable[Reading], why: str) -> list[Reading]:
    """The readings with verdict ``unknown`` and ``why`` as detail (a check that cannot be judged now)."""
    return [replace(r, verdict=Verdict.UNKNOWN, detail=why) for r in readings]


# --- Actions -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestNoTrade:
    """Ask the supervisor for NO_TRADE with reason ``code`` (``NoTradeRequested``)."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportHealthy:
    """Tell the supervisor the cause of ``code`` is healthy (``CauseHealthy``; its cool-down starts)."""

    code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartRole:
    """Ask the supervisor to restart ``role`` gracefully (``RestartRequested``)."""

    role: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RaiseOwnAlert:
    """An alert of the watchdog's own (the supervisor cannot relay it)."""

    code: str
    severity: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClearOwnAlert:
    """The cause of an own alert is healthy again."""

    code: str
    detail: str


Action = RequestNoTrade | ReportHealthy | RestartRole | RaiseOwnAlert | ClearOwnAlert


class Judge:
    """Turns readings into actions: on every verdict change, and against the last ``sys.state``.

    - Into ``breach``: ask for the reason, restart the role, raise the own alert (as the reading
      says).
    - From ``breach`` to ``ok`` (with or without ``unknown`` between them): report the cause
      healthy, clear the own alert. ``unknown`` changes nothing: a reason stays until its cause
      is known to be healthy; a breach after ``unknown`` is a new breach (a new process, say).
    - While ``breach`` and the last ``sys.state`` lacks the reason (a lost request, a supervisor
      restart, an operator's ``ctl resume`` while the cause persists): ask again, at most every
      ``resend_s``.
    - While ``ok`` and the last ``sys.state`` holds the transient reason: report healthy again, at
      most every ``resend_s`` (the supervisor ignores a repeat). The same for a transient reason
      of the watchdog's (``WATCHDOG_CODES``) that no reading claims any more.

    Args:
        resend_s: the least time between two re-sends about one code.
    """

    def __init__(self, *, resend_s: float = RESEND_S) -> None:
        self.resend_s = resend_s
        self._verdicts: dict[str, Verdict] = {}
        self._known: dict[str, Verdict] = {}  # the last verdict that was not unknown
        self._sent: dict[str, float] = {}  # code -> when a request or healthy report last went out

    def verdict(self, name: str) -> Verdict | None:
        """The last verdict of check ``name`` (None: never judged)."""
        return self._verdicts.get(name)

    def judge(self, readings: Sequence[Reading], now_s: float, reasons: Mapping[str, bool] | None) -> list[Action]:
        """The actions for this round of readings.

        Args:
            readings: every check's reading now.
            now_s: monotonic seconds.
            reasons: code -> latched of the last fresh ``sys.state``; None when there is none (the
                re-sends wait for one).

        Returns:
            The actions, in the order of the readings.
        """
        out: list[Action] = []
        claimed: set[str] = set()
        for r in readings:
            previous, known = self._verdicts.get(r.name), self._known.get(r.name)
            self._verdicts[r.name] = r.verdict
            if r.verdict is not Verdict.UNKNOWN:
                self._known[r.name] = r.verdict
            if r.code is not None:
                claimed.add(r.code)
            if r.verdict is Verdict.BREACH and previous is not Verdict.BREACH:
                out.extend(self._breached(r, now_s))
            elif r.verdict is Verdict.OK and known is Verdict.BREACH:
                out.extend(self._recovered(r, now_s))
            elif r.code is not None and reasons is not None:
                out.extend(self._reassert(r, now_s, reasons))
        for code, latched in (reasons or {}).items():
            ours = code.partition(":")[0] in WATCHDOG_CODES
            if ours and not latched and code not in claimed and self._due(code, now_s):
                out.append(ReportHealthy(code=code))
        return out

    def _breached(self, r: Reading, now_s: float) -> list[Action]:
        out: list[Action] = []
        if r.code is not None:
            self._sent[r.code] = now_s
            out.append(RequestNoTrade(code=r.code, detail=r.detail))
        if r.restart is not None:
            out.append(RestartRole(role=r.restart, reason=r.detail))
        if r.own_alert is not None:
            out.append(RaiseOwnAlert(code=r.own_alert, severity="critical", detail=r.detail))
        return out

    def _recovered(self, r: Reading, now_s: float) -> list[Action]:
        out: list[Action] = []
        if r.code is not None:
            self._sent[r.code] = now_s
            out.append(ReportHealthy(code=r.code))
        if r.own_alert is not None:
            out.append(ClearOwnAlert(code=r.own_alert, detail=r.detail))
        return out

    def _reassert(self, r: Reading, now_s: float, reasons: Mapping[str, bool]) -> list[Action]:
        code = r.code
        if code is None:
            return []
        if r.verdict is Verdict.BREACH and code not in reasons and self._due(code, now_s):
            return [RequestNoTrade(code=code, detail=r.detail)]
        if r.verdict is Verdict.OK and reasons.get(code) is False and self._due(code, now_s):
            return [ReportHealthy(code=code)]
        return []

    def _due(self, code: str, now_s: float) -> bool:
        last = self._sent.get(code)
        if last is not None and now_s - last < self.resend_s:
            return False
        self._sent[code] = now_s
        return True


# --- Heartbeats and the supervisor ---------------------------------------------------------------


def _age(seconds: float) -> str:
    return f"{seconds:.1f} s"


class HeartbeatCheck:
    """Every role's heartbeats as heard on the bus (independently of the supervisor's own count).

    A role not heard for longer than ``silence_s`` is a breach (``heartbeat_missing:<role>``); a
    role never heard counts from when the check started. ``grace`` starts every clock over (the
    bus or the watchdog itself did not run: that silence says nothing about the roles).

    Args:
        roles: the roles to hear (not the watchdog itself).
        silence_s: the longest silence that is still fine.
        now_s: monotonic seconds at the start.
    """

    def __init__(self, roles: Sequence[str], *, silence_s: float, now_s: float) -> None:
        self.silence_s = silence_s
        self._since = dict.fromkeys(roles, now_s)  # role -> last heartbeat, or the start
        self._heard: dict[str, int] = {}  # role -> pid of its last heartbeat

    def heard(self, role: str, pid: int, now_s: float) -> None:
        """A heartbeat of ``role`` (process ``pid``) arrived."""
        if role in self._since:
            self._since[role] = max(self._since[role], now_s)
            self._heard[role] = pid

    def pids(self) -> dict[str, int]:
        """Role -> the pid of its last heartbeat."""
        return dict(self._heard)

    def grace(self, now_s: float) -> None:
        """Start every role's silence over at ``now_s``."""
        for role, since in self._since.items():
            self._since[role] = max(since, now_s)

    def readings(self, now_s: float, *, bus_heard_s: float | None = None) -> list[Reading]:
        """One reading per role.

        Args:
            now_s: now.
            bus_heard_s: when the bus last carried the supervisor's ``sys.state``: a role's silence
                counts only up to then (after it, the bus itself may be what is silent).
        """
        until_s = now_s if bus_heard_s is None else min(now_s, bus_heard_s)
        out = []
        for role, since in self._since.items():
            silent_s = max(0.0, until_s - since)
            heard = role in self._heard
            breach = silent_s > self.silence_s
            if breach:
                what = f"for {silent_s:.0f} s" if heard else f"since the watchdog started {silent_s:.0f} s ago"
                detail = f"no heartbeat of {role} on the bus {what} (limit {self.silence_s:g} s)"
            else:
                detail = f"last heartbeat of {role} {silent_s:.1f} s ago" if heard else f"{role}: none heard yet"
            out.append(
                Reading(
                    name=f"heartbeat:{role}",
                    value=_age(silent_s) if heard else f"none for {_age(silent_s)}",
                    limit=f"{self.silence_s:g} s",
                    verdict=Verdict.BREACH if breach else Verdict.OK,
                    detail=detail,
                    code=f"heartbeat_missing:{role}",
                )
            )
        return out


class SupervisorCheck:
    """The supervisor's own ``sys.state``, which it publishes at least every second.

    Silence longer than ``silence_s`` is a breach of the watchdog's own alert ``supervisor_silent``
    (the supervisor cannot relay an alert about itself; no reason is asked for: nobody would hear
    the request, and the expired permits already stop trading). The bus lives in the root
    process too, so while ``sys.state`` is stale (older than its ``ttl_s``) the other bus-based
    checks cannot be judged (``bus_alive``).

    Args:
        silence_s: the longest silence that is still fine.
        now_s: monotonic seconds at the start.
    """

    def __init__(self, *, silence_s: float, now_s: float) -> None:
        self.silence_s = silence_s
        self._since = now_s
        self._ttl_s = DEFAULT_TTL_S
        self.heard_once = False

    def heard(self, now_s: float, ttl_s: float = 0.0) -> None:
        """A ``sys.state`` from the supervisor arrived (``ttl_s``: its permit's time to live)."""
        self._since = max(self._since, now_s)
        self._ttl_s = ttl_s if ttl_s > 0 else DEFAULT_TTL_S
        self.heard_once = True

    @property
    def last_heard_s(self) -> float | None:
        """When the last ``sys.state`` arrived (None: none yet)."""
        return self._since if self.heard_once else None

    def silent_s(self, now_s: float) -> float:
        """Seconds since the last ``sys.state`` (or since the start)."""
        return max(0.0, now_s - self._since)

    def bus_alive(self, now_s: float) -> bool:
        """True while the last ``sys.state`` is fresh (younger than its ``ttl_s``)."""
        return self.heard_once and self.silent_s(now_s) <= self._ttl_s

    def reading(self, now_s: float) -> Reading:
        """The check's reading."""
        silent_s = self.silent_s(now_s)
        breach = silent_s > self.silence_s
        if breach:
            detail = (
                f"no sys.state from the supervisor for {silent_s:.0f} s (limit {self.silence_s:g} s): the root "
                "process is stopped, hung or starved; every trading permit has expired, so no new trades are "
                "opened, and nothing restarts a failed role meanwhile"
            )
        else:
            detail = f"last sys.state {silent_s:.1f} s ago"
        return Reading(
            name="supervisor",
            value=_age(silent_s),
            limit=f"{self.silence_s:g} s",
            verdict=Verdict.BREACH if breach else Verdict.OK,
            detail=detail,
            own_alert=SUPERVISOR_SILENT,
        )
