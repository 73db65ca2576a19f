"""The minimal ZMTP client against a real libzmq ROUTER (pyzmq), over ipc and tcp."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import zmq

from actors.runtime import zmtp
from tests.helpers import short_tmp_dir

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


@pytest.fixture(params=["ipc", "tcp"])
def router(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[list[bytes]]]]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    if request.param == "ipc":
        endpoint = f"ipc://{short_tmp_dir('zt')}/r.sock"
        sock.bind(endpoint)
    else:
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        endpoint = f"tcp://127.0.0.1:{port}"
    seen: list[list[bytes]] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if sock.poll(50):
                frames = sock.recv_multipart()
                seen.append(frames)
                if frames[-1] == b"silence":
                    continue
                reply = b"x" * 1000 if frames[-1] == b"big" else b"echo:" + frames[-1]
                sock.send_multipart([frames[0], b"", reply])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield endpoint, seen
    stop.set()
    thread.join(5)
    sock.close(0)
    ctx.term()


def test_a_request_reaches_the_router_as_a_dealer_message_and_the_reply_comes_back(router) -> None:
    endpoint, seen = router
    assert zmtp.request(endpoint, b"hello", 5.0) == b"echo:hello"
    assert seen[0][1:] == [b"", b"hello"]


def test_long_frames_work_both_ways(router) -> None:
    endpoint, _ = router
    payload = b"p" * 70_000
    assert zmtp.request(endpoint, payload, 5.0) == b"echo:" + payload
    assert zmtp.request(endpoint, b"big", 5.0) == b"x" * 1000


def test_no_reply_before_the_deadline_gives_none(router) -> None:
    endpoint, _ = router
    assert zmtp.request(endpoint, b"silence", 0.3) is None


def test_nothing_listening_gives_none() -> None:
    assert zmtp.request(f"ipc://{short_tmp_dir('zt')}/none.sock", b"x", 0.5) is None
    assert zmtp.request("tcp://127.0.0.1:1", b"x", 0.5) is None
