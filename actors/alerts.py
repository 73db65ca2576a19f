"""The one alert path, pure half: the ``[alerts]`` section, the mail policy and mail composition.

Every alert source (the supervisor, the watchdog, later execution and the reconciler) raises a
cause code such as ``restart_intensity:feed``; when the cause is healthy again it is cleared.
``AlertPolicy`` turns that stream into mail decisions with the clock passed in: one mail per
cause per ``dedup_window_s`` (repeats are counted, not sent; a higher severity goes out at
once), at most ``max_per_hour`` mails in any sliding hour (what is held back goes out as one
digest as soon as the hour has room again), and a recovery mail when a cause that an operator
was told about clears. Every decision is a record the caller journals (``alert.suppressed``) or
hands to the composer. ``compose_mail`` writes the mail an operator can act on at 3 a.m. and
scrubs every secret it is given. Nothing here does I/O; ``actors.mailer`` sends.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from actors.errors import ConfigError
from actors.messages import Reason
from actors.roles import role_names

__all__ = [
    "ENV_SMTP_PASSWORD",
    "WITHHELD",
    "AlertDecision",
    "AlertEvent",
    "AlertPolicy",
    "AlertsConfig",
    "CauseCleared",
    "CauseSummary",
    "DecisionReason",
    "Mail",
    "MailContext",
    "Notice",
    "NoticeKind",
    "OpenPosition",
    "SmtpPassword",
    "compose_mail",
    "format_duration",
    "format_utc",
    "load_smtp_password",
    "make_mail",
    "scrub",
    "severity_rank",
    "subject_line",
]

ENV_SMTP_PASSWORD = "TRADEHOST_SMTP_PASSWORD"  # noqa: S105 - the variable's name, not a secret
SECURITIES = ("none", "starttls", "ssl")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
IMPLICIT_TLS_PORT = 465
PLAIN_SUBMISSION_PORTS = (25, 587)
HOUR_NS = 3600 * 10**9

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"[^@\s<>()\[\],;:\"\\]+@{_LABEL}(?:\.{_LABEL})*")
_HOST = re.compile(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:]+")
_MAIL_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
WITHHELD = "(withheld: the text contained a secret)"


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
        default="", metadata={"doc": "Login name; empty: no login. The password comes from TRADEHOST_SMTP_PASSWORD."}
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
    """The SMTP password from the environment; ``repr`` and ``str`` never show it.

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
        raise TypeError("SmtpPassword is not picklable; read it from the environment instead")


def load_smtp_password(config: AlertsConfig, environ: Mapping[str, str]) -> SmtpPassword | None:
    """Read the SMTP password from ``TRADEHOST_SMTP_PASSWORD`` in ``environ``.

    Args:
        config: the ``[alerts]`` section (a login needs the password).
        environ: the environment (``os.environ`` in the host).

    Returns:
        The password, or None when no login is configured.

    Raises:
        ConfigError: a login is configured but the variable is missing or empty.
    """
    if not (config.enabled and config.username):
        return None
    value = environ.get(ENV_SMTP_PASSWORD, "")
    if not value:
        raise ConfigError(f"alerts.username: set, but {ENV_SMTP_PASSWORD} is not in the environment")
    return SmtpPassword(value)


# --- The policy --------------------------------------------------------------------------------

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}


