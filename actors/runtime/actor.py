"""``RoleActor``: the pykka actor every role process hosts, and the trading ``Permit``.

The actor gets everything by ``tell()`` from its process's socket thread (``actors.runtime``):
bus messages, "heartbeat due" ticks and the stop command. It sends heartbeats itself, so a hung
actor stops heartbeating and the supervisor restarts its process. Before each heartbeat it
checks every worker thread it started (``start_worker``): a dead worker fails the role. A failed
actor ends its process non-zero through ``RoleRuntime.abort`` (pykka has no restart; the
supervisor restarts at the OS level). A role's configuration is typed: the actor class names
its ``CONFIG`` class and refuses to start without an instance of it (never a silent default).
The permit is the last ``sys.state`` the role saw plus its expiry: only an unexpired
``TRADING`` state allows a new entry, so silence means no trading.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Never, Protocol, TypeVar, cast

import pykka

from actors.core.clock import SYSTEM_CLOCK, Clock
from actors.core.errors import ConfigError
from actors.runtime.exitcodes import EXIT_ACTOR_FAILED
from actors.runtime.messages import (
    TOPIC_ALERT,
    TOPIC_HEARTBEAT,
    AlertRaised,
    Body,
    Envelope,
    Heartbeat,
    Reason,
    RoleStopping,
    SystemState,
    SystemStateChanged,
)
from actors.runtime.worker import Worker

if TYPE_CHECKING:
    from actors.broker import Broker
    from actors.runtime.journal import Journal
    from actors.runtime.journalrows import JournalRecord

log = logging.getLogger(__name__)


ConfigT = TypeVar("ConfigT")
ResultT = TypeVar("ResultT")
NoResults = Never  # the ``ResultT`` of a role whose worker threads hand nothing back to its actor
_S = TypeVar("_S")
RequestOutcome = Callable[[bool, str], None]


class Permit:
    """The trading permit a role holds: the last ``sys.state`` seen and when it expires.

    Only the supervisor grants it (a ``sys.state`` from any other source is ignored), and it
    expires on both clocks: the supervisor's wall-clock ``expires_ns`` and ``ttl_s`` after
    receipt on this process's monotonic clock.

    A role that asks the supervisor to stop trading holds its own permit at once (``hold``): the
    request is in flight, and the ``sys.state`` it holds may still say TRADING. The hold ends when
    a ``sys.state`` carries the reason (the supervisor has it; that state governs from then on) or
    when the role itself says the cause is healthy again (``release``). Without it, an order
    desk that had just declared an order unresolved sent the next queued order on the old
    permit (seen in a full run: a GBP_USD order 0.2 s after the EUR_USD ``order_unresolved``).
    """

    SOURCE = "supervisor"

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.state: SystemState | None = None
        self.expires_ns = 0
        self.expires_mono = 0.0
        self.reasons: tuple[Reason, ...] = ()
        self._held: set[str] = set()  # reason codes asked of the supervisor, not yet in a sys.state
        self._held_lock = threading.Lock()  # held from worker threads, seen by the actor's

    def hold(self, code: str) -> None:
        """No entry until a ``sys.state`` carries ``code`` or ``release(code)``: this role has
        just asked the supervisor to raise it."""
        with self._held_lock:
            self._held.add(code)

    def release(self, code: str) -> None:
        """This role has told the supervisor that ``code``'s cause is healthy again."""
        with self._held_lock:
            self._held.discard(code)

    @property
    def held(self) -> frozenset[str]:
        """The reason codes this role asked for that no ``sys.state`` has carried yet."""
        with self._held_lock:
            return frozenset(self._held)

    def update(self, message: SystemStateChanged, *, src: str, received_mono: float | None = None) -> bool:
        """Take a newer ``sys.state``; returns False (and changes nothing) if ``src`` may not grant it."""
        if src != self.SOURCE:
            return False
        self.state = message.state
        self.expires_ns = message.expires_ns
        self.expires_mono = (self.clock.monotonic() if received_mono is None else received_mono) + message.ttl_s
        self.reasons = message.reasons
        with self._held_lock:
            self._held -= {reason.code for reason in message.reasons}
        return True

    def allows_entry(self, now_ns: int | None = None, now_mono: float | None = None) -> bool:
        """True only while an unexpired TRADING state is held and no reason this role asked for is
        still on its way to the supervisor."""
        if self.held:
            return False
        wall = self.clock.time_ns() if now_ns is None else now_ns
        mono = self.clock.monotonic() if now_mono is None else now_mono
        return self.state is SystemState.TRADING and wall < self.expires_ns and mono < self.expires_mono


