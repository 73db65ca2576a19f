"""``CtlClient``: what ``tradehost ctl`` uses to talk to a running host.

One request, one reply, over a fresh DEALER: request ``{id, command, args}``, reply
``{id, ok, result | error{code, reason}}``. A reply that is not JSON or carries another id is
reported as ``bad_reply`` (exit 1). An endpoint that does not speak ZeroMQ is not a host: exit 3
with the reason. No reply within
``ctl.timeout_s`` (or no socket file at all) means the host is not running: exit code 3. This
module is on the hot path of every ``tradehost ctl`` call, so it imports nothing heavy (the
standard ``json`` here: importing orjson costs more than the whole round trip).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from actors.runtime import zmtp

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class CtlConfig:
    """The ``[ctl]`` section."""

    endpoint: str = field(
        default="",
        metadata={"doc": "Where `tradehost ctl` reaches the host; empty: ipc://<run_dir>/ctl.sock (0600)."},
    )
    timeout_s: float = field(
        default=5.0,
        metadata={"doc": "How long `tradehost ctl` waits for a reply before exit 3.", "min": 0.1, "max": 3600.0},
    )
    max_request_bytes: int = field(
        default=65536, metadata={"doc": "Larger ctl requests are dropped by ZeroMQ.", "min": 1024}
    )


@dataclass(frozen=True, slots=True)
class CtlReply:
    """A decoded reply, or the reason there is none."""

    ok: bool
    result: dict[str, Any] | None = None
    code: str = ""
    reason: str = ""
    exit_code: int = EXIT_OK


def _ipc_path(endpoint: str) -> str | None:
    return endpoint[len("ipc://") :] if endpoint.startswith("ipc://") else None


class CtlClient:
    """Send ctl commands to a running host."""

    def __init__(self, endpoint: str, timeout_s: float) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s

    def call(self, command: str, args: dict[str, Any] | None = None) -> CtlReply:
        """Send one command and wait for its reply."""
        ipc = _ipc_path(self.endpoint)
        if ipc is not None and not os.path.exists(ipc):  # noqa: PTH110 (str path, no Path import cost)
            return CtlReply(
                ok=False,
                code="not_running",
                reason=f"host is not running (no socket at {ipc})",
                exit_code=EXIT_NOT_RUNNING,
            )
        request_id = os.urandom(8).hex()
        payload = json.dumps({"id": request_id, "command": command, "args": args or {}}).encode()
        try:
            raw = zmtp.request(self.endpoint, payload, self.timeout_s)
        except zmtp.ZmtpError as e:
            return CtlReply(
                ok=False,
                code="not_running",
                reason=f"no tradehost host at {self.endpoint}: {e}",
                exit_code=EXIT_NOT_RUNNING,
            )
        if raw is None:
            return CtlReply(
                ok=False,
                code="not_running",
                reason=f"host is not running or not answering at {self.endpoint} within {self.timeout_s}s",
                exit_code=EXIT_NOT_RUNNING,
            )
        try:
            reply = json.loads(raw)
        except (ValueError, RecursionError):
            return CtlReply(
                ok=False, code="bad_reply", reason="host sent a reply that is not JSON", exit_code=EXIT_REFUSED
            )
        if not isinstance(reply, dict) or reply.get("id") != request_id:
            return CtlReply(ok=False, code="bad_reply", reason="host sent an unmatched reply", exit_code=EXIT_REFUSED)
        if reply.get("ok"):
            result = reply.get("result")
            return CtlReply(ok=True, result=result if isinstance(result, dict) else {})
        raw_error = reply.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        code = str(error.get("code", "failed"))
        return CtlReply(
            ok=False,
            code=code,
            reason=str(error.get("reason", "failed")),
            exit_code=EXIT_USAGE if code in ("unknown_command", "bad_arguments") else EXIT_REFUSED,
        )
