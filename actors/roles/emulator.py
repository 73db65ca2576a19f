"""Emulator role: the OANDA v20 emulator as a supervised child of the tree.

When ``broker.kind = "emulator"`` (the default) the supervisor starts this role first, starts
the other roles only once it has heartbeated (its server is listening by then, so no role's
first connection is refused), and stops it last. Its actor runs the emulator's HTTP server
(``actors.broker.emulator.serve``) on a worker thread, on the port the root chose at start, so a
restarted emulator comes back where the clients expect it (with a fresh account: the emulator
keeps no state across restarts). The role's config is ``[broker.emulator]``. A dead server
thread fails the role (the base class checks its workers) and the supervisor restarts it.
"""

from __future__ import annotations

import os
import threading
from typing import ClassVar

from actors.broker.config import BrokerConfig, EmulatorConfig, load_credentials
from actors.broker.emulator import options_from_config, serve
from actors.runtime.actor import NoResults, RoleActor

READY_TIMEOUT_S = 30.0


class EmulatorActor(RoleActor[EmulatorConfig, NoResults]):
    """Hosts the emulator server."""

    ROLE: ClassVar[str] = "emulator"
    TOPICS: ClassVar[tuple[str, ...]] = ()
    CONFIG: ClassVar[type[EmulatorConfig]] = EmulatorConfig

    def on_start(self) -> None:
        """Start the server and wait until it accepts connections (the first heartbeat follows)."""
        options = options_from_config(
            self.cfg,
            load_credentials(os.environ, kind="emulator", token_file=self.shared("broker", BrokerConfig).token_file),
        )
        ready = threading.Event()
        self.port = 0

        def on_ready(port: int) -> None:
            self.port = port
            ready.set()

        # The root holds the port for the whole run (supervisor.host.reserve_port): bind beside it.
        self.worker = self.start_worker(
            "server", lambda stop: serve(options, ready=on_ready, stop=stop, reuse_port=True)
        )
        deadline = self.clock.monotonic() + READY_TIMEOUT_S
        while not ready.wait(0.02):
            if not self.worker.alive():  # e.g. the port is taken: fail fast, the supervisor counts it
                raise RuntimeError(self.worker.dead() or "emulator server ended before it was ready")
            if self.clock.monotonic() > deadline:
                raise RuntimeError(f"emulator did not start within {READY_TIMEOUT_S:g}s")
        self.runtime.journal("emulator.started", {"port": self.port, "seed": options.seed, "speed": options.speed})

    def on_shutdown(self, deadline_s: float) -> str:
        """Stop the server."""
        stopped = self.worker.stop(min(2.0, deadline_s / 2))
        return "emulator stopped" if stopped else "emulator server did not stop in time"


ACTOR = EmulatorActor
