"""The embedded emulator's port is held by the host's root for the whole run.

Before, the root probed a free port (bind to 0, close) and the emulator role bound it a second or
so later: a second host starting at the same moment could be handed the same port by its own probe,
and its roles would then talk to the first host's emulator (or its emulator failed to bind and the
host never reached TRADING). Now the root keeps the port bound (``supervisor.host.reserve_port``)
and only the emulator binds beside it.
"""

from __future__ import annotations

import socket

import pytest

from actors.broker.emulator import AdminClient, EmulatorOptions
from actors.broker.emulator.server import EmulatorServer
from supervisor.config import load_config
from supervisor.host import with_emulator_port
from tests.helpers import run_cli, short_tmp_dir

pytestmark = pytest.mark.integration


def _bind(port: int) -> OSError | None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as e:
            return e
    return None


def test_the_port_chosen_for_the_emulator_stays_held_until_the_run_ends() -> None:
    # Arrange
    cfg, held = with_emulator_port(load_config(None, [f'host.run_dir="{short_tmp_dir()}"'], environ={}))
    assert held is not None
    port = cfg.broker.emulator.port
    assert cfg.broker.api_url.endswith(f":{port}")
    try:
        # Act: what another process starting now would do
        refused = _bind(port)
        probes = set()
        for _ in range(2000):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                probes.add(probe.getsockname()[1])
        # the embedded emulator binds beside the held socket and serves
        with EmulatorServer(EmulatorOptions(port=port), reuse_port=True) as server:
            served = AdminClient(server.base_url).state()
    finally:
        held.close()

    # Assert
    assert isinstance(refused, OSError)  # the old probe released it: this bind succeeded
    assert port not in probes
    assert server.port == port and "time_ns" in served
    # released when the run ends: the next run can hold the same port (a fixed broker.emulator.port)
    again, held = with_emulator_port(load_config(None, [f"broker.emulator.port={port}"], environ={}))
    assert held is not None
    held.close()
    assert again.broker.emulator.port == port


def test_a_host_whose_configured_emulator_port_is_taken_refuses_to_start_in_one_line() -> None:
    # Arrange: something else listens on the port
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]

        # Act
        res = run_cli(
            "run", "--set", f'host.run_dir="{short_tmp_dir() / "run"}"', "--set", f"broker.emulator.port={port}"
        )

    # Assert
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"tradehost: config error: broker.emulator.port: cannot hold port {port} on 127.0.0.1")
