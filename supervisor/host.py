"""``run_host``: the root process of ``tradehost run`` from start to exit code.

Order of start: run directory (0700) and its lock (one host per run directory), logging,
journal, the bus and ctl sockets, the forkserver (which preloads the role modules, pandas and
CatBoost before any zmq context exists in it), the child watcher, the supervisor actor, then
the roles. SIGTERM and SIGINT ask the supervisor for a graceful shutdown; a second signal is
logged and changes nothing (the safe steps are never skipped). Under systemd the root sends
``READY=1`` and pings ``WATCHDOG=1`` only while the supervisor answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.context import BaseContext
from pathlib import Path
from types import FrameType
from typing import IO, Any

import pykka

from actors import transport
from actors.errors import ConfigError
from actors.journal import Journal
from actors.logs import setup_logging
from actors.runtime import ROLE_MODULES, ChildArgs, child_main
from supervisor import statefile
from supervisor.bus import RootIO
from supervisor.hostconfig import HostConfig
from supervisor.inbox import ChildExited, ShutdownRequested, Start
from supervisor.tree import Supervisor
from supervisor.watcher import ChildWatcher

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
PRELOAD = ["actors.runtime", *ROLE_MODULES.values(), "pandas", "catboost"]


class HostLockedError(ConfigError):
    """Another host is running in the same run directory."""


def prepare_run_dir(run_dir: Path) -> IO[str]:
    """Create the run directory (0700) and take its lock; returns the open lock file.

    Raises:
        HostLockedError: another host holds the lock.
        ConfigError: the directory cannot be created or written.
    """
    try:
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        run_dir.chmod(0o700)
        lock = (run_dir / "tradehost.lock").open("a+")
    except OSError as e:
        raise ConfigError(f"host.run_dir: cannot use {run_dir}: {e.strerror}") from e
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise HostLockedError(f"host.run_dir: another host is running in {run_dir} (pid {holder})") from e
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def sd_notify(message: str) -> None:
    """Send a systemd notification if running under ``Type=notify`` (no-op otherwise)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


def free_port(host: str) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def with_emulator_port(cfg: HostConfig) -> HostConfig:
    """Fix the embedded emulator's port once for the whole run and point the broker at it.

    A restarted emulator comes back on the same port, so the roles' clients need no news.
    """
    broker = cfg.broker
    if broker.kind != "emulator":
        return cfg
    emulator = broker.emulator
    port = emulator.port or free_port(emulator.host)
    emulator = dataclasses.replace(emulator, port=port)
    url = broker.api_url or f"http://{emulator.host}:{port}"
    return dataclasses.replace(cfg, broker=dataclasses.replace(broker, emulator=emulator, api_url=url))


def forkserver_context() -> BaseContext:
    """The forkserver context with the role modules preloaded (never plain-fork: we have threads)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def run_host(cfg: HostConfig) -> int:
    """Run the tree in the foreground until it is shut down; returns the exit code.

    Raises:
        ConfigError: the run directory is unusable or locked, or saved state is unreadable.
    """
    setup_logging(cfg.host.log_level, src="supervisor")
    run_dir = cfg.run_dir
    lock = prepare_run_dir(run_dir)
    try:
        saved = statefile.load(run_dir / "state.json")  # unreadable: refuse to start (exit 2)
    except ConfigError:
        lock.close()
        raise
    cfg = with_emulator_port(cfg)
    journal = Journal(run_dir / "journal.sqlite", src="supervisor")
    zctx = transport.new_context()
    root_io = RootIO(cfg, zctx)
    try:
        root_io.bind()
    except transport.ZMQError as e:
        journal.close()
        lock.close()
        raise ConfigError(f"bus/ctl: cannot bind an endpoint: {e}") from e
    mp = forkserver_context()
    done = threading.Event()
    supervisor_ref: pykka.ActorRef[Supervisor] | None = None

    def on_exit(role: str, pid: int, code: int) -> None:
        if supervisor_ref is not None:
            supervisor_ref.tell(ChildExited(role, pid, code))

    watcher = ChildWatcher(on_exit)
    root_pid = os.getpid()

    role_configs: dict[str, Any] = {"feed": cfg.feed, "reconciler": cfg.reconciler}

    def spawn(role: str) -> int:
        args = ChildArgs(
            role=role,
            events_in=cfg.bus.events_in,
            events_out=cfg.bus.events_out,
            control=cfg.bus.control,
            journal_path=str(run_dir / "journal.sqlite"),
            heartbeat_interval_s=cfg.supervisor.heartbeat_interval_s,
            log_level=cfg.host.log_level,
            mode=cfg.host.mode,
            root_pid=root_pid,
            broker=cfg.broker,
            role_config=role_configs.get(role),
        )
        proc = mp.Process(target=child_main, args=(args,), name=f"tradehost-{role}", daemon=True)  # type: ignore[attr-defined]
        proc.start()
        # multiprocessing polls every child it knows on each start(), reading the sentinel pipe
        # that carries the exit status; the watcher thread must be the only reader.
        multiprocessing.process._children.discard(proc)  # type: ignore[attr-defined]
        watcher.watch(role, proc)
        return int(proc.pid)

    supervisor_ref = Supervisor.start(
        cfg, journal=journal, io=root_io, spawner=spawn, done=done, state_path=run_dir / "state.json", saved=saved
    )
    signals_seen = 0

    def request_shutdown(name: str, count: int) -> None:
        if count > 1:
            log.warning("%s received again: shutdown is in progress and will finish its safe steps", name)
        if supervisor_ref is not None:
            supervisor_ref.tell(ShutdownRequested(trigger=name))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only a reentrant hand-off here: the interrupted main thread may hold the locks of
        # pykka's inbox or of logging. The root's socket thread does the rest.
        nonlocal signals_seen
        signals_seen += 1
        name, count = signal.Signals(signum).name, signals_seen
        root_io.io.call_soon(lambda: request_shutdown(name, count))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    watcher.start()
    root_io.start(supervisor_ref)
    started = time.monotonic()
    try:
        supervisor_ref.tell(Start())
        log.info(
            "tradehost running (pid %d, mode %s, run dir %s, ctl %s)",
            root_pid,
            cfg.host.mode,
            run_dir,
            cfg.ctl.endpoint,
        )
        sd_notify("READY=1")
        while not done.wait(1.0):
            if _supervisor_answers(supervisor_ref):
                sd_notify("WATCHDOG=1")
        code = EXIT_OK
    finally:
        sd_notify("STOPPING=1")
        t = time.monotonic()
        with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
            supervisor_ref.stop(timeout=2.0)
        log.debug("teardown: supervisor stopped after %.1f ms", (time.monotonic() - t) * 1000)
        watcher.stop()
        log.debug("teardown: watcher stopped after %.1f ms", (time.monotonic() - t) * 1000)
        root_io.stop()
        log.debug("teardown: sockets closed after %.1f ms", (time.monotonic() - t) * 1000)
        zctx.term()
        log.debug("teardown: zmq context terminated after %.1f ms", (time.monotonic() - t) * 1000)
        journal.close()
        lock.close()
    log.info("tradehost exited after %.1fs", time.monotonic() - started)
    return code


def _supervisor_answers(ref: pykka.ActorRef[Any]) -> bool:
    try:
        ref.ask(_Ping(), timeout=2.0)
    except (pykka.Timeout, pykka.ActorDeadError):
        return False
    return True


class _Ping:
    """A no-op message: the supervisor's inbox is moving."""
