"""The small runtime every role process runs: sockets, its actor, heartbeats, exit paths.

``child_main`` is the target the supervisor starts through the forkserver; the role's actor class
comes from the role registry (``actors.roles``). The main thread owns
the ZeroMQ sockets (a ``SocketThread`` run in place): a DEALER to the supervisor's control
ROUTER (heartbeats, stop command), a SUB on the bus (the role's topics and ``sys.state``) and a
PUB onto the bus. Bus messages are decoded here (malformed ones are counted, logged and
dropped; publisher sequence gaps are counted and journaled) and handed to the actor with
``tell()``. The process exits when the actor has run its shutdown hook, when its parent dies
(``PR_SET_PDEATHSIG`` plus a parent check every 0.5 s), on SIGTERM (graceful, with a deadline),
or when the actor fails (``abort``: journaled, then non-zero). SIGINT is ignored: the root
orchestrates shutdown. SIGUSR1 logs every thread's traceback. The runtime also hands the actor
its clock and its broker factory (``actors.broker.connect.broker_factory``: by ``broker.kind``
and ``host.mode``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pykka
import pykka.debug

from actors.broker import Broker
from actors.broker.config import BrokerConfig
from actors.broker.connect import broker_factory
from actors.core.clock import SYSTEM_CLOCK, Clock
from actors.core.errors import ConfigError, MessageDecodeError
from actors.runtime import gcpace, memtrace, registry, transport
from actors.runtime.actor import GapDetected, HeartbeatDue, Inbound, RequestOutcome, RoleActor, StopRequested
from actors.runtime.exitcodes import EXIT_DEADLINE, EXIT_INJECTED_CRASH, EXIT_NO_BUS
from actors.runtime.journal import Journal
from actors.runtime.logs import setup_logging
from actors.runtime.messages import TOPIC_SYS_STATE, Body, StopRole, TopicSequence, decode, encode, make_envelope

log = logging.getLogger(__name__)

SHADOW_BOOK = "shadow-book.db"  # in the run directory: the shadow book of shadow mode (SQLite)

# Environment hook for fault-injection tests: "<fault>:<role>[,<fault>:<role>...]". Faults:
# "crash_on_start" makes the role exit with status 3 right after start, as a role with a broken
# dependency would; "hang_on_start" makes it block before its first heartbeat (a start that can
# never finish); "worker_dies" makes the first worker the role starts raise at once (a worker
# killed by a bug); "grow_memory" makes the role's memory grow by 20 MB with every heartbeat (a
# leak, for the watchdog's memory checks); "deaf" makes the role drop every bus message it gets
# (alive and heartbeating, deciding nothing, for the watchdog's progress checks). With
# TRADEHOST_FAULT_INJECT_WHILE=<path> only while that file exists (the "fix" is removing it).
FAULT_ENV = "TRADEHOST_FAULT_INJECT"

SIGTERM_DEADLINE_S = 2.0
CONTROL_LINGER_MS = 200
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildArgs:
    """Everything a role process needs; picklable for the forkserver."""

    role: str
    events_in: str
    events_out: str
    control: str
    journal_path: str
    heartbeat_interval_s: float
    log_level: str
    mode: str
    root_pid: int
    broker: BrokerConfig | None = None
    role_config: object = None
    shared: dict[str, object] = field(default_factory=dict)
    host_id: str = ""
    gc_interval_s: float  # host.gc_interval_s: a full collection this often (0: CPython's own)


def _alive(pid: int) -> bool:
    # A killed root that nobody has reaped yet is a zombie: it exists, but it is dead.
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _set_parent_death_signal(sig: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent check below still works
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable")


def unreachable(endpoint: str) -> str | None:
    """Why a role cannot connect to ``endpoint`` right now, or None when it can.

    ZeroMQ connects in the background and would wait forever for an ipc socket file that is
    gone; a role checks first and fails fast, so the supervisor counts it (and latches past its
    limits) instead of waiting for a heartbeat that can never come.
    """
    path = transport.ipc_path(endpoint)
    if path is None:
        return None  # tcp: on loopback only; ZeroMQ reconnects, and the start timeout covers it
    try:
        mode = os.stat(path).st_mode  # noqa: PTH116
    except OSError as e:
        return f"{endpoint}: {e.strerror}"
    return None if stat.S_ISSOCK(mode) else f"{endpoint}: not a socket"


def injected(fault: str, role: str) -> bool:
    """True when the fault-injection hook (``TRADEHOST_FAULT_INJECT``) asks for ``fault`` in ``role``."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return False
    only_while = os.environ.get(FAULT_ENV + "_WHILE")
    if only_while and not os.path.exists(only_while):  # noqa: PTH110
        return False
    for item in spec.split(","):
        kind, _, target = item.partition(":")
        if kind.strip() == fault and target.strip() == role:
            return True
    return False


