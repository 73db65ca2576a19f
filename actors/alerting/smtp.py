"""The one alert path, delivery half: one mail built and sent over SMTP, and the one-shot sender.

``build_message`` turns a ``Mail`` (``actors.alerting.composition``) into its RFC 5322 message;
``deliver`` sends it now with ``smtplib`` (SSL, STARTTLS or clear, an optional login, every socket
operation bounded by ``timeout_s``) and classifies a failure by what the caller must do: refused
for good (``MailRejectedError``: 5xx, never retried) or anything else (``MailTemporaryError``:
retried with backoff). Errors are one line with every form of the password scrubbed.
``send_alert_now`` is ``tradehost alert``: one synchronous mail for when the host itself is dead.
The worker that queues, spools and retries mail is ``actors.alerting.mailer``.
"""

from __future__ import annotations

import base64
import contextlib
import email.policy
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from actors.alerting.composition import Mail, make_mail, scrub
from actors.alerting.config import AlertsConfig, SmtpPassword, load_smtp_password
from actors.broker.config import CREDENTIAL_TOKEN, ENV_TOKEN
from actors.core.errors import ConfigError, TradehostError
from actors.core.secretfile import read_secret

__all__ = [
    "MAIL_POLICY",
    "MailRejectedError",
    "MailTemporaryError",
    "SendResult",
    "build_message",
    "deliver",
    "error_line",
    "secret_forms",
    "send_alert_now",
]


MAX_ERROR_CHARS = 300
# CRLF and no folding below RFC 5322's hard limit: a subject stays one line, exactly as written.
MAIL_POLICY = email.policy.SMTP.clone(max_line_length=998)


class MailTemporaryError(TradehostError):
    """Connection refused or lost, timeout, TLS failure, 4xx, login refused: retry with backoff."""


