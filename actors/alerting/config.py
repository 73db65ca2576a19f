"""The ``[alerts]`` section (SMTP server, security, sender, recipients, dedup window, hourly budget)
and the SMTP password, which comes from ``alerts.password_file``, the systemd credential
``smtp_password`` or the environment (``TRADEHOST_SMTP_PASSWORD``), in that order
(``actors.core.secretfile``), and is redacted wherever it could be shown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from actors.core.errors import ConfigError
from actors.core.secretfile import read_secret

ENV_SMTP_PASSWORD = "TRADEHOST_SMTP_PASSWORD"  # noqa: S105 - the variable's name, not a secret
CREDENTIAL_SMTP_PASSWORD = "smtp_password"  # noqa: S105 - a systemd credential's name, not a secret


SECURITIES = ("none", "starttls", "ssl")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


IMPLICIT_TLS_PORT = 465


PLAIN_SUBMISSION_PORTS = (25, 587)


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"


_ADDRESS = re.compile(rf"[^@\s<>()\[\],;:\"\\]+@{_LABEL}(?:\.{_LABEL})*")


_HOST = re.compile(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertsConfig:
    """The ``[alerts]`` section. The SMTP password is never here: see ``load_smtp_password``."""

    smtp_host: str = field(
        default="",
        metadata={"doc": "SMTP server for alert mail; empty: mail is off (alerts are journaled and logged)."},
    )
    smtp_port: int = field(
        default=587, metadata={"doc": "SMTP port: 587 for starttls, 465 for ssl, 25 for none.", "min": 1, "max": 65535}
    )
    security: str = field(
        default="starttls",
        metadata={"doc": '"starttls" (upgrade, refused if the server cannot), "ssl" (TLS from the start) or "none".'},
    )
    username: str = field(
        default="",
        metadata={
            "doc": "Login name; empty: no login. The password: password_file, else the systemd credential "
            "smtp_password, else TRADEHOST_SMTP_PASSWORD."
        },
    )
    password_file: str = field(
        default="",
        metadata={"doc": "File holding the SMTP password (mode 0600, else refused); empty: see username."},
    )
    sender: str = field(default="", metadata={"doc": "From: address of alert mail (needed when smtp_host is set)."})
    recipients: tuple[str, ...] = field(default=(), metadata={"doc": "Who gets alert mail (at least one address)."})
    dedup_window_s: float = field(
        default=900.0,
        metadata={"doc": "One mail per cause within this window; repeats are counted.", "min": 1.0, "max": 86400.0},
    )
    max_per_hour: int = field(
        default=10,
        metadata={
            "doc": "At most this many mails in any hour; the rest goes out as one digest.",
            "min": 1,
            "max": 1000,
        },
    )
    timeout_s: float = field(
        default=10.0, metadata={"doc": "Timeout of each SMTP socket operation.", "min": 0.5, "max": 120.0}
    )
    retry_initial_s: float = field(
        default=5.0, metadata={"doc": "First delay before retrying a failed send.", "min": 0.01, "max": 3600.0}
    )
    retry_max_s: float = field(
        default=300.0, metadata={"doc": "Upper bound of the retry delay (doubles, with jitter).", "min": 0.01}
    )
    queue_max: int = field(
        default=100,
        metadata={"doc": "Mails waiting to be sent; past it the lowest-value one is dropped.", "min": 1, "max": 10000},
    )
    max_age_s: float = field(
        default=86400.0,
        metadata={"doc": "A mail not delivered this long after it was written is dropped.", "min": 60.0},
    )
    ca_file: str = field(
        default="", metadata={"doc": "CA certificates (PEM) to verify the server with; empty: the system's."}
    )

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.security not in SECURITIES:
            problems.append(f"alerts.security: expected one of {SECURITIES}, got {self.security!r}")
        if self.retry_max_s < self.retry_initial_s:
            problems.append("alerts.retry_max_s: must not be below alerts.retry_initial_s")
        if self.ca_file and not os.path.isfile(self.ca_file):  # noqa: PTH113 - no pathlib for one check
            problems.append(f"alerts.ca_file: {self.ca_file!r} is not a file")
        if self.sender and not _ADDRESS.fullmatch(self.sender):
            problems.append(f"alerts.sender: {self.sender!r} does not look like an e-mail address")
        for i, address in enumerate(self.recipients):
            if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
                problems.append(f"alerts.recipients[{i}]: {address!r} does not look like an e-mail address")
        if len(set(self.recipients)) != len(self.recipients):
            problems.append("alerts.recipients: an address is listed twice")
        if any(c.isspace() for c in self.username):
            problems.append("alerts.username: must not contain whitespace")
        if self.smtp_host:
            problems.extend(self._server_problems())
        if problems:
            raise ConfigError(problems)

    def _server_problems(self) -> list[str]:
        problems: list[str] = []
        if not _HOST.fullmatch(self.smtp_host):
            problems.append(f"alerts.smtp_host: {self.smtp_host!r} is not a host name (the port goes in smtp_port)")
        if not self.sender:
            problems.append("alerts.sender: needed when alerts.smtp_host is set")
        if not self.recipients:
            problems.append("alerts.recipients: at least one address is needed when alerts.smtp_host is set")
        if self.security == "ssl" and self.smtp_port in PLAIN_SUBMISSION_PORTS:
            problems.append(
                f'alerts.smtp_port: port {self.smtp_port} starts unencrypted; use security = "starttls" or port 465'
            )
        if self.security in ("none", "starttls") and self.smtp_port == IMPLICIT_TLS_PORT:
            problems.append('alerts.smtp_port: port 465 speaks TLS from the start; use security = "ssl"')
        if self.security == "none" and self.username and self.smtp_host not in LOOPBACK_HOSTS:
            problems.append(
                'alerts.username: a login without TLS sends the password in clear; use security = "starttls" or '
                '"ssl" (plain login is allowed on loopback only)'
            )
        return problems

    @property
    def enabled(self) -> bool:
        """True when mail is configured (``smtp_host`` set)."""
        return bool(self.smtp_host)


class SmtpPassword:
    """The SMTP password (``load_smtp_password``); ``repr`` and ``str`` never show it.

    Args:
        value: the password.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @property
    def value(self) -> str:
        """The secret; pass it only to ``smtplib`` and to ``scrub``."""
        return self._value

    def __repr__(self) -> str:
        return "SmtpPassword('***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("SmtpPassword is not picklable; each process reads it with load_smtp_password")


def load_smtp_password(config: AlertsConfig, environ: Mapping[str, str]) -> SmtpPassword | None:
    """Read the SMTP password: ``alerts.password_file``, else the systemd credential
    ``smtp_password``, else ``TRADEHOST_SMTP_PASSWORD`` in ``environ``.

    Args:
        config: the ``[alerts]`` section (a login needs the password).
        environ: the environment (``os.environ`` in the host).

    Returns:
        The password, or None when no login is configured.

    Raises:
        ConfigError: a login is configured but no password is set, or the password file is refused
            (readable by group or others, missing, empty).
    """
    if not (config.enabled and config.username):
        return None
    value = read_secret(
        environ,
        key="alerts.password_file",
        file=config.password_file,
        credential=CREDENTIAL_SMTP_PASSWORD,
        env_var=ENV_SMTP_PASSWORD,
    )
    if not value:
        raise ConfigError(
            f"alerts.username: set, but {ENV_SMTP_PASSWORD} is not in the environment "
            f"(nor alerts.password_file, nor the systemd credential {CREDENTIAL_SMTP_PASSWORD})"
        )
    return SmtpPassword(value)