class RoleRuntime(Protocol):
    """What the process runtime offers its actor (implemented in ``actors.runtime``)."""

    role: str
    mode: str
    clock: Clock
    role_config: object
    shared_config: Mapping[str, object]
    root_pid: int
    host_id: str
    journal_db: Journal

    def open_broker(self, *, on_request_outcome: RequestOutcome | None = None, slippage_pips: float = 0.0) -> Broker:
        """A new broker client for this role (one per worker thread), chosen by ``broker.kind``,
        ``host.mode`` and the role's part in the shadow book; ``on_request_outcome(ok, detail)``
        hears every REST attempt; ``slippage_pips`` prices the shadow book's fills."""

    def publish(self, topic: str, body: Body, *, corr: str | None = None) -> None:
        """Publish on the bus."""

    def to_supervisor(self, body: Body) -> None:
        """Send on the control channel to the supervisor."""

    def journal(self, kind: str, body: dict[str, Any], *, corr: str | None = None) -> None:
        """Append to the journal."""

    def journal_many(self, rows: list[tuple[str, dict[str, Any], str | None, int]]) -> None:
        """Append several entries (kind, body, corr, ts_ns) in one transaction."""

    def heartbeat_fields(self) -> dict[str, Any]:
        """pid, rss and transport counters for the heartbeat."""

    def request_exit(self, code: int) -> None:
        """Ask the process to exit with ``code`` once the actor has stopped."""

    def abort(self, code: int, reason: str) -> None:
        """End the process now with ``code`` (the actor failed); the supervisor restarts it."""

    def injected(self, fault: str) -> bool:
        """True when a fault-injection test asks this role for ``fault`` (``actors.runtime``)."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """A decoded bus message for the actor."""

    envelope: Envelope


@dataclass(frozen=True, slots=True)
class GapDetected:
    """A publisher's sequence on one topic skipped numbers: messages were lost on the bus."""

    src: str
    topic: str
    expected: int
    got: int


@dataclass(frozen=True, slots=True)
class HeartbeatDue:
    """Tick from the socket thread: time to send a heartbeat."""


@dataclass(frozen=True, slots=True)
class StopRequested:
    """The supervisor (or a signal) asks the role to run its shutdown hook."""

    deadline_s: float
    reason: str
    protection_s: float = 0.0


def _dies_at_once(stop: threading.Event) -> None:
    raise RuntimeError("injected fault: worker_dies")


