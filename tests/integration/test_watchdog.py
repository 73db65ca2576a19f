"""The watchdog and the alert mail in the real tree, against a real SMTP server (aiosmtpd on
loopback): each test injects its fault for real (kill -9, a stalled stream at the emulator, memory
that really grows, SIGSTOP of the root, a mail server that is down) and reads what arrives at the
server, the journal and ``ctl status``."""

from __future__ import annotations

import base64
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from actors.broker.emulator import AdminClient
from tests.conftest import FAST
from tests.helpers import REPO, Host, poll_until, run_cli, running_host
from tests.smtpserver import Inbox, free_port, smtp_server

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(180)]

SENDER = "tradehost@example.com"
RECIPIENT = "ops@example.com"
USERNAME = "tradehost"
PASSWORD = "smtp-Pw-7Hq!never-shown"  # noqa: S105 - a test value
# A Wednesday morning in New York on the emulator's clock, 300x: prices flow, an M15 bar every 3 s.
MARKET = ['broker.emulator.start="2024-03-06T14:00:00Z"', "broker.emulator.speed=300", "feed.bar_wait_s=2"]


# --- A real SMTP server ------------------------------------------------------------------------


@dataclass
class Authenticator:
    """Accepts USERNAME/PASSWORD only, and counts the logins."""

    logins: int = 0

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        ok = (auth_data.login.decode(), auth_data.password.decode()) == (USERNAME, PASSWORD)
        self.logins += ok
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def mail() -> Iterator[tuple[int, Inbox]]:
    """A running SMTP server: (port, inbox)."""
    port, inbox = free_port(), Inbox()
    with smtp_server(port, inbox):
        yield port, inbox


def _overrides(port: int, *extra: str) -> list[str]:
    return [
        *FAST,
        'alerts.smtp_host="127.0.0.1"',
        f"alerts.smtp_port={port}",
        'alerts.security="none"',
        f'alerts.sender="{SENDER}"',
        f'alerts.recipients=["{RECIPIENT}"]',
        "alerts.timeout_s=5.0",
        "alerts.retry_initial_s=0.2",
        "alerts.retry_max_s=1.0",
        "watchdog.heartbeat_silence_s=5",
        *extra,
    ]


def _mail_for(inbox: Inbox, text: str, timeout_s: float = 45.0) -> EmailMessage:
    return poll_until(lambda: inbox.about(text), timeout_s=timeout_s, what=f"a mail about {text!r}")[0]


def _reason(host: Host, code: str) -> dict[str, Any]:
    """The reason ``code`` of the current status, or an empty dict (falsy, for ``poll_until``)."""
    return next((r for r in host.status()["reasons"] if r["code"] == code), {})


def _decisions(host: Host, cause: str) -> list[dict[str, Any]]:
    return [
        e["body"]
        for e in host.journal()
        if e["kind"].startswith("alert.") and cause in (e["body"].get("cause"), *e["body"].get("causes", ()))
    ]


# --- Faults -> mail ----------------------------------------------------------------------------


def test_kill_9_of_a_role_mails_an_alert_that_names_it_and_a_recovery_once_it_is_back(mail: tuple[int, Inbox]) -> None:
    port, inbox = mail
    with running_host(_overrides(port)) as host:
        # The start was published before the watchdog listened: caught up from the journal.
        started = _mail_for(inbox, "host_started")
        pid = host.wait_all_running()["actors"]["risk"]["pid"]

        os.kill(pid, signal.SIGKILL)

        alert = _mail_for(inbox, "role_down:risk")
        recovery = _mail_for(inbox, "role_down:risk resolved after")
        host.wait_state("TRADING", timeout_s=30)
        # The report with each heartbeat counts the three mails.
        status = poll_until(lambda: (s := host.status())["watchdog"]["mail_sent"] >= 3 and s, timeout_s=10)
    assert str(alert["Subject"]) == "[tradehost 101-001-0000000-001 shadow] NO_TRADE: role_down:risk"
    body = alert.get_content()
    assert "risk killed by SIGKILL" in body
    assert "No new trades; open trades keep their broker-side SL/TP" in body
    assert "tradehost ctl restart risk" in body
    assert "Last journal lines about role_down:risk" in body and "role.exited" in body
    assert str(recovery["Subject"]).startswith("[tradehost 101-001-0000000-001 shadow] TRADING: role_down:risk")
    assert str(started["X-Tradehost-Severity"]) == "info"
    assert status["watchdog"]["mail"] == "on"
    sent = [e["body"]["cause"] for e in host.journal("alert.sent")]
    assert "role_down:risk" in sent


