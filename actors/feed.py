"""Feed role: market data in from the broker's pricing stream, ticks and stream health out.

A worker thread holds the OANDA pricing stream through ``OandaBroker`` (the real oandapyV20
client, against the emulator by default) and reconnects with exponential backoff and jitter
whenever the stream ends, resets or stalls (the client's read timeout exceeds the 5 s
heartbeat). The actor publishes every price as ``md.tick.<INSTR>`` and the stream's health on
``md.health`` and to the supervisor, which keeps the system out of TRADING while the stream is
down. Bar building and validation arrive with the feed issue.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from actors.backoff import Backoff
from actors.base import RoleActor
from actors.broker import Heartbeat as StreamHeartbeat
from actors.broker import Price
from actors.errors import BrokerError
from actors.messages import TOPIC_MD_HEALTH, TOPIC_MD_TICK, BrokerHealth, PriceTick


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedConfig:
    """The ``[feed]`` section."""

    instruments: tuple[str, ...] = field(
        default=("EUR_USD", "GBP_USD", "USD_JPY"), metadata={"doc": "Instruments to stream prices for."}
    )
    reconnect_initial_s: float = field(
        default=0.5, metadata={"doc": "First delay before reconnecting a broken stream.", "min": 0.01}
    )
    stale_after_s: float = field(
        default=10.0,
        metadata={
            "doc": "A stream silent this long (no price, no heartbeat: OANDA sends one every 5 s) is stale.",
            "min": 1.0,
            "max": 300.0,
        },
    )
    reconnect_max_s: float = field(
        default=30.0, metadata={"doc": "Upper bound of the reconnect delay (doubles, with jitter).", "min": 0.01}
    )


@dataclass(frozen=True, slots=True)
class _StreamItem:
    item: Price | StreamHeartbeat


@dataclass(frozen=True, slots=True)
class _StreamDown:
    reason: str


class FeedActor(RoleActor[FeedConfig]):
    """The feed's actor."""

    ROLE: ClassVar[str] = "feed"
    TOPICS: ClassVar[tuple[str, ...]] = ()
    CONFIG: ClassVar[type[FeedConfig]] = FeedConfig

    def on_start(self) -> None:
        """Start the stream worker."""
        self.connected = False
        self.last_ok_ns: int | None = None
        self.last_ok_mono: float | None = None
        self.reconnects = 0
        self.detail = "connecting"
        self.worker = self.start_worker("stream", self._stream_loop)

    def _stream_loop(self, stop: threading.Event) -> None:
        backoff = Backoff(self.cfg.reconnect_initial_s, self.cfg.reconnect_max_s)
        broker = self.runtime.open_broker()  # a ConfigError ends the worker: the role fails
        while not stop.is_set():
            try:
                for item in broker.pricing_stream(self.cfg.instruments):
                    backoff.reset()
                    self.actor_ref.tell(_StreamItem(item))
                    if stop.is_set():
                        return
                reason = "stream ended"
            except BrokerError as e:
                reason = f"{type(e).__name__}: {e}"
            self.actor_ref.tell(_StreamDown(reason))
            stop.wait(backoff.next_delay())

    def on_other(self, message: Any) -> None:
        """Prices, stream heartbeats and stream failures from the worker."""
        if isinstance(message, _StreamItem):
            item = message.item
            self.last_ok_ns, self.last_ok_mono = self.clock.time_ns(), self.clock.monotonic()
            if not self.connected:
                self.connected, self.detail = True, "streaming"
                self._report()
            if isinstance(item, Price):
                tick = PriceTick(
                    instrument=item.instrument,
                    ts=item.ts,
                    bid=str(item.bid),
                    ask=str(item.ask),
                    tradeable=item.tradeable,
                )
                self.runtime.publish(TOPIC_MD_TICK + item.instrument, tick)
        elif isinstance(message, _StreamDown):
            was = self.connected
            self.connected, self.detail = False, message.reason
            self.reconnects += 1
            self.runtime.journal("feed.stream_down", {"reason": message.reason, "reconnects": self.reconnects})
            if was or self.reconnects == 1:
                self._report()

    def on_heartbeat(self) -> None:
        """Re-send the stream health with every heartbeat (a dead worker already failed the role)."""
        silent_s = self.clock.monotonic() - self.last_ok_mono if self.last_ok_mono is not None else 0.0
        if self.connected and silent_s > self.cfg.stale_after_s:
            # The read timeout will end the stream later; until then prices are frozen: unsure.
            self.connected, self.detail = False, f"stale: nothing received for {silent_s:.0f}s"
            self.runtime.journal("feed.stream_stale", {"silent_s": round(silent_s, 1)})
            self._report()
            return
        if self.connected or self.reconnects:
            self._report(changed=False)  # nothing to say before the first attempt has an outcome

    def _report(self, *, changed: bool = True) -> None:
        health = BrokerHealth(
            source="stream",
            connected=self.connected,
            last_ok_ns=self.last_ok_ns,
            detail=self.detail,
            reconnects=self.reconnects,
        )
        self.runtime.to_supervisor(health)
        if changed:  # the bus (and whoever journals it) hears about changes, not every second
            self.runtime.publish(TOPIC_MD_HEALTH, health)

    def on_shutdown(self, deadline_s: float) -> str:
        """Stop the stream worker."""
        # The worker may sit in a blocking stream read until the next line; the process exit
        # closes that connection, so waiting for it would only slow the shutdown down.
        stopped = self.worker.stop(0.05)
        return "stream closed" if stopped else "stream connection closed at process exit"


ACTOR = FeedActor
