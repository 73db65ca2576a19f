"""ZeroMQ transport: the only module of tradehost that imports zmq.

It owns the primitives every process uses: ``SocketThread`` (one thread owns a set of sockets,
polls them with a timeout, hands inbound frames to callbacks and sends what other threads queue
with ``send()``), ``BusProxy`` (the XSUB/XPUB event proxy of the root process) and the endpoint
helpers (ipc paths, 0600 sockets). Sockets are never shared between threads: other threads talk
to a ``SocketThread`` through a queue and a wake-up pipe. Sockets have ``LINGER 0`` unless a
caller asks for more. ``tradehost ctl`` over ipc does not use this module (see
``actors.runtime.zmtp``); over tcp it does, for pyzmq's CURVE: the key pairs
(``new_curve_key_pair``, ``load_curve_key``), the ZAP authenticator that admits only the public
keys of a directory (``start_curve_authenticator``), the server side of a socket
(``make_socket(curve_secret_key=...)``) and one request from the client side (``curve_request``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq


def _log_exception(message: str, *args: object) -> None:
    # logging is imported on first use: `tradehost ctl` imports this module and must start fast.
    import logging  # noqa: PLC0415

    logging.getLogger(__name__).exception(message, *args)


Frames = list[bytes]
# High-water mark of the proxy's sockets: deep enough for bursts (a subscriber that still falls
# behind loses messages, which publisher sequence numbers make visible as gaps).
BUS_HWM = 100_000
Handler = Callable[[Frames], None]

PUB = zmq.PUB
SUB = zmq.SUB
DEALER = zmq.DEALER
ROUTER = zmq.ROUTER

ZMQError = zmq.ZMQError


def new_context() -> zmq.Context[zmq.Socket[bytes]]:
    """A fresh ZeroMQ context (never create one before a fork)."""
    return zmq.Context()


def make_socket(
    ctx: zmq.Context[zmq.Socket[bytes]],
    kind: int,
    *,
    bind: str | None = None,
    connect: str | None = None,
    identity: bytes | None = None,
    subscribe: tuple[str, ...] = (),
    max_msg_bytes: int | None = None,
    hwm: int | None = None,
    linger_ms: int = 0,
    curve_secret_key: tuple[bytes, bytes] | None = None,
) -> zmq.Socket[bytes]:
    """Create a socket (LINGER 0 unless asked), bind or connect it, and chmod an ipc endpoint to 0600.

    ``curve_secret_key`` (public, secret), from ``load_curve_key``, makes it a CURVE server: start
    the ZAP authenticator (``start_curve_authenticator``) on ``ctx`` before, or every key is let in.
    """
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, linger_ms)
    if curve_secret_key is not None:
        sock.curve_publickey, sock.curve_secretkey = curve_secret_key
        sock.curve_server = True
        sock.zap_domain = CURVE_ZAP_DOMAIN
    if identity is not None:
        sock.setsockopt(zmq.IDENTITY, identity)
    if max_msg_bytes is not None:
        sock.setsockopt(zmq.MAXMSGSIZE, max_msg_bytes)
    if hwm is not None:
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
    if kind == zmq.ROUTER:
        # Unroutable replies (peer gone) are dropped, never raise.
        sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
    for topic in subscribe:
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    try:
        if bind is not None:
            sock.bind(bind)
            secure_ipc(bind)
        if connect is not None:
            sock.connect(connect)
    except zmq.ZMQError:
        sock.close(0)
        raise
    return sock


CURVE_ZAP_DOMAIN = b"tradehost"


def has_curve() -> bool:
    """True when the installed libzmq was built with CURVE (libsodium)."""
    return bool(zmq.has("curve"))


def new_curve_key_pair(directory: str, name: str) -> tuple[str, str]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (public + secret) into ``directory``,
    both created 0600 (pyzmq's certificate format, which ``zmq.auth`` reads).

    Raises:
        FileExistsError: a file of that name is there already (never written over).
    """
    import zmq.auth  # noqa: PLC0415 - only `tradehost keys new` writes keys

    base = os.path.join(directory, name)  # noqa: PTH118
    for path in (f"{base}.key", f"{base}.key_secret"):
        if os.path.lexists(path):
            raise FileExistsError(f"{path} exists; it is never written over")
    old = os.umask(0o077)
    try:
        public, secret = zmq.auth.create_certificates(directory, name)
    finally:
        os.umask(old)
    for path in (public, secret):
        os.chmod(path, 0o600)  # noqa: PTH101
    return public, secret