def test_a_stalled_price_stream_stops_trading_mails_and_mails_the_recovery_after_the_reconnect(
    mail: tuple[int, Inbox],
) -> None:
    port, inbox = mail
    overrides = _overrides(
        port, *MARKET, "feed.stale_after_s=2", "broker.stream_timeout_s=6", "watchdog.stream_down_alert_s=1"
    )
    with running_host(overrides) as host:
        # Arrange: prices flow (the watchdog sees the market open).
        poll_until(lambda: host.journal("md.bar"), timeout_s=60, what="a first bar")

        # Act
        AdminClient(host.status()["broker"]["api_url"]).fault("stream", action="stall", seconds=4)

        # Assert: the stream goes stale, the watchdog calls it silent, trading stops, a mail goes out ...
        silent = poll_until(lambda: _reason(host, "stream_silent"), timeout_s=30, what="stream_silent")
        assert not silent["latched"]
        alert = _mail_for(inbox, "stream_silent")
        # ... and once the feed has reconnected and the cool-down passed: trading again, a recovery mail.
        recovery = _mail_for(inbox, "stream_silent resolved after")
        host.wait_state("TRADING", timeout_s=30)
    assert "NO_TRADE: stream_silent" in str(alert["Subject"])
    assert "broker price stream down for" in alert.get_content()
    assert "TRADING: stream_silent resolved after" in str(recovery["Subject"])
    checks = {e["body"]["check"]: e["body"]["verdict"] for e in host.journal("watchdog.check")}
    assert checks["stream"] == "ok"  # the last change of the check: back to ok


def test_bars_without_decisions_stop_trading_and_mail_until_decisions_come_again(
    mail: tuple[int, Inbox], tmp_path: Path
) -> None:
    # Arrange: the risk role drops every message it gets while the flag file exists: alive,
    # heartbeating, deciding nothing. Bars close every 3 s on the accelerated market.
    port, inbox = mail
    flag = tmp_path / "deaf"
    env = {"TRADEHOST_FAULT_INJECT": "deaf:risk", "TRADEHOST_FAULT_INJECT_WHILE": str(flag)}
    overrides = _overrides(port, *MARKET, "watchdog.decision_deadline_s=4", "risk.exits_wait_s=2")
    with running_host(overrides, env=env) as host:
        poll_until(lambda: host.journal("risk.skip") + host.journal("risk.intent"), timeout_s=60, what="a decision")

        # Act
        flag.write_text("x")

        # Assert: the next bars go undecided: NO_TRADE and a mail naming the instrument ...
        reason = poll_until(lambda: _reason(host, "decision_overdue:EUR_USD"), timeout_s=60, what="decision_overdue")
        assert reason["latched"] is False and "no decision after" in reason["detail"]
        alert = _mail_for(inbox, "decision_overdue:EUR_USD")
        assert host.status()["actors"]["risk"]["restarts"] == 0  # alive all along: only the watchdog saw it
        # ... and once risk decides again, the cause clears, trading resumes and the recovery is mailed.
        flag.unlink()
        host.wait_state("TRADING", timeout_s=60)
        recovery = _mail_for(inbox, "decision_overdue:EUR_USD resolved after")
    assert "NO_TRADE: decision_overdue:EUR_USD" in str(alert["Subject"])
    assert "the model or the risk role is stuck" in alert.get_content()
    assert "resolved after" in str(recovery["Subject"])


def test_a_slow_broker_that_keeps_the_account_from_being_read_stops_trading_until_it_is_read(
    mail: tuple[int, Inbox],
) -> None:
    port, inbox = mail
    # Live mode against the emulator: the reconciler reads the broker (in shadow mode, the book).
    overrides = _overrides(port, 'host.mode="live"', "watchdog.account_max_age_s=4", "reconciler.poll_interval_s=1")
    with running_host(overrides) as host:
        # Act: the next 12 requests each take 2 s (under broker.timeout_s: slow, not down).
        AdminClient(host.status()["broker"]["api_url"]).fault("latency", seconds=2, count=12)

        # Assert
        reason = poll_until(lambda: _reason(host, "account_stale"), timeout_s=60, what="account_stale")
        assert reason["latched"] is False and "no account read from the broker for" in reason["detail"]
        host.wait_state("TRADING", timeout_s=90)
        _mail_for(inbox, "account_stale resolved after", timeout_s=30)
    assert _mail_for(inbox, "NO_TRADE: account_stale")


