"""The one alert path, I/O half: the SMTP worker and its crash-safe spool.

``Mailer`` delivers ``Mail`` records (``actors.alerting.policy``) with ``smtplib`` and ``email`` from the
standard library, on its own threads, so a slow or dead mail server never blocks the caller:
``submit()`` only appends to a bounded in-memory queue (over ``queue_max`` the lowest-severity,
oldest mail is dropped and reported). A spool thread writes each mail to the spool directory
(one file per mail: tmp + fsync + rename) and removes it once it is sent, so unsent mail
survives a restart and is queued again at start; the caller never waits for the disk either. A
send thread delivers oldest first; a failure is retried with exponential backoff and full
jitter, a mail the server refuses for good (5xx) is dropped. Every outcome goes to a callback
(``alert.sent`` / ``alert.failed`` for the journal). ``stop()`` returns within its deadline even
when the server hangs: socket operations time out and the stop shuts the connection down.
One delivery (the message, the SMTP session, what a failure means) is ``actors.alerting.smtp``.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import json
import logging
import os
import random
import smtplib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from actors.alerting.composition import Mail, scrub
from actors.alerting.config import AlertsConfig, SmtpPassword
from actors.alerting.policy import severity_rank
from actors.alerting.smtp import MailRejectedError, MailTemporaryError, build_message, deliver, error_line, secret_forms
from actors.core.backoff import Backoff
from actors.core.clock import SYSTEM_CLOCK, Clock
from actors.core.errors import ConfigError

__all__ = ["FAILED", "SENT", "MailOutcome", "Mailer"]

log = logging.getLogger(__name__)

SENT = "alert.sent"
FAILED = "alert.failed"
SPOOL_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class MailOutcome:
    """What became of one mail (or one attempt): ``kind`` is the journal kind."""

    kind: str
    mail_id: str
    cause: str
    subject: str
    attempt: int
    error: str = ""
    final: bool = True
    retry_in_s: float | None = None
    refused: tuple[str, ...] = ()

    def journal_body(self) -> dict[str, object]:
        """The journal entry's body (never the mail's body)."""
        body: dict[str, object] = {"mail_id": self.mail_id, "cause": self.cause, "subject": self.subject}
        body["attempt"] = self.attempt
        if self.error:
            body["error"] = self.error
            body["final"] = self.final
        if self.retry_in_s is not None:
            body["retry_in_s"] = round(self.retry_in_s, 3)
        if self.refused:
            body["refused"] = list(self.refused)
        return body


class _Secrets:
    # Values to scrub, kept out of repr (a debugging dump of the mailer shows no secret).
    __slots__ = ("values",)

    def __init__(self, values: tuple[str, ...]) -> None:
        self.values = tuple(v for v in values if v)

    def __repr__(self) -> str:
        return f"<{len(self.values)} secrets>"


@dataclass(slots=True)
class _Entry:
    mail: Mail
    attempts: int = 0

    @property
    def key(self) -> tuple[int, str]:
        return (self.mail.created_ns, self.mail.mail_id)


def _mail_to_json(mail: Mail) -> bytes:
    fields = {name: getattr(mail, name) for name in Mail.__dataclass_fields__}
    return json.dumps({"v": SPOOL_VERSION, **fields}, ensure_ascii=False).encode()


def _mail_from_json(data: bytes) -> Mail:
    raw = json.loads(data)
    if not isinstance(raw, dict) or raw.pop("v", None) != SPOOL_VERSION:
        raise ValueError("not a spooled mail of this version")
    if set(raw) != set(Mail.__dataclass_fields__):
        raise ValueError(f"fields {sorted(raw)} do not match")
    if type(raw["created_ns"]) is not int or not all(type(v) is str for k, v in raw.items() if k != "created_ns"):
        raise ValueError("wrong field types")
    return Mail(**raw)


OutcomeCallback = Callable[[MailOutcome], None]


class Mailer:
    """Sends mail on worker threads with a bounded queue, retries and a crash-safe spool.

    Args:
        config: the ``[alerts]`` section (must have ``smtp_host`` set).
        spool_dir: where unsent mail is kept (created 0700), e.g. ``<run_dir>/alert-spool``.
        on_outcome: called with every ``MailOutcome``, from the mailer's threads (or from
            ``submit`` for a mail dropped at once); it must be quick and thread-safe (an
            actor's ``tell``). Nothing is reported after ``stop`` has returned.
        password: the SMTP password (``load_smtp_password``); None without a login.
        secrets: more values to scrub from every mail (e.g. the OANDA token).
        rng: random source of the retry jitter (seeded in tests).
        clock: wall time for the mails' age.
    """

    def __init__(
        self,
        config: AlertsConfig,
        *,
        spool_dir: str | os.PathLike[str],
        on_outcome: OutcomeCallback,
        password: SmtpPassword | None = None,
        secrets: Iterable[str] = (),
        rng: random.Random | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not config.enabled:
            raise ConfigError("alerts.smtp_host: not set, so there is no mail to send")
        self.config = config
        self.spool_dir = Path(spool_dir)
        self._on_outcome = on_outcome
        self._password = password
        self._secrets = _Secrets((*secret_forms(config.username, password), *secrets))
        self._clock = clock
        self._backoff = Backoff(config.retry_initial_s, config.retry_max_s, rng)
        self._cond = threading.Condition()
        self._queue: list[_Entry] = []  # oldest first
        self._ids: set[str] = set()
        self._in_flight: _Entry | None = None
        self._session: smtplib.SMTP | None = None
        self._next_try_mono = 0.0
        self._stopping = False
        self._closed = False
        self._disk_cond = threading.Condition()
        self._disk_ops: deque[tuple[str, Mail]] = deque()
        self._disk_stopping = False
        self._started = False
        self.counts = {"sent": 0, "failed_attempts": 0, "given_up": 0}
        self._sender = threading.Thread(target=self._send_loop, name="mail-send", daemon=True)
        self._disk = threading.Thread(target=self._disk_loop, name="mail-spool", daemon=True)

    def start(self) -> None:
        """Start the threads; the spool thread first queues what an earlier run left unsent."""
        self._started = True
        self._disk.start()
        self._sender.start()

    def submit(self, mail: Mail) -> bool:
        """Queue ``mail`` without blocking (no network, no disk on the caller's thread).

        Returns:
            False if the mail was dropped at once (queue full of more valuable mail, or the
            mailer stopped); that is also reported as ``alert.failed``.
        """
        secrets = self._secrets.values
        if any(secret in mail.subject or secret in mail.body for secret in secrets if secret):
            mail = dataclasses.replace(mail, subject=scrub(mail.subject, secrets), body=scrub(mail.body, secrets))
        with self._cond:
            if self._stopping:
                victim: _Entry | None = _Entry(mail)
                why = "the mailer is stopped"
            elif mail.mail_id in self._ids:
                return True
            else:
                victim, why = self._admit(_Entry(mail)), "dropped: the mail queue is full"
                self._cond.notify_all()
        if victim is None or victim.mail is not mail:
            self._disk_op("write", mail)
        if victim is not None:
            self._drop(victim, why)
        return victim is None or victim.mail is not mail

    def dead(self) -> str | None:
        """Why the mailer cannot send any more (one of its started threads died), or None."""
        for thread in (self._sender, self._disk):
            if thread.ident is not None and not thread.is_alive() and not self._closed:
                return f"alert mailer thread {thread.name} died"
        return None

    def pending(self) -> int:
        """Mails queued or being sent."""
        with self._cond:
            return len(self._queue)

    def stop(self, deadline_s: float) -> bool:
        """Stop the threads within ``deadline_s``; unsent mail stays in the spool for the next start.

        Returns:
            True if both threads ended in time (a send stuck past the deadline ends on its own
            socket timeout; its outcome is not reported).
        """
        end = time.monotonic() + deadline_s
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        while self._started and self._sender.is_alive() and time.monotonic() < end:
            self._abort_session()  # again each round: the connection may open after the first try
            self._sender.join(min(0.05, max(0.0, end - time.monotonic())))
        with self._disk_cond:  # after the sender: its last delete reaches the spool
            self._disk_stopping = True
            self._disk_cond.notify_all()
        if self._started:
            self._disk.join(max(0.0, end - time.monotonic()))
        with self._cond:
            self._closed = True
        return not (self._sender.is_alive() or self._disk.is_alive())

    # Queue (callers hold self._cond).

    def _admit(self, entry: _Entry) -> _Entry | None:
        keys = [e.key for e in self._queue]
        self._queue.insert(bisect.bisect(keys, entry.key), entry)
        self._ids.add(entry.mail.mail_id)
        if len(self._queue) <= self.config.queue_max:
            return None
        candidates = [e for e in self._queue if e is not self._in_flight]
        victim = min(candidates, key=lambda e: (severity_rank(e.mail.severity), e.key))
        self._queue.remove(victim)
        self._ids.discard(victim.mail.mail_id)
        return victim

    def _drop(self, entry: _Entry, why: str) -> None:
        self._disk_op("delete", entry.mail)
        self._report(_outcome(FAILED, entry, error=why))

    # Sending.

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                entry = self._next_entry()
                if entry is None:
                    return
                self._in_flight = entry
                entry.attempts += 1
            outcome, done = self._attempt(entry)
            with self._cond:
                self._in_flight = self._session = None
                if done and entry.mail.mail_id in self._ids:
                    self._queue.remove(entry)
                    self._ids.discard(entry.mail.mail_id)
            if done:
                self._disk_op("delete", entry.mail)
            self._report(outcome)

    def _next_entry(self) -> _Entry | None:
        while not self._stopping:
            if not self._queue:
                self._cond.wait()
                continue
            wait_s = self._next_try_mono - time.monotonic()
            if wait_s <= 0:
                return self._queue[0]
            self._cond.wait(wait_s)
        return None

    def _attempt(self, entry: _Entry) -> tuple[MailOutcome, bool]:
        age_s = (self._clock.time_ns() - entry.mail.created_ns) / 1e9
        if age_s > self.config.max_age_s:
            return _outcome(FAILED, entry, error=f"expired: not delivered within {self.config.max_age_s:g} s"), True
        try:
            refused = deliver(
                self.config, build_message(self.config, entry.mail), self._password, on_session=self._open
            )
        except MailTemporaryError as e:
            delay = self._backoff.next_delay()
            self._next_try_mono = time.monotonic() + delay
            return _outcome(FAILED, entry, error=str(e), final=False, retry_in_s=delay), False
        except MailRejectedError as e:
            return _outcome(FAILED, entry, error=str(e)), True
        except ValueError as e:  # a header the email package refuses: no retry can fix it
            return _outcome(FAILED, entry, error=error_line(e, self._secrets.values)), True
        self._backoff.reset()
        return _outcome(SENT, entry, refused=refused), True

    def _open(self, smtp: smtplib.SMTP) -> None:
        with self._cond:
            if self._stopping:
                raise MailTemporaryError("the mailer is stopping")
            self._session = smtp

    def _abort_session(self) -> None:
        with self._cond:
            sock = getattr(self._session, "sock", None)
        if sock is not None:
            # The plain socket's shutdown (also under TLS) wakes a read blocked in another thread.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def _report(self, outcome: MailOutcome) -> None:
        with self._cond:
            if self._closed:
                return
            key = "sent" if outcome.kind == SENT else "given_up" if outcome.final else "failed_attempts"
            self.counts[key] += 1
        if outcome.kind == SENT:
            log.info("alert mail %s sent (%s)", outcome.mail_id, outcome.cause)
        else:
            log.warning("alert mail %s not sent (attempt %d): %s", outcome.mail_id, outcome.attempt, outcome.error)
        try:
            self._on_outcome(outcome)
        except Exception:  # the caller's callback must never kill the mail threads
            log.exception("alert outcome callback failed")

    # The spool (its own thread, so a hung disk blocks neither the caller nor the sending).

    def _disk_op(self, op: str, mail: Mail) -> None:
        with self._disk_cond:
            self._disk_ops.append((op, mail))
            self._disk_cond.notify_all()

    def _disk_loop(self) -> None:
        self._load_spool()
        while True:
            with self._disk_cond:
                while not self._disk_ops and not self._disk_stopping:
                    self._disk_cond.wait()
                if not self._disk_ops:
                    return
                op, mail = self._disk_ops.popleft()
            path = self.spool_dir / f"{mail.mail_id}.json"
            try:
                if op == "delete":
                    path.unlink(missing_ok=True)
                else:
                    with self._cond:
                        wanted = mail.mail_id in self._ids  # already sent or dropped: skip the write
                    if wanted:
                        self._write(path, _mail_to_json(mail))
            except OSError as e:
                log.warning("alert spool: %s of %s failed: %s", op, path.name, e)

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".tmp-{path.name}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as f:  # noqa: PTH123 - a descriptor, not a path
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        dir_fd = os.open(self.spool_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power loss
        finally:
            os.close(dir_fd)

    def _load_spool(self) -> None:
        try:
            self.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            paths = sorted(self.spool_dir.iterdir())
        except OSError as e:
            log.warning("alert spool %s unusable, mail is kept in memory only: %s", self.spool_dir, e)
            return
        for path in paths:
            if path.name.startswith(".tmp-"):  # a write cut short: the mail was never acknowledged as spooled
                path.unlink(missing_ok=True)
                continue
            if path.suffix != ".json":
                continue
            try:
                mail = _mail_from_json(path.read_bytes())
                if path.name != f"{mail.mail_id}.json":
                    raise ValueError("file name does not match the mail id")
            except (OSError, ValueError, TypeError) as e:
                log.warning("alert spool: %s is unreadable, kept as .bad: %s", path.name, e)
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".bad"))
                continue
            with self._cond:
                if self._stopping or mail.mail_id in self._ids:
                    continue
                victim = self._admit(_Entry(mail))
                self._cond.notify_all()
            if victim is not None:
                (self.spool_dir / f"{victim.mail.mail_id}.json").unlink(missing_ok=True)
                self._report(_outcome(FAILED, victim, error="dropped: the mail queue is full"))


def _outcome(
    kind: str,
    entry: _Entry,
    *,
    error: str = "",
    final: bool = True,
    retry_in_s: float | None = None,
    refused: tuple[str, ...] = (),
) -> MailOutcome:
    return MailOutcome(
        kind=kind,
        mail_id=entry.mail.mail_id,
        cause=entry.mail.cause,
        subject=entry.mail.subject,
        attempt=entry.attempts,
        error=error,
        final=final,
        retry_in_s=retry_in_s,
        refused=refused,
    )