def load_curve_key(path: str) -> tuple[bytes, bytes | None]:
    """The (public, secret) key of a ``tradehost keys new`` file; secret is None for a ``.key``.

    Raises:
        ValueError: not a key file.
        OSError: unreadable.
    """
    import zmq.auth  # noqa: PLC0415

    public, secret = zmq.auth.load_certificate(path)
    if not public:
        raise ValueError(f"{path} holds no CURVE public key")
    return public, secret


def start_curve_authenticator(ctx: zmq.Context[zmq.Socket[bytes]], authorized_keys_dir: str) -> Any:
    """Start pyzmq's ZAP authenticator (a thread on ``ctx``) admitting only the CURVE public keys
    (``*.key`` files) found in ``authorized_keys_dir`` now; stop it with ``.stop()`` before
    ``ctx.term()``. A key added later needs a restart."""
    import logging  # noqa: PLC0415

    from zmq.auth.thread import ThreadAuthenticator  # noqa: PLC0415

    auth = ThreadAuthenticator(ctx, log=logging.getLogger("tradehost.ctl.auth"))
    auth.start()
    auth.configure_curve(domain=CURVE_ZAP_DOMAIN.decode(), location=authorized_keys_dir)
    return auth


def curve_request(
    endpoint: str, payload: bytes, timeout_s: float, *, server_public_key: bytes, client_key: tuple[bytes, bytes]
) -> bytes | None:
    """Send ``[b"", payload]`` over a CURVE DEALER and return the reply's last frame, or None when
    nothing arrives within ``timeout_s`` (a host that is down, or one that refused this key: ZAP
    gives a refused client nothing, not even an error)."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_serverkey = server_public_key
        sock.curve_publickey, sock.curve_secretkey = client_key
        sock.connect(endpoint)
        sock.send_multipart([b"", payload])
        if not sock.poll(max(1, int(timeout_s * 1000))):
            return None
        return sock.recv_multipart()[-1]
    finally:
        sock.close(0)
        ctx.term()


def ipc_path(endpoint: str) -> str | None:
    """The filesystem path of an ``ipc://`` endpoint, or None for other transports."""
    if endpoint.startswith("ipc://"):
        return endpoint[len("ipc://") :]
    return None


def secure_ipc(endpoint: str) -> None:
    """Restrict an ipc socket file to its owner (0600)."""
    path = ipc_path(endpoint)
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, 0o600)  # noqa: PTH101 (no pathlib on the ctl start-up path)


def remove_stale_ipc(endpoint: str) -> None:
    """Remove a leftover ipc socket file from a previous run (the caller holds the run lock)."""
    path = ipc_path(endpoint)
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # noqa: PTH108 (no pathlib on the ctl start-up path)


@dataclass
class _Periodic:
    interval_s: float
    fn: Callable[[], None]
    due: float


@dataclass
class SocketStats:
    """Counters a SocketThread keeps (read from other threads without locks: ints only); a role
    reports them in its heartbeat and ``ctl status`` shows them (``dropped``, ``handler_errors``)."""

    dropped_out: int = 0
    handler_errors: int = 0