class MailRejectedError(TradehostError):
    """The server refused this mail for good (5xx on sender, recipients or data): never retry."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """The answer of ``send_alert_now``: success, or a one-line error."""

    ok: bool
    message: str


def build_message(config: AlertsConfig, mail: Mail) -> EmailMessage:
    """The RFC 5322 message for ``mail`` (From, To, Subject, Date, a stable Message-ID).

    Raises:
        ValueError: a header the ``email`` package refuses.
    """
    domain = config.sender.rpartition("@")[2] or "localhost"
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["Subject"] = " ".join(mail.subject.split())  # never a line break: no header injection
    msg["From"] = config.sender
    msg["To"] = ", ".join(config.recipients)
    msg["Date"] = format_datetime(datetime.fromtimestamp(mail.created_ns / 1e9, tz=UTC))
    msg["Message-ID"] = f"<{mail.mail_id}@{domain}>"  # the same on every retry
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    msg["X-Tradehost-Severity"] = mail.severity
    if mail.cause:
        msg["X-Tradehost-Cause"] = " ".join(mail.cause.split())
    msg.set_content(mail.body)
    return msg


def error_line(e: BaseException, secrets: Iterable[str]) -> str:
    if isinstance(e, smtplib.SMTPResponseException):
        text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        detail = f"{e.smtp_code} {text}"
    elif isinstance(e, smtplib.SMTPRecipientsRefused):
        detail = "; ".join(f"{rcpt}: {code}" for rcpt, (code, _msg) in e.recipients.items())
    else:
        detail = str(e) or "(no detail)"
    return scrub(" ".join(f"{type(e).__name__}: {detail}".split()), secrets)[:MAX_ERROR_CHARS]


def secret_forms(username: str, password: SmtpPassword | None) -> tuple[str, ...]:
    """The password and the base64 forms AUTH PLAIN/LOGIN put on the wire (all to be scrubbed)."""
    if password is None or not password.value:
        return ()
    raw = password.value
    plain = base64.b64encode(f"\0{username}\0{raw}".encode()).decode()
    return (raw, base64.b64encode(raw.encode()).decode(), plain)


class _Smtp(smtplib.SMTP):
    # smtplib takes the TLS server name (SNI and the certificate check) from the constructor's
    # host only; connecting in a separate step lets Mailer.stop reach the socket while the
    # greeting is awaited.
    def __init__(self, server_name: str, *, local_hostname: str, timeout: float) -> None:
        super().__init__(local_hostname=local_hostname, timeout=timeout)
        self._host = server_name


class _SmtpSsl(smtplib.SMTP_SSL):
    def __init__(
        self, server_name: str, *, local_hostname: str, timeout: float, context: ssl.SSLContext | None
    ) -> None:
        super().__init__(local_hostname=local_hostname, timeout=timeout, context=context)
        self._host = server_name


def deliver(
    config: AlertsConfig,
    message: EmailMessage,
    password: SmtpPassword | None,
    *,
    on_session: Callable[[smtplib.SMTP], None] | None = None,
) -> tuple[str, ...]:
    """Send one message now (blocking; every socket operation bounded by ``timeout_s``).

    Args:
        config: server, security, login, sender and recipients.
        message: from ``build_message``.
        password: the login password (None: no login).
        on_session: called with the ``smtplib`` object before it connects (lets ``Mailer.stop``
            shut a hanging connection down).

    Returns:
        The recipients the server refused while accepting the others (usually empty).

    Raises:
        MailRejectedError: refused for good; do not retry.
        MailTemporaryError: anything else; retry later.
    """
    secrets = secret_forms(config.username, password)
    context = ssl.create_default_context(cafile=config.ca_file or None) if config.security != "none" else None
    # The local name for EHLO: never socket.getfqdn(), whose DNS lookup can hang.
    local = socket.gethostname() or "localhost"
    smtp: smtplib.SMTP
    if config.security == "ssl":
        smtp = _SmtpSsl(config.smtp_host, local_hostname=local, timeout=config.timeout_s, context=context)
    else:
        smtp = _Smtp(config.smtp_host, local_hostname=local, timeout=config.timeout_s)
    try:
        if on_session is not None:
            on_session(smtp)
        smtp.connect(config.smtp_host, config.smtp_port)
        smtp.ehlo()
        if config.security == "starttls":
            smtp.starttls(context=context)  # not offered: SMTPNotSupportedError, never a fall-back to clear
            smtp.ehlo()
        if config.username:
            smtp.login(config.username, password.value if password else "")
        refused = smtp.send_message(message, from_addr=config.sender, to_addrs=list(config.recipients))
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()
        return tuple(sorted(refused))
    except smtplib.SMTPRecipientsRefused as e:
        permanent = all(500 <= code < 600 for code, _msg in e.recipients.values())
        raise (MailRejectedError if permanent else MailTemporaryError)(error_line(e, secrets)) from None
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
        raise (MailRejectedError if e.smtp_code >= 500 else MailTemporaryError)(error_line(e, secrets)) from None
    except (smtplib.SMTPException, OSError) as e:
        # Includes login refused (a fixed password needs a restart; the spool keeps the mail),
        # STARTTLS not offered, certificate errors, timeouts and refused connections.
        raise MailTemporaryError(error_line(e, secrets)) from None
    finally:
        smtp.close()


def send_alert_now(
    config: AlertsConfig,
    *,
    subject: str,
    body: str,
    environ: Mapping[str, str],
    now_ns: int | None = None,
) -> SendResult:
    """``tradehost alert --subject S [--body-file F]``: one mail, now, with the configured settings.

    Used when the host itself is dead (systemd ``OnFailure=``), so nothing here needs the host.
    The SMTP password and the OANDA token from ``environ`` are scrubbed from subject and body.

    Returns:
        ``SendResult(True, "sent to ...")`` or ``SendResult(False, "<one-line error>")``.
    """
    if not config.enabled:
        return SendResult(ok=False, message="alerts.smtp_host is not set: alert mail is off")
    try:
        password = load_smtp_password(config, environ)
    except ConfigError as e:
        return SendResult(ok=False, message=str(e))
    secrets = (*secret_forms(config.username, password), _oanda_token(environ))
    created_ns = time.time_ns() if now_ns is None else now_ns
    mail = make_mail(subject=subject, body=body, created_ns=created_ns, secrets=secrets, cause="manual", kind="manual")
    try:
        refused = deliver(config, build_message(config, mail), password)
    except (MailRejectedError, MailTemporaryError) as e:
        return SendResult(ok=False, message=str(e))
    except (ValueError, OSError) as e:  # OSError: the CA file went away or is not PEM (ssl.SSLError)
        return SendResult(ok=False, message=error_line(e, secrets))
    accepted = [r for r in config.recipients if r not in refused]
    note = f"; refused: {', '.join(refused)}" if refused else ""
    return SendResult(ok=True, message=f"sent to {', '.join(accepted)}{note}")


def _oanda_token(environ: Mapping[str, str]) -> str:
    # What to scrub: the systemd credential's token, else the variable's (`tradehost alert` reads
    # only [alerts], so never broker.token_file; a refused file is the host's problem, not the mail's).
    try:
        return read_secret(environ, key="broker", credential=CREDENTIAL_TOKEN, env_var=ENV_TOKEN)
    except ConfigError:
        return environ.get(ENV_TOKEN, "")
