"""ctl from another machine (issue 19 item 3), in the real tree on loopback tcp: a client whose key
is in ``ctl.authorized_keys_dir`` gets ``ctl status`` over CURVE; a client with an unknown key gets
nothing (exit 3 after its timeout, one line) and the host goes on answering the authorized one;
a tcp endpoint without CURVE keys refuses the start (exit 2, one line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor.cli import main
from tests.conftest import FAST
from tests.helpers import run_cli, running_host, short_tmp_dir
from tests.smtpserver import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _key_pairs(where: Path, *names: str) -> None:
    for name in names:
        assert main(["keys", "new", name, "--dir", str(where)]) == 0


def test_an_authorized_key_gets_status_over_tcp_and_an_unknown_key_gets_nothing() -> None:
    # Arrange: the host's pair, an authorized client and a stranger with a valid key of its own.
    where = short_tmp_dir()
    _key_pairs(where, "host", "laptop", "stranger")
    authorized = where / "authorized"
    authorized.mkdir()
    (authorized / "laptop.key").write_bytes((where / "laptop.key").read_bytes())
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    overrides = [
        *FAST,
        f'ctl.endpoint="{endpoint}"',
        f'ctl.server_secret_key_file="{where / "host.key_secret"}"',
        f'ctl.authorized_keys_dir="{authorized}"',
        f'ctl.client_secret_key_file="{where / "laptop.key_secret"}"',
        f'ctl.server_public_key_file="{where / "host.key"}"',
        "ctl.timeout_s=3.0",
    ]

    with running_host(overrides) as host:
        # Act
        allowed = host.ctl("status", "--json")
        refused = host.ctl("--set", f'ctl.client_secret_key_file="{where / "stranger.key_secret"}"', "status")
        after = host.ctl("status", "--json")

        # Assert
        assert allowed.returncode == 0, allowed.stderr
        assert json.loads(allowed.stdout)["state"] == "TRADING"
        assert (refused.returncode, refused.stdout) == (3, "")
        assert refused.stderr.splitlines() == [
            f"tradehost ctl status: no answer from {endpoint} within 3.0s: the host is not running, or its "
            "ctl.authorized_keys_dir does not hold this client's public key"
        ]
        assert after.returncode == 0, after.stderr
        assert json.loads(after.stdout)["state"] == "TRADING"
        assert not (host.run_dir / "ctl.sock").exists()  # the tcp endpoint replaces the ipc socket


def test_a_tcp_ctl_endpoint_without_curve_keys_refuses_the_start_in_one_line() -> None:
    run_dir = short_tmp_dir() / "run"

    res = run_cli("run", "--set", f'host.run_dir="{run_dir}"', "--set", f'ctl.endpoint="tcp://127.0.0.1:{free_port()}"')

    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "tradehost: config error: ctl.endpoint: a tcp:// endpoint needs CURVE: set ctl.server_secret_key_file and "
        "ctl.authorized_keys_dir (`tradehost keys new NAME`), or leave ctl.endpoint empty for the ipc socket"
    ]
    assert not run_dir.exists()
