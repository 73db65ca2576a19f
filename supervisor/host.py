"""``run_host``: the root process of ``tradehost run`` from start to exit code.

Order of start: signal handlers (so a signal at any moment of start-up ends cleanly), the run
directory (0700) and its locks (one host per run directory, whatever happens to its files:
``supervisor.rundir``), saved state, the journal (refused at start when it cannot be written),
the bus and ctl sockets, the forkserver (which preloads the role modules, pandas and CatBoost
before any zmq context exists in it), the child watcher, the supervisor actor, then the roles.
A signal before the supervisor runs undoes what was created (the lock, the sockets, a journal
this start created) and exits 0. SIGTERM, SIGINT and SIGHUP (a closed terminal) ask the
supervisor for a graceful shutdown; a second signal is logged and changes nothing. While it
runs, the root checks several times a second that its run directory, lock, journal and sockets
are still the files it created; when one is gone or replaced, the supervisor latches NO_TRADE
and shuts down gracefully (exit 1) without writing into a directory that may not be its own.
Under systemd the root sends ``READY=1`` and pings ``WATCHDOG=1`` only while the supervisor
answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import secrets
import signal
import socket
import sqlite3
import time
from multiprocessing.context import BaseContext
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import psutil
import pykka

from actors.broker.config import emulator_base_url
from actors.core.atomicfile import write_atomically
from actors.core.errors import ConfigError
from actors.runtime import gcpace, memtrace, registry, transport
from actors.runtime.journal import Journal
from actors.runtime.logs import setup_logging
from actors.runtime.process import ChildArgs, child_main
from supervisor import statefile
from supervisor.bus import RootIO
from supervisor.hostconfig import HostConfig
from supervisor.inbox import ChildExited, HostExit, RunDirLost, ShutdownRequested, Start
from supervisor.rundir import LOCK_NAME, HostLock, HostLockedError, Loss, RunDirWatch
from supervisor.tree import Supervisor
from supervisor.watcher import ChildWatcher

if TYPE_CHECKING:
    from supervisor.metrics import MetricsServer

__all__ = ["HostLockedError", "run_host"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
# The last one freezes what the others loaded, so a role's collections leave those pages shared.
PRELOAD = [
    "actors.runtime.process",
    *(spec.module for spec in registry.ROLES),
    "pandas",
    "catboost",
    "actors.runtime.forkfreeze",
]
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
RUN_DIR_CHECK_S = 0.2
JOURNAL_NAME = "journal.sqlite"
# A child exit 255 (multiprocessing: the forkserver holding its status died) waits this long for the
# forkserver to look dead before the status is taken as real.
FORKSERVER_DEATH_S = 1.0


class StartupAborted(Exception):
    """A shutdown signal arrived before the supervisor ran."""


def sd_notify(message: str) -> None:
    """Send a systemd notification if running under ``Type=notify`` (no-op otherwise)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


def reserve_port(host: str, port: int) -> socket.socket:
    """Hold ``port`` (0: a free one) on ``host`` for the embedded emulator, for the whole run.

    The socket is bound, never listening, so no connection reaches it; it is bound with
    ``SO_REUSEADDR`` (a previous run's connections in TIME_WAIT do not block a fixed port) but without
    ``SO_REUSEPORT`` (a port someone listens on, another host's emulator included, is refused) and
    then marked ``SO_REUSEPORT``, so only the emulator (same user, binding with ``SO_REUSEPORT``) can
    bind the port beside it, and a restarted emulator again. While it is held, no other process's
    ``bind(("", 0))`` is given the port: a port probed and released (the old way) could be handed
    to a second host starting at the same moment, whose roles would then talk to the first host's
    emulator.

    Raises:
        OSError: the port is taken (or the address cannot be bound).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        sock.close()
        raise
    return sock


def with_emulator_port(cfg: HostConfig) -> tuple[HostConfig, socket.socket | None]:
    """Fix the embedded emulator's port once for the whole run and point the broker at it.

    A restarted emulator comes back on the same port, so the roles' clients need no news. Returns
    the configuration and the socket that holds the port (``reserve_port``; close it when the run
    ends), or None when the broker is not the embedded emulator.

    Raises:
        ConfigError: the configured port is taken.
    """
    broker = cfg.broker
    if broker.kind != "emulator":
        return cfg, None
    emulator = broker.emulator
    try:
        held = reserve_port(emulator.host, emulator.port)
    except OSError as e:
        raise ConfigError(f"broker.emulator.port: cannot hold port {emulator.port} on {emulator.host}: {e}") from e
    port = int(held.getsockname()[1])
    emulator = dataclasses.replace(emulator, port=port)
    url = broker.api_url or emulator_base_url(emulator, port)
    return dataclasses.replace(cfg, broker=dataclasses.replace(broker, emulator=emulator, api_url=url)), held


def forkserver_context() -> BaseContext:
    """The forkserver context with the role modules preloaded (never plain-fork: we have threads)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def open_journal(path: Path) -> Journal:
    """Open the journal and prove it can be written now.

    Raises:
        ConfigError: it cannot be opened or written (read-only file or directory, disk full).
    """
    try:
        journal = Journal(path, src="supervisor")
    except sqlite3.Error as e:
        raise ConfigError(f"host.run_dir: the journal {path} cannot be opened: {e}") from e
    try:
        journal.check_writable()
    except sqlite3.Error as e:
        journal.close()
        raise ConfigError(f"host.run_dir: the journal {path} cannot be written: {e}") from e
    return journal