class RoleActor(pykka.ThreadingActor, Generic[ConfigT, ResultT]):
    """Base of every role's actor, typed by its config class and by what its workers hand back.

    Subclasses set ``ROLE``, ``TOPICS`` and (when the role has a config section) ``CONFIG``, and
    override ``on_message`` (and ``on_start`` / ``on_state_changed`` / ``on_shutdown`` where
    they need to). ``self.cfg`` is the role's validated config. A role's worker threads hand their
    results (``ResultT``, a union of the role's result types; ``NoResults`` when there are none)
    to the actor with ``hand_back``, and ``on_other`` receives them on the actor's thread.

    Raises:
        ConfigError: at construction, when the runtime's config is not an instance of ``CONFIG``.
    """

    ROLE: ClassVar[str] = ""
    TOPICS: ClassVar[tuple[str, ...]] = ()
    CONFIG: ClassVar[type[Any] | None] = None

    def __init__(self, runtime: RoleRuntime) -> None:
        super().__init__()
        self.runtime = runtime
        self.clock = runtime.clock
        self.cfg: ConfigT = self._checked_config(runtime.role_config)
        self.permit = Permit(runtime.clock)
        self.handled = 0
        self.last_handled: str | None = None
        self.stopping = False
        self.protection_s = 0.0  # set from the stop request: how long the SL/TP check may retry
        self._workers: list[Worker] = []
        self._leak: list[bytes] | None = [] if runtime.injected("grow_memory") else None

    @classmethod
    def _checked_config(cls, config: object) -> ConfigT:
        if cls.CONFIG is None:
            if config is not None:
                raise ConfigError(f"{cls.ROLE}: got a configuration ({type(config).__name__}) but takes none")
            return cast("ConfigT", None)
        if not isinstance(config, cls.CONFIG):
            raise ConfigError(
                f"{cls.ROLE}: started without its {cls.CONFIG.__name__} (got {type(config).__name__}); "
                "a role never runs on defaults it was not given"
            )
        return cast("ConfigT", config)

    def shared(self, section: str, cls: type[_S]) -> _S:
        """Another role's section this role reads (named in its registry entry's ``reads``).

        Raises:
            ConfigError: the section was not handed to this role, or is of another class.
        """
        value = self.runtime.shared_config.get(section)
        if not isinstance(value, cls):
            raise ConfigError(f"{self.ROLE}: needs the [{section}] section ({cls.__name__}); it was not handed over")
        return value

    def raise_alert(self, severity: str, code: str, detail: str, *, corr: str | None = None) -> None:
        """Journal an ``alert`` row and publish it on ``alert`` (the watchdog mails it)."""
        self.runtime.journal("alert", {"severity": severity, "code": code, "detail": detail}, corr=corr)
        self.runtime.publish(TOPIC_ALERT, AlertRaised(severity=severity, code=code, detail=detail), corr=corr)

    def record(self, row: JournalRecord, *, corr: str | None = None) -> None:
        """Journal a typed row (``actors.runtime.journalrows``); safe from the role's worker threads."""
        self.runtime.journal(row.KIND, row.body(), corr=corr)

    def hand_back(self, result: ResultT) -> None:
        """From a worker thread: give ``result`` to the actor (``on_other`` gets it on its thread)."""
        self.actor_ref.tell(result)

    def start_worker(self, name: str, body: Callable[[threading.Event], None]) -> Worker:
        """Start a worker thread that this role owns; each heartbeat checks it is still alive."""
        if not self._workers and self.runtime.injected("worker_dies"):
            body = _dies_at_once
        worker = Worker(f"{self.ROLE}-{name}", body)
        self._workers.append(worker)
        worker.start()
        return worker

    # --- hooks for roles ---

    def on_message(self, envelope: Envelope) -> None:
        """Handle one bus message of the role's topics (default: journal it)."""
        self.runtime.journal(f"{self.ROLE}.received", {"type": envelope.type, "src": envelope.src}, corr=envelope.id)

    def on_state_changed(self, previous: SystemState | None, current: SystemState) -> None:
        """Called when the system state seen by this role changes."""

    def on_state_seen(self, message: SystemStateChanged) -> None:
        """Called for every ``sys.state`` the supervisor publishes (the watchdog times them)."""

    def on_shutdown(self, deadline_s: float) -> str:
        """Flush state before the process exits; returns a one-line summary."""
        return "nothing to flush"

    def on_heartbeat(self) -> None:
        """Called before each heartbeat (after the worker check); raise to report the role broken."""

    def on_other(self, message: ResultT) -> None:
        """What the role's own worker threads handed back (``hand_back``; default: ignored)."""

    # --- plumbing ---

    def on_receive(self, message: Any) -> Any:
        """Dispatch what the socket thread tells the actor."""
        if isinstance(message, Inbound):
            env = message.envelope
            if isinstance(env.body, SystemStateChanged):
                previous = self.permit.state
                if not self.permit.update(env.body, src=env.src):
                    self.runtime.journal("permit.refused", {"src": env.src, "state": env.body.state.value})
                    return None
                self.on_state_seen(env.body)
                if previous is not env.body.state:
                    self.on_state_changed(previous, env.body.state)
                return None
            self.handled += 1
            self.last_handled = env.type
            if self.runtime.injected("deaf"):  # fault injection: alive and heartbeating, deciding nothing
                return None
            self.on_message(env)
        elif isinstance(message, HeartbeatDue):
            if not self.stopping:  # after the shutdown hook, workers are gone on purpose
                self._check_workers()
                self.on_heartbeat()
                self._send_heartbeat()
        elif isinstance(message, StopRequested):
            self._run_shutdown_hook(message)
        elif isinstance(message, GapDetected):
            self.runtime.journal(
                "bus.gap",
                {"src": message.src, "topic": message.topic, "expected": message.expected, "got": message.got},
            )
        else:  # nothing else is told to the actor but what its workers hand back
            self.on_other(cast("ResultT", message))
        return None

    def _check_workers(self) -> None:
        for worker in self._workers:
            why = worker.dead()
            if why is not None:
                raise RuntimeError(why)

    def _send_heartbeat(self) -> None:
        if self._leak is not None:  # fault injection: memory that really grows, 20 MB a heartbeat
            self._leak.append(b"\x01" * (20 * 1_048_576))
        fields = self.runtime.heartbeat_fields()
        beat = Heartbeat(
            role=self.ROLE,
            pid=fields["pid"],
            rss_mb=fields["rss_mb"],
            queue_depth=cast("queue.Queue[Any]", self.actor_inbox).qsize(),
            handled=self.handled,
            last_handled=self.last_handled,
            decode_errors=fields["decode_errors"],
            gaps=fields["gaps"],
            dropped=fields.get("dropped", 0),
            handler_errors=fields.get("handler_errors", 0),
            gc_full=fields.get("gc_full", 0),
            gc_max_ms=fields.get("gc_max_ms", 0.0),
        )
        self.runtime.to_supervisor(beat)
        self.runtime.publish(TOPIC_HEARTBEAT + self.ROLE, beat)

    def _run_shutdown_hook(self, message: StopRequested) -> None:
        self.stopping = True
        self.protection_s = message.protection_s
        started = self.clock.monotonic()
        try:
            summary = self.on_shutdown(message.deadline_s)
            clean = True
        except Exception as e:  # the hook failed; still report and exit
            log.exception("shutdown hook of %s failed", self.ROLE)
            summary, clean = f"shutdown hook failed: {e}", False
        elapsed_ms = int((self.clock.monotonic() - started) * 1000)
        self.runtime.journal(
            "role.stopped",
            {"role": self.ROLE, "clean": clean, "summary": summary, "elapsed_ms": elapsed_ms, "reason": message.reason},
        )
        self.runtime.to_supervisor(RoleStopping(role=self.ROLE, clean=clean, detail=summary))
        self.runtime.request_exit(0 if clean else 1)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """An unhandled error ends the process non-zero; the supervisor restarts it."""
        reason = f"{type(exception_value).__name__}: {exception_value}"
        log.error("actor %s failed: %s; exiting for a restart", self.ROLE, reason)
        self.runtime.abort(EXIT_ACTOR_FAILED, reason)
