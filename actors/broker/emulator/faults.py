"""Injectable faults of the emulator, set through ``POST /admin/faults``.

``Faults`` only records what should go wrong; the server, the routes and the streams consume the
entries and make them real on the wire (error statuses, delays, sockets that stall or reset, an
order executed whose answer never comes). One-shot entries are consumed by the first request
they match.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["FAULT_TYPES", "Faults", "HttpFault", "StreamFault"]

FAULT_TYPES = (
    "http_error", "latency", "order_cancel", "order_reject", "order_no_answer", "stream",
    "open_trade", "close_trade", "bad_tick", "bad_candle", "freeze_candles", "unfreeze_candles", "halt",
    "resume", "transfer_funds",
)  # fmt: skip


@dataclass(slots=True)
class HttpFault:
    """Answer the next ``remaining`` requests whose path contains ``path`` with ``status``.

    With ``after`` the request is carried out first and only its answer is replaced: the
    "504, but the order was filled" case."""

    status: int
    remaining: int
    path: str = ""
    method: str = ""
    body: str | None = None
    after: bool = False


@dataclass(frozen=True, slots=True)
class StreamFault:
    """An action on streams open when it was set: ``end``, ``reset`` or ``stall``."""

    seq: int
    stream: str
    action: str
    seconds: float


class Faults:
    """The pending faults (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self.http: list[HttpFault] = []
            self.latency_s = 0.0
            self.latency_remaining: int | None = None
            self.latency_path = ""
            self.latency_method = ""
            self.order_cancel: str | None = None
            self.order_reject: str | None = None
            self.order_no_answer: tuple[str, float] | None = None
            self.bad_ticks: dict[str, str] = {}
            self.bad_ticks_held: dict[str, tuple[str, float]] = {}  # instrument -> (kind, monotonic end)
            self.stream_faults: list[StreamFault] = []
            self._seq = getattr(self, "_seq", 0)

    def add_http(self, fault: HttpFault) -> None:
        """Queue an HTTP error fault."""
        with self._lock:
            self.http.append(fault)

    def take_http(self, method: str, path: str) -> HttpFault | None:
        """Consume one matching HTTP error fault, if any."""
        with self._lock:
            for fault in self.http:
                if fault.remaining > 0 and fault.path in path and fault.method in ("", method):
                    fault.remaining -= 1
                    return fault
            self.http = [f for f in self.http if f.remaining > 0]
            return None

    def set_latency(self, seconds: float, count: int | None, path: str = "", method: str = "") -> None:
        """Delay answers by ``seconds`` (the next ``count`` requests, or all when None; only those
        whose path contains ``path`` and whose method is ``method``, when given)."""
        with self._lock:
            self.latency_s, self.latency_remaining = seconds, count
            self.latency_path, self.latency_method = path, method

    def take_latency(self, method: str = "", path: str = "") -> float:
        """Seconds to delay the current request."""
        with self._lock:
            if self.latency_s <= 0:
                return 0.0
            if self.latency_path not in path or self.latency_method not in ("", method):
                return 0.0
            if self.latency_remaining is not None:
                if self.latency_remaining <= 0:
                    return 0.0
                self.latency_remaining -= 1
            return self.latency_s

    def take_order_faults(self) -> tuple[str | None, str | None, tuple[str, float] | None]:
        """Consume the order faults: (cancel reason, reject reason, no-answer mode)."""
        with self._lock:
            out = (self.order_cancel, self.order_reject, self.order_no_answer)
            self.order_cancel = self.order_reject = None
            self.order_no_answer = None
            return out

    def set_order_fault(self, kind: str, value: Any) -> None:
        """Arm ``order_cancel``/``order_reject`` (reason) or ``order_no_answer`` (mode, s)."""
        with self._lock:
            setattr(self, kind, value)

    def add_stream_fault(self, stream: str, action: str, seconds: float) -> StreamFault:
        """Apply ``action`` to the open streams of kind ``stream`` (or ``all``)."""
        with self._lock:
            self._seq += 1
            fault = StreamFault(self._seq, stream, action, seconds)
            self.stream_faults.append(fault)
            return fault

    def stream_seq(self) -> int:
        """The sequence number a new stream starts after."""
        with self._lock:
            return self._seq

    def stream_fault_after(self, seq: int, stream: str) -> StreamFault | None:
        """The first stream fault newer than ``seq`` that applies to ``stream``."""
        with self._lock:
            for fault in self.stream_faults:
                if fault.seq > seq and fault.stream in (stream, "all"):
                    return fault
            return None

    def set_bad_tick(self, instrument: str, kind: str, seconds: float = 0.0) -> None:
        """Send one bad price (``spike``, ``crossed`` or ``zero``) for ``instrument``, or, with
        ``seconds`` > 0, only bad prices for it during that many wall seconds."""
        with self._lock:
            if seconds > 0:
                self.bad_ticks_held[instrument] = (kind, time.monotonic() + seconds)
            else:
                self.bad_ticks[instrument] = kind

    def take_bad_tick(self, instrument: str) -> tuple[str, bool] | None:
        """The bad tick to send for ``instrument`` now, if any: its kind, and True while a held
        one lasts (then no good price goes out for it); a one-shot one is consumed."""
        with self._lock:
            held = self.bad_ticks_held.get(instrument)
            if held is not None:
                if time.monotonic() < held[1]:
                    return held[0], True
                del self.bad_ticks_held[instrument]
            kind = self.bad_ticks.pop(instrument, None)
            return None if kind is None else (kind, False)

    def describe(self) -> dict[str, Any]:
        """The pending faults as JSON for ``GET /admin/state``."""
        with self._lock:
            return {
                "http": [
                    {"status": f.status, "remaining": f.remaining, "path": f.path, "method": f.method}
                    for f in self.http
                    if f.remaining > 0
                ],
                "latency_s": self.latency_s,
                "latency_remaining": self.latency_remaining,
                "order_cancel": self.order_cancel,
                "order_reject": self.order_reject,
                "order_no_answer": None if self.order_no_answer is None else self.order_no_answer[0],
                "bad_ticks": dict(self.bad_ticks),
                "bad_ticks_held": {name: kind for name, (kind, _end) in self.bad_ticks_held.items()},
                "stream_faults": len(self.stream_faults),
            }