def host_id(run_dir: Path) -> str:
    """This run directory's host instance id (``<run_dir>/host-id``, made once): every order
    carries it as its tag, so the reconciler can tell another tradehost trading the same account."""
    path = run_dir / "host-id"
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if not text or not text.isalnum() or len(text) > 32:
        text = secrets.token_hex(6)
        write_atomically(path, text.encode())
    return text


def _remove_journal_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def _forkserver_pid() -> int | None:
    # Private in multiprocessing, hence the guards: only used to explain an exit status of 255.
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    return pid if isinstance(pid, int) else None


def _alive(pid: int) -> bool:
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    return bool(status != psutil.STATUS_ZOMBIE)


def _gone(pid: int, *, within_s: float) -> bool:
    """Whether ``pid`` is dead or becomes so within ``within_s``. A killed process closes its
    pipes before the kernel shows it as a zombie: a child's status pipe can report the forkserver's
    death a moment before the forkserver looks dead."""
    deadline = time.monotonic() + within_s
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


class _Signals:
    """Shutdown signals: remembered during start-up, handed to the supervisor once it runs."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.forward: Any = None  # set once the supervisor runs

    def install(self) -> None:
        for sig in SHUTDOWN_SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only reentrant work here: the interrupted main thread may hold pykka's or logging's locks.
        self.seen.append(signal.Signals(signum).name)
        if self.forward is not None:
            self.forward(self.seen[-1], len(self.seen))

    def check(self) -> None:
        """Raise ``StartupAborted`` when a signal came during start-up."""
        if self.seen:
            raise StartupAborted(self.seen[0])


def run_host(cfg: HostConfig, *, early_signals: list[str] | None = None) -> int:
    """Run the tree in the foreground until it is shut down; returns the exit code.

    Args:
        cfg: the validated configuration.
        early_signals: shutdown signals the command line saw before this was called.

    Raises:
        ConfigError: the run directory is unusable or locked, saved state is unreadable, or the
            journal cannot be written.
    """
    setup_logging(cfg.host.log_level, src="supervisor")
    memtrace.start("root")  # off unless TRADEHOST_TRACEMALLOC names a directory
    signals = _Signals()
    signals.install()
    signals.seen.extend(early_signals or ())
    run_dir = cfg.run_dir
    journal_path = run_dir / JOURNAL_NAME
    with contextlib.ExitStack() as undo:
        try:
            signals.check()
            lock = HostLock.acquire(run_dir)
            undo.callback(lock.release)
            signals.check()
            saved = statefile.load(run_dir / "state.json")  # unreadable: refuse to start (exit 2)
            instance = host_id(run_dir)
            cfg, port_held = with_emulator_port(cfg)
            if port_held is not None:
                undo.callback(port_held.close)
            new_journal = not journal_path.exists()
            journal = open_journal(journal_path)
            undo.callback(journal.close)
            if new_journal:  # undone only while the start is not through (see pop_all below)
                undo.callback(_remove_journal_files, journal_path)
            signals.check()
            zctx = transport.new_context()
            undo.callback(zctx.term)
            root_io = RootIO(cfg, zctx)
            undo.callback(root_io.stop)
            try:
                root_io.bind()
            except transport.ZMQError as e:
                raise ConfigError(f"bus/ctl: cannot bind an endpoint: {e}") from e
            metrics = start_metrics(cfg, zctx)  # a port in use: ConfigError (exit 2)
            if metrics is not None:
                undo.callback(metrics.stop)
            signals.check()
        except StartupAborted as e:
            log.info("%s during start-up: nothing was started; exiting", e)
            return EXIT_OK
        undo.pop_all()  # from here on the tree owns these; teardown below releases them
    try:
        return _run_tree(
            cfg,
            lock=lock,
            journal=journal,
            zctx=zctx,
            root_io=root_io,
            saved=saved,
            signals=signals,
            instance=instance,
            metrics=metrics,
        )
    finally:
        if port_held is not None:
            port_held.close()  # after the emulator stopped: the port is free for the next run


def start_metrics(cfg: HostConfig, zctx: Any) -> MetricsServer | None:
    """Serve ``metrics.listen`` (None when it is empty); see ``supervisor.metrics``.

    Raises:
        ConfigError: the address cannot be served (a port in use): the start is refused.
    """
    if not cfg.metrics.listen:
        return None
    from supervisor import metrics  # noqa: PLC0415 - prometheus_client only when metrics are on

    emulator = cfg.broker.emulator
    # Bar closes are timed against the wall clock only when the market's clock is the wall clock.
    wall_market = cfg.broker.kind != "emulator" or (emulator.speed == 1.0 and not emulator.start and not emulator.data)
    return metrics.start_metrics(cfg.metrics.listen, zctx, cfg.bus.events_out, close_latency=wall_market)


def _run_tree(
    cfg: HostConfig,
    *,
    lock: HostLock,
    journal: Journal,
    zctx: Any,
    root_io: RootIO,
    saved: statefile.SavedState,
    signals: _Signals,
    instance: str,
    metrics: MetricsServer | None,
) -> int:
    run_dir = cfg.run_dir
    children = _Children(cfg, instance=instance)
    outcome = HostExit()
    supervisor_ref = Supervisor.start(
        cfg,
        journal=journal,
        io=root_io,
        spawner=children.spawn,
        done=outcome,
        state_path=run_dir / "state.json",
        saved=saved,
        metrics=metrics.board if metrics is not None else None,
    )
    children.supervisor_ref = supervisor_ref

    def request_shutdown(name: str, count: int) -> None:
        if count > 1:
            log.warning("%s received again: shutdown is in progress and will finish its safe steps", name)
        supervisor_ref.tell(ShutdownRequested(trigger=name))

    watch = _run_dir_watch(cfg, lock)
    lost: list[Loss] = []

    def check_run_dir() -> None:
        loss = watch.check()
        if loss is not None and not lost:
            lost.append(loss)
            supervisor_ref.tell(RunDirLost(loss.detail, still_ours=loss.still_ours))

    root_io.io.every(RUN_DIR_CHECK_S, check_run_dir)
    gcpace.schedule(root_io.io, cfg.host.gc_interval_s)
    signals.forward = lambda name, count: root_io.io.call_soon(lambda: request_shutdown(name, count))
    children.watcher.start()
    root_io.start(supervisor_ref)
    for count, name in enumerate(signals.seen, start=1):  # came after the last start-up check
        root_io.io.call_soon(lambda name=name, count=count: request_shutdown(name, count))  # type: ignore[misc]
    started = time.monotonic()
    try:
        supervisor_ref.tell(Start())
        ctl = cfg.ctl.endpoint
        log.info(
            "tradehost running (pid %d, mode %s, run dir %s, ctl %s)", children.root_pid, cfg.host.mode, run_dir, ctl
        )
        sd_notify("READY=1")
        while not outcome.wait(1.0):
            if _supervisor_answers(supervisor_ref):
                sd_notify("WATCHDOG=1")
        code = outcome.code
    finally:
        _teardown(
            supervisor_ref,
            children.watcher,
            root_io=root_io,
            zctx=zctx,
            journal=journal,
            lock=lock,
            lost=lost,
            metrics=metrics,
        )
    log.info("tradehost exited with %d after %.1fs", code, time.monotonic() - started)
    return code


class _Children:
    """Starts the role processes through the forkserver and tells the supervisor when one exits.

    ``supervisor_ref`` is set once the supervisor is started (it spawns nothing before its
    ``Start``).
    """

    def __init__(self, cfg: HostConfig, *, instance: str) -> None:
        self.cfg = cfg
        self.instance = instance
        self.mp = forkserver_context()
        self.root_pid = os.getpid()
        self.supervisor_ref: pykka.ActorRef[Supervisor] | None = None
        self.forkserver_pid: int | None = None
        self.watcher = ChildWatcher(self.on_exit)

    def on_exit(self, role: str, pid: int, code: int) -> None:
        """The watcher's report of a child's exit, for the supervisor."""
        exitcode: int | None = code
        if code == 255 and self.forkserver_pid is not None and _gone(self.forkserver_pid, within_s=FORKSERVER_DEATH_S):
            exitcode = None  # the forkserver that reaped it is gone: its real status is unknown
        if self.supervisor_ref is not None:
            self.supervisor_ref.tell(ChildExited(role, pid, exitcode))

    def spawn(self, role: str) -> int:
        """Start ``role``'s process; returns its pid."""
        cfg = self.cfg
        args = ChildArgs(
            role=role,
            events_in=cfg.bus.events_in,
            events_out=cfg.bus.events_out,
            control=cfg.bus.control,
            journal_path=str(cfg.run_dir / JOURNAL_NAME),
            heartbeat_interval_s=cfg.supervisor.heartbeat_interval_s,
            log_level=cfg.host.log_level,
            mode=cfg.host.mode,
            root_pid=self.root_pid,
            broker=cfg.broker,
            role_config=cfg.role_config(role),
            shared=cfg.shared_for(role),
            host_id=self.instance,
            gc_interval_s=cfg.host.gc_interval_s,
        )
        proc = self.mp.Process(target=child_main, args=(args,), name=f"tradehost-{role}", daemon=True)  # type: ignore[attr-defined]
        proc.start()
        self.forkserver_pid = _forkserver_pid()
        # multiprocessing polls every child it knows on each start(), reading the sentinel pipe
        # that carries the exit status; the watcher thread must be the only reader.
        multiprocessing.process._children.discard(proc)  # type: ignore[attr-defined]
        # The watcher owns the process object from here (it closes a child that died at once:
        # reading proc.pid after this failed the supervisor when a role crashed on start).
        return self.watcher.watch(role, proc)


