"""``CtlClient.call`` against no host, and against a tiny in-test ROUTER that misbehaves on purpose."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from actors.runtime import transport
from supervisor.ctl.client import EXIT_NOT_RUNNING, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, CtlClient

pytestmark = [pytest.mark.unit, pytest.mark.timeout(20)]

TIMEOUT_S = 0.3
# Each responder gets the decoded request and returns the reply payload, or None for silence.
Responder = Callable[[dict[str, Any]], bytes | None]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # ipc socket paths must stay under 107 bytes, so not pytest's tmp_path.
    path = Path(tempfile.mkdtemp(prefix="thc", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class FakeHost:
    """A ROUTER on a ``SocketThread`` that answers every request with ``responder``."""

    def __init__(self, endpoint: str, responder: Responder) -> None:
        self.endpoint = endpoint
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.received = threading.Event()
        self.ctx = transport.new_context()
        self.io = transport.SocketThread(self.ctx, "fake-host")
        self.io.add("ctl", transport.make_socket(self.ctx, transport.ROUTER, bind=endpoint), self._on_request)

    def _on_request(self, frames: list[bytes]) -> None:
        request = orjson.loads(frames[-1])
        self.requests.append(request)
        self.received.set()
        reply = self.responder(request)
        if reply is not None:
            self.io.send("ctl", [frames[0], b"", reply])

    def __enter__(self) -> FakeHost:
        self.io.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.io.stop(timeout_s=2.0)
        self.ctx.term()


@pytest.fixture
def host(short_dir: Path) -> Iterator[Callable[[Responder], FakeHost]]:
    hosts: list[FakeHost] = []

    def start(responder: Responder) -> FakeHost:
        fake = FakeHost(f"ipc://{short_dir}/ctl.sock", responder).__enter__()
        hosts.append(fake)
        return fake

    yield start
    for fake in hosts:
        fake.__exit__(None, None, None)


def _reply(request: dict[str, Any], **fields: Any) -> bytes:
    return orjson.dumps({"id": request["id"], **fields})


def test_a_missing_socket_file_means_not_running_at_once(short_dir: Path) -> None:
    client = CtlClient(f"ipc://{short_dir}/ctl.sock", timeout_s=5.0)

    started = time.monotonic()
    reply = client.call("status")
    elapsed = time.monotonic() - started

    assert (reply.ok, reply.code, reply.exit_code) == (False, "not_running", EXIT_NOT_RUNNING)
    assert str(short_dir) in reply.reason
    assert elapsed < 1.0


def test_a_host_that_answers_ok_returns_its_result(host: Callable[[Responder], FakeHost]) -> None:
    # Arrange
    fake = host(lambda r: _reply(r, ok=True, result={"state": "TRADING"}))
    client = CtlClient(fake.endpoint, timeout_s=5.0)

    # Act
    reply = client.call("restart", {"role": "feed"})

    # Assert
    assert (reply.ok, reply.result, reply.exit_code) == (True, {"state": "TRADING"}, EXIT_OK)
    (request,) = fake.requests
    assert request["command"] == "restart"
    assert request["args"] == {"role": "feed"}
    assert isinstance(request["id"], str)
    assert set(request) == {"id", "command", "args"}


def test_each_call_sends_a_fresh_id_and_empty_args_by_default(host: Callable[[Responder], FakeHost]) -> None:
    fake = host(lambda r: _reply(r, ok=True, result={}))
    client = CtlClient(fake.endpoint, timeout_s=5.0)

    client.call("status")
    client.call("status")

    assert [r["args"] for r in fake.requests] == [{}, {}]
    assert fake.requests[0]["id"] != fake.requests[1]["id"]


def test_an_ok_reply_without_a_result_object_gives_an_empty_result(host: Callable[[Responder], FakeHost]) -> None:
    fake = host(lambda r: _reply(r, ok=True, result=[1, 2]))

    reply = CtlClient(fake.endpoint, timeout_s=5.0).call("status")

    assert (reply.ok, reply.result) == (True, {})


def test_a_reply_with_another_id_is_not_taken_as_the_answer(host: Callable[[Responder], FakeHost]) -> None:
    fake = host(lambda r: orjson.dumps({"id": "someone-else", "ok": True, "result": {"state": "TRADING"}}))

    reply = CtlClient(fake.endpoint, timeout_s=5.0).call("status")

    assert (reply.ok, reply.code, reply.exit_code) == (False, "bad_reply", EXIT_REFUSED)
    assert reply.result is None


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'"ok"'], ids=["not-json", "array", "string"])
def test_a_reply_that_is_not_a_json_object_is_a_bad_reply(
    host: Callable[[Responder], FakeHost], payload: bytes
) -> None:
    fake = host(lambda r: payload)

    reply = CtlClient(fake.endpoint, timeout_s=5.0).call("status")

    assert (reply.ok, reply.code, reply.exit_code) == (False, "bad_reply", EXIT_REFUSED)


def test_a_reply_that_is_not_utf8_is_a_bad_reply(host: Callable[[Responder], FakeHost]) -> None:
    fake = host(lambda r: b"\xff\xfe{}")

    reply = CtlClient(fake.endpoint, timeout_s=5.0).call("status")

    assert (reply.ok, reply.code, reply.exit_code) == (False, "bad_reply", EXIT_REFUSED)


def test_a_deeply_nested_reply_is_a_bad_reply_not_a_crash(host: Callable[[Responder], FakeHost]) -> None:
    fake = host(lambda r: b"[" * 100_000)

    reply = CtlClient(fake.endpoint, timeout_s=5.0).call("status")

    assert (reply.ok, reply.code, reply.exit_code) == (False, "bad_reply", EXIT_REFUSED)


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        ("unknown_command", EXIT_USAGE),
        ("bad_arguments", EXIT_USAGE),
        ("refused", EXIT_REFUSED),
        ("bad_request", EXIT_REFUSED),
        ("internal", EXIT_REFUSED),
    ],
)
def test_error_codes_map_to_exit_codes(host: Callable[[Responder], FakeHost], code: str, exit_code: int) -> None:
    fake = host(lambda r: _reply(r, ok=False, error={"code": code, "reason": f"because {code}"}))

    reply = CtlClient(fake.endpoint, timeout_s=5.0).call("status")

    assert (reply.ok, reply.code, reply.reason, reply.exit_code) == (False, code, f"because {code}", exit_code)


def test_an_error_without_details_is_a_plain_failure(host: Callable[[Responder], FakeHost]) -> None:
    fake = host(lambda r: _reply(r, ok=False, error="boom"))

    reply = CtlClient(fake.endpoint, timeout_s=5.0).call("status")

    assert (reply.ok, reply.code, reply.exit_code) == (False, "failed", EXIT_REFUSED)


def test_a_host_that_never_replies_means_not_running_after_the_timeout(host: Callable[[Responder], FakeHost]) -> None:
    # Arrange
    fake = host(lambda r: None)
    client = CtlClient(fake.endpoint, timeout_s=TIMEOUT_S)

    # Act
    started = time.monotonic()
    reply = client.call("status")
    elapsed = time.monotonic() - started

    # Assert
    assert (reply.ok, reply.code, reply.exit_code) == (False, "not_running", EXIT_NOT_RUNNING)
    assert fake.received.wait(timeout=2.0)
    assert len(fake.requests) == 1
    assert TIMEOUT_S <= elapsed < TIMEOUT_S + 1.5


def test_a_tcp_endpoint_with_nobody_listening_is_reported_as_not_running_without_waiting() -> None:
    client = CtlClient("tcp://127.0.0.1:1", timeout_s=5.0)

    started = time.monotonic()
    reply = client.call("status")

    assert reply.exit_code == EXIT_NOT_RUNNING
    assert time.monotonic() - started < 4.0  # the refused connection is seen at once
