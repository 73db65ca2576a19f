"""Prometheus metrics (``metrics.listen``): a real host scraped over HTTP, parsed with
prometheus_client's own text parser, against what ``ctl status`` says of the same host."""

from __future__ import annotations

import os
import signal
import socket
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FAST
from tests.helpers import Host, poll_until, running_host, short_tmp_dir

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> Samples:
    """Every sample of ``GET /metrics``, keyed by (sample name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def agrees(samples: Samples, status: dict[str, Any]) -> list[str]:
    """Where the metrics disagree with ``status`` (empty: they agree)."""
    wrong = []
    for state in ("STARTING", "RECONCILING", "TRADING", "PAUSED", "NO_TRADE", "SHUTTING_DOWN", "STOPPED"):
        want = 1.0 if status["state"] == state else 0.0
        if value(samples, "tradehost_state", state=state) != want:
            wrong.append(f"state {state}: {value(samples, 'tradehost_state', state=state)} != {want}")
    codes: dict[str, int] = {}
    for r in status["reasons"]:
        base = r["code"].split(":", 1)[0]
        codes[base] = codes.get(base, 0) + 1
    for base, count in codes.items():
        if value(samples, "tradehost_no_trade_reasons", reason=base) != count:
            wrong.append(f"reason {base}: {value(samples, 'tradehost_no_trade_reasons', reason=base)} != {count}")
    for (name, labels), v in samples.items():
        reason = dict(labels).get("reason", "")
        if name == "tradehost_no_trade_reasons" and v != codes.get(reason, 0):
            wrong.append(f"reason {reason}: {v} in the metrics, {codes.get(reason, 0)} in status")
    for role, a in status["actors"].items():
        up = 1.0 if a["status"] == "running" and a["alive"] else 0.0
        if value(samples, "tradehost_role_up", role=role) != up:
            wrong.append(f"{role} up: {value(samples, 'tradehost_role_up', role=role)} != {up}")
        if value(samples, "tradehost_role_restarts_total", role=role) != a["restarts"]:
            wrong.append(f"{role} restarts: {value(samples, 'tradehost_role_restarts_total', role=role)}")
    account = status["account"]
    if account is not None:
        nav = value(samples, "tradehost_nav", currency=account["currency"])
        if nav != float(account["nav"]):
            wrong.append(f"nav {nav} != {account['nav']}")
        positions = value(samples, "tradehost_open_positions")
        if positions != len(status["positions"]):
            wrong.append(f"open positions {positions} != {len(status['positions'])}")
    return wrong


def metrics_agree_with_status(host: Host, port: int, what: str, pred: Any = None) -> Samples:
    """Poll until a scrape agrees with both a ``ctl status`` taken just before it and one taken just
    after it (the metrics are the supervisor's snapshot of at most a second ago: a scrape in the
    middle of a change may show either side) and ``pred(status)`` holds."""

    def check() -> Samples | bool:
        before = host.status()
        samples = scrape(port)
        after = host.status()
        if pred is not None and not pred(after):
            return False
        return samples if not agrees(samples, before) and not agrees(samples, after) else False

    return poll_until(check, timeout_s=30, interval_s=0.2, what=what)


def test_a_scrape_matches_ctl_status_and_shows_a_pause_a_restart_and_a_role_down_for_good() -> None:
    port = free_loopback_port()
    overrides = [*FAST, f'metrics.listen="127.0.0.1:{port}"', "supervisor.max_restarts=1"]
    with running_host(overrides) as host:
        host.wait_all_running()
        samples = metrics_agree_with_status(
            host, port, "metrics of a trading host with a known account", lambda s: s["account"] is not None
        )
        assert value(samples, "tradehost_state", state="TRADING") == 1.0
        assert sum(v for (n, _), v in samples.items() if n == "tradehost_no_trade_reasons") == 0.0
        for role in ("feed", "model", "risk", "execution", "reconciler", "watchdog"):
            assert value(samples, "tradehost_role_up", role=role) == 1.0, role
            rss = value(samples, "tradehost_role_rss_bytes", role=role)
            assert rss is not None and rss > 10e6, (role, rss)
        assert (value(samples, "tradehost_nav", currency="USD") or 0.0) > 0.0

        # The operator's pause shows as the state.
        assert host.ctl("pause").returncode == 0
        samples = metrics_agree_with_status(host, port, "PAUSED in the metrics", lambda s: s["state"] == "PAUSED")
        assert value(samples, "tradehost_state", state="PAUSED") == 1.0
        assert host.ctl("resume").returncode == 0
        metrics_agree_with_status(host, port, "TRADING again", lambda s: s["state"] == "TRADING")

        # kill -9 the model: restarted once (the counter), then killed again: down for good.
        old = host.status()["actors"]["model"]["pid"]
        os.kill(old, signal.SIGKILL)
        samples = metrics_agree_with_status(
            host,
            port,
            "the model's restart in the metrics",
            lambda s: s["actors"]["model"]["restarts"] == 1 and s["actors"]["model"]["status"] == "running",
        )
        assert value(samples, "tradehost_role_restarts_total", role="model") == 1.0
        os.kill(host.status()["actors"]["model"]["pid"], signal.SIGKILL)
        samples = metrics_agree_with_status(
            host, port, "the model down for good", lambda s: s["actors"]["model"]["status"] == "failed"
        )
        assert value(samples, "tradehost_role_up", role="model") == 0.0
        assert value(samples, "tradehost_state", state="NO_TRADE") == 1.0
        assert value(samples, "tradehost_no_trade_reasons", reason="restart_intensity") == 1.0


def test_a_taken_metrics_port_refuses_the_start_with_exit_2_and_one_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        host = Host(run_dir=short_tmp_dir() / "run", overrides=[f'metrics.listen="127.0.0.1:{port}"']).start()
        try:
            code = host.wait_exit(timeout_s=60)
        finally:
            host.kill_tree()
    assert code == 2, host.log_text()[-2000:]
    lines = [line for line in host.log_text().splitlines() if "metrics.listen" in line]
    assert len(lines) == 1, host.log_text()[-2000:]
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], lines[0]
    assert not (host.run_dir / "journal.sqlite").exists() or not host.journal("host.started")
