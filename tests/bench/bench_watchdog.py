"""Benchmark of the watchdog and the alert path: fault -> NO_TRADE, fault -> mail, and its own cost.

Run with ``python -m tests.bench.bench_watchdog [--quick] [--minutes M]``. A real host runs against
a real SMTP server (aiosmtpd on loopback) in this process. For a kill -9 of a role and for a
stalled price stream (the emulator's ``stream stall`` fault) it measures, over repetitions, the
time from the fault to the ``state.changed`` -> NO_TRADE journal entry (written as the state is
published) and to the mail about it being accepted by the SMTP server. Then it samples the
watchdog process (CPU time, RSS, USS) while the host runs with default timings and a market that
is open, for ``--minutes`` (10 by default, as the issue asks; 0.5 with ``--quick``). Nothing here
is a test: it prints, it does not assert.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from typing import Any

import psutil
from aiosmtpd.controller import Controller

from actors.broker.emulator import AdminClient
from tests.helpers import Host, poll_until, short_tmp_dir

WEDNESDAY = '"2024-03-06T14:00:00Z"'
FAULT_TIMINGS = [
    "supervisor.heartbeat_interval_s=0.2",
    "supervisor.heartbeat_timeout_s=2.0",
    "supervisor.cooldown_s=0.5",
    "supervisor.max_restarts=1000",
    "supervisor.restart_period_s=0.1",
    "supervisor.backoff_initial_s=0.05",
    "supervisor.backoff_max_s=0.5",
    "alerts.dedup_window_s=1.0",  # each repetition is a new mail, not a repeat
    "alerts.max_per_hour=1000",
]


@dataclass
class _Inbox:
    """The SMTP server's handler: (accepted at ns, subject)."""

    got: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.time_ns()
        msg = message_from_bytes(bytes(envelope.original_content or envelope.content), policy=email_policy.default)
        with self.lock:
            self.got.append((at, str(msg["Subject"])))
        return "250 2.0.0 OK"

    def first_after(self, t0_ns: int, text: str) -> int | None:
        with self.lock:
            return next((at for at, subject in self.got if at >= t0_ns and text in subject), None)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(what: str, values: list[float], unit: str, target: str = "") -> None:
    if not values:
        print(f"  {what:<48} (no samples)")
        return
    med = statistics.median(values)
    print(f"  {what:<48} p50 {med:9.1f} {unit:<4} p90 {_pct(values, 0.9):9.1f}  n={len(values):<3} {target}")


@contextlib.contextmanager
def _host(overrides: list[str]) -> Iterator[tuple[Host, _Inbox]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, server_hostname="localhost")
    controller.start()
    mail = [
        'alerts.smtp_host="127.0.0.1"',
        f"alerts.smtp_port={port}",
        'alerts.security="none"',
        'alerts.sender="tradehost@example.com"',
        'alerts.recipients=["ops@example.com"]',
    ]
    run_dir = short_tmp_dir("thw") / "run"
    host = Host(run_dir=run_dir, overrides=[*mail, *overrides]).start()
    try:
        host.wait_state("TRADING", timeout_s=60)
        yield host, inbox
    finally:
        host.ctl("shutdown")
        with contextlib.suppress(Exception):
            host.wait_exit(timeout_s=30)
        host.kill_tree()
        controller.stop()
        shutil.rmtree(run_dir.parent, ignore_errors=True)


def _no_trade_after(host: Host, seq: int) -> int | None:
    import sqlite3

    db = sqlite3.connect(f"file:{host.run_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute(
            "SELECT ts_ns FROM journal WHERE seq > ? AND kind = 'state.changed' AND body LIKE '%\"to\":\"NO_TRADE\"%' "
            "ORDER BY seq LIMIT 1",
            (seq,),
        ).fetchone()
    finally:
        db.close()
    return int(row[0]) if row else None


def _last_seq(host: Host) -> int:
    rows = host.journal()
    return rows[-1]["seq"] if rows else 0


def _measure(
    host: Host, inbox: _Inbox, n: int, fault: Callable[[int], tuple[int, str]]
) -> tuple[list[float], list[float]]:
    """Run ``fault(i)`` n times (it returns when it struck, in UTC ns, and the text its mail's
    subject carries); ms from the fault to NO_TRADE and to the mail."""
    to_state: list[float] = []
    to_mail: list[float] = []
    for i in range(n):
        host.wait_all_running(timeout_s=60)
        host.wait_state("TRADING", timeout_s=60)
        seq = _last_seq(host)
        t0, text = fault(i)

        def no_trade(seq: int = seq) -> int:
            return _no_trade_after(host, seq) or 0  # 0: not yet

        def mailed(t0: int = t0, text: str = text) -> int:
            return inbox.first_after(t0, text) or 0

        state_ns = poll_until(no_trade, timeout_s=60, what="NO_TRADE")
        mail_ns = poll_until(mailed, timeout_s=60, what=f"a mail about {text}")
        to_state.append((state_ns - t0) / 1e6)
        to_mail.append((mail_ns - t0) / 1e6)
    host.wait_state("TRADING", timeout_s=60)
    return to_state, to_mail


