"""The one alert path's policy (pure): which raised causes become mail, and when.

Every alert source (the supervisor: no-trade reasons, start and shutdown; the execution role and
the reconciler; the watchdog, for its own ``supervisor_silent``) raises a cause code such as
``restart_intensity:feed``; when the cause is healthy again it is cleared.
``AlertPolicy`` turns that stream into mail decisions with the clock passed in: one mail per
cause per ``dedup_window_s`` (repeats are counted, not sent; a higher severity is mailed within
the window too), at most ``max_per_hour`` mails in any sliding hour (what is held back goes out as
one digest as soon as the hour has room again), and a recovery mail when a cause that an operator
was told about clears. Every decision is a record: the alert desk (``actors.alerting.desk``)
journals a suppression (``alert.suppressed``) and hands a notice to
``actors.alerting.composition.compose_mail``, which writes the mail an operator can act on at
3 a.m. and scrubs every secret it is given. The ``[alerts]`` section is
``actors.alerting.config``. Nothing here does I/O; ``actors.alerting.mailer`` sends.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from enum import StrEnum

from actors.alerting.config import AlertsConfig

__all__ = [
    "AlertDecision",
    "AlertEvent",
    "AlertPolicy",
    "CauseCleared",
    "CauseSummary",
    "DecisionReason",
    "Notice",
    "NoticeKind",
    "severity_rank",
]

HOUR_NS = 3600 * 10**9


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
