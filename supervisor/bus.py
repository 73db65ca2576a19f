"""The root process's sockets: the event proxy, the control channel, ctl, and sys.state out.

``RootIO`` runs one ``SocketThread`` that owns the control ROUTER (roles' DEALERs connect to
it), the ctl ROUTER (``tradehost ctl`` connects to it; ipc socket 0600, or on a ``tcp://``
endpoint a CURVE server behind pyzmq's ZAP authenticator admitting only the public keys of
``ctl.authorized_keys_dir``; frames capped at ``ctl.max_request_bytes``) and a PUB into the proxy
for ``sys.state`` and alerts. Inbound control messages are decoded here and ctl requests checked
here, so malformed input never reaches the supervisor actor. The XSUB/XPUB proxy runs on its own thread (``BusProxy``).
"""

from __future__ import annotations

import logging
from typing import Any

from actors.core.errors import MessageDecodeError
from actors.runtime import transport
from actors.runtime.messages import decode
from supervisor.coreconfig import CoreConfig
from supervisor.ctl.server import parse_request
from supervisor.inbox import CtlCall, FromChild, Tick

log = logging.getLogger(__name__)

TICK_S = 0.05


class RootIO:
    """Sockets of the root process (see the module docstring)."""

    def __init__(self, cfg: CoreConfig, ctx: Any) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.proxy = transport.BusProxy(ctx, cfg.bus.events_in, cfg.bus.events_out)
        self.io = transport.SocketThread(ctx, "root-io")
        self.supervisor: Any = None
        self.authenticator: Any = None

    def bind(self) -> None:
        """Bind every endpoint (before any role starts); raises zmq errors with the endpoint."""
        for endpoint in (self.cfg.bus.events_in, self.cfg.bus.events_out, self.cfg.bus.control, self.cfg.ctl.endpoint):
            transport.remove_stale_ipc(endpoint)
        self.proxy.start()
        self.io.add(
            "control", transport.make_socket(self.ctx, transport.ROUTER, bind=self.cfg.bus.control), self._on_control
        )
        curve_key = None
        if self.cfg.ctl.is_tcp:  # CURVE only (supervisor.config._check_ctl_curve); the ZAP handler first
            public, secret = transport.load_curve_key(self.cfg.ctl.server_secret_key_file)
            if secret is None:
                raise ValueError(f"{self.cfg.ctl.server_secret_key_file} holds no secret key")
            curve_key = (public, secret)
            self.authenticator = transport.start_curve_authenticator(self.ctx, self.cfg.ctl.authorized_keys_dir)
        self.io.add(
            "ctl",
            transport.make_socket(
                self.ctx,
                transport.ROUTER,
                bind=self.cfg.ctl.endpoint,
                max_msg_bytes=self.cfg.ctl.max_request_bytes,
                hwm=1000,
                curve_secret_key=curve_key,
            ),
            self._on_ctl,
        )
        self.io.add("pub", transport.make_socket(self.ctx, transport.PUB, connect=self.cfg.bus.events_in))

    def start(self, supervisor: Any) -> None:
        """Start handing inbound messages and ticks to ``supervisor`` (an ActorRef)."""
        self.supervisor = supervisor
        self.io.every(TICK_S, lambda: self.supervisor.tell(Tick()))
        self.io.start()

    def send(self, name: str, frames: list[bytes]) -> None:
        """Queue frames for one of the root's sockets (any thread)."""
        self.io.send(name, frames)

    def stop(self, *, remove_files: bool = True) -> None:
        """Stop the socket thread and the proxy and (unless told not to) remove the ipc files."""
        if self.supervisor is None:
            self.io.close()  # never started: close here (a context cannot end with sockets open)
        else:
            self.io.stop()
        self.proxy.stop()
        if self.authenticator is not None:
            self.authenticator.stop()  # its thread's socket must close before the context ends
            self.authenticator = None
        if remove_files:
            for endpoint in (
                self.cfg.bus.events_in,
                self.cfg.bus.events_out,
                self.cfg.bus.control,
                self.cfg.ctl.endpoint,
            ):
                transport.remove_stale_ipc(endpoint)

    def _on_control(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            log.warning("dropped a control message of %d frames", len(frames))
            return
        try:
            env = decode(frames[1])
        except MessageDecodeError as e:
            log.warning("dropped a malformed control message: %s", e)
            return
        self.supervisor.tell(FromChild(identity=frames[0], envelope=env))

    def _on_ctl(self, frames: list[bytes]) -> None:
        request, error = parse_request(frames)
        if request is not None:
            self.supervisor.tell(CtlCall(request))
        elif error is not None:
            self.io.send("ctl", error)  # the caller hears why
