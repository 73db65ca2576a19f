"""Alert mail composition (pure): what a mail says for a policy notice (``actors.alerting.policy``):
a one-line subject ``[tradehost <account> <mode>] <STATE>: <cause>``, and a body with what
happened, what the host did (never a stop it does not have: a trade without SL or TP at the
broker is the first line), the state and reasons, the positions with their SL/TP, today's P&L,
the ctl commands to run and the last journal lines about the cause, every secret scrubbed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from actors.alerting.policy import CauseSummary, Notice, NoticeKind
from actors.runtime.messages import Reason, TradeView
from actors.runtime.registry import role_names

_MAIL_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
WITHHELD = "(withheld: the text contained a secret)"


@dataclass(frozen=True, slots=True, kw_only=True)
class MailContext:
    """What the host knows when it writes a mail; None means unknown.

    ``positions`` are the open trades of the reconciler's last ``AccountSnapshot`` as it sent them
    (``TradeView``: units signed, + long, - short; prices and money as decimal strings, each one
    readable as a ``Decimal``: ``actors.alerting.desk.positions_of`` checks that).
    """

    account_id: str
    mode: str
    state: str
    reasons: tuple[Reason, ...] = ()
    positions: tuple[TradeView, ...] | None = None
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


def _held(trade: TradeView) -> str:
    # "EUR_USD long 10000 @ 1.08450": the side from the sign of the units, the size without it.
    units = Decimal(trade.units)
    return f"{trade.instrument} {'long' if units > 0 else 'short'} {abs(units)} @ {Decimal(trade.price)}"


def _naked_positions(context: MailContext) -> list[str]:
    out = []
    for p in context.positions or ():
        missing = [name for name, price in (("SL", p.stop_loss), ("TP", p.take_profit)) if not price]
        if missing:
            out.append(f"{_held(p)} (no {' and no '.join(missing)})")
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
            sl = f"SL {Decimal(p.stop_loss)}" if p.stop_loss else "NO SL AT THE BROKER"
            tp = f"TP {Decimal(p.take_profit)}" if p.take_profit else "no TP"
            pl = f", unrealized {Decimal(p.unrealized_pl):+}{cur}" if p.unrealized_pl else ""
            lines.append(f"  {_held(p)}, {sl}, {tp}{pl}")
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
