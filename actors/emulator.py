"""Emulator role: the OANDA v20 emulator as a supervised child of the tree.

When ``broker.kind = "emulator"`` (the default) the supervisor starts this role first and stops
it last. Its actor runs the emulator's HTTP server (``actors.broker.emulator.serve``) on a
thread, on the port the root chose at start, so a restarted emulator comes back where the
clients expect it (with a fresh account: the emulator keeps no state across restarts). The
role heartbeats like every other; a dead server thread fails the role and the supervisor
restarts it.
"""

from __future__ import annotations

import os
import threading
from typing import ClassVar

from actors.base import RoleActor
from actors.broker.config import load_credentials
from actors.broker.emulator import options_from_config, serve
from actors.worker import Worker

READY_TIMEOUT_S = 30.0


class EmulatorActor(RoleActor):
    """Hosts the emulator server."""

    ROLE: ClassVar[str] = "emulator"
    TOPICS: ClassVar[tuple[str, ...]] = ()

    def on_start(self) -> None:
        """Start the server and wait until it accepts requests (the first heartbeat follows)."""
        config = self.runtime.broker_config
        if config is None:
            raise RuntimeError("emulator role started without a broker configuration")
        options = options_from_config(config.emulator, load_credentials(os.environ, kind="emulator"))
        ready = threading.Event()
        self.port = 0

        def on_ready(port: int) -> None:
            self.port = port
            ready.set()

        self.worker = Worker("emulator-server", lambda stop: serve(options, ready=on_ready, stop=stop))
        self.worker.start()
        if not ready.wait(READY_TIMEOUT_S):
            raise RuntimeError(f"emulator did not start within {READY_TIMEOUT_S:g}s")
        self.runtime.journal("emulator.started", {"port": self.port, "seed": options.seed, "speed": options.speed})

    def on_heartbeat(self) -> None:
        """A dead server thread fails the role."""
        if not self.worker.alive():
            raise RuntimeError("emulator server thread died")

    def on_shutdown(self, deadline_s: float) -> str:
        """Stop the server."""
        stopped = self.worker.stop(min(2.0, deadline_s / 2))
        return "emulator stopped" if stopped else "emulator server did not stop in time"


ACTOR = EmulatorActor
