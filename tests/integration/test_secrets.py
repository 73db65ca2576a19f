"""Secrets from files in the real tree (issue 19 item 2): the OANDA token from ``broker.token_file``
and the SMTP password from a systemd credential (``$CREDENTIALS_DIRECTORY/smtp_password``) are
used (the emulator takes only that token, the SMTP server only that password) and never appear in
any process's argv, the log, the journal, the alert spool, ``ctl status``, the Prometheus scrape
or the mail; a secret file readable by group or others refuses the start (exit 2, one line naming
it).
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from actors.broker.config import DEV_TOKEN
from tests.conftest import FAST
from tests.helpers import poll_until, run_cli, running_host, short_tmp_dir
from tests.smtpserver import Inbox, free_port, smtp_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = "tok-Secret-5e1f0c9a-from-a-file"  # noqa: S105 - a test value
PASSWORD = "pw-Secret-Kq7!-from-a-credential"  # noqa: S105 - a test value
USERNAME = "tradehost"


@dataclass
class Authenticator:
    """Accepts USERNAME/PASSWORD only, and counts the logins."""

    logins: int = 0

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        ok = (auth_data.login.decode(), auth_data.password.decode()) == (USERNAME, PASSWORD)
        self.logins += ok
        return AuthResult(success=ok, handled=False)


def _secret(path: Path, value: str, mode: int = 0o600) -> Path:
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


def _answers(api_url: str, token: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - the emulator on loopback
        f"{api_url}/v3/accounts", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback http
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_a_token_file_readable_by_others_refuses_the_start_in_one_line_naming_it() -> None:
    where = short_tmp_dir()
    token_file = _secret(where / "oanda_token", TOKEN, 0o644)
    run_dir = where / "run"

    res = run_cli("run", "--set", f'host.run_dir="{run_dir}"', "--set", f'broker.token_file="{token_file}"')

    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        f"tradehost: config error: broker.token_file: {token_file} is readable by group or others (mode 0644); "
        f"refused: chmod 600 {token_file}"
    ]
    assert TOKEN not in res.stderr + res.stdout
    assert not run_dir.exists()


def _scrape(port: int) -> str:
    """The root's /metrics once every role shows up there ('' before: poll again)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return text if 'tradehost_role_up{role="execution"} 1.0' in text else ""


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # plain login on loopback only
def test_secrets_from_files_are_used_and_never_appear_in_argv_logs_journal_status_or_mail() -> None:
    # Arrange: the token in a file the config names, the password as a systemd credential.
    where = short_tmp_dir()
    token_file = _secret(where / "oanda_token", TOKEN)
    credentials = where / "credentials"
    credentials.mkdir(mode=0o700)
    _secret(credentials / "smtp_password", PASSWORD, 0o400)
    port, inbox, auth = free_port(), Inbox(), Authenticator()
    metrics_port = free_port()
    overrides = [
        *FAST,
        f'metrics.listen="127.0.0.1:{metrics_port}"',
        f'broker.token_file="{token_file}"',
        'alerts.smtp_host="127.0.0.1"',
        f"alerts.smtp_port={port}",
        'alerts.security="none"',
        f'alerts.username="{USERNAME}"',
        'alerts.sender="tradehost@example.com"',
        'alerts.recipients=["ops@example.com"]',
        "alerts.retry_initial_s=0.2",
        "alerts.retry_max_s=1.0",
    ]
    env = {"CREDENTIALS_DIRECTORY": str(credentials)}

    # Act
    with (
        smtp_server(port, inbox, authenticator=auth, auth_required=True, auth_require_tls=False),
        running_host(overrides, env=env) as host,
    ):
        status = host.wait_all_running()
        poll_until(lambda: inbox.about("host_started"), timeout_s=45, what="the host_started mail")
        argv = [" ".join(p.cmdline()) for p in [psutil.Process(host.proc.pid), *host.children()]]  # type: ignore[union-attr]
        api_url = status["broker"]["api_url"]
        used = (_answers(api_url, TOKEN), _answers(api_url, DEV_TOKEN))
        shown = host.ctl("status", "--json").stdout + host.ctl("status").stdout
        scraped = poll_until(lambda: _scrape(metrics_port), timeout_s=30, what="a scrape with the roles up")
        host.ctl("shutdown")
        host.wait_exit(timeout_s=30)

    # Assert: both secrets were really used ...
    assert used == (200, 401)  # the emulator takes the file's token, and the roles reached TRADING with it
    assert auth.logins >= 1
    assert len(argv) >= 7  # the root, the forkserver and the roles
    # ... and none of their forms shows anywhere.
    forms = [TOKEN, PASSWORD, base64.b64encode(PASSWORD.encode()).decode()]
    forms.append(base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode())
    journal = "\n".join(str(e) for e in host.journal())
    spool = "".join(p.read_text() for p in (host.run_dir / "alert-spool").glob("*"))
    for form in forms:
        assert not [line for line in argv if form in line]
        assert form not in host.log_text()
        assert form not in journal
        assert form not in shown
        assert form not in scraped
        assert form not in spool
        assert not [raw for raw in inbox.raw if form.encode() in raw]