def bench_role_kill(n: int) -> tuple[list[float], list[float]]:
    """kill -9 of a role -> NO_TRADE (role_down) and -> its mail accepted."""
    roles = ["risk", "execution", "model", "feed"]
    with _host(FAULT_TIMINGS) as (host, inbox):

        def kill(i: int) -> tuple[int, str]:
            role = roles[i % len(roles)]
            pid = host.status()["actors"][role]["pid"]
            t0 = time.time_ns()
            os.kill(pid, signal.SIGKILL)
            return t0, f"role_down:{role}"

        return _measure(host, inbox, n, kill)


def bench_stream_stall(n: int) -> tuple[list[float], list[float]]:
    """A stalled price stream -> NO_TRADE (the feed calls it stale) and -> its mail accepted."""
    overrides = [
        *FAULT_TIMINGS,
        f"broker.emulator.start={WEDNESDAY}",
        "broker.emulator.speed=300",
        "feed.stale_after_s=1",
        "broker.stream_timeout_s=6",
    ]
    with _host(overrides) as (host, inbox):
        admin = AdminClient(host.status()["broker"]["api_url"])

        def stall(i: int) -> tuple[int, str]:
            t0 = time.time_ns()
            admin.fault("stream", action="stall", stream="pricing", seconds=4)
            return t0, "broker_unreachable:stream"

        return _measure(host, inbox, n, stall)


def bench_cost(minutes: float) -> dict[str, float]:
    """The watchdog's own CPU and memory with default timings, mail on, a market that is open."""
    with _host([f"broker.emulator.start={WEDNESDAY}"]) as (host, _inbox):
        status = host.wait_all_running(timeout_s=60)
        proc = psutil.Process(status["actors"]["watchdog"]["pid"])
        time.sleep(2.0)  # past its start-up
        cpu0, t0 = proc.cpu_times(), time.monotonic()
        rss: list[float] = []
        uss: list[float] = []
        end = t0 + minutes * 60
        while time.monotonic() < end:
            info = proc.memory_full_info()
            rss.append(info.rss / 1_048_576)
            uss.append(info.uss / 1_048_576)
            time.sleep(min(5.0, max(0.0, end - time.monotonic())))
        cpu1, t1 = proc.cpu_times(), time.monotonic()
        checks = len(host.status()["watchdog"]["checks"])
    busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "cpu_pct": 100.0 * busy / (t1 - t0),
        "rss_first": rss[0],
        "rss_last": rss[-1],
        "rss_max": max(rss),
        "uss_first": uss[0],
        "uss_last": uss[-1],
        "seconds": t1 - t0,
        "checks": checks,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and a short cost run (a smoke run)")
    parser.add_argument("--minutes", type=float, default=None, help="length of the cost run (default 10; quick 0.5)")
    args = parser.parse_args(argv)
    n = 3 if args.quick else 10
    minutes = args.minutes if args.minutes is not None else (0.5 if args.quick else 10.0)
    print(f"tradehost watchdog benchmark  ({os.cpu_count()} cores, python {sys.version.split()[0]})")
    print("fault -> NO_TRADE published (state.changed), fault -> mail accepted by the SMTP server:")
    state, mail = bench_role_kill(n)
    _row("kill -9 of a role -> NO_TRADE", state, "ms")
    _row("kill -9 of a role -> mail accepted", mail, "ms")
    state, mail = bench_stream_stall(n)
    _row("stream stall -> NO_TRADE (feed.stale_after_s = 1)", state, "ms", "includes the 1 s staleness")
    _row("stream stall -> mail accepted", mail, "ms")
    cost = bench_cost(minutes)
    print(f"the watchdog's own cost over {cost['seconds']:.0f} s ({cost['checks']:.0f} checks every 1 s heartbeat):")
    print(f"  {'CPU':<48} {cost['cpu_pct']:9.2f} % of one core")
    print(
        f"  {'RSS first / last / max':<48} {cost['rss_first']:.1f} / {cost['rss_last']:.1f} / {cost['rss_max']:.1f} MB"
    )
    print(f"  {'USS first / last':<48} {cost['uss_first']:.1f} / {cost['uss_last']:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