class ChildRuntime:
    """Wires one role's actor to the sockets of its process (implements ``RoleRuntime``)."""

    def __init__(self, args: ChildArgs) -> None:
        self.args = args
        self.role = args.role
        self.mode = args.mode
        self.clock: Clock = SYSTEM_CLOCK
        self.role_config = args.role_config
        self.shared_config = args.shared
        self.root_pid = args.root_pid
        self.host_id = args.host_id
        self.pid = os.getpid()
        self._proc = psutil.Process(self.pid)
        self._gc_full_at_start = gcpace.full_collections()  # the forkserver's, inherited
        self._broker_factory = None
        if args.broker is not None:
            self._broker_factory = broker_factory(
                args.broker,
                args.mode,
                book=registry.spec(args.role).book if args.role in registry.role_names(with_emulator=True) else "",
                book_path=Path(args.journal_path).parent / SHADOW_BOOK,
                clock=self.clock,
            )
        self._seq = TopicSequence()
        self._last_seq: dict[tuple[str, bytes], int] = {}
        self.decode_errors = 0
        self.gaps = 0
        self.exit_code: int | None = None
        self._exit_lock = threading.Lock()
        self.journal_db = Journal(args.journal_path, src=args.role)
        self.ctx = transport.new_context()
        self.io = transport.SocketThread(self.ctx, f"{args.role}-io")
        self.actor_ref: pykka.ActorRef[RoleActor[object, Any]] | None = None
        self._parent_pid = os.getppid()

    # --- RoleRuntime ---

    def open_broker(self, *, on_request_outcome: RequestOutcome | None = None, slippage_pips: float = 0.0) -> Broker:
        """A new broker client for this role (by ``broker.kind``, ``host.mode`` and its part in the
        shadow book).

        Raises:
            ConfigError: the tree has no broker, or a secret is missing.
        """
        if self._broker_factory is None:
            raise ConfigError(f"{self.role}: no [broker] configuration was handed to this role")
        return self._broker_factory(on_request_outcome=on_request_outcome, slippage_pips=slippage_pips)

    def injected(self, fault: str) -> bool:
        """True when a fault-injection test asks this role for ``fault``."""
        return injected(fault, self.role)

    def publish(self, topic: str, body: Body, *, corr: str | None = None) -> None:
        """Publish ``body`` on the bus under ``topic``, numbered for gap detection."""
        env = make_envelope(body, src=self.role, seq=self._seq.next(topic), corr=corr)
        self.io.send("pub", [topic.encode(), encode(env)])

    def to_supervisor(self, body: Body) -> None:
        """Send ``body`` to the supervisor on the control channel."""
        self.io.send("control", [encode(make_envelope(body, src=self.role))])

    def journal(self, kind: str, body: dict[str, Any], *, corr: str | None = None) -> None:
        """Append to the journal (raises on failure: the actor fails and the process restarts)."""
        self.journal_db.write(kind, body, corr=corr)

    def journal_many(self, rows: list[tuple[str, dict[str, Any], str | None, int]]) -> None:
        """Append several entries (kind, body, corr, ts_ns) in one transaction (raises like ``journal``)."""
        self.journal_db.write_many(rows)

    def heartbeat_fields(self) -> dict[str, Any]:
        """pid, rss and transport counters for the heartbeat."""
        return {
            "pid": self.pid,
            "rss_mb": round(self._proc.memory_info().rss / 1_048_576, 2),
            "decode_errors": self.decode_errors,
            "gaps": self.gaps,
            "dropped": self.io.stats.dropped_out,
            "handler_errors": self.io.stats.handler_errors,
            "gc_full": gcpace.full_collections() - self._gc_full_at_start,
            "gc_max_ms": gcpace.longest_ms(),
        }

    def request_exit(self, code: int) -> None:
        """Stop the socket loop; the process exits with ``code``."""
        with self._exit_lock:
            if self.exit_code is None:
                self.exit_code = code
        self.io.stop(timeout_s=0)

    def abort(self, code: int, reason: str) -> None:
        """The actor failed: journal why and end the process now with ``code``."""
        with contextlib.suppress(Exception):  # the journal may be the thing that failed
            self.journal_db.write("role.crashed", {"role": self.role, "pid": self.pid, "error": reason})
        logging.shutdown()
        os._exit(code)

    # --- socket thread side ---

    def _on_bus(self, frames: transport.Frames) -> None:
        if len(frames) != 2:
            self._bad(f"bus message with {len(frames)} frames")
            return
        try:
            env = decode(frames[1])
        except MessageDecodeError as e:
            self._bad(str(e))
            return
        if env.src != self.role and env.seq:
            key = (env.src, frames[0])
            last = self._last_seq.get(key, 0)
            if env.seq > last + 1 and last:
                self.gaps += 1
                # Journaled by the actor: the socket thread must not wait on SQLite.
                self.tell(
                    GapDetected(src=env.src, topic=frames[0].decode(errors="replace"), expected=last + 1, got=env.seq)
                )
            self._last_seq[key] = env.seq
        self.tell(Inbound(env))

    def _on_control(self, frames: transport.Frames) -> None:
        try:
            env = decode(frames[-1])
        except MessageDecodeError as e:
            self._bad(f"control: {e}")
            return
        if isinstance(env.body, StopRole):
            body = env.body
            self.tell(StopRequested(deadline_s=body.deadline_s, reason=body.reason, protection_s=body.protection_s))
            self.arm_deadline(env.body.deadline_s)
        elif env.src == "supervisor":  # commands for the role (ReconcileNow, FlattenRequested)
            self.tell(Inbound(env))

    def _bad(self, why: str) -> None:
        self.decode_errors += 1
        if self.decode_errors <= 10 or self.decode_errors % 1000 == 0:
            log.warning("%s dropped a malformed message (%d so far): %s", self.role, self.decode_errors, why)

    def tell(self, message: object) -> None:
        if self.actor_ref is not None:
            try:
                self.actor_ref.tell(message)
            except pykka.ActorDeadError:
                self.request_exit(1)

    def arm_deadline(self, deadline_s: float) -> None:
        def expire() -> None:
            log.error("%s missed its shutdown deadline of %.1fs; exiting", self.role, deadline_s)
            logging.shutdown()
            os._exit(EXIT_DEADLINE)

        timer = threading.Timer(deadline_s, expire)
        timer.daemon = True
        timer.start()

    def _check_parent(self) -> None:
        if os.getppid() != self._parent_pid or not _alive(self.args.root_pid):
            log.error("%s lost its parent; exiting", self.role)
            self.request_exit(1)

    # --- life cycle ---

    def run(self) -> int:
        """Start sockets and actor, run the loop until exit is requested; return the exit code."""
        args = self.args
        for endpoint in (args.control, args.events_out, args.events_in):
            why = unreachable(endpoint)
            if why is not None:
                log.error("%s cannot reach the tree (%s); exiting", args.role, why)
                return EXIT_NO_BUS
        actor_cls = registry.actor_class(args.role)
        role_topics = (*actor_cls.TOPICS, TOPIC_SYS_STATE)
        self.io.add(
            "control",
            transport.make_socket(
                self.ctx,
                transport.DEALER,
                connect=args.control,
                identity=f"{args.role}/{self.pid}".encode(),
                linger_ms=CONTROL_LINGER_MS,  # so RoleStopping still leaves as the process ends
            ),
            self._on_control,
        )
        self.io.add(
            "sub",
            transport.make_socket(self.ctx, transport.SUB, connect=args.events_out, subscribe=role_topics),
            self._on_bus,
        )
        self.io.add("pub", transport.make_socket(self.ctx, transport.PUB, connect=args.events_in))
        self.actor_ref = actor_cls.start(self)
        self.io.every(args.heartbeat_interval_s, lambda: self.tell(HeartbeatDue()))
        self.io.every(0.5, self._check_parent, first_in_s=0.5)
        gcpace.schedule(self.io, args.gc_interval_s)
        self.io.run()
        self._stop_actor()
        self.ctx.term()
        self.journal_db.close()
        return self.exit_code if self.exit_code is not None else 0

    def _stop_actor(self) -> None:
        if self.actor_ref is None:
            return
        with contextlib.suppress(pykka.Timeout, pykka.ActorDeadError):
            self.actor_ref.stop(block=True, timeout=2.0)