def _run_dir_watch(cfg: HostConfig, lock: HostLock) -> RunDirWatch:
    """What the root checks is still there and still its own: the run directory, the lock file,
    the journal and the ipc sockets."""
    run_dir = cfg.run_dir
    watch = RunDirWatch()
    watch.add("run directory", run_dir, ownership=True)
    watch.add_fd("lock file", run_dir / LOCK_NAME, lock.lock_file.fileno(), ownership=True)
    watch.add("journal", run_dir / JOURNAL_NAME)
    for endpoint in (cfg.bus.events_in, cfg.bus.events_out, cfg.bus.control, cfg.ctl.endpoint):
        path = transport.ipc_path(endpoint)
        if path is not None:
            watch.add("socket", Path(path))
    return watch


def _teardown(
    supervisor_ref: pykka.ActorRef[Supervisor],
    watcher: ChildWatcher,
    *,
    root_io: RootIO,
    zctx: Any,
    journal: Journal,
    lock: HostLock,
    lost: list[Loss],
    metrics: MetricsServer | None = None,
) -> None:
    """Stop the supervisor, the watcher and the root's sockets; close the journal; release the lock
    (the lock file and the sockets are removed only while the run directory is not ``lost`` to
    another owner)."""
    sd_notify("STOPPING=1")
    t = time.monotonic()
    with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
        supervisor_ref.stop(timeout=2.0)
    log.debug("teardown: supervisor stopped after %.1f ms", (time.monotonic() - t) * 1000)
    watcher.stop()
    if metrics is not None:
        metrics.stop()
    ours = not lost or lost[0].still_ours
    root_io.stop(remove_files=ours)  # never unlink what may be another host's sockets
    zctx.term()
    journal.close()
    lock.release(remove_lock_file=ours)
    log.debug("teardown: done after %.1f ms", (time.monotonic() - t) * 1000)


def _supervisor_answers(ref: pykka.ActorRef[Any]) -> bool:
    try:
        ref.ask(_Ping(), timeout=2.0)
    except (pykka.Timeout, pykka.ActorDeadError):
        return False
    return True


class _Ping:
    """A no-op message: the supervisor's inbox is moving."""
