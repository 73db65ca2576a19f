"""The envelope every message travels in, and its encoding on the wire.

Every message on the bus and on the control channel is an ``Envelope`` (DESIGN §2): ``type``,
schema version ``v``, unique ``id``, ``ts`` (UTC nanoseconds), ``src`` (role), ``seq`` (the
publisher's running number, so subscribers can see gaps), ``corr`` (the id of the message that
caused it) and ``body``. Decoding looks the type up in the bodies' registry and lets its class
check the fields, so a malformed, unknown or wrong-version message raises ``MessageDecodeError``
and nothing else. orjson is strict JSON: non-finite floats are refused here, at encode time,
instead of silently becoming ``null``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import time
import typing
from dataclasses import dataclass
from typing import Any

import orjson

from actors.core.errors import MessageDecodeError
from actors.runtime.messages.body import _REGISTRY, Body

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 1 << 20


def now_ns() -> int:
    """Current UTC time in integer nanoseconds."""
    return time.time_ns()


_id_counter = itertools.count()


def new_id() -> str:
    """A process-unique, time-ordered message id (hex time, pid, counter)."""
    return f"{time.time_ns():x}-{os.getpid():x}-{next(_id_counter):x}"


class TopicSequence:
    """The running numbers of one publisher, one counter per topic.

    A subscriber sees only the topics it subscribed to, so one counter per publisher would look
    like gaps to everyone; numbered per topic, a skipped number means a lost message.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def next(self, topic: str) -> int:
        """The number of the next message on ``topic`` (1, 2, 3, ...)."""
        seq = self._last[topic] = self._last.get(topic, 0) + 1
        return seq


_FINITE_CHECKS: dict[type, tuple[str, ...]] = {}


# --- Envelope ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """One message on the wire: metadata plus a typed body."""

    type: str
    v: int
    id: str
    ts: int
    src: str
    seq: int
    corr: str | None
    body: Body


def make_envelope(body: Body, *, src: str, seq: int = 0, corr: str | None = None) -> Envelope:
    """Wrap a body in a fresh envelope."""
    return Envelope(type=body.TYPE, v=SCHEMA_VERSION, id=new_id(), ts=now_ns(), src=src, seq=seq, corr=corr, body=body)


def _default(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise TypeError("non-finite float")
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _reject_non_finite(obj: Any) -> None:
    # orjson turns NaN/inf into null; refuse them before they reach the wire.
    kind = type(obj)
    if kind is str or kind is int or kind is bool or obj is None:
        return
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError("non-finite float in message")
    elif isinstance(obj, dict):
        for v in obj.values():
            _reject_non_finite(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _reject_non_finite(v)
    elif isinstance(obj, Body):
        names = _FINITE_CHECKS.get(kind)
        if names is None:
            hints = typing.get_type_hints(kind)
            names = _FINITE_CHECKS[kind] = tuple(
                f.name for f in dataclasses.fields(obj) if hints[f.name] not in (str, int, bool, str | None)
            )
        for name in names:
            _reject_non_finite(getattr(obj, name))


def encode(envelope: Envelope) -> bytes:
    """Serialize an envelope with orjson.

    Raises:
        ValueError: the body holds NaN or infinity.
    """
    _reject_non_finite(envelope.body)
    return orjson.dumps(envelope, default=_default)


_ENVELOPE_FIELDS = frozenset(("type", "v", "id", "ts", "src", "seq", "corr", "body"))


def decode(payload: bytes) -> Envelope:
    """Parse and check one payload.

    Raises:
        MessageDecodeError: not JSON, not an envelope, unknown type or version, bad body.
    """
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MessageDecodeError(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise MessageDecodeError(f"not JSON: {e}") from e
    if not isinstance(raw, dict):
        raise MessageDecodeError("envelope is not an object")
    missing = _ENVELOPE_FIELDS - raw.keys()
    if missing:
        raise MessageDecodeError(f"envelope lacks {sorted(missing)}")
    kind = raw["type"]
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MessageDecodeError(f"unknown message type {kind!r}")
    if type(raw["v"]) is not int or raw["v"] != SCHEMA_VERSION:
        raise MessageDecodeError(f"{kind}: unsupported version {raw['v']!r}")
    for name, kind_ in (("id", str), ("src", str), ("ts", int), ("seq", int)):
        if not isinstance(raw[name], kind_) or isinstance(raw[name], bool):
            raise MessageDecodeError(f"envelope field {name!r} has the wrong type")
    if raw["corr"] is not None and not isinstance(raw["corr"], str):
        raise MessageDecodeError("envelope field 'corr' has the wrong type")
    if not isinstance(raw["body"], dict):
        raise MessageDecodeError(f"{kind}: body is not an object")
    body = cls.from_body(raw["body"])
    return Envelope(
        type=kind,
        v=raw["v"],
        id=raw["id"],
        ts=raw["ts"],
        src=raw["src"],
        seq=raw["seq"],
        corr=raw["corr"],
        body=body,
    )


def to_jsonable(obj: Any) -> Any:
    """Turn a message body (or anything orjson handles) into plain JSON values."""
    return orjson.loads(orjson.dumps(obj, default=_default))