def test_a_role_over_its_memory_limit_is_restarted_latches_no_trade_and_is_mailed(
    mail: tuple[int, Inbox], tmp_path: Path
) -> None:
    # Arrange: risk really allocates 20 MB a heartbeat while the flag file exists.
    port, inbox = mail
    flag = tmp_path / "leak"
    flag.write_text("x")
    env = {"TRADEHOST_FAULT_INJECT": "grow_memory:risk", "TRADEHOST_FAULT_INJECT_WHILE": str(flag)}
    with running_host(_overrides(port, "watchdog.rss_limit_mb=300"), env=env, wait=None) as host:
        # Act: the leak runs until the watchdog asks for the restart; the "fix" goes in meanwhile.
        asked = poll_until(lambda: host.journal("watchdog.restart_requested"), timeout_s=60, what="restart asked")
        flag.unlink()

        # Assert
        assert asked[0]["body"]["role"] == "risk"
        reason = poll_until(lambda: _reason(host, "memory_limit:risk"), timeout_s=30, what="memory_limit:risk")
        assert reason["latched"] is True and "over watchdog.rss_limit_mb (300 MB)" in reason["detail"]
        # A new risk process under the limit (one started before the fix leaks on and is restarted too).
        poll_until(
            lambda: (
                (a := host.status()["actors"]["risk"])["restarts"] >= 1
                and a["status"] == "running"
                and 0 < a["rss_mb"] < 300
            ),
            timeout_s=30,
            what="risk restarted and under the limit",
        )
        alert = _mail_for(inbox, "memory_limit:risk")
        assert "NO_TRADE: memory_limit:risk" in str(alert["Subject"])
        assert "latched, needs `tradehost ctl resume`" in alert.get_content()
        assert any(e["body"]["role"] == "risk" for e in host.journal("role.restart_requested"))
        # Latched: still NO_TRADE until an operator resumes; then trading again.
        assert host.status()["state"] == "NO_TRADE"
        poll_until(
            lambda: {c["name"]: c["verdict"] for c in host.status()["watchdog"]["checks"]}["memory_rss:risk"] == "ok",
            timeout_s=30,
            what="the memory check of the new risk process ok",
        )
        poll_until(lambda: host.ctl("resume").returncode == 0 and host.status()["state"] == "TRADING", timeout_s=60)


def test_ten_identical_faults_send_one_alert_mail_and_a_digest_of_the_repeats(mail: tuple[int, Inbox]) -> None:
    # Ten kill -9 of one role, each once the previous one has cleared: ten raises and ten clears
    # of role_down:risk. Within the dedup window only the first raise and its recovery are mailed;
    # once the window has passed, one digest tells the raises that were not.
    port, inbox = mail
    window_s = 45.0
    with running_host(_overrides(port, "supervisor.max_restarts=100", f"alerts.dedup_window_s={window_s}")) as host:
        for _ in range(10):
            old_pid = host.wait_all_running()["actors"]["risk"]["pid"]
            host.wait_state("TRADING", timeout_s=30)  # the previous fault has cleared
            os.kill(old_pid, signal.SIGKILL)
            poll_until(lambda: host.status()["actors"]["risk"]["pid"] not in (None, old_pid), timeout_s=30)  # noqa: B023
        host.wait_state("TRADING", timeout_s=30)
        digest = _mail_for(inbox, "digest: role_down:risk", timeout_s=window_s + 60)
        decisions = _decisions(host, "role_down:risk")
    mails = inbox.about("role_down:risk")
    alerts = [m for m in mails if str(m["Subject"]).endswith(": role_down:risk")]
    assert len(alerts) >= 1 and len(mails) < 10  # deduplicated
    assert inbox.about("role_down:risk resolved")
    # Every raise is told: in a mail of its own, or counted in a later mail about the cause.
    told_later = [
        int(n)
        for m in mails
        for n in re.findall(r"[Rr]aised (\d+) times? since the last mail about it", m.get_content())
    ]
    assert len(alerts) + sum(told_later) == 10, [str(m["Subject"]) for m in mails]
    assert re.search(r"raised \d+ more times? since the last mail", str(digest["Subject"]))
    suppressed = [d for d in decisions if d.get("decision") == "suppress"]
    assert {d["reason"] for d in suppressed} == {"dedup"}
    assert any(d.get("reason") == "flapped" and d.get("decision") == "send" for d in decisions)


def test_a_dead_mail_server_blocks_nothing_and_the_mail_arrives_once_it_is_back() -> None:
    # Arrange: nothing listens on the SMTP port.
    port, inbox = free_port(), Inbox()
    with running_host(_overrides(port)) as host:
        pid = host.wait_all_running()["actors"]["risk"]["pid"]

        # Act
        os.kill(pid, signal.SIGKILL)

        # Assert: sends fail and are retried; the host stays responsive and recovers on its own.
        failed = poll_until(lambda: host.journal("alert.failed"), timeout_s=30, what="alert.failed")
        assert failed[0]["body"]["final"] is False and "ConnectionRefusedError" in failed[0]["body"]["error"]
        host.wait_state("TRADING", timeout_s=30)
        started = time.monotonic()
        status = host.status()
        assert time.monotonic() - started < 5.0
        assert status["watchdog"]["mail_queued"] >= 1
        assert status["actors"]["watchdog"]["heartbeat_age_s"] < 2.0
        # The mail server comes back: what was queued arrives.
        with smtp_server(port, inbox):
            alert = _mail_for(inbox, "role_down:risk", timeout_s=30)
            poll_until(lambda: host.status()["watchdog"]["mail_queued"] == 0, timeout_s=30, what="queue drained")
    assert "NO_TRADE: role_down:risk" in str(alert["Subject"])
    assert host.journal("alert.sent")


