"""Small gaps the hostile review found: bounds, port numbers, a ctl endpoint that is not ZeroMQ."""

from __future__ import annotations

import socket
import threading

import pytest

from actors.core.errors import ConfigError
from supervisor.child import describe_exit
from supervisor.config import load_core_config
from supervisor.ctl.client import EXIT_NOT_RUNNING, CtlClient

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def test_ctl_timeout_has_an_upper_bound() -> None:
    with pytest.raises(ConfigError) as e:
        load_core_config(None, ["ctl.timeout_s=1e300"])

    assert e.value.problems == ["ctl.timeout_s: 1e+300 is above the maximum 3600.0"]


@pytest.mark.parametrize("port", ["99999", "0", "abc", "", "-1"])
def test_a_tcp_endpoint_needs_a_real_port(port: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_core_config(None, [f'bus.control="tcp://127.0.0.1:{port}"'])

    assert e.value.problems == [f"bus.control: {port!r} is not a TCP port (1-65535)"]


def test_a_tcp_endpoint_on_loopback_with_a_valid_port_is_accepted() -> None:
    cfg = load_core_config(None, ['bus.control="tcp://127.0.0.1:5555"'])

    assert cfg.bus.control == "tcp://127.0.0.1:5555"


def test_a_ctl_endpoint_that_does_not_speak_zeromq_is_reported_not_running_without_a_traceback() -> None:
    # Arrange: a TCP server that answers with HTTP, as a web server on the wrong port would.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(64)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + b"\0" * 64)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()

    # Act
    reply = CtlClient(f"tcp://127.0.0.1:{port}", timeout_s=5).call("status")

    # Assert
    thread.join(5)
    server.close()
    assert reply.ok is False
    assert reply.exit_code == EXIT_NOT_RUNNING
    assert "not a ZMTP 3 endpoint" in reply.reason


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (5, "exited with status 5 (could not reach the bus or control socket)"),
        (70, "exited with status 70 (the role failed (see role.crashed in the journal))"),
        (0, "exited with status 0"),
        (None, "exited with an unknown status (its forkserver died first)"),
        (-9, "killed by SIGKILL"),
    ],
)
def test_exit_codes_are_described_in_words(code: int | None, text: str) -> None:
    assert describe_exit(code) == text
