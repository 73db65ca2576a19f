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
(``actors.watchdog``) passes every value and every time in.
"""

from __future__ import annotations

import enum
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from actors import calendar
from actors.messages import CheckResult

__all__ = [
    "ROOT",
    "SUPERVISOR_SILENT",
    "WATCHDOG_CODES",
    "AccountCheck",
    "Action",
    "BarCheck",
    "ClearOwnAlert",
    "ClockSkewCheck",
    "ConnectionCheck",
    "DecisionCheck",
    "HeartbeatCheck",
    "Judge",
    "MemoryCheck",
    "RaiseOwnAlert",
    "Reading",
    "ReportHealthy",
    "RequestNoTrade",
    "RestartRole",
    "SupervisorCheck",
    "Verdict",
    "disk_reading",
    "growth_mb_per_h",
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
SKEW_WINDOW_S = 60.0  # clock skew: prices of the last minute ...
SKEW_MIN_SAMPLES = 5  # ... at least this many, else unknown
_NS = 1_000_000_000


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


# --- Memory --------------------------------------------------------------------------------------


def growth_mb_per_h(samples: Sequence[tuple[float, float]]) -> float | None:
    """The least-squares slope of ``(seconds, MB)`` samples, in MB per hour.

    Returns:
        The slope, or None with fewer than two distinct times.
    """
    n = len(samples)
    if n < 2:
        return None
    mean_t = sum(t for t, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var <= 0.0:
        return None
    cov = sum((t - mean_t) * (y - mean_y) for t, y in samples)
    return cov / var * 3600.0


@dataclass(slots=True)
class _Process:
    pid: int
    rss_mb: float | None = None
    first_uss_s: float | None = None
    uss: deque[tuple[float, float]] = field(default_factory=deque)


class MemoryCheck:
    """Memory per process: RSS against a limit, and the growth of USS (least squares, MB/h).

    RSS over ``rss_limit_mb`` is a breach of ``memory_limit:<name>`` and the role is restarted
    (the root, named ``ROOT``, is never restarted: it would take the tree down). USS (what the
    process alone holds: forked children share pages, so their RSS overstates them) is sampled
    over ``growth_window_s``; its slope above ``max_growth_mb_per_h`` is a breach of
    ``memory_growth:<name>``. The slope is judged only once the samples of one process cover the
    whole window, so a role's warm-up after a (re)start is never taken for a leak. A new pid
    starts the samples over.

    Args:
        rss_limit_mb: the RSS limit of every process.
        max_growth_mb_per_h: the largest USS slope that is still fine.
        growth_window_s: the window of the slope.
    """

    def __init__(self, *, rss_limit_mb: float, max_growth_mb_per_h: float, growth_window_s: float) -> None:
        self.rss_limit_mb = rss_limit_mb
        self.max_growth_mb_per_h = max_growth_mb_per_h
        self.growth_window_s = growth_window_s
        self._procs: dict[str, _Process] = {}
        self._gone: set[str] = set()

    def _process(self, name: str, pid: int) -> _Process:
        proc = self._procs.get(name)
        if proc is None or proc.pid != pid:
            proc = self._procs[name] = _Process(pid)
        self._gone.discard(name)
        return proc

    def rss(self, name: str, pid: int, rss_mb: float) -> None:
        """The RSS of process ``name`` (pid ``pid``) now."""
        self._process(name, pid).rss_mb = rss_mb

    def uss(self, name: str, pid: int, uss_mb: float, now_s: float) -> None:
        """A USS sample of process ``name`` (pid ``pid``) at ``now_s``."""
        proc = self._process(name, pid)
        if proc.first_uss_s is None:
            proc.first_uss_s = now_s
        proc.uss.append((now_s, uss_mb))
        while proc.uss and proc.uss[0][0] < now_s - self.growth_window_s:
            proc.uss.popleft()

    def gone(self, name: str) -> None:
        """Process ``name`` is gone (or cannot be read): its readings are unknown until a new pid."""
        self._gone.add(name)

    def readings(self, now_s: float) -> list[Reading]:
        """Two readings per process: RSS and USS growth."""
        out: list[Reading] = []
        for name, proc in self._procs.items():
            out.append(self._rss_reading(name, proc))
            out.append(self._growth_reading(name, proc, now_s))
        return out

    def _rss_reading(self, name: str, proc: _Process) -> Reading:
        def reading(value: str, verdict: Verdict, detail: str) -> Reading:
            return Reading(
                name=f"memory_rss:{name}",
                value=value,
                limit=f"{self.rss_limit_mb:g} MB",
                verdict=verdict,
                detail=detail,
                code=f"memory_limit:{name}",
                restart=None if name == ROOT else name,
            )

        if name in self._gone or proc.rss_mb is None:
            return reading("-", Verdict.UNKNOWN, f"{name} (pid {proc.pid}) cannot be read")
        if proc.rss_mb <= self.rss_limit_mb:
            return reading(f"{proc.rss_mb:.0f} MB", Verdict.OK, f"{name} (pid {proc.pid}) uses {proc.rss_mb:.0f} MB")
        over = f"uses {proc.rss_mb:.0f} MB, over watchdog.rss_limit_mb ({self.rss_limit_mb:g} MB)"
        if name == ROOT:
            detail = f"the root process (pid {proc.pid}) {over}; it is not restarted (that would stop the whole tree)"
        else:
            detail = f"{name} (pid {proc.pid}) {over}; the watchdog asked the supervisor to restart it"
        return reading(f"{proc.rss_mb:.0f} MB", Verdict.BREACH, detail)

    def _growth_reading(self, name: str, proc: _Process, now_s: float) -> Reading:
        def reading(value: str, verdict: Verdict, detail: str) -> Reading:
            return Reading(
                name=f"memory_growth:{name}",
                value=value,
                limit=f"{self.max_growth_mb_per_h:g} MB/h",
                verdict=verdict,
                detail=detail,
                code=f"memory_growth:{name}",
            )

        if name in self._gone:
            return reading("-", Verdict.UNKNOWN, f"{name} (pid {proc.pid}) cannot be read")
        watched_s = 0.0 if proc.first_uss_s is None else now_s - proc.first_uss_s
        slope = growth_mb_per_h(list(proc.uss))
        if slope is None or watched_s < self.growth_window_s or len(proc.uss) < 3:
            detail = (
                f"{name} (pid {proc.pid}): judged once its samples cover watchdog.growth_window_s "
                f"({self.growth_window_s:g} s; {watched_s:.0f} s so far)"
            )
            return reading("-", Verdict.UNKNOWN, detail)
        first, last = proc.uss[0][1], proc.uss[-1][1]
        detail = (
            f"the private memory (USS) of {name} (pid {proc.pid}) grows by {slope:.1f} MB/h over the last "
            f"{self.growth_window_s:g} s ({first:.0f} -> {last:.0f} MB)"
        )
        if slope <= self.max_growth_mb_per_h:
            return reading(f"{slope:.1f} MB/h", Verdict.OK, detail)
        detail += f", faster than watchdog.max_growth_mb_per_h ({self.max_growth_mb_per_h:g} MB/h): a leak"
        return reading(f"{slope:.1f} MB/h", Verdict.BREACH, detail)


# --- Connections, progress, disk, clock ----------------------------------------------------------


@dataclass(slots=True)
class _Connection:
    connected: bool
    detail: str
    down_since_s: float | None


class ConnectionCheck:
    """The broker connections as their roles report them on the bus (``md.health``: the price
    stream, ``recon.health``: the REST API).

    The stream down for longer than ``down_alert_s`` is a breach of ``stream_silent`` (the
    supervisor already holds ``broker_unreachable:stream`` from the first second; this is the
    watchdog's word that the outage is long). The REST API is shown the same way, with no reason
    of its own (``broker_unreachable:rest`` is the supervisor's).

    Args:
        down_alert_s: how long a connection may be down before it is a breach.
    """

    SOURCES = ("stream", "rest")

    def __init__(self, *, down_alert_s: float) -> None:
        self.down_alert_s = down_alert_s
        self._conns: dict[str, _Connection] = {}

    def health(self, source: str, *, connected: bool, detail: str, now_s: float) -> None:
        """A health report of ``source`` (``stream`` or ``rest``)."""
        if source not in self.SOURCES:
            return
        previous = self._conns.get(source)
        down_since = None
        if not connected:
            down_since = previous.down_since_s if previous is not None and previous.down_since_s is not None else now_s
        self._conns[source] = _Connection(connected, detail, down_since)

    def readings(self, now_s: float) -> list[Reading]:
        """One reading per source."""
        out = []
        for source in self.SOURCES:
            what = "price stream" if source == "stream" else "REST API"
            code = "stream_silent" if source == "stream" else None
            conn = self._conns.get(source)
            limit = f"down {self.down_alert_s:g} s"
            if conn is None:
                detail = f"broker {what}: no report heard yet"
                out.append(
                    Reading(name=source, value="-", limit=limit, verdict=Verdict.UNKNOWN, detail=detail, code=code)
                )
                continue
            if conn.connected or conn.down_since_s is None:
                out.append(
                    Reading(name=source, value="up", limit=limit, verdict=Verdict.OK, detail=conn.detail, code=code)
                )
                continue
            down_s = max(0.0, now_s - conn.down_since_s)
            breach = down_s > self.down_alert_s
            detail = f"broker {what} down for {down_s:.0f} s: {conn.detail}"
            if breach:
                detail += f" (longer than watchdog.stream_down_alert_s, {self.down_alert_s:g} s)"
            out.append(
                Reading(
                    name=source,
                    value=f"down {down_s:.0f} s",
                    limit=limit,
                    verdict=Verdict.BREACH if breach else Verdict.OK,
                    detail=detail,
                    code=code,
                )
            )
        return out


@dataclass(slots=True)
class _Instrument:
    status: calendar.MarketStatus | None = None
    price: tuple[int, bool] | None = None  # the newest price not folded into the status yet
    last_bar_s: float | None = None
    open_since_s: float | None = None


class BarCheck:
    """Progress while the market is open: a bar of every instrument within its granularity plus a grace.

    Market time comes from the broker's prices (an accelerated emulator runs ``speed`` market
    seconds per wall second); between prices it runs on from the newest one. Whether an
    instrument's market is open is decided as the feed decides it (``calendar.update_market_status``:
    the calendar, and the broker's ``tradeable`` flag for halts), so a weekend, a holiday or a halt
    is expected silence, never a breach. While open, the time since the instrument's last bar (or
    since its market opened, or since the last ``grace``) longer than the granularity (in wall
    seconds) plus ``grace_s`` is a breach of ``bar_overdue:<instrument>``.

    Args:
        instruments: the feed's instruments.
        granularity: the feed's granularity (for the detail).
        granularity_s: its length in market seconds.
        speed: market seconds per wall second (1 for a real broker).
        grace_s: wall seconds allowed on top of one bar.
    """

    def __init__(
        self, instruments: Sequence[str], *, granularity: str, granularity_s: float, speed: float, grace_s: float
    ) -> None:
        self.granularity = granularity
        self.bar_wall_s = granularity_s / speed
        self.speed = speed
        self.grace_s = grace_s
        self._instruments = {name: _Instrument() for name in instruments}
        self._anchor: tuple[int, float] | None = None  # (market ns of the newest price, when it came)
        self._grace_s: float | None = None
        self._last_market_ns: int | None = None

    def price(self, instrument: str, ts_ns: int, tradeable: bool, now_s: float) -> None:
        """A price of ``instrument`` at market time ``ts_ns``, received at ``now_s``."""
        self._anchor = (ts_ns, now_s)
        inst = self._instruments.get(instrument)
        if inst is not None and (inst.price is None or ts_ns >= inst.price[0]):
            inst.price = (ts_ns, tradeable)

    def bar(self, instrument: str, now_s: float) -> None:
        """A validated bar of ``instrument`` was published."""
        inst = self._instruments.get(instrument)
        if inst is not None:
            inst.last_bar_s = now_s

    def grace(self, now_s: float) -> None:
        """Start every instrument's wait over at ``now_s`` (the bus or the watchdog did not run)."""
        self._grace_s = now_s

    def market_now_ns(self, now_s: float) -> int | None:
        """Market time now, run on from the newest price; None before the first price."""
        if self._anchor is None:
            return None
        ts_ns, at_s = self._anchor
        return ts_ns + round(max(0.0, now_s - at_s) * self.speed * _NS)

    def readings(self, now_s: float) -> list[Reading]:
        """One reading per instrument."""
        market_ns = self.market_now_ns(now_s)
        # A closure that began and ended between two readings (market time jumped over a
        # weekend) opens a new session all the same.
        reopened = False
        if market_ns is not None and self._last_market_ns is not None and market_ns > self._last_market_ns:
            reopened = calendar.next_close(self._last_market_ns) <= market_ns
        if market_ns is not None:
            self._last_market_ns = market_ns
        limit_s = self.bar_wall_s + self.grace_s
        limit = f"{limit_s:g} s"
        out = []
        for name, inst in self._instruments.items():
            code = f"bar_overdue:{name}"
            if market_ns is None:
                detail = "market time unknown: no price seen yet"
                out.append(
                    Reading(
                        name=f"bar:{name}", value="-", limit=limit, verdict=Verdict.UNKNOWN, detail=detail, code=code
                    )
                )
                continue
            was_open = inst.status is not None and inst.status.is_open
            if inst.price is not None:
                ts_ns, tradeable = inst.price
                inst.status, _ = calendar.update_market_status(
                    inst.status, instrument=name, ts_ns=ts_ns, tradeable=tradeable
                )
                inst.price = None
            inst.status, _ = calendar.update_market_status(inst.status, instrument=name, ts_ns=market_ns)
            if not inst.status.is_open:
                why = inst.status.why.value if inst.status.why else "closed"
                detail = f"{name}: market closed ({why}); no bar expected"
                out.append(
                    Reading(
                        name=f"bar:{name}",
                        value=f"closed ({why})",
                        limit=limit,
                        verdict=Verdict.OK,
                        detail=detail,
                        code=code,
                    )
                )
                continue
            if not was_open or reopened or inst.open_since_s is None:
                inst.open_since_s = now_s
            base = max(s for s in (inst.last_bar_s, inst.open_since_s, self._grace_s) if s is not None)
            waited_s = max(0.0, now_s - base)
            breach = waited_s > limit_s
            since = "its last bar" if inst.last_bar_s is not None and inst.last_bar_s >= base else "its market opened"
            if breach:
                detail = (
                    f"no {self.granularity} bar of {name} for {waited_s:.0f} s while its market is open "
                    f"(one is due every {self.bar_wall_s:g} s, plus watchdog.bar_grace_s = {self.grace_s:g} s)"
                )
            else:
                detail = f"{name}: {waited_s:.0f} s since {since}"
            out.append(
                Reading(
                    name=f"bar:{name}",
                    value=f"{waited_s:.0f} s",
                    limit=limit,
                    verdict=Verdict.BREACH if breach else Verdict.OK,
                    detail=detail,
                    code=code,
                )
            )
        return out


