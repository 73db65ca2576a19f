"""A minimal ZMTP 3.0 DEALER for one request and one reply, without libzmq.

``tradehost ctl`` is a short-lived command; importing pyzmq (loading libzmq) costs about 30 ms on
the reference machine, several times the whole round trip. This module speaks just enough of
the ZeroMQ wire protocol (ZMTP 3.0, NULL mechanism; rfc.zeromq.org/spec/23) to connect to the
host's ctl ROUTER over ``ipc://`` or ``tcp://``, send ``[b"", payload]`` and read the reply. It
is not a general ZeroMQ implementation: no CURVE, no reconnects, no PUB/SUB. Everything
long-running uses pyzmq through ``actors.runtime.transport``.
"""

from __future__ import annotations

import socket
import struct
import time

_SIGNATURE = b"\xff" + b"\x00" * 8 + b"\x7f"
_GREETING = _SIGNATURE + bytes([3, 0]) + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
_MORE, _LONG, _COMMAND = 0x01, 0x02, 0x04


class ZmtpError(Exception):
    """The peer spoke something other than ZMTP 3.x with the NULL mechanism."""


def _command(name: bytes, properties: dict[bytes, bytes]) -> bytes:
    body = bytes([len(name)]) + name
    for key, value in properties.items():
        body += bytes([len(key)]) + key + struct.pack(">I", len(value)) + value
    return _frame(body, command=True)


def _frame(body: bytes, *, more: bool = False, command: bool = False) -> bytes:
    flags = (_MORE if more else 0) | (_COMMAND if command else 0)
    if len(body) > 255:
        return bytes([flags | _LONG]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = b""

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no reply before the deadline")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("peer closed the connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def frame(self) -> tuple[int, bytes]:
        flags = self.read(1)[0]
        size = struct.unpack(">Q", self.read(8))[0] if flags & _LONG else self.read(1)[0]
        return flags, self.read(size)


def _connect(endpoint: str, timeout_s: float) -> socket.socket:
    if endpoint.startswith("ipc://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        try:
            sock.connect(endpoint[len("ipc://") :])
        except OSError:
            sock.close()
            raise
        return sock
    if endpoint.startswith("tcp://"):
        host, _, port = endpoint[len("tcp://") :].rpartition(":")
        return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s)
    raise ValueError(f"unsupported endpoint {endpoint!r}")


def request(endpoint: str, payload: bytes, timeout_s: float) -> bytes | None:
    """Send ``[b"", payload]`` as a DEALER and return the last frame of the reply.

    Returns None when nothing is listening or no reply arrives before ``timeout_s``.

    Raises:
        ZmtpError: the peer is not a ZMTP 3 endpoint with the NULL mechanism.
    """
    deadline = time.monotonic() + timeout_s
    try:
        sock = _connect(endpoint, timeout_s)
    except OSError:
        return None
    try:
        sock.sendall(_GREETING + _command(b"READY", {b"Socket-Type": b"DEALER"}))
        reader = _Reader(sock, deadline)
        greeting = reader.read(64)
        if greeting[:1] != b"\xff" or greeting[9:10] != b"\x7f" or greeting[10] < 3:
            raise ZmtpError("peer is not a ZMTP 3 endpoint")
        if greeting[12:32].rstrip(b"\x00") != b"NULL":
            raise ZmtpError("peer wants a security mechanism other than NULL")
        flags, body = reader.frame()
        if not flags & _COMMAND or body[1 : 1 + body[0]] != b"READY":
            raise ZmtpError("peer did not send READY")
        sock.sendall(_frame(b"", more=True) + _frame(payload))
        parts: list[bytes] = []
        while True:
            flags, body = reader.frame()
            if flags & _COMMAND:
                continue  # e.g. a PING; nothing to answer for one request
            parts.append(body)
            if not flags & _MORE:
                return parts[-1]
    except (TimeoutError, ConnectionError, OSError):
        return None
    finally:
        sock.close()
