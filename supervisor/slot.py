"""``RoleSlot``: what the supervisor knows about one child, and how it shows in ``ctl status``.

Pure bookkeeping: no processes, no sockets; times are ``time.monotonic()`` seconds passed in.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors.messages import BrokerHealth, Heartbeat
from supervisor.childspec import ChildSpec, Intensity


@dataclass
class RoleSlot:
    """What the supervisor knows about one role."""

    spec: ChildSpec
    intensity: Intensity
    status: str = "stopped"  # starting | running | restarting | failed | stopping | stopped
    pid: int | None = None
    identity: bytes = b""
    started_at: float = 0.0
    last_heartbeat_at: float | None = None
    last_heartbeat: Heartbeat | None = None
    restarts: int = 0
    restart_at: float | None = None
    kill_cause: str | None = None
    stop_deadline: float | None = None
    exited_at: float | None = None
    restart_after_stop: bool = False
    shutdown_outcome: str = ""


def describe_exit(code: int) -> str:
    """A one-line cause for an exit code (negative: killed by a signal)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def slot_status(slot: RoleSlot, now: float) -> dict[str, Any]:
    """One role's entry in the status document."""
    hb = slot.last_heartbeat
    return {
        "pid": slot.pid,
        "alive": slot.pid is not None and slot.status in ("running", "starting", "stopping"),
        "status": slot.status,
        "restarts": slot.restarts,
        "heartbeat_age_s": round(now - slot.last_heartbeat_at, 3) if slot.last_heartbeat_at else None,
        "rss_mb": hb.rss_mb if hb else None,
        "queue_depth": hb.queue_depth if hb else None,
        "handled": hb.handled if hb else None,
        "uptime_s": round(now - slot.started_at, 1) if slot.pid is not None else None,
    }


def broker_status(kind: str, api_url: str, health: Mapping[str, BrokerHealth]) -> dict[str, Any]:
    """The ``broker`` entry of the status document, from the last health report of each source."""
    sources = {
        source: {"connected": h.connected, "last_ok_ns": h.last_ok_ns, "detail": h.detail, "reconnects": h.reconnects}
        for source, h in sorted(health.items())
    }
    last = [h.last_ok_ns for h in health.values() if h.last_ok_ns]
    return {
        "kind": kind,
        "api_url": api_url or None,
        "connected": all(h.connected for h in health.values()) if health else None,
        "last_ok": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(last) / 1e9)) if last else None,
        "sources": sources,
    }