class DecisionCheck:
    """Progress down the trading loop: every published bar gets its outcome within ``deadline_s``.

    A close (``md.bars``) expects, for each bar it published, a decision of the risk role
    (``risk.intent`` or ``risk.skip``) or the model's word that it gives no signal for that bar
    (``model.skipped``). A bar still without one after ``deadline_s`` (wall seconds) is a breach
    of ``decision_overdue:<instrument>``: the model or the risk role takes bars but decides
    nothing. An outcome for that bar or a later one of the instrument clears it. A restart of the
    model or the risk role (``forget``) drops what was waiting: the bus does not replay messages a
    dead process missed, and its own reason (``role_down``) tells that story.

    Args:
        instruments: the feed's instruments.
        deadline_s: wall seconds from the close to the outcome.
    """

    def __init__(self, instruments: Sequence[str], *, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self._instruments = tuple(instruments)
        self._waiting: dict[str, tuple[int, float]] = {}  # instrument -> (oldest bar ts waiting, since)
        self._last: dict[str, float] = {}  # instrument -> when its last outcome came

    def closed(self, bar_ts: int, published: Iterable[str], now_s: float) -> None:
        """A close published bars of ``published`` at ``bar_ts``."""
        for name in published:
            if name in self._instruments and name not in self._waiting:
                self._waiting[name] = (bar_ts, now_s)

    def outcome(self, instrument: str, bar_ts: int, now_s: float) -> None:
        """A decision (or the model's skip) for ``instrument``'s bar at ``bar_ts``."""
        waiting = self._waiting.get(instrument)
        if waiting is not None and bar_ts >= waiting[0]:
            del self._waiting[instrument]
        self._last[instrument] = now_s

    def forget(self) -> None:
        """The model or the risk role restarted: what it was given before is lost."""
        self._waiting.clear()

    def grace(self, now_s: float) -> None:
        """Start every wait over at ``now_s`` (the bus or the watchdog did not run)."""
        self._waiting = {name: (ts, max(since, now_s)) for name, (ts, since) in self._waiting.items()}

    def readings(self, now_s: float) -> list[Reading]:
        """One reading per instrument."""
        limit = f"{self.deadline_s:g} s"
        out = []
        for name in self._instruments:
            code = f"decision_overdue:{name}"
            waiting = self._waiting.get(name)
            if waiting is None:
                last = self._last.get(name)
                detail = f"{name}: every bar decided" + (f", the last {now_s - last:.0f} s ago" if last else "")
                out.append(
                    Reading(
                        name=f"decision:{name}", value="0 s", limit=limit, verdict=Verdict.OK, detail=detail, code=code
                    )
                )
                continue
            waited_s = max(0.0, now_s - waiting[1])
            breach = waited_s > self.deadline_s
            if breach:
                detail = (
                    f"the {name} bar of {_utc(waiting[0])} has no decision after {waited_s:.0f} s "
                    f"(watchdog.decision_deadline_s = {self.deadline_s:g} s): the model or the risk role is stuck"
                )
            else:
                detail = f"{name}: the bar of {_utc(waiting[0])} waits for its decision"
            out.append(
                Reading(
                    name=f"decision:{name}",
                    value=f"{waited_s:.0f} s",
                    limit=limit,
                    verdict=Verdict.BREACH if breach else Verdict.OK,
                    detail=detail,
                    code=code,
                )
            )
        return out


class AccountCheck:
    """A broker round trip within ``max_age_s``: the reconciler's account read (``recon.state``).

    The reconciler reads the account, trades, orders and transactions every
    ``reconciler.poll_interval_s`` and publishes ``recon.state`` after each good read. None for
    longer than ``max_age_s`` (wall seconds) is a breach of ``account_stale``: whatever the
    connection reports say, the host has not read the broker for that long, so its limits look
    at an old account.

    Args:
        max_age_s: the longest wall time between two good reads.
        now_s: when the watchdog started (the first read is due ``max_age_s`` after it).
    """

    def __init__(self, *, max_age_s: float, now_s: float) -> None:
        self.max_age_s = max_age_s
        self._last_s = now_s
        self._seen = False
        self._grace_s: float | None = None

    def read(self, now_s: float) -> None:
        """A ``recon.state`` arrived."""
        self._last_s, self._seen = now_s, True

    def grace(self, now_s: float) -> None:
        """Start the wait over (the bus or the watchdog did not run)."""
        self._grace_s = now_s

    def reading(self, now_s: float) -> Reading:
        """The account's age against ``max_age_s``."""
        base = max(self._last_s, self._grace_s or self._last_s)
        age_s = max(0.0, now_s - base)
        breach = age_s > self.max_age_s
        since = "the last account read" if self._seen else "the watchdog started (no account read yet)"
        detail = f"{age_s:.0f} s since {since}"
        if breach:
            detail = (
                f"no account read from the broker for {age_s:.0f} s (watchdog.account_max_age_s = "
                f"{self.max_age_s:g} s): limits and status look at an old account"
            )
        return Reading(
            name="account",
            value=f"{age_s:.0f} s",
            limit=f"{self.max_age_s:g} s",
            verdict=Verdict.BREACH if breach else Verdict.OK,
            detail=detail,
            code="account_stale",
        )


def _utc(ts_ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts_ns / _NS))


