"""ctl over tcp with CURVE (issue 19 item 3), the parts without a running host: ``tradehost keys new``
writes a key pair 0600, the host refuses a tcp ctl endpoint without CURVE keys, and a client
without its keys is refused before it sends anything."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import zmq
import zmq.auth

from actors.core.errors import ConfigError
from supervisor.cli import main
from supervisor.config import load_config, load_core_config
from supervisor.ctl.client import CtlClient

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

ENDPOINT = 'ctl.endpoint="tcp://127.0.0.1:7199"'


def _keys(tmp_path: Path) -> dict[str, Path]:
    assert main(["keys", "new", "host", "--dir", str(tmp_path)]) == 0
    assert main(["keys", "new", "laptop", "--dir", str(tmp_path)]) == 0
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    (authorized / "laptop.key").write_bytes((tmp_path / "laptop.key").read_bytes())
    return {"server_secret": tmp_path / "host.key_secret", "authorized": authorized}


def test_the_installed_libzmq_has_curve() -> None:
    assert zmq.has("curve")


def test_keys_new_writes_a_public_key_and_a_key_pair_both_0600(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["keys", "new", "laptop", "--dir", str(tmp_path)])

    assert code == 0
    public, secret = tmp_path / "laptop.key", tmp_path / "laptop.key_secret"
    assert stat.S_IMODE(public.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    public_key, no_secret = zmq.auth.load_certificate(str(public))
    pair_public, secret_key = zmq.auth.load_certificate(str(secret))
    assert (no_secret, pair_public) == (None, public_key)
    assert secret_key is not None and len(secret_key) == 40  # Z85 of 32 bytes
    assert secret_key.decode() not in capsys.readouterr().out


def test_keys_new_never_writes_over_an_existing_key(tmp_path: Path) -> None:
    assert main(["keys", "new", "laptop", "--dir", str(tmp_path)]) == 0
    before = (tmp_path / "laptop.key_secret").read_bytes()

    assert main(["keys", "new", "laptop", "--dir", str(tmp_path)]) == 1

    assert (tmp_path / "laptop.key_secret").read_bytes() == before


@pytest.mark.parametrize("name", ["../up", "a/b", "", "-x"])
def test_keys_new_refuses_a_name_that_is_not_a_plain_file_name(tmp_path: Path, name: str) -> None:
    assert main(["keys", "new", name, "--dir", str(tmp_path)]) == 2


@pytest.mark.parametrize("endpoint", [ENDPOINT, 'ctl.endpoint="tcp://0.0.0.0:7199"'])
def test_a_tcp_ctl_endpoint_without_curve_is_refused_at_start_in_one_line(tmp_path: Path, endpoint: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, [endpoint], cwd=tmp_path, environ={})

    assert len(e.value.problems) == 1
    assert e.value.problems[0].startswith("ctl.endpoint: a tcp:// endpoint needs CURVE")


def test_a_tcp_ctl_endpoint_with_curve_keys_is_accepted_also_off_loopback(tmp_path: Path) -> None:
    keys = _keys(tmp_path)
    overrides = [
        'ctl.endpoint="tcp://0.0.0.0:7199"',
        f'ctl.server_secret_key_file="{keys["server_secret"]}"',
        f'ctl.authorized_keys_dir="{keys["authorized"]}"',
    ]

    cfg = load_config(None, overrides, cwd=tmp_path, environ={})

    assert cfg.ctl.endpoint == "tcp://0.0.0.0:7199"


def test_a_server_key_readable_by_group_is_refused(tmp_path: Path) -> None:
    keys = _keys(tmp_path)
    keys["server_secret"].chmod(0o640)
    overrides = [
        ENDPOINT,
        f'ctl.server_secret_key_file="{keys["server_secret"]}"',
        f'ctl.authorized_keys_dir="{keys["authorized"]}"',
    ]

    with pytest.raises(ConfigError) as e:
        load_config(None, overrides, cwd=tmp_path, environ={})

    assert e.value.problems == [
        f"ctl.server_secret_key_file: {keys['server_secret']} is readable by group or others (mode 0640); "
        f"refused: chmod 600 {keys['server_secret']}"
    ]


def test_the_bus_endpoints_stay_loopback_only() -> None:
    with pytest.raises(ConfigError) as e:
        load_core_config(None, ['bus.control="tcp://0.0.0.0:7198"'])

    assert e.value.problems == ["bus.control: tcp endpoints must be on loopback until CURVE authentication exists"]


def test_a_ctl_client_without_its_keys_is_refused_before_sending(tmp_path: Path) -> None:
    cfg = load_core_config(None, [ENDPOINT])

    with pytest.raises(ConfigError) as e:
        CtlClient.from_config(cfg.ctl)

    assert e.value.problems[0].startswith("ctl.endpoint: a tcp:// endpoint is reached with CURVE only")


def test_the_ipc_client_stays_the_plain_one() -> None:
    cfg = load_core_config(None, [])

    client = CtlClient.from_config(cfg.ctl)

    assert cfg.ctl.endpoint.startswith("ipc://")
    assert client.curve is None