def child_main(args: ChildArgs) -> None:
    """Entry point of every role process (the multiprocessing target)."""
    _set_parent_death_signal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(args.log_level, src=args.role)
    memtrace.start(args.role)  # off unless TRADEHOST_TRACEMALLOC names a directory
    signal.signal(signal.SIGUSR1, lambda *_: pykka.debug.log_thread_tracebacks())
    if not psutil.pid_exists(args.root_pid):
        os._exit(1)
    if injected("crash_on_start", args.role):
        log.error("%s: injected crash on start (%s)", args.role, FAULT_ENV)
        logging.shutdown()
        os._exit(EXIT_INJECTED_CRASH)
    if injected("hang_on_start", args.role):
        log.error("%s: injected hang on start (%s)", args.role, FAULT_ENV)
        threading.Event().wait()
    code = 1
    started = time.monotonic()
    try:
        runtime = ChildRuntime(args)

        def stop_on_term() -> None:
            runtime.arm_deadline(SIGTERM_DEADLINE_S)
            runtime.tell(StopRequested(deadline_s=SIGTERM_DEADLINE_S, reason="SIGTERM"))

        def on_term(*_: object) -> None:
            runtime.io.call_soon(stop_on_term)  # nothing lock-taking inside a signal handler

        signal.signal(signal.SIGTERM, on_term)
        code = runtime.run()
    except Exception:  # the process must still end (actor threads are non-daemon)
        log.exception("%s runtime failed", args.role)
    finally:
        log.info("%s exiting with %d after %.1fs", args.role, code, time.monotonic() - started)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