def test_tradehost_alert_still_mails_when_the_host_was_killed(mail: tuple[int, Inbox], tmp_path: Path) -> None:
    port, inbox = mail
    with running_host(_overrides(port)) as host:
        _mail_for(inbox, "host_started")
        assert host.proc is not None
        os.kill(host.proc.pid, signal.SIGKILL)
        host.wait_exit(timeout_s=10)
        body = tmp_path / "body.txt"
        body.write_text("tradehost.service: main process exited, code=killed, status=9/KILL\n")

        res = run_cli(
            "alert", "-c", str(REPO / "conf/default.toml"), *[a for o in _overrides(port) for a in ("--set", o)],
            "--subject", "[tradehost] tradehost.service failed", "--body-file", str(body),
        )  # fmt: skip

    assert res.returncode == 0, res.stderr
    got = _mail_for(inbox, "tradehost.service failed", timeout_s=10)
    assert "status=9/KILL" in got.get_content()


def test_a_silent_supervisor_is_mailed_by_the_watchdog_itself_and_no_role_is_blamed() -> None:
    port, inbox = free_port(), Inbox()
    overrides = _overrides(port, "watchdog.supervisor_silence_s=2", "watchdog.heartbeat_silence_s=3")
    with smtp_server(port, inbox), running_host(overrides) as host:
        _mail_for(inbox, "host_started")
        assert host.proc is not None
        root = host.proc.pid

        # Act: the root (supervisor, bus, ctl) stops for 6 s, twice the heartbeat silence; the roles run on.
        frozen_until = time.monotonic() + 6.0
        os.kill(root, signal.SIGSTOP)
        try:
            alert = _mail_for(inbox, "supervisor_silent", timeout_s=30)  # mailed while the root is stopped
            assert psutil.Process(root).status() == psutil.STATUS_STOPPED
            poll_until(lambda: time.monotonic() >= frozen_until, timeout_s=10, what="the end of the freeze")
        finally:
            os.kill(root, signal.SIGCONT)

        # Assert: a recovery once the supervisor speaks again; the roles' silence was not their fault.
        recovery = _mail_for(inbox, "supervisor_silent resolved after", timeout_s=30)
        host.wait_state("TRADING", timeout_s=30)
        raised = [e["body"]["code"] for e in host.journal("reason.raised")]
    assert "UNKNOWN: supervisor_silent" in str(alert["Subject"])
    assert "no sys.state from the supervisor for" in alert.get_content()
    assert str(alert["X-Tradehost-Severity"]) == "critical"
    assert "supervisor_silent resolved after" in str(recovery["Subject"])
    assert not [code for code in raised if code.startswith("heartbeat_missing")]
    assert not [e for e in host.journal("watchdog.check") if e["body"]["check"].startswith("heartbeat:")]
    assert [e["src"] for e in host.journal("alert") if e["body"]["code"] == "supervisor_silent"] == ["watchdog"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # plain login on loopback only
def test_the_smtp_password_never_appears_in_logs_journal_status_or_mail(tmp_path: Path) -> None:
    port, inbox, auth = free_port(), Inbox(), Authenticator()
    overrides = _overrides(port, f'alerts.username="{USERNAME}"')
    env = {"TRADEHOST_SMTP_PASSWORD": PASSWORD}
    with (
        smtp_server(port, inbox, authenticator=auth, auth_required=True, auth_require_tls=False),
        running_host(overrides, env=env) as host,
    ):
        pid = host.wait_all_running()["actors"]["risk"]["pid"]
        os.kill(pid, signal.SIGKILL)
        _mail_for(inbox, "role_down:risk resolved")
        status = host.ctl("status", "--json").stdout + host.ctl("status").stdout
        host.ctl("shutdown")
        host.wait_exit(timeout_s=30)
    assert auth.logins >= 2  # the password was really used
    forms = [PASSWORD, base64.b64encode(PASSWORD.encode()).decode()]
    forms.append(base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode())
    journal = "\n".join(str(e) for e in host.journal())
    spool = "".join(p.read_text() for p in (host.run_dir / "alert-spool").glob("*"))
    for form in forms:
        assert form not in host.log_text()
        assert form not in journal
        assert form not in status
        assert form not in spool
        assert not [raw for raw in inbox.raw if form.encode() in raw]
