"""The alert desk: the one alert sender of the tree, owned by the watchdog role.

Every ``AlertRaised`` / ``AlertCleared`` (and the watchdog's own ``supervisor_silent``) goes through
``AlertPolicy`` (dedup, hourly budget, digest, recovery), ``compose_mail`` and a ``Mailer`` whose
threads and spool (``<run_dir>/alert-spool``) the desk owns; every decision is journaled
(``alert.queued``, ``alert.sent``, ``alert.failed``, ``alert.suppressed``). Alerts published before
the watchdog listened are caught up from the journal.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

from actors.alerting.composition import MailContext, compose_mail, format_utc, scrub
from actors.alerting.config import AlertsConfig, load_smtp_password
from actors.alerting.mailer import Mailer, MailOutcome
from actors.alerting.policy import AlertDecision, AlertEvent, AlertPolicy, CauseCleared
from actors.alerting.smtp import secret_forms
from actors.runtime.journal import JournalEntry
from actors.runtime.messages import AccountSnapshot, TradeView

log = logging.getLogger(__name__)

SPOOL_DIR = "alert-spool"
MAIL_JOURNAL_LINES = 12
CATCH_UP_ROWS = 500
SAME_EVENT_NS = 2 * 10**9  # a journal row and its bus message are this close at most
SEEN_KEEP_NS = 60 * 10**9
# More journal lines that explain a cause, by its code (the cause and its role or instrument are
# always searched).
EXPLAINED_BY: dict[str, str] = {
    "stream_silent": "feed.stream",
    "supervisor_silent": "host.stalled",
    "disk_low": "journal",
}


def positions_of(snapshot: AccountSnapshot | None) -> tuple[tuple[TradeView, ...] | None, Decimal | None]:
    """Open trades and today's P&L for a mail, from the reconciler's last snapshot (None: unknown,
    also when a number in it is not a decimal)."""
    if snapshot is None:
        return None, None
    positions: tuple[TradeView, ...] | None = None
    with contextlib.suppress(InvalidOperation, ValueError):
        for t in snapshot.trades:  # units and price always, the others when given
            for number in (t.units, t.price, t.stop_loss or "0", t.take_profit or "0", t.unrealized_pl or "0"):
                Decimal(number)
        positions = snapshot.trades
    pnl: Decimal | None = None
    with contextlib.suppress(InvalidOperation, ValueError):
        pnl = Decimal(snapshot.daily_pnl) if snapshot.daily_pnl else None
    return positions, pnl


def _line(entry: JournalEntry) -> str:
    body = orjson.dumps(entry.body, option=orjson.OPT_NON_STR_KEYS).decode()
    return f"{format_utc(entry.ts_ns)} {entry.src} {entry.kind} {body}"


@dataclass(slots=True)
class _Seen:
    kind: str  # "alert" or "alert.cleared"
    code: str
    ts_ns: int
    live: bool  # heard on the bus (else read from the journal)


class AlertDesk:
    """The one alert sender: policy, composition, the mailer and the journal of every decision.

    Args:
        config: the ``[alerts]`` section.
        run_dir: the run directory (the spool goes in ``alert-spool``).
        journal: append one entry (kind, body) to the journal (thread-safe).
        recent: the journal's ``recent(contains, limit=)``.
        context: the mail context now (state, reasons, account).
        wall_ns: the wall clock.
        secrets: values that must never leave (the OANDA token; the SMTP password is added here).
        environ: where the SMTP password comes from.
    """

    def __init__(
        self,
        config: AlertsConfig,
        *,
        run_dir: Path,
        journal: Callable[[str, dict[str, Any]], None],
        recent: Callable[..., list[JournalEntry]],
        context: Callable[[], MailContext],
        wall_ns: Callable[[], int],
        secrets: Sequence[str],
        environ: Mapping[str, str],
    ) -> None:
        self.enabled = config.enabled
        self._journal = journal
        self._recent = recent
        self._context = context
        self._wall_ns = wall_ns
        password = load_smtp_password(config, environ)
        self._secrets = tuple(s for s in (*secret_forms(config.username, password), *secrets) if s)
        self._lock = threading.Lock()
        self.sent = self.failed = 0
        self._seen: list[_Seen] = []
        self.caught_up = False
        self._pending: list[tuple[AlertDecision, dict[str, Any], float]] = []
        self.policy = AlertPolicy.from_config(config) if self.enabled else None
        self.mailer: Mailer | None = None
        if self.enabled:
            self.mailer = Mailer(
                config,
                spool_dir=run_dir / SPOOL_DIR,
                on_outcome=self._on_outcome,
                password=password,
                secrets=secrets,
            )

    def __repr__(self) -> str:
        return f"<AlertDesk mail={'on' if self.enabled else 'off'}>"

    def start(self) -> None:
        """Start the mailer's threads (it first queues what an earlier run left in the spool)."""
        if self.mailer is not None:
            self.mailer.start()

    # --- events ---

    def raised(self, code: str, severity: str, detail: str, *, ts_ns: int, src: str, live: bool = True) -> None:
        """An alert was raised (on the bus when ``live``, else caught up from the journal)."""
        text = scrub(f"alert {code} ({severity}) from {src}: {detail}", self._secrets)
        log.log(logging.INFO if severity == "info" else logging.WARNING, "%s", text)
        if self.policy is None or self._duplicate("alert", code, ts_ns, live=live):
            return
        event = AlertEvent(cause=code, severity=severity, detail=detail, ts_ns=ts_ns)
        self._handle(self.policy.on_alert(event, self._wall_ns()), event_ts=ts_ns, wait=live)

    def cleared(self, code: str, detail: str, *, ts_ns: int, src: str, live: bool = True) -> None:
        """The cause of an alert is healthy again."""
        log.info("%s", scrub(f"alert {code} cleared ({src}){': ' + detail if detail else ''}", self._secrets))
        if self.policy is None or self._duplicate("alert.cleared", code, ts_ns, live=live):
            return
        event = CauseCleared(cause=code, ts_ns=ts_ns, detail=detail)
        self._handle(self.policy.on_cleared(event, self._wall_ns()), event_ts=ts_ns, wait=live)

    def tick(self) -> None:
        """Time passed: digests and owed mails go out; old catch-up marks are forgotten."""
        now = self._wall_ns()
        self._seen = [s for s in self._seen if now - s.ts_ns < SEEN_KEEP_NS]
        if self.policy is not None:
            self._handle(self.policy.on_tick(now), event_ts=None, wait=False)

    def catch_up(self) -> int:
        """Feed the alerts journaled since this host started that no watchdog has handled (published
        before this one listened: the host's start, a restart of the watchdog). Returns how many."""
        self.caught_up = True
        if self.policy is None:
            return 0
        floor = 0
        started = [e for e in self._recent("host.started", limit=1) if e.kind == "host.started"]
        if started:
            floor = started[-1].ts_ns
        rows = self._recent("alert", limit=CATCH_UP_ROWS)
        for e in rows:  # what an earlier watchdog of this run handled
            if e.src == "watchdog" and e.kind in ("alert.queued", "alert.suppressed"):
                handled = e.body.get("event_ts")
                if isinstance(handled, int) and handled > floor:
                    floor = handled
        todo = [e for e in rows if e.kind in ("alert", "alert.cleared") and e.src != "watchdog" and e.ts_ns > floor]
        for e in todo:
            code = str(e.body.get("code", ""))
            if not code:
                continue
            if e.kind == "alert":
                severity, detail = str(e.body.get("severity", "warning")), str(e.body.get("detail", ""))
                self.raised(code, severity, detail, ts_ns=e.ts_ns, src=e.src, live=False)
            else:
                self.cleared(code, str(e.body.get("detail", "")), ts_ns=e.ts_ns, src=e.src, live=False)
        return len(todo)

    def _duplicate(self, kind: str, code: str, ts_ns: int, *, live: bool) -> bool:
        # The same alert may reach us twice around the catch-up: once from the journal (the row
        # is written just before the message is published) and once on the bus.
        for i, s in enumerate(self._seen):
            if s.live != live and s.kind == kind and s.code == code and abs(s.ts_ns - ts_ns) < SAME_EVENT_NS:
                del self._seen[i]
                return True
        if not live or not self.caught_up:
            self._seen.append(_Seen(kind, code, ts_ns, live))
        return False

    # --- decisions ---

    def _handle(self, decisions: list[AlertDecision], *, event_ts: int | None, wait: bool) -> None:
        # wait: a live alert's mail waits for the sys.state that follows it (see ``flush``).
        for d in decisions:
            body = d.journal_body()
            if event_ts is not None:
                body["event_ts"] = event_ts
            if not d.send:
                self._journal("alert.suppressed", body)
            elif wait:
                self._pending.append((d, body, time.monotonic()))
            else:
                self._send(d, body)

    def flush(self, *, older_than_s: float = 0.0) -> None:
        """Write and queue the mails of live alerts decided at least ``older_than_s`` ago.

        The supervisor publishes an alert just before the ``sys.state`` that reflects it, so the
        role calls this once that ``sys.state`` has arrived (and, for what waits longer, on every
        heartbeat): the mail then tells the state the alert led to, not the one before it.
        """
        now = time.monotonic()
        due = [p for p in self._pending if now - p[2] >= older_than_s]
        self._pending = [p for p in self._pending if now - p[2] < older_than_s]
        for d, body, _ in due:
            self._send(d, body)

    def _send(self, d: AlertDecision, body: dict[str, Any]) -> None:
        if d.notice is None or self.mailer is None:  # never: a send has a notice, a policy a mailer
            return
        causes = [c.cause for c in d.notice.causes]
        mail = compose_mail(d.notice, self._context(), journal_lines=self.journal_lines(causes), secrets=self._secrets)
        self._journal("alert.queued", {**body, "mail_id": mail.mail_id, "subject": mail.subject})
        self.mailer.submit(mail)

    def journal_lines(self, causes: Sequence[str]) -> list[str]:
        """The last journal lines about ``causes`` (oldest first), without the alert rows themselves."""
        terms: list[str] = []
        for cause in causes[:2]:
            head, _, tail = cause.partition(":")
            terms += [f'"{tail}"' if tail else cause, EXPLAINED_BY.get(head, cause)]
        rows: dict[int, JournalEntry] = {}
        for term in dict.fromkeys(terms):
            for e in self._recent(term, limit=MAIL_JOURNAL_LINES):
                if not e.kind.startswith("alert"):
                    rows[e.seq] = e
        return [_line(e) for _, e in sorted(rows.items())][-MAIL_JOURNAL_LINES:]

    def _on_outcome(self, outcome: MailOutcome) -> None:
        # From the mailer's threads; the journal is thread-safe.
        with self._lock:
            if outcome.kind == "alert.sent":
                self.sent += 1
            elif outcome.final:
                self.failed += 1
        self._journal(outcome.kind, outcome.journal_body())

    # --- status and life cycle ---

    def report(self) -> dict[str, Any]:
        """The mail fields of ``WatchdogReport``."""
        with self._lock:
            sent, failed = self.sent, self.failed
        queued = self.mailer.pending() if self.mailer is not None else 0
        return {
            "mail": "on" if self.enabled else "off",
            "mail_queued": queued,
            "mail_sent": sent,
            "mail_failed": failed,
        }

    def dead(self) -> str | None:
        """Why the mailer cannot send any more (a thread of it died), or None."""
        return None if self.mailer is None else self.mailer.dead()

    def stop(self, deadline_s: float) -> str:
        """Let queued mail go out for up to half of ``deadline_s``, then stop the mailer in the rest."""
        if self.mailer is None:
            return "mail off"
        self.flush()  # the shutdown's own alert may still wait for its sys.state
        end = time.monotonic() + deadline_s
        while self.mailer.pending() and time.monotonic() < end - deadline_s / 2:
            time.sleep(0.02)
        left = self.mailer.pending()
        stopped = self.mailer.stop(max(0.05, end - time.monotonic()))
        kept = f"{left} mail(s) kept in the spool for the next start" if left else "no mail pending"
        return f"mailer {'stopped' if stopped else 'did not stop in time'}; {kept}"