def severity_rank(severity: str) -> int:
    """Order of severities (``info`` < ``warning`` < ``error`` < ``critical``; unknown = warning)."""
    return SEVERITY_RANK.get(severity, 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvent:
    """A source raised a cause (``restart_intensity:feed``) at ``ts_ns`` (UTC ns)."""

    cause: str
    severity: str
    detail: str
    ts_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CauseCleared:
    """The cause is healthy again at ``ts_ns`` (UTC ns)."""

    cause: str
    ts_ns: int
    detail: str = ""


class NoticeKind(StrEnum):
    """What a mail says."""

    ALERT = "alert"
    RECOVERY = "recovery"
    DIGEST = "digest"


class DecisionReason(StrEnum):
    """Why the policy sent or suppressed."""

    NEW = "new"  # first raise of the cause (or of a new episode)
    REPEAT = "repeat"  # raised again after the dedup window, never cleared in between
    ESCALATED = "escalated"  # a higher severity than the last mail about the cause
    FAILING_AGAIN = "failing_again"  # back after a recovery mail
    RESOLVED = "resolved"  # cleared after an operator was told it failed
    DIGEST = "digest"  # held-back causes, now that the hourly budget has room
    FLAPPED = "flapped"  # raised again and cleared again inside the window, now settled
    DEDUP = "dedup"  # suppressed: mailed about within dedup_window_s
    RATE_LIMIT = "rate_limit"  # suppressed: held for the digest
    NOT_RAISED = "not_raised"  # a clear of a cause that is not raised


@dataclass(frozen=True, slots=True, kw_only=True)
class CauseSummary:
    """Where one cause stands: what, since when, how often, and whether it has cleared."""

    cause: str
    severity: str
    detail: str
    since_ns: int
    last_ns: int
    raised: int
    resolved_ns: int | None = None
    unmailed: int = 0  # raises since the last mail about it that no mail told


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """What a mail should tell: one cause (alert, recovery) or several (digest)."""

    kind: NoticeKind
    at_ns: int
    causes: tuple[CauseSummary, ...]
    held_since_ns: int | None = None

    @property
    def cause(self) -> str:
        """The cause code (``digest`` for a digest)."""
        return "digest" if self.kind is NoticeKind.DIGEST else self.causes[0].cause

    @property
    def severity(self) -> str:
        """The highest severity among the causes."""
        return max((c.severity for c in self.causes), key=severity_rank)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertDecision:
    """One decision of the policy: send ``notice``, or suppress with a reason."""

    send: bool
    reason: DecisionReason
    cause: str
    at_ns: int
    notice: Notice | None = None
    repeats: int = 0

    @property
    def journal_kind(self) -> str | None:
        """``alert.suppressed`` for a suppression; a send is journaled by the mailer's outcome."""
        return None if self.send else "alert.suppressed"

    def journal_body(self) -> dict[str, object]:
        """The journal entry's body."""
        body: dict[str, object] = {"decision": "send" if self.send else "suppress", "reason": str(self.reason)}
        body["cause"] = self.cause
        if self.repeats:
            body["repeats"] = self.repeats
        if self.notice is not None:
            body["kind"] = str(self.notice.kind)
            body["causes"] = [c.cause for c in self.notice.causes]
        return body


@dataclass(slots=True)
class _Cause:
    cause: str
    severity: str
    detail: str
    since_ns: int
    last_ns: int
    raised: int = 1
    active: bool = True
    resolved_ns: int | None = None
    told: str | None = None  # what the last mail said: "failing" / "resolved"
    told_ns: int | None = None
    told_severity: str = "info"
    repeats: int = 0  # suppressed since the last mail about it
    unmailed: int = 0  # of those, raises
    held_ns: int | None = None  # waiting for the digest since

    def summary(self) -> CauseSummary:
        return CauseSummary(
            cause=self.cause,
            severity=self.severity,
            detail=self.detail,
            since_ns=self.since_ns,
            last_ns=self.last_ns,
            raised=self.raised,
            resolved_ns=None if self.active else self.resolved_ns,
            unmailed=self.unmailed,
        )


class AlertPolicy:
    """Decides which alerts become mail: dedup per cause, an hourly budget, digest, recovery.

    Rules (times are the ``now_ns`` the caller passes; wall time moving backwards is ignored):

    - A cause's first raise is mailed. Raises of it within ``dedup_window_s`` of the last mail
      about it are suppressed (``dedup``) and counted; one after the window is mailed again
      (``repeat``), and so is a raise with a higher severity than the last mail (``escalated``).
    - When a cause clears and the last mail said it was failing, a recovery mail goes out
      (``resolved after 3 min 12 s``). A cause that comes back within the window after a recovery
      mail is mailed once the window has passed and it is still raised (``failing_again``, on a
      tick), so what an operator last read is eventually true.
    - A cause that flapped inside the window (raised and cleared again, every raise suppressed)
      and has settled gets one digest mail once the window has passed (``flapped``, on a tick):
      how often it was raised since the last mail and where it stands, so repeats are never only
      in the journal.
    - Every mail counts against ``max_per_hour`` in a sliding hour. Over the budget a mail is held
      (``rate_limit``); while anything is held, new mails join it. As soon as the hour has room
      (checked on every call, so call ``on_tick`` every few seconds), everything held goes out as
      ONE mail: a digest of where each held cause stands now (one held cause: its own alert or
      recovery mail, marked as held back).

    Args:
        dedup_window_s: the per-cause dedup window.
        max_per_hour: the hourly mail budget.
    """

    def __init__(self, *, dedup_window_s: float, max_per_hour: int) -> None:
        self.window_ns = round(dedup_window_s * 1e9)
        self.max_per_hour = max_per_hour
        self._causes: dict[str, _Cause] = {}
        self._held: OrderedDict[str, _Cause] = OrderedDict()
        self._sent_ns: deque[int] = deque()
        self._now_ns = 0

    @classmethod
    def from_config(cls, config: AlertsConfig) -> AlertPolicy:
        """A policy with the section's window and budget."""
        return cls(dedup_window_s=config.dedup_window_s, max_per_hour=config.max_per_hour)

    def on_alert(self, event: AlertEvent, now_ns: int) -> list[AlertDecision]:
        """A cause was raised; returns the decisions (at most one mail)."""
        now = self._advance(now_ns)
        c = self._causes.get(event.cause)
        if c is None:
            c = self._causes[event.cause] = _Cause(
                cause=event.cause,
                severity=event.severity,
                detail=event.detail,
                since_ns=event.ts_ns,
                last_ns=event.ts_ns,
            )
        elif not c.active:  # a new episode; what the operator was told stays
            c.active, c.resolved_ns, c.raised = True, None, 1
            c.since_ns = c.last_ns = event.ts_ns
            c.severity, c.detail = event.severity, event.detail
        else:
            c.raised += 1
            c.last_ns, c.detail = event.ts_ns, event.detail
            if severity_rank(event.severity) > severity_rank(c.severity):
                c.severity = event.severity
        if c.held_ns is not None:
            c.repeats += 1
            c.unmailed += 1
            return [self._suppress(c, DecisionReason.RATE_LIMIT, now), *self._flush(now)]
        escalated = c.told is not None and severity_rank(event.severity) > severity_rank(c.told_severity)
        if c.told_ns is not None and now - c.told_ns < self.window_ns and not escalated:
            c.repeats += 1
            c.unmailed += 1
            return [self._suppress(c, DecisionReason.DEDUP, now)]
        reason = {None: DecisionReason.NEW, "failing": DecisionReason.REPEAT}.get(c.told, DecisionReason.FAILING_AGAIN)
        return self._offer(c, DecisionReason.ESCALATED if escalated else reason, now)

    def on_cleared(self, event: CauseCleared, now_ns: int) -> list[AlertDecision]:
        """A cause is healthy again; returns the decisions (at most one mail)."""
        now = self._advance(now_ns)
        c = self._causes.get(event.cause)
        if c is None or not c.active:
            return [AlertDecision(send=False, reason=DecisionReason.NOT_RAISED, cause=event.cause, at_ns=now)]
        c.active, c.resolved_ns = False, event.ts_ns
        if event.detail:
            c.detail = event.detail
        if c.held_ns is not None:
            return [self._suppress(c, DecisionReason.RATE_LIMIT, now), *self._flush(now)]
        if c.told == "failing":
            return self._offer(c, DecisionReason.RESOLVED, now)
        # The last mail already said "resolved" (a flap inside the window was never mailed).
        return [self._suppress(c, DecisionReason.DEDUP, now)]

    def on_tick(self, now_ns: int) -> list[AlertDecision]:
        """Time passed: send the digest when the budget allows, and owed ``failing_again`` mails."""
        now = self._advance(now_ns)
        out: list[AlertDecision] = []
        for c in list(self._causes.values()):
            if c.held_ns is not None or c.told != "resolved" or c.told_ns is None or now - c.told_ns < self.window_ns:
                continue
            if c.active:
                out.extend(self._offer(c, DecisionReason.FAILING_AGAIN, now))
            elif c.unmailed:
                out.extend(self._flapped(c, now))
        out.extend(self._flush(now))
        for name, c in list(self._causes.items()):  # forget what is settled, so the table stays small
            if not c.active and c.held_ns is None and (c.told_ns is None or now - c.told_ns >= self.window_ns):
                del self._causes[name]
        return out

    def held(self) -> tuple[str, ...]:
        """Causes waiting for the digest."""
        return tuple(self._held)

    def budget(self, now_ns: int) -> int:
        """Mails still allowed in the hour ending at ``now_ns``."""
        while self._sent_ns and self._sent_ns[0] <= now_ns - HOUR_NS:
            self._sent_ns.popleft()
        return self.max_per_hour - len(self._sent_ns)

    def _advance(self, now_ns: int) -> int:
        self._now_ns = max(self._now_ns, now_ns)
        return self._now_ns

    def _suppress(self, c: _Cause, reason: DecisionReason, now: int) -> AlertDecision:
        return AlertDecision(send=False, reason=reason, cause=c.cause, at_ns=now, repeats=c.repeats)

    def _offer(self, c: _Cause, reason: DecisionReason, now: int) -> list[AlertDecision]:
        if self._held or self.budget(now) <= 0:
            c.held_ns = now
            self._held[c.cause] = c
            flushed = self._flush(now)
            return flushed or [self._suppress(c, DecisionReason.RATE_LIMIT, now)]
        kind = NoticeKind.ALERT if c.active else NoticeKind.RECOVERY
        notice = Notice(kind=kind, at_ns=now, causes=(c.summary(),))
        return [self._sent(notice, [c], reason, now)]

    def _flapped(self, c: _Cause, now: int) -> list[AlertDecision]:
        if self._held or self.budget(now) <= 0:
            return self._offer(c, DecisionReason.FLAPPED, now)  # held: the digest tells it
        notice = Notice(kind=NoticeKind.DIGEST, at_ns=now, causes=(c.summary(),))
        return [self._sent(notice, [c], DecisionReason.FLAPPED, now)]

    def _flush(self, now: int) -> list[AlertDecision]:
        if not self._held or self.budget(now) <= 0:
            return []
        held = list(self._held.values())
        self._held.clear()
        since = min(c.held_ns for c in held if c.held_ns is not None)
        kind = NoticeKind.DIGEST
        if len(held) == 1:
            kind = NoticeKind.ALERT if held[0].active else NoticeKind.RECOVERY
        notice = Notice(kind=kind, at_ns=now, causes=tuple(c.summary() for c in held), held_since_ns=since)
        return [self._sent(notice, held, DecisionReason.DIGEST, now)]

    def _sent(self, notice: Notice, causes: list[_Cause], reason: DecisionReason, now: int) -> AlertDecision:
        self._sent_ns.append(now)
        repeats = sum(c.repeats for c in causes)
        for c in causes:
            c.told, c.told_ns, c.told_severity = ("failing" if c.active else "resolved"), now, c.severity
            c.repeats, c.unmailed, c.held_ns = 0, 0, None
        return AlertDecision(send=True, reason=reason, cause=notice.cause, at_ns=now, notice=notice, repeats=repeats)


# --- Composition -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenPosition:
    """An open trade as the mail shows it (prices as Decimal, ``units`` signed: + long, - short)."""

    instrument: str
    units: int
    entry_price: Decimal
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    unrealized_pl: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MailContext:
    """What the host knows when it writes a mail; None means unknown."""

    account_id: str
    mode: str
    state: str
    reasons: tuple[Reason, ...] = ()
    positions: tuple[OpenPosition, ...] | None = None
    daily_pnl: Decimal | None = None
    currency: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Mail:
    """One mail, ready for the mailer (recipients and sender come from the configuration)."""

    mail_id: str
    created_ns: int
    subject: str
    body: str
    severity: str = "warning"
    cause: str = ""
    kind: str = "alert"

    def __post_init__(self) -> None:
        if not _MAIL_ID.fullmatch(self.mail_id):
            raise ValueError(f"mail_id {self.mail_id!r}: letters, digits, '-' and '_' only")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every non-empty secret replaced by ``***`` (longest first).

    A secret made of the mask's own characters could form again around a mask; then the whole
    text is withheld, so the guarantee holds for any secret.
    """
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    for secret in ordered:
        text = text.replace(secret, "***")
    if any(secret in text for secret in ordered):
        return WITHHELD
    return text


def make_mail(
    *,
    subject: str,
    body: str,
    created_ns: int,
    secrets: Iterable[str] = (),
    severity: str = "warning",
    cause: str = "",
    kind: str = "alert",
) -> Mail:
    """A ``Mail`` with secrets scrubbed, a one-line subject and an id derived from its content."""
    secrets = tuple(secrets)
    subject = scrub(" ".join(subject.split()), secrets)[:250]
    body = scrub(body, secrets)
    cause = scrub(" ".join(cause.split()), secrets)
    digest = hashlib.sha256(f"{created_ns}\0{kind}\0{cause}\0{subject}\0{body}".encode()).hexdigest()[:12]
    return Mail(
        mail_id=f"{created_ns:020d}-{digest}",
        created_ns=created_ns,
        subject=subject,
        body=body,
        severity=severity,
        cause=cause,
        kind=kind,
    )


def subject_line(context: MailContext, text: str) -> str:
    """``[tradehost <account> <mode>] <STATE>: <text>`` (``text`` starts with the cause code)."""
    return f"[tradehost {context.account_id} {context.mode}] {context.state}: {text}"


def format_duration(seconds: float) -> str:
    """A duration in words an operator reads at a glance: ``45 s``, ``3 min 12 s``, ``2 h 5 min``."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def format_utc(ts_ns: int) -> str:
    """``2026-05-09 03:12:07 UTC``."""
    return datetime.fromtimestamp(ts_ns // 10**9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_HOST_DID = {
    "NO_TRADE": "No new trades; open trades keep their broker-side SL/TP, and their exits are still managed.",
    "PAUSED": "Paused by an operator: no new trades; open trades keep their broker-side SL/TP.",
    "TRADING": "Still trading: this problem has not stopped trading.",
    "STARTING": "Starting: no trades until reconciliation with the broker is done; open trades keep their SL/TP.",
    "RECONCILING": "Reconciling with the broker: no new trades yet; open trades keep their broker-side SL/TP.",
    "SHUTTING_DOWN": "Shutting down: no new trades; open trades keep their broker-side SL/TP.",
    "STOPPED": "Stopped: nothing is traded; open trades keep their broker-side SL/TP, but nothing manages them.",
}
_UNKNOWN_STATE = "State unknown: open trades keep their broker-side SL/TP, but the host may not be managing them."
MAX_JOURNAL_LINES = 20
MAX_LINE_CHARS = 300


def compose_mail(
    notice: Notice,
    context: MailContext,
    *,
    journal_lines: Sequence[str] = (),
    secrets: Iterable[str] = (),
) -> Mail:
    """Write the mail for a policy notice.

    Args:
        notice: what the policy decided to tell.
        context: account, mode, state and reasons, positions and today's P&L where known.
        journal_lines: the last journal lines about the cause(s), oldest first.
        secrets: values that must never appear (OANDA token, SMTP password); scrubbed.

    Returns:
        The mail; its subject is ``[tradehost <account> <mode>] <STATE>: <cause ...>``.
    """
    first = notice.causes[0]
    if notice.kind is NoticeKind.DIGEST and notice.held_since_ns is None:  # a cause that flapped
        more = first.unmailed
        text = f"digest: {first.cause} raised {more} more time{'s' if more != 1 else ''} since the last mail"
        lines = _digest_lines(notice)
    elif notice.kind is NoticeKind.DIGEST:
        text = f"digest of {len(notice.causes)} causes held back by the hourly mail limit"
        lines = _digest_lines(notice)
    elif notice.kind is NoticeKind.RECOVERY:
        took = format_duration(((first.resolved_ns or notice.at_ns) - first.since_ns) / 1e9)
        text = f"{first.cause} resolved after {took}"
        lines = _recovery_lines(first, took)
    else:
        text = first.cause
        lines = _alert_lines(first, notice.at_ns)
    if notice.held_since_ns is not None:
        lines.append(f"  This mail was held back by the hourly mail limit since {format_utc(notice.held_since_ns)}.")
    lines += ["", "What the host did"]
    recovered = notice.kind is NoticeKind.RECOVERY and context.state == "TRADING"
    did = _HOST_DID.get(context.state, _UNKNOWN_STATE)
    naked = _naked_positions(context)
    if naked:  # never claim stops the last account read did not show
        did = did.replace("open trades keep their broker-side SL/TP", "NOT EVERY OPEN TRADE HAS ITS SL/TP (see above)")
    lines.append("  Trading again." if recovered else f"  {did}")
    warning = _stop_warning(notice, naked)
    if warning:  # the first line says which trades have no stop
        lines = [warning, "", *lines]
    lines += ["", *_state_lines(context), "", *_position_lines(context), "", "What you can do"]
    lines += [f"  {cmd:<34} {why}" for cmd, why in _commands(notice, context)]
    causes = ", ".join(c.cause for c in notice.causes)
    lines += ["", f"Last journal lines about {causes}"]
    tail = [f"  {line[:MAX_LINE_CHARS]}" for line in journal_lines[-MAX_JOURNAL_LINES:]]
    lines += tail or ["  (none available)"]
    lines += ["", f"-- tradehost alerts, {format_utc(notice.at_ns)}"]
    return make_mail(
        subject=subject_line(context, text),
        body="\n".join(lines) + "\n",
        created_ns=notice.at_ns,
        secrets=secrets,
        severity="info" if notice.kind is NoticeKind.RECOVERY else notice.severity,  # dropped first when full
        cause=notice.cause,
        kind=str(notice.kind),
    )


# Causes whose detail names trades without a stop: that detail is the mail's first line.
_STOP_CAUSES = ("unprotected", "shutdown_unprotected")


def _naked_positions(context: MailContext) -> list[str]:
    out = []
    for p in context.positions or ():
        missing = [name for name, price in (("SL", p.stop_loss), ("TP", p.take_profit)) if price is None]
        if missing:
            side = "long" if p.units > 0 else "short"
            out.append(f"{p.instrument} {side} {abs(p.units)} @ {p.entry_price} (no {' and no '.join(missing)})")
    return out


def _stop_warning(notice: Notice, naked: list[str]) -> str:
    cause = notice.causes[0]
    if notice.kind is not NoticeKind.RECOVERY and cause.cause.partition(":")[0] in _STOP_CAUSES and cause.detail:
        return cause.detail
    if naked:
        return "NO STOP AT THE BROKER: " + "; ".join(naked)
    return ""


def _ago(ts_ns: int, now_ns: int) -> str:
    return f"{format_utc(ts_ns)}, {format_duration((now_ns - ts_ns) / 1e9)} before this mail"


def _times(n: int) -> str:
    return f"{n} time{'s' if n != 1 else ''}"


def _alert_lines(c: CauseSummary, now_ns: int) -> list[str]:
    lines = [f"{c.cause} ({c.severity})", "", "What happened", f"  {c.detail or '(no detail given)'}"]
    lines.append(f"  Since {_ago(c.since_ns, now_ns)}.")
    if c.raised > 1:
        lines.append(f"  Raised {c.raised} times since then; last at {format_utc(c.last_ns)}.")
    if c.unmailed:
        lines.append(f"  Raised {_times(c.unmailed)} since the last mail about it (not mailed: deduplicated).")
    return lines


def _recovery_lines(c: CauseSummary, took: str) -> list[str]:
    resolved = format_utc(c.resolved_ns) if c.resolved_ns is not None else "now"
    return [
        f"{c.cause} resolved after {took}",
        "",
        "What happened",
        f"  {c.cause} ({c.severity}) was raised at {format_utc(c.since_ns)} and cleared at {resolved}.",
        f"  Raised {c.raised} time{'s' if c.raised != 1 else ''} in all; last detail: {c.detail or '(none)'}",
        *([f"  Raised {_times(c.unmailed)} since the last mail about it (deduplicated)."] if c.unmailed else []),
    ]


def _digest_lines(notice: Notice) -> list[str]:
    lines = [f"Digest of {len(notice.causes)} cause{'s' if len(notice.causes) != 1 else ''}", ""]
    lines.append("What happened (where each cause stands now)")
    for c in notice.causes:
        times = f"raised {_times(c.raised)}"
        if c.unmailed:
            times = f"raised {_times(c.unmailed)} since the last mail about it (deduplicated)"
        if c.resolved_ns is None:
            status = f"STILL FAILING since {format_utc(c.since_ns)}, {times}"
        else:
            took = format_duration((c.resolved_ns - c.since_ns) / 1e9)
            status = f"resolved after {took} at {format_utc(c.resolved_ns)}, {times}"
        lines.append(f"  - {c.cause} ({c.severity}): {status}; last: {c.detail or '(no detail)'}")
    return lines


def _state_lines(context: MailContext) -> list[str]:
    lines = [f"Current state: {context.state}"]
    for r in context.reasons:
        kind = "latched, needs `tradehost ctl resume`" if r.latched else "clears by itself once healthy"
        lines.append(f"  - {r.code} ({kind}) since {format_utc(r.since_ns)}: {r.detail}")
    if not context.reasons:
        lines.append("  (no reasons against trading)")
    return lines


def _position_lines(context: MailContext) -> list[str]:
    cur = f" {context.currency}" if context.currency else ""
    if context.positions is None:
        lines = ["Open positions: unknown"]
    else:
        lines = [f"Open positions: {len(context.positions) or 'none'}"]
        for p in context.positions:
            side = "long" if p.units > 0 else "short"
            sl = f"SL {p.stop_loss}" if p.stop_loss is not None else "NO SL AT THE BROKER"
            tp = f"TP {p.take_profit}" if p.take_profit is not None else "no TP"
            pl = f", unrealized {p.unrealized_pl:+}{cur}" if p.unrealized_pl is not None else ""
            lines.append(f"  {p.instrument} {side} {abs(p.units)} @ {p.entry_price}, {sl}, {tp}{pl}")
    pnl = f"{context.daily_pnl:+}{cur}" if context.daily_pnl is not None else "unknown"
    lines.append(f"Today's P&L: {pnl}")
    return lines


def _commands(notice: Notice, context: MailContext) -> list[tuple[str, str]]:
    out = [("tradehost ctl status", "state, reasons, every role, broker connection, positions")]
    roles = role_names(with_emulator=False)  # `ctl restart` takes these
    for c in notice.causes:
        role = c.cause.rpartition(":")[2]
        if ":" in c.cause and role in roles and c.resolved_ns is None:
            out.append((f"tradehost ctl restart {role}", f"restart the {role} role"))
    if context.state == "PAUSED" or any(r.latched for r in context.reasons):
        out.append(("tradehost ctl resume", "clear latched reasons and trade again, once the cause is fixed"))
    if context.state == "TRADING" and notice.kind is not NoticeKind.RECOVERY:
        out.append(("tradehost ctl pause", "stop opening trades while you look"))
    return list(dict.fromkeys(out))