class SocketThread:
    """One thread that owns a set of sockets.

    Inbound frames go to the handler registered with the socket (called on this thread, which
    must not block). Other threads call ``send(name, frames)``: the frames are queued and the
    thread is woken through a pipe, so sockets are only ever touched by their owner.
    """

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], name: str) -> None:
        self.ctx = ctx
        self.name = name
        self.stats = SocketStats()
        self._sockets: dict[str, zmq.Socket[bytes]] = {}
        self._handlers: dict[zmq.Socket[bytes], tuple[str, Handler]] = {}
        self._outbox: queue.SimpleQueue[tuple[str, Frames]] = queue.SimpleQueue()
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._periodic: list[_Periodic] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poller = zmq.Poller()
        self._poller.register(self._wake_r, zmq.POLLIN)
        self._closed = False

    def add(self, name: str, sock: zmq.Socket[bytes], on_recv: Handler | None = None) -> None:
        """Register a socket (before ``run``/``start``); ``on_recv`` gets each inbound message."""
        self._sockets[name] = sock
        if on_recv is not None:
            self._handlers[sock] = (name, on_recv)
            self._poller.register(sock, zmq.POLLIN)

    def every(self, interval_s: float, fn: Callable[[], None], *, first_in_s: float = 0.0) -> None:
        """Call ``fn`` on this thread every ``interval_s`` (first call after ``first_in_s``)."""
        self._periodic.append(_Periodic(interval_s, fn, time.monotonic() + first_in_s))

    def send(self, name: str, frames: Frames) -> None:
        """Queue frames for the socket ``name``; safe from any thread, never blocks."""
        self._outbox.put((name, frames))
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on this thread soon. Safe from a signal handler: ``SimpleQueue.put`` is
        reentrant and the wake-up is one ``os.write`` (a handler must not take the locks that
        ``queue.Queue``, pykka's ``tell()`` or logging use: the interrupted code may hold them)."""
        self._calls.put(fn)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def start(self) -> None:
        """Run the loop on a new daemon thread."""
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Ask the loop to finish (it flushes the outbox first) and wait for it."""
        self._stop.set()
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def stopped(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    def run(self) -> None:
        """The poll loop; returns after ``stop()``, closing every socket."""
        try:
            while not self._stop.is_set():
                timeout_ms = self._run_due()
                events = dict(self._poller.poll(timeout_ms))
                if self._wake_r in events:
                    self._drain_wake()
                self._run_calls()
                self._flush_outbox()
                for sock, (name, handler) in self._handlers.items():
                    if sock in events:
                        self._receive(sock, name, handler)
            self._flush_outbox()
        finally:
            self.close()

    def close(self) -> None:
        """Close every socket and the wake pipe (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for sock in self._sockets.values():
            sock.close(0)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run_due(self) -> int:
        if not self._periodic:
            return 100
        now = time.monotonic()
        next_due = now + 0.1
        for p in self._periodic:
            if p.due <= now:
                p.due = max(p.due + p.interval_s, now)
                try:
                    p.fn()
                except Exception:  # noqa: BLE001 (a periodic job must not kill the socket thread; logged)
                    self.stats.handler_errors += 1
                    _log_exception("periodic job failed in %s", self.name)
            next_due = min(next_due, p.due)
        return max(0, int((next_due - time.monotonic()) * 1000) + 1)

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_r, 4096):
                pass

    def _run_calls(self) -> None:
        while True:
            try:
                fn = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            except Exception:  # noqa: BLE001 (a deferred call must not kill the socket thread; logged)
                self.stats.handler_errors += 1
                _log_exception("deferred call failed in %s", self.name)

    def _flush_outbox(self) -> None:
        while True:
            try:
                name, frames = self._outbox.get_nowait()
            except queue.Empty:
                return
            sock = self._sockets.get(name)
            if sock is None:
                self.stats.dropped_out += 1
                continue
            try:
                sock.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.ZMQError:
                # HWM reached or peer unroutable: counted; callers that need delivery use acks.
                self.stats.dropped_out += 1

    def _receive(self, sock: zmq.Socket[bytes], name: str, handler: Handler) -> None:
        for _ in range(256):  # bounded so one busy socket cannot starve the others
            try:
                frames = sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                self.stats.handler_errors += 1
                return
            try:
                handler(frames)
            except Exception:  # noqa: BLE001 (bad input must never kill the socket thread; logged)
                self.stats.handler_errors += 1
                _log_exception("handler for %s failed in %s", name, self.name)


class BusProxy:
    """The XSUB/XPUB event proxy: publishers connect to ``frontend``, subscribers to ``backend``."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], frontend: str, backend: str, *, hwm: int = BUS_HWM) -> None:
        self.frontend = frontend
        self.backend = backend
        self.hwm = hwm
        self._ctx = ctx
        self._control_endpoint = f"inproc://bus-proxy-control-{id(self):x}"
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: zmq.ZMQError | None = None

    def start(self) -> None:
        """Bind both sides and run the proxy on a daemon thread.

        Raises:
            zmq.ZMQError: an endpoint could not be bound.
        """
        self._thread = threading.Thread(target=self._run, name="bus-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            xsub = make_socket(self._ctx, zmq.XSUB, bind=self.frontend, hwm=self.hwm)
            xpub = make_socket(self._ctx, zmq.XPUB, bind=self.backend, hwm=self.hwm)
            control = make_socket(self._ctx, zmq.PAIR, bind=self._control_endpoint)
        except zmq.ZMQError as e:  # handed to start() in the caller's thread
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            zmq.proxy_steerable(xsub, xpub, None, control)
        except zmq.ZMQError as e:
            if e.errno != zmq.ETERM:
                _log_exception("bus proxy stopped")
        finally:
            for sock in (xsub, xpub, control):
                sock.close(0)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Terminate the proxy and wait for its thread."""
        if self._thread is None:
            return
        ctl = make_socket(self._ctx, zmq.PAIR, connect=self._control_endpoint)
        try:
            # libzmq 4.3's steerable proxy now and then misses a single TERMINATE (seen here about
            # one stop in five, each costing the whole join timeout), so repeat it until it is gone.
            deadline = time.monotonic() + timeout_s
            while self._thread.is_alive() and time.monotonic() < deadline:
                with contextlib.suppress(zmq.Again):
                    ctl.send(b"TERMINATE", flags=zmq.NOBLOCK)
                self._thread.join(0.02)
        finally:
            ctl.close(0)
