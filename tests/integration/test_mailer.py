"""The SMTP worker against a real SMTP server (aiosmtpd on loopback): delivery with none /
starttls / ssl and login, a dead or hanging server that blocks nothing, the spool across restarts,
the bounded queue, permanent refusals, ``tradehost alert``'s one-shot send, and no password
anywhere."""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from actors.alerting.composition import Mail, make_mail
from actors.alerting.config import ENV_SMTP_PASSWORD, AlertsConfig, load_smtp_password
from actors.alerting.mailer import FAILED, SENT, Mailer, MailOutcome
from actors.alerting.smtp import send_alert_now
from tests.helpers import poll_until
from tests.smtpserver import free_port, smtp_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

SENDER = "tradehost@example.com"
RECIPIENTS = ("ops@example.com", "oncall@example.org")
PASSWORD = "pw-Zq8!x-never-in-mail"  # noqa: S105 - a test value
USERNAME = "tradehost"


# --- A real SMTP server ------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class Inbox:
    """The server's handler: keeps what arrives; ``reject`` answers DATA with that reply."""

    received: list[Received] = field(default_factory=list)
    data_calls: int = 0
    reject: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.data_calls += 1
            if self.reject:
                return self.reject
            raw = envelope.original_content or envelope.content
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(raw)))
        return "250 2.0.0 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(r.message["Subject"]) for r in self.received]


@dataclass
class Authenticator:
    """Accepts USERNAME/PASSWORD and remembers every attempt."""

    attempts: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.attempts.append((login, password))
        return AuthResult(success=(login, password) == (USERNAME, PASSWORD), handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key)."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return ctx


# --- The mailer under test ---------------------------------------------------------------------


