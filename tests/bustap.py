"""A tap on a running host's bus: every ``md.tick.*`` the feed published, as any role sees it (a
plain SUB socket on the host's ``bus-out.sock``)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator

import zmq

from actors.runtime.messages import TOPIC_MD_TICK, PriceTick, decode
from tests.helpers import Host, poll_until


class TickTap:
    """Every ``md.tick.*`` published on the host's bus, decoded, in arrival order."""

    def __init__(self, endpoint: str) -> None:
        self.ticks: list[PriceTick] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SUBSCRIBE, TOPIC_MD_TICK.encode())
        self._sock.connect(endpoint)
        self._thread = threading.Thread(target=self._run, name="tick-tap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            _topic, payload = self._sock.recv_multipart()
            body = decode(payload).body
            if isinstance(body, PriceTick):
                with self._lock:
                    self.ticks.append(body)

    def of(self, instrument: str) -> list[PriceTick]:
        """The ticks of one instrument so far."""
        with self._lock:
            return [t for t in self.ticks if t.instrument == instrument]

    def close(self) -> None:
        """Stop the thread and the socket."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        self._ctx.term()


@contextlib.contextmanager
def tick_tap(host: Host, instruments: Iterable[str]) -> Iterator[TickTap]:
    """A ``TickTap`` on ``host``'s bus, already receiving ticks of every one of ``instruments``."""
    names = tuple(instruments)
    tap = TickTap(f"ipc://{host.run_dir / 'bus-out.sock'}")
    try:
        poll_until(lambda: all(tap.of(i) for i in names), timeout_s=30, what="ticks of every instrument")
        yield tap
    finally:
        tap.close()
