"""What the supervisor says on the bus: ``sys.state`` with its expiry, and alerts.

``sys.state`` goes out on every change and at least every ``state_interval_s``, carrying the
state, the reasons and an expiry (``permit_ttl_s``): a role may open a trade only while it holds
an unexpired ``TRADING`` state, so silence revokes the permit. Every message is numbered per
topic so subscribers can see gaps.
"""

from __future__ import annotations

from actors.core.clock import Clock
from actors.runtime.messages import (
    TOPIC_ALERT,
    TOPIC_SYS_STATE,
    AlertCleared,
    AlertRaised,
    Body,
    SystemStateChanged,
    TopicSequence,
    encode,
    make_envelope,
)
from supervisor.childspec import SupervisorConfig
from supervisor.inbox import Sender
from supervisor.state import StateMachine

__all__ = ["SRC", "StatePublisher"]

SRC = "supervisor"


class StatePublisher:
    """Publishes the supervisor's messages through the root's PUB socket.

    Args:
        io: the root's socket thread.
        sup: the ``[supervisor]`` section (intervals, permit expiry).
        mode: ``host.mode``, carried in every ``sys.state``.
        clock: the clock.
    """

    def __init__(self, io: Sender, sup: SupervisorConfig, mode: str, clock: Clock) -> None:
        self.io = io
        self.sup = sup
        self.mode = mode
        self.clock = clock
        self.seq = TopicSequence()
        self.last_published = 0.0

    def due(self) -> bool:
        """True when ``state_interval_s`` has passed since the last ``sys.state``."""
        return self.clock.monotonic() - self.last_published >= self.sup.state_interval_s

    def state(self, sm: StateMachine) -> None:
        """Publish the current state with a fresh expiry."""
        now_ns = self.clock.time_ns()
        self.last_published = self.clock.monotonic()
        body = SystemStateChanged(
            state=sm.state,
            reasons=sm.reasons(now_ns),
            paused=sm.paused,
            expires_ns=now_ns + int(self.sup.permit_ttl_s * 1e9),
            ttl_s=self.sup.permit_ttl_s,
            mode=self.mode,
        )
        self.publish(TOPIC_SYS_STATE, body)

    def alert(self, severity: str, code: str, detail: str) -> None:
        """Publish an alert (the watchdog mails it)."""
        self.publish(TOPIC_ALERT, AlertRaised(severity=severity, code=code, detail=detail))

    def cleared(self, code: str) -> None:
        """Publish that an alert's cause is healthy again (the watchdog mails a recovery)."""
        self.publish(TOPIC_ALERT, AlertCleared(code=code))

    def publish(self, topic: str, body: Body) -> None:
        """Publish ``body`` on ``topic``, numbered per topic."""
        env = make_envelope(body, src=SRC, seq=self.seq.next(topic))
        self.io.send("pub", [topic.encode(), encode(env)])