class Outcomes:
    """A thread-safe record of what the mailer reported."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[MailOutcome] = []

    def __call__(self, outcome: MailOutcome) -> None:
        with self._lock:
            self.items.append(outcome)

    def of(self, kind: str) -> list[MailOutcome]:
        with self._lock:
            return [o for o in self.items if o.kind == kind]


def _config(port: int, **overrides: Any) -> AlertsConfig:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "security": "none",
        "sender": SENDER,
        "recipients": RECIPIENTS,
        "timeout_s": 5.0,
        "retry_initial_s": 0.05,
        "retry_max_s": 0.3,
    }
    return AlertsConfig(**{**values, **overrides})


def _mail(n: int = 1, severity: str = "critical", text: str = "") -> Mail:
    return make_mail(
        subject=f"[tradehost 101-001-0000000-001 shadow] NO_TRADE: restart_intensity:feed #{n}",
        body=f"feed restarted 5 times in 60 s.\nNo new trades; open trades keep their broker-side SL/TP.\n{text}",
        created_ns=time.time_ns() + n,
        severity=severity,
        cause="restart_intensity:feed",
    )


@pytest.fixture
def mailers() -> Iterator[list[Mailer]]:
    """Mailers a test starts; all stopped afterwards."""
    started: list[Mailer] = []
    yield started
    for m in started:
        m.stop(5.0)


def _start(mailers: list[Mailer], config: AlertsConfig, spool: Path, outcomes: Outcomes, **kw: Any) -> Mailer:
    mailer = Mailer(config, spool_dir=spool, on_outcome=outcomes, **kw)
    mailers.append(mailer)
    mailer.start()
    return mailer


def _spooled(spool: Path) -> list[str]:
    return sorted(p.name for p in spool.glob("*.json"))


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = fn(*args)
    return result, time.monotonic() - started


# --- Delivery ----------------------------------------------------------------------------------


def test_a_submitted_mail_arrives_with_its_subject_sender_and_recipients(tmp_path: Path, mailers: list[Mailer]) -> None:
    # Arrange
    port, inbox, outcomes = free_port(), Inbox(), Outcomes()
    mail = _mail()
    with smtp_server(port, inbox):
        mailer = _start(mailers, _config(port), tmp_path / "spool", outcomes)

        # Act
        mailer.submit(mail)

        # Assert
        poll_until(lambda: inbox.received, timeout_s=10, what="the mail at the server")
        poll_until(lambda: outcomes.of(SENT), timeout_s=10, what="alert.sent")
    [got] = inbox.received
    assert got.mail_from == SENDER
    assert sorted(got.rcpt_tos) == sorted(RECIPIENTS)
    msg = got.message
    assert msg["Subject"] == mail.subject
    assert msg["From"] == SENDER
    assert msg["To"] == ", ".join(RECIPIENTS)
    assert msg["Message-ID"] == f"<{mail.mail_id}@example.com>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Tradehost-Cause"] == "restart_intensity:feed"
    assert "open trades keep their broker-side SL/TP" in msg.get_content()
    [sent] = outcomes.of(SENT)
    assert (sent.mail_id, sent.attempt, sent.cause) == (mail.mail_id, 1, "restart_intensity:feed")
    assert outcomes.of(FAILED) == []
    poll_until(lambda: _spooled(tmp_path / "spool") == [], timeout_s=10, what="the spool file removed")


def test_starttls_with_login_delivers_and_the_password_is_in_no_mail_and_no_log(
    tmp_path: Path, mailers: list[Mailer], certificate: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: a server that insists on STARTTLS and a login; a mail whose text leaks the password.
    caplog.set_level(logging.DEBUG)
    port, inbox, outcomes, auth = free_port(), Inbox(), Outcomes(), Authenticator()
    config = _config(port, security="starttls", username=USERNAME, ca_file=str(certificate[0]))
    password = load_smtp_password(config, {ENV_SMTP_PASSWORD: PASSWORD})
    leaky = _mail(text=f"debug dump: password={PASSWORD}")
    server_tls = _server_tls(certificate)
    with smtp_server(
        port, inbox, tls_context=server_tls, require_starttls=True, authenticator=auth, auth_required=True
    ):
        mailer = _start(mailers, config, tmp_path / "spool", outcomes, password=password)

        # Act
        mailer.submit(leaky)

        # Assert
        poll_until(lambda: outcomes.of(SENT), timeout_s=10, what="alert.sent")
    assert auth.attempts == [(USERNAME, PASSWORD)]  # the login really happened, with the secret
    [got] = inbox.received
    assert "debug dump: password=***" in got.message.get_content()
    forms = [PASSWORD, base64.b64encode(PASSWORD.encode()).decode()]
    forms.append(base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode())
    for form in forms:
        assert form.encode() not in got.raw
        assert form not in repr(outcomes.items)
        assert form not in repr(mailer.__dict__)
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
    assert PASSWORD not in caplog.text
    assert not any(form in ours for form in forms)


def test_ssl_from_the_first_byte_delivers(
    tmp_path: Path, mailers: list[Mailer], certificate: tuple[Path, Path]
) -> None:
    port, inbox, outcomes = free_port(), Inbox(), Outcomes()
    config = _config(port, security="ssl", ca_file=str(certificate[0]))
    with smtp_server(port, inbox, ssl_context=_server_tls(certificate)):
        mailer = _start(mailers, config, tmp_path / "spool", outcomes)

        mailer.submit(_mail())

        poll_until(lambda: outcomes.of(SENT), timeout_s=10, what="alert.sent")
    assert len(inbox.received) == 1


def test_a_certificate_that_does_not_verify_is_a_failure_not_a_delivery(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    port, inbox = free_port(), Inbox()
    with smtp_server(port, inbox, ssl_context=_server_tls(certificate)):
        result = send_alert_now(_config(port, security="ssl"), subject="s", body="b", environ={})

    assert not result.ok
    assert "CERTIFICATE_VERIFY_FAILED" in result.message
    assert inbox.received == []


def test_starttls_not_offered_fails_and_never_falls_back_to_clear_text() -> None:
    port, inbox = free_port(), Inbox()
    config = _config(port, security="starttls", username=USERNAME)
    with smtp_server(port, inbox):  # no TLS context: STARTTLS is not offered
        result = send_alert_now(config, subject="s", body="b", environ={ENV_SMTP_PASSWORD: PASSWORD})

    assert not result.ok
    assert result.message.startswith("SMTPNotSupportedError:")
    assert "\n" not in result.message
    assert inbox.data_calls == 0


# --- A dead or hanging server ------------------------------------------------------------------


def test_a_dead_server_blocks_nothing_and_the_spooled_mail_arrives_once_it_is_back(
    tmp_path: Path, mailers: list[Mailer]
) -> None:
    # Arrange: nothing listens on the port.
    port, inbox, outcomes, spool = free_port(), Inbox(), Outcomes(), tmp_path / "spool"
    mailer = _start(mailers, _config(port), spool, outcomes)
    mail = _mail()

    # Act
    accepted, took_s = _timed(mailer.submit, mail)

    # Assert: queued at once, spooled, retried while the server is down ...
    assert accepted
    assert took_s < 0.25
    poll_until(lambda: _spooled(spool) == [f"{mail.mail_id}.json"], timeout_s=10, what="the mail spooled")
    poll_until(lambda: len(outcomes.of(FAILED)) >= 2, timeout_s=10, what="failed attempts being retried")
    failed = outcomes.of(FAILED)[0]
    assert not failed.final
    assert failed.retry_in_s is not None
    assert "ConnectionRefusedError" in failed.error
    # ... and delivered once it is back on the same port.
    with smtp_server(port, inbox):
        poll_until(lambda: inbox.received, timeout_s=10, what="the mail after the server came back")
        poll_until(lambda: outcomes.of(SENT), timeout_s=10, what="alert.sent")
    assert inbox.subjects() == [mail.subject]
    assert outcomes.of(SENT)[0].attempt >= 2
    poll_until(lambda: _spooled(spool) == [], timeout_s=10, what="the spool emptied")


def test_a_restarted_mailer_delivers_what_the_previous_one_left_in_the_spool(
    tmp_path: Path, mailers: list[Mailer]
) -> None:
    # Arrange: a first mailer spools three mails while the server is down, then stops.
    port, inbox, spool = free_port(), Inbox(), tmp_path / "spool"
    first = _start(mailers, _config(port), spool, Outcomes())
    mails = [_mail(n) for n in range(3)]
    for mail in mails:
        first.submit(mail)
    poll_until(lambda: len(_spooled(spool)) == 3, timeout_s=10, what="three spooled mails")
    assert first.stop(5.0)
    (spool / ".tmp-00000000000000000001-deadbeef0000.json").write_text('{"v": 1, "mail_id": "cut sh')
    (spool / "00000000000000000002-deadbeef0000.json").write_text("not json")

    # Act: a new mailer on the same spool, with the server up.
    outcomes = Outcomes()
    with smtp_server(port, inbox):
        _start(mailers, _config(port), spool, outcomes)
        poll_until(lambda: len(inbox.received) == 3, timeout_s=10, what="the three mails")

    # Assert: all delivered oldest first; the half-written and the corrupt file never sent.
    assert inbox.subjects() == [m.subject for m in mails]
    assert sorted(o.mail_id for o in outcomes.of(SENT)) == sorted(m.mail_id for m in mails)
    poll_until(lambda: _spooled(spool) == [], timeout_s=10, what="the spool emptied")
    assert sorted(p.name for p in spool.iterdir()) == ["00000000000000000002-deadbeef0000.bad"]


def test_a_hanging_server_blocks_neither_submit_nor_stop(tmp_path: Path, mailers: list[Mailer]) -> None:
    # Arrange: a socket that accepts connections (backlog) but never says a word.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port, spool = listener.getsockname()[1], tmp_path / "spool"
        mailer = _start(mailers, _config(port, timeout_s=60.0), spool, Outcomes())
        mailer.submit(_mail(1))
        poll_until(lambda: select.select([listener], [], [], 0)[0], timeout_s=10, what="the mailer connected")

        # Act
        accepted, submit_s = _timed(mailer.submit, _mail(2))
        stopped, stop_s = _timed(mailer.stop, 2.0)

    # Assert
    assert accepted
    assert submit_s < 0.25
    assert stopped
    assert stop_s < 2.5
    assert len(_spooled(spool)) == 2  # kept for the next start


def test_over_the_queue_bound_the_lowest_severity_oldest_mail_is_dropped_and_reported(
    tmp_path: Path, mailers: list[Mailer]
) -> None:
    # Arrange: a queue of two; not started yet, so nothing is in flight.
    port, inbox, outcomes, spool = free_port(), Inbox(), Outcomes(), tmp_path / "spool"
    mailer = Mailer(_config(port, queue_max=2), spool_dir=spool, on_outcome=outcomes)
    mailers.append(mailer)
    old_info, critical, warning, late_info = (
        _mail(1, "info"),
        _mail(2, "critical"),
        _mail(3, "warning"),
        _mail(4, "info"),
    )

    # Act
    results = [mailer.submit(m) for m in (old_info, critical, warning, late_info)]

    # Assert: the info mail went first; a new info mail is itself the least valuable.
    assert results == [True, True, True, False]
    dropped = outcomes.of(FAILED)
    assert [o.mail_id for o in dropped] == [old_info.mail_id, late_info.mail_id]
    assert all(o.final and "queue is full" in o.error for o in dropped)
    with smtp_server(port, inbox):
        mailer.start()
        poll_until(lambda: len(outcomes.of(SENT)) == 2, timeout_s=10, what="the two kept mails")
    assert inbox.subjects() == [critical.subject, warning.subject]
    poll_until(lambda: _spooled(spool) == [], timeout_s=10, what="the spool emptied")


def test_a_mail_the_server_refuses_for_good_is_dropped_not_retried(tmp_path: Path, mailers: list[Mailer]) -> None:
    port, inbox, outcomes, spool = free_port(), Inbox(reject="554 5.7.1 Message rejected"), Outcomes(), tmp_path / "sp"
    with smtp_server(port, inbox):
        mailer = _start(mailers, _config(port), spool, outcomes)

        mailer.submit(_mail())

        [failed] = poll_until(lambda: outcomes.of(FAILED), timeout_s=10, what="alert.failed")
        assert mailer.pending() == 0
    assert failed.final
    assert failed.error.startswith("SMTPDataError: 554")
    assert inbox.data_calls == 1
    poll_until(lambda: _spooled(spool) == [], timeout_s=10, what="the spool emptied")


def test_a_mail_older_than_max_age_is_given_up_not_sent(tmp_path: Path, mailers: list[Mailer]) -> None:
    port, inbox, outcomes = free_port(), Inbox(), Outcomes()
    stale = make_mail(subject="from two days ago", body="b", created_ns=time.time_ns() - 2 * 86400 * 10**9)
    with smtp_server(port, inbox):
        mailer = _start(mailers, _config(port, max_age_s=86400.0), tmp_path / "spool", outcomes)
        mailer.submit(stale)
        mailer.submit(_mail())

        poll_until(lambda: outcomes.of(SENT), timeout_s=10, what="the fresh mail")
    [expired] = outcomes.of(FAILED)
    assert expired.mail_id == stale.mail_id
    assert expired.final and expired.error.startswith("expired")
    assert inbox.subjects() == [_mail().subject]


def test_a_wrong_password_is_retried_and_never_shown(tmp_path: Path, mailers: list[Mailer], certificate: Any) -> None:
    port, inbox, outcomes, auth = free_port(), Inbox(), Outcomes(), Authenticator()
    config = _config(port, security="starttls", username=USERNAME, ca_file=str(certificate[0]))
    wrong = load_smtp_password(config, {ENV_SMTP_PASSWORD: "wrong-" + PASSWORD})
    with smtp_server(port, inbox, tls_context=_server_tls(certificate), authenticator=auth, auth_required=True):
        mailer = _start(mailers, config, tmp_path / "spool", outcomes, password=wrong)
        mailer.submit(_mail())
        poll_until(lambda: len(outcomes.of(FAILED)) >= 2, timeout_s=10, what="retried login failures")
        # The first two attempts ended while the server was up; a third may race the server's stop
        # (connection reset), which is a different and expected error.
        while_up = outcomes.of(FAILED)[:2]
    assert inbox.received == []
    assert len(while_up) == 2
    assert all(not o.final and o.error.startswith("SMTPAuthenticationError: 535") for o in while_up)
    assert PASSWORD not in repr(outcomes.items)


# --- tradehost alert ---------------------------------------------------------------------------


def test_send_alert_now_sends_one_mail_with_the_configured_settings() -> None:
    port, inbox = free_port(), Inbox()
    environ = {"OANDA_TOKEN": "oanda-token-0123456789"}
    with smtp_server(port, inbox):
        result = send_alert_now(
            _config(port),
            subject="tradehost on host1 died (exit 1)",
            body="journal tail:\nAuthorization: Bearer oanda-token-0123456789\n",
            environ=environ,
        )

    assert result.ok
    assert result.message == f"sent to {', '.join(RECIPIENTS)}"
    [got] = inbox.received
    assert got.message["Subject"] == "tradehost on host1 died (exit 1)"
    assert "Bearer ***" in got.message.get_content()
    assert b"oanda-token-0123456789" not in got.raw


def test_send_alert_now_returns_a_one_line_error_quickly_when_no_server_listens() -> None:
    result, took_s = _timed(lambda: send_alert_now(_config(free_port()), subject="s", body="b", environ={}))

    assert not result.ok
    assert result.message.startswith("ConnectionRefusedError:")
    assert "\n" not in result.message
    assert took_s < 5.0


def test_send_alert_now_refuses_when_mail_is_off_or_the_password_is_missing() -> None:
    off = send_alert_now(AlertsConfig(), subject="s", body="b", environ={})
    no_password = send_alert_now(
        _config(free_port(), security="starttls", username=USERNAME), subject="s", body="b", environ={}
    )

    assert not off.ok and "alerts.smtp_host" in off.message
    assert not no_password.ok and ENV_SMTP_PASSWORD in no_password.message


def test_the_alert_command_refuses_bad_configuration_and_input_with_exit_2(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from supervisor import cli
    from supervisor.cli import live

    monkeypatch.delenv(ENV_SMTP_PASSWORD, raising=False)
    port = free_port()
    mail = ["--set", 'alerts.smtp_host="127.0.0.1"', "--set", f"alerts.smtp_port={port}"]
    mail += ["--set", 'alerts.sender="th@example.com"', "--set", 'alerts.recipients=["ops@example.com"]']
    big = tmp_path / "big.txt"
    big.write_text("x" * (live.ALERT_BODY_MAX + 1))
    cases = {
        "alerts.ca_file: 'nonexist.pem' is not a file": [
            "--set", 'alerts.ca_file="nonexist.pem"', "--set", 'alerts.security="starttls"'
        ],
        ENV_SMTP_PASSWORD: ["--set", 'alerts.username="th"'],
        f"--body-file: longer than {live.ALERT_BODY_MAX} characters": ["--body-file", str(big)],
    }  # fmt: skip

    for words, flags in cases.items():
        code = cli.main(["alert", *mail, *flags, "--subject", "x"])
        err = capsys.readouterr().err
        assert code == 2, (words, err)
        assert err.count("\n") == 1 and words in err
