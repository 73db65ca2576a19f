"""Garbage on the ctl socket never crashes or blocks the supervisor (real tree, real ZeroMQ)."""

from __future__ import annotations

import random
import time

import orjson
import pytest
import zmq

from tests.helpers import Host

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# Valid state-changing commands are left out (pause, resume, shutdown, a restart of a real role):
# the fuzz is about garbage, and those would change what the assertions compare.
COMMAND_WORDS = ["status", "restart", "Pause", "resume ", "shutdown\n", "", "STATUS", "x" * 300, "\x00", "restart "]


def _garbage(rng: random.Random) -> list[bytes]:
    kind = rng.randrange(9)
    if kind == 0:
        return [rng.randbytes(rng.randrange(0, 200))]
    if kind == 1:
        return [rng.randbytes(rng.randrange(0, 50)) for _ in range(rng.randrange(1, 6))]
    if kind == 2:
        return [b"", rng.randbytes(rng.randrange(0, 300))]
    if kind == 3:
        return [b"", orjson.dumps(rng.choice([[], 1, "x", None, 3.5, {"id": 1}, {"id": ""}, {"id": "a" * 500}]))]
    if kind == 4:
        body = {
            "id": f"r{rng.random()}",
            "command": rng.choice(COMMAND_WORDS),
            "args": rng.choice([{}, [], "x", None, {"role": rng.choice(["FEED", "nope", 1, None])}, {"json": True}]),
        }
        if rng.random() < 0.2:
            body["extra"] = 1
        return [b"", orjson.dumps(body)]
    if kind == 5:
        return [b"", b'{"id": "x", "command": "status"', b"trailing"]
    if kind == 6:
        return [b"", b"\xff\xfe" + rng.randbytes(20)]
    if kind == 7:
        return [b"", orjson.dumps({"id": "s", "command": "status", "args": {"verbose": True}})]
    return [b"", b"x" * 200_000]  # larger than ctl.max_request_bytes: ZeroMQ drops the peer


def test_random_garbage_on_the_ctl_socket_never_crashes_or_blocks_the_supervisor(host: Host) -> None:
    # Arrange
    before = host.wait_all_running()
    endpoint = f"ipc://{host.run_dir / 'ctl.sock'}"
    rng = random.Random(20261127)
    ctx = zmq.Context()
    answered = 0
    try:
        # Act: 400 messages over a few dozen connections, some read, some abandoned mid-way.
        for _ in range(40):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            for _ in range(10):
                sock.send_multipart(_garbage(rng))
            # A well-formed marker after the garbage: its reply means everything before it was
            # handled. (An oversized frame makes ZeroMQ drop the connection; the DEALER then
            # reconnects, so the marker still gets through, just without the replies before it.)
            sock.send_multipart([b"", orjson.dumps({"id": "marker", "command": "status", "args": {}})])
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and sock.poll(3000, zmq.POLLIN):
                reply = orjson.loads(sock.recv_multipart()[-1])
                assert set(reply) >= {"id", "ok"}
                if reply["id"] == "marker":
                    assert reply["ok"]
                    break
                if not reply["ok"]:
                    assert reply["error"]["code"] in {"bad_request", "unknown_command", "bad_arguments", "refused"}
                answered += 1
            sock.close(0)
    finally:
        ctx.term()
    # Assert: still answering, same pids, still trading, and most garbage got an error reply.
    after = host.status()
    assert after["pid"] == before["pid"]
    host.wait_state("TRADING", timeout_s=30)  # a late heartbeat on a loaded machine may pass by
    assert {r: a["pid"] for r, a in after["actors"].items()} == {r: a["pid"] for r, a in before["actors"].items()}
    assert answered > 100
    assert host.proc.poll() is None
