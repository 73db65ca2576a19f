"""Secrets from files (issue 19 item 2): ``broker.token_file``, ``alerts.password_file`` and systemd
credentials (``$CREDENTIALS_DIRECTORY``), their precedence over the environment, and the refusal
of a secret file that group or others can read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actors.alerting.config import ENV_SMTP_PASSWORD, AlertsConfig, load_smtp_password
from actors.broker.config import ENV_ACCOUNT_ID, ENV_TOKEN, load_credentials
from actors.core.errors import ConfigError
from supervisor.config import load_config

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

TOKEN = "file-token-9f2c1e0b7a"  # noqa: S105 - a test value
ENV_TOKEN_VALUE = "env-token-3d4e5f"  # noqa: S105 - a test value
PASSWORD = "file-pw-77Aq!"  # noqa: S105 - a test value
ACCOUNT = "101-004-1234567-001"


def _secret(path: Path, value: str, mode: int = 0o600) -> Path:
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


def _credentials_dir(tmp_path: Path, **values: str) -> dict[str, str]:
    directory = tmp_path / "credentials"
    directory.mkdir(mode=0o700)
    for name, value in values.items():
        _secret(directory / name, value, 0o400)
    return {"CREDENTIALS_DIRECTORY": str(directory)}


def _mail_with_login(**extra: str) -> AlertsConfig:
    return AlertsConfig(
        smtp_host="smtp.example.com", sender="th@example.com", recipients=("ops@example.com",), username="th", **extra
    )


# --- broker.token_file -------------------------------------------------------------------------


def test_the_token_comes_from_token_file_before_the_credential_and_the_environment(tmp_path: Path) -> None:
    path = _secret(tmp_path / "token", TOKEN)
    environ = {
        ENV_TOKEN: ENV_TOKEN_VALUE,
        ENV_ACCOUNT_ID: ACCOUNT,
        **_credentials_dir(
            tmp_path,
            oanda_token="credential-token",  # noqa: S106 - a test value
        ),
    }

    credentials = load_credentials(environ, kind="oanda", token_file=str(path))

    assert credentials.token == TOKEN  # the trailing newline is not part of it
    assert credentials.account_id == ACCOUNT
    assert TOKEN not in repr(credentials)


def test_the_systemd_credential_comes_before_the_environment(tmp_path: Path) -> None:
    environ = {
        ENV_TOKEN: ENV_TOKEN_VALUE,
        **_credentials_dir(tmp_path, oanda_token=TOKEN, oanda_account_id=ACCOUNT),
    }

    credentials = load_credentials(environ, kind="oanda")

    assert (credentials.token, credentials.account_id) == (TOKEN, ACCOUNT)


def test_the_environment_still_works_when_no_file_or_credential_is_set(tmp_path: Path) -> None:
    environ = {ENV_TOKEN: ENV_TOKEN_VALUE, ENV_ACCOUNT_ID: ACCOUNT, **_credentials_dir(tmp_path)}

    credentials = load_credentials(environ, kind="oanda")

    assert credentials.token == ENV_TOKEN_VALUE


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_token_file_readable_by_group_or_others_is_refused_in_one_line_naming_it(tmp_path: Path, mode: int) -> None:
    path = _secret(tmp_path / "token", TOKEN, mode)

    with pytest.raises(ConfigError) as e:
        load_credentials({ENV_ACCOUNT_ID: ACCOUNT, ENV_TOKEN: ENV_TOKEN_VALUE}, kind="oanda", token_file=str(path))

    assert len(e.value.problems) == 1
    assert e.value.problems[0].startswith(f"broker.token_file: {path} is readable by group or others")
    assert TOKEN not in str(e.value)


def test_a_token_file_refused_or_missing_is_never_replaced_by_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_credentials({ENV_TOKEN: ENV_TOKEN_VALUE}, kind="emulator", token_file=str(tmp_path / "absent"))

    assert e.value.problems == [f"broker.token_file: {tmp_path / 'absent'}: no such file"]


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    path = _secret(tmp_path / "token", "")

    with pytest.raises(ConfigError, match="is empty"):
        load_credentials({}, kind="oanda", token_file=str(path))


def test_a_credential_readable_by_others_is_refused(tmp_path: Path) -> None:
    environ = {ENV_ACCOUNT_ID: ACCOUNT, **_credentials_dir(tmp_path, oanda_token=TOKEN)}
    (Path(environ["CREDENTIALS_DIRECTORY"]) / "oanda_token").chmod(0o404)

    with pytest.raises(ConfigError) as e:
        load_credentials(environ, kind="oanda")

    assert e.value.problems[0].startswith("systemd credential oanda_token: ")
    assert "readable by group or others" in e.value.problems[0]


def test_the_emulator_uses_the_token_file_too(tmp_path: Path) -> None:
    path = _secret(tmp_path / "token", TOKEN)

    assert load_credentials({}, kind="emulator", token_file=str(path)).token == TOKEN


# --- alerts.password_file ----------------------------------------------------------------------


def test_the_smtp_password_comes_from_password_file_before_the_credential_and_the_environment(tmp_path: Path) -> None:
    path = _secret(tmp_path / "pw", PASSWORD)
    environ = {ENV_SMTP_PASSWORD: "env-pw", **_credentials_dir(tmp_path, smtp_password="credential-pw")}  # noqa: S106

    password = load_smtp_password(_mail_with_login(password_file=str(path)), environ)

    assert password is not None and password.value == PASSWORD


def test_the_smtp_password_comes_from_the_systemd_credential_before_the_environment(tmp_path: Path) -> None:
    environ = {ENV_SMTP_PASSWORD: "env-pw", **_credentials_dir(tmp_path, smtp_password=PASSWORD)}

    password = load_smtp_password(_mail_with_login(), environ)

    assert password is not None and password.value == PASSWORD


def test_the_smtp_password_from_the_environment_still_works() -> None:
    password = load_smtp_password(_mail_with_login(), {ENV_SMTP_PASSWORD: "env-pw"})

    assert password is not None and password.value == "env-pw"


def test_a_password_file_readable_by_group_is_refused(tmp_path: Path) -> None:
    path = _secret(tmp_path / "pw", PASSWORD, 0o640)

    with pytest.raises(ConfigError) as e:
        load_smtp_password(_mail_with_login(password_file=str(path)), {ENV_SMTP_PASSWORD: "env-pw"})

    assert e.value.problems == [
        f"alerts.password_file: {path} is readable by group or others (mode 0640); refused: chmod 600 {path}"
    ]


# --- Through the configuration loader (what `tradehost run` reads) ---------------------------------


def test_load_config_refuses_a_world_readable_token_file_naming_it(tmp_path: Path) -> None:
    path = _secret(tmp_path / "token", TOKEN, 0o644)

    with pytest.raises(ConfigError) as e:
        load_config(None, [f'broker.token_file="{path}"'], cwd=tmp_path, environ={})

    assert e.value.problems == [
        f"broker.token_file: {path} is readable by group or others (mode 0644); refused: chmod 600 {path}"
    ]


def test_load_config_takes_a_private_token_file_and_never_shows_its_content(tmp_path: Path) -> None:
    path = _secret(tmp_path / "token", TOKEN)

    cfg = load_config(None, [f'broker.token_file="{path}"'], cwd=tmp_path, environ={})

    assert cfg.broker.token_file == str(path)
    assert TOKEN not in repr(cfg) + repr(cfg.to_dict())
    assert os.stat(path).st_mode & 0o777 == 0o600  # noqa: PTH116 - read, never changed