def disk_reading(free_mb: float | None, *, min_free_mb: float, path: str) -> Reading:
    """Free disk space of the run directory against ``min_free_mb`` (``disk_low``).

    Args:
        free_mb: free space in MB; None when it could not be read.
        min_free_mb: the least free space that is still fine.
        path: the directory (for the detail).
    """
    limit = f"{min_free_mb:g} MB free"
    if free_mb is None or not math.isfinite(free_mb):
        return Reading(
            name="disk",
            value="-",
            limit=limit,
            verdict=Verdict.UNKNOWN,
            detail=f"{path}: free space unreadable",
            code="disk_low",
        )
    breach = free_mb < min_free_mb
    detail = f"{free_mb:.0f} MB free on the disk of {path}"
    if breach:
        detail += f", less than watchdog.min_free_disk_mb ({min_free_mb:g} MB): the journal may soon fail to write"
    return Reading(
        name="disk",
        value=f"{free_mb:.0f} MB free",
        limit=limit,
        verdict=Verdict.BREACH if breach else Verdict.OK,
        detail=detail,
        code="disk_low",
    )


class ClockSkewCheck:
    """The local wall clock against the broker's price times.

    Every fresh price gives ``local receipt time - broker time`` = skew + latency (latency >= 0);
    the smallest value over the last ``SKEW_WINDOW_S`` is the estimate (it has the least latency in
    it). An estimate beyond ``max_skew_s`` either way is a breach of ``clock_skew``. Only fresh
    prices count: tradeable ones whose time moved on from the instrument's previous price, and
    not the first of an instrument after a (re)connect (a stream starts with a snapshot of the
    last prices, which may be minutes old in a quiet or closed market). With fewer than
    ``SKEW_MIN_SAMPLES`` fresh prices in the window (a closed market) the verdict is unknown.

    Args:
        max_skew_s: the largest skew that is still fine.
        off: why the check is off (``max_clock_skew_s = 0``, or an emulator not in real time);
            empty when it is on.
    """

    def __init__(self, *, max_skew_s: float, off: str = "") -> None:
        self.max_skew_s = max_skew_s
        self.off = off
        self._samples: deque[tuple[float, float]] = deque(maxlen=100_000)  # (received mono s, local - broker s)
        self._last: dict[str, int] = {}  # instrument -> time of its last price since the (re)connect

    def reconnected(self) -> None:
        """The price stream (re)connected: its next price per instrument is a snapshot."""
        self._last.clear()

    def price(self, instrument: str, broker_ns: int, received_ns: int, *, tradeable: bool, now_s: float) -> None:
        """A price of ``instrument`` stamped ``broker_ns`` by the broker arrived at local wall time
        ``received_ns``."""
        previous = self._last.get(instrument)
        if previous is None or broker_ns > previous:
            self._last[instrument] = broker_ns
        fresh = previous is not None and broker_ns > previous and tradeable
        if fresh and not self.off:
            self._samples.append((now_s, (received_ns - broker_ns) / _NS))

    def reading(self, now_s: float) -> Reading:
        """The check's reading."""
        limit = f"{self.max_skew_s:g} s"
        if self.off:
            return Reading(
                name="clock_skew", value="-", limit=limit, verdict=Verdict.UNKNOWN, detail=f"off: {self.off}"
            )
        while self._samples and self._samples[0][0] < now_s - SKEW_WINDOW_S:
            self._samples.popleft()
        if len(self._samples) < SKEW_MIN_SAMPLES:
            detail = f"{len(self._samples)} prices in the last {SKEW_WINDOW_S:g} s: too few to judge"
            return Reading(
                name="clock_skew", value="-", limit=limit, verdict=Verdict.UNKNOWN, detail=detail, code="clock_skew"
            )
        skew_s = min(delta for _, delta in self._samples)
        breach = abs(skew_s) > self.max_skew_s
        direction = "ahead of" if skew_s >= 0 else "behind"
        detail = f"the local clock is {abs(skew_s):.2f} s {direction} the broker's price times"
        if breach:
            detail += f", more than watchdog.max_clock_skew_s ({self.max_skew_s:g} s): check NTP (timedatectl)"
        return Reading(
            name="clock_skew",
            value=f"{skew_s:+.2f} s",
            limit=limit,
            verdict=Verdict.BREACH if breach else Verdict.OK,
            detail=detail,
            code="clock_skew",
        )
