"""The ctl server side: frames in, one reply out, never an exception.

``parse_request`` runs on the socket thread and turns raw ROUTER frames into a checked request
or an error reply (garbage never reaches the supervisor actor). ``dispatch`` runs in the actor:
it looks the command up, validates its args, executes it and maps every failure to an error
code. Its ``except Exception`` is one of the few top-level guards of the tree (each says why
beside it: the socket thread's handlers, a worker's body, a role's shutdown hook, the child
watcher's callback): a bug in one command answers ``internal`` and never takes the supervisor down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from supervisor.ctl.commands import COMMANDS
from supervisor.ctl.commands.base import Controllable
from supervisor.ctl.commands.errors import BAD_REQUEST, INTERNAL, UNKNOWN_COMMAND, CommandError

log = logging.getLogger(__name__)

MAX_ID_CHARS = 128


@dataclass(frozen=True, slots=True)
class CtlRequest:
    """A well-formed request and the frames that route its reply back."""

    route: list[bytes]
    id: str
    command: str
    args: dict[str, Any]


def error_reply(request_id: str | None, code: str, reason: str) -> bytes:
    """Encode an error reply."""
    return orjson.dumps({"id": request_id, "ok": False, "error": {"code": code, "reason": reason}})


def ok_reply(request_id: str, result: dict[str, Any]) -> bytes:
    """Encode a success reply."""
    return orjson.dumps({"id": request_id, "ok": True, "result": result})


def parse_request(frames: list[bytes]) -> tuple[CtlRequest | None, list[bytes] | None]:
    """Check raw ROUTER frames ``[identity, b"", payload]``.

    Returns ``(request, None)`` for a good request, ``(None, reply_frames)`` for an error that
    can be answered, and ``(None, None)`` when there is nobody to answer.
    """
    if len(frames) < 2:
        return None, None
    identity = frames[0]
    if len(frames) != 3 or frames[1] != b"":
        return None, [identity, b"", error_reply(None, BAD_REQUEST, "expected frames [empty, payload]")]
    route = [identity, b""]
    try:
        raw = orjson.loads(frames[2])
    except orjson.JSONDecodeError:
        return None, [*route, error_reply(None, BAD_REQUEST, "request is not JSON")]
    if not isinstance(raw, dict):
        return None, [*route, error_reply(None, BAD_REQUEST, "request is not an object")]
    request_id = raw.get("id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_CHARS:
        return None, [*route, error_reply(None, BAD_REQUEST, f"id must be a string of 1-{MAX_ID_CHARS} chars")]
    command, args = raw.get("command"), raw.get("args", {})
    if not isinstance(command, str):
        return None, [*route, error_reply(request_id, BAD_REQUEST, "command must be a string")]
    if not isinstance(args, dict):
        return None, [*route, error_reply(request_id, BAD_REQUEST, "args must be an object")]
    if set(raw) - {"id", "command", "args"}:
        return None, [*route, error_reply(request_id, BAD_REQUEST, "unknown request fields")]
    if command not in COMMANDS:
        known = ", ".join(sorted(COMMANDS))
        return None, [
            *route,
            error_reply(request_id, UNKNOWN_COMMAND, f"unknown command {command[:64]!r} (known: {known})"),
        ]
    return CtlRequest(route=route, id=request_id, command=command, args=args), None


def dispatch(supervisor: Controllable, request: CtlRequest) -> bytes:
    """Execute a checked request; always returns an encoded reply."""
    cmd = COMMANDS[request.command]
    try:
        args = cmd.validate(request.args)
        return ok_reply(request.id, cmd.execute(supervisor, args))
    except CommandError as e:
        return error_reply(request.id, e.code, e.reason)
    except Exception as e:  # a bug in a command must not take the supervisor down
        log.exception("ctl command %s failed", request.command)
        return error_reply(request.id, INTERNAL, f"{type(e).__name__}: {e}")
