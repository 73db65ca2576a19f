"""``supervisor.metrics``: the board's families from a status document and from bus messages, and
the ops files (rules, dashboard) against the names the board serves."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from actors.core.bartime import bar_end
from actors.core.domain import InstrumentId, IntentId
from actors.runtime.messages import (
    Bar,
    BarsClosed,
    Body,
    Envelope,
    ExecutionReport,
    IntentSkipped,
    Prices,
    RiskIntent,
    SignalProduced,
    make_envelope,
)
from supervisor.metrics import MetricsBoard

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def status_doc(**changes: Any) -> dict[str, Any]:
    """A status document as ``Operator.status()`` builds it (every section filled)."""
    actor = {
        "pid": os.getpid(),
        "alive": True,
        "status": "running",
        "restarts": 0,
        "heartbeat_age_s": 0.4,
        "rss_mb": 90.0,
        "queue_depth": 2,
    }
    doc: dict[str, Any] = {
        "state": "NO_TRADE",
        "reasons": [
            {"code": "memory_limit:feed", "detail": "feed over 2048 MB", "latched": True, "since_ns": T0},
            {"code": "broker_unreachable", "detail": "stream down", "latched": False, "since_ns": T0},
        ],
        "paused": False,
        "mode": "shadow",
        "pid": os.getpid(),
        "uptime_s": 12.5,
        "actors": {
            "feed": {**actor, "restarts": 3},
            "model": {**actor, "pid": None, "alive": False, "status": "failed", "heartbeat_age_s": None},
        },
        "broker": {"sources": {"stream": {"connected": False}, "rest": {"connected": True}, "x": {"connected": None}}},
        "account": {
            "currency": "EUR",
            "nav": "10250.50",
            "balance": "10000.00",
            "unrealized_pl": "250.50",
            "daily_pnl": "-12.25",
            "peak_nav": "11000",
            "drawdown": 0.068,
            "zone": 1,
            "multiplier": 0.5,
            "pending_orders": 0,
            "ts": T0,
        },
        "positions": [{"trade_id": "7"}, {"trade_id": "9"}],
        "market": {"bars_published": 40, "bars_rejected": 2, "ticks_rejected": 5, "last_bar_ns": T0},
        "model": {"state": "loaded", "version": "v1", "predictions": 38, "skipped": 2},
        "watchdog": {
            "checks": [{"name": "disk", "verdict": "ok"}, {"name": "memory_rss:feed", "verdict": "breach"}],
            "mail": "on",
            "mail_queued": 1,
            "mail_sent": 4,
            "mail_failed": 2,
        },
    }
    doc.update(changes)
    return doc


def samples_of(board: MetricsBoard) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(board.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def one(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def offered(doc: dict[str, Any], clock: Clock | None = None) -> MetricsBoard:
    board = MetricsBoard(close_latency=True, monotonic=clock or Clock())
    board.offer(0.0, lambda: doc)
    return board


def test_the_status_document_becomes_state_reasons_roles_account_pipeline_and_mail() -> None:
    s = samples_of(offered(status_doc()))

    assert one(s, "tradehost_state", state="NO_TRADE") == 1.0
    assert one(s, "tradehost_state", state="TRADING") == 0.0
    assert one(s, "tradehost_no_trade_reasons", reason="memory_limit") == 1.0
    assert one(s, "tradehost_no_trade_reasons_latched", reason="memory_limit") == 1.0
    assert one(s, "tradehost_no_trade_reasons", reason="broker_unreachable") == 1.0
    assert one(s, "tradehost_no_trade_reasons_latched", reason="broker_unreachable") == 0.0
    assert one(s, "tradehost_no_trade_reasons", reason="daily_loss_limit") == 0.0  # every known code is there
    assert one(s, "tradehost_role_up", role="feed") == 1.0
    assert one(s, "tradehost_role_up", role="model") == 0.0
    assert one(s, "tradehost_role_restarts_total", role="feed") == 3.0
    assert one(s, "tradehost_role_rss_bytes", role="feed") == 90.0 * 1024 * 1024
    assert (one(s, "tradehost_role_uss_bytes", role="feed") or 0.0) > 1e6  # this process, read with psutil
    assert one(s, "tradehost_role_uss_bytes", role="model") is None  # not running: no pid
    assert one(s, "tradehost_role_heartbeat_age_seconds", role="feed") == 0.4
    assert one(s, "tradehost_role_queue_depth", role="feed") == 2.0
    assert one(s, "tradehost_broker_connected", source="stream") == 0.0
    assert one(s, "tradehost_broker_connected", source="rest") == 1.0
    assert one(s, "tradehost_broker_connected", source="x") is None  # unknown is never shown as up or down
    assert one(s, "tradehost_nav", currency="EUR") == 10250.5
    assert one(s, "tradehost_unrealized_pnl", currency="EUR") == 250.5
    assert one(s, "tradehost_daily_pnl", currency="EUR") == -12.25
    assert one(s, "tradehost_drawdown_ratio") == 0.068
    assert one(s, "tradehost_drawdown_zone") == 1.0
    assert one(s, "tradehost_open_positions") == 2.0
    assert one(s, "tradehost_bars_total", outcome="published") == 40.0
    assert one(s, "tradehost_bars_total", outcome="rejected") == 2.0
    assert one(s, "tradehost_ticks_rejected_total") == 5.0
    assert one(s, "tradehost_signals_total", outcome="produced") == 38.0
    assert one(s, "tradehost_mail_queue") == 1.0
    assert one(s, "tradehost_mail_failed_total") == 2.0
    assert one(s, "tradehost_watchdog_check_breach", check="memory_rss:feed") == 1.0


def test_no_secret_or_free_text_detail_reaches_the_metrics() -> None:
    doc = status_doc()
    doc["reasons"][0]["detail"] = "token s3cr3t-T0KEN leaked into a detail"
    doc["broker"]["api_url"] = "https://user:s3cr3t-T0KEN@example"
    text = generate_latest(offered(doc).registry).decode()

    assert "s3cr3t" not in text
    assert "feed over" not in text


def test_the_snapshot_is_taken_once_a_second_and_its_age_is_served() -> None:
    clock = Clock()
    board = MetricsBoard(close_latency=True, monotonic=clock)
    calls: list[int] = []

    def status() -> dict[str, Any]:
        calls.append(1)
        return status_doc(state="TRADING", reasons=[])

    assert one(samples_of(board), "tradehost_status_age_seconds") == 0.0
    assert one(samples_of(board), "tradehost_state", state="TRADING") is None  # nothing offered yet
    for tick in range(20):  # 20 ticks of 50 ms: one second
        board.offer(tick * 0.05, status)
    assert len(calls) == 1
    board.offer(1.0, status)
    assert len(calls) == 2
    clock.now += 7.5
    assert one(samples_of(board), "tradehost_status_age_seconds") == 7.5


def _env(body: Body, *, src: str, corr: str | None, ts: int) -> Envelope:
    return dataclasses.replace(make_envelope(body, src=src, corr=corr), ts=ts)


def _bar(instrument: str, ts: int) -> Bar:
    p = Prices(o="1.1", h="1.2", l="1.0", c="1.15")
    return Bar(instrument=InstrumentId(instrument), granularity="M15", ts=ts, bid=p, ask=p, mid=p, volume=10)


def test_a_bar_signal_order_chain_is_timed_and_decisions_and_orders_are_counted() -> None:
    board = MetricsBoard(close_latency=True)
    bar_start = T0 - T0 % (900 * 10**9)
    close = bar_end(bar_start, "M15")
    board.observe(_env(_bar("EUR_USD", bar_start), src="feed", corr="bar-1", ts=close + 150 * MS))
    board.observe(_env(BarsClosed(granularity="M15", ts=bar_start), src="feed", corr=None, ts=close + 200 * MS))
    signal = SignalProduced(
        instrument=InstrumentId("EUR_USD"), bar_ts=bar_start, p_up=0.7, direction="long", model_version="v1",
        features_hash="h",
    )  # fmt: skip
    board.observe(_env(signal, src="model", corr="bar-1", ts=close + 158 * MS))
    intent = RiskIntent(
        intent_id=IntentId("i1"), instrument=InstrumentId("EUR_USD"), direction="long", units="1000",
        stop_loss="1.0", take_profit="1.3", decision_price=1.15, sl_distance=0.01, bar_ts=bar_start,
        decided_ns=close, p_up=0.7, model_version="v1",
    )  # fmt: skip
    board.observe(_env(intent, src="risk", corr="bar-1", ts=close + 160 * MS))
    skip = IntentSkipped(instrument=InstrumentId("GBP_USD"), bar_ts=bar_start, reason="below_threshold")
    board.observe(_env(skip, src="risk", corr="bar-2", ts=close + 160 * MS))
    sending = ExecutionReport(status="SENDING", instrument=InstrumentId("EUR_USD"), intent_id="i1")
    board.observe(_env(sending, src="execution", corr="bar-1", ts=close + 161 * MS))
    filled = ExecutionReport(status="FILLED", instrument=InstrumentId("EUR_USD"), intent_id="i1", latency_ms=42.0)
    board.observe(_env(filled, src="execution", corr="bar-1", ts=close + 204 * MS))

    s = samples_of(board)
    assert one(s, "tradehost_close_to_bars_seconds_count") == 1.0
    assert one(s, "tradehost_close_to_bars_seconds_sum") == pytest.approx(0.2)
    assert one(s, "tradehost_bar_to_signal_seconds_count") == 1.0
    assert one(s, "tradehost_bar_to_signal_seconds_sum") == pytest.approx(0.008)
    assert one(s, "tradehost_bar_to_signal_seconds_bucket", le="0.01") == 1.0
    assert one(s, "tradehost_bar_to_signal_seconds_bucket", le="0.005") == 0.0
    assert one(s, "tradehost_signal_to_wire_seconds_sum") == pytest.approx(0.003)
    assert one(s, "tradehost_order_round_trip_seconds_sum") == pytest.approx(0.042)
    assert one(s, "tradehost_decisions_total", reason="enter") == 1.0
    assert one(s, "tradehost_decisions_total", reason="below_threshold") == 1.0
    assert one(s, "tradehost_decisions_total", reason="margin") == 0.0  # every skip reason from the start
    assert one(s, "tradehost_orders_total", outcome="sending") == 1.0
    assert one(s, "tradehost_orders_total", outcome="filled") == 1.0
    assert one(s, "tradehost_orders_total", outcome="rejected") == 0.0


def test_closes_are_not_timed_when_the_market_clock_is_not_the_wall_clock() -> None:
    board = MetricsBoard(close_latency=False)
    board.observe(_env(BarsClosed(granularity="M15", ts=T0), src="feed", corr=None, ts=T0 + 10**15))

    assert one(samples_of(board), "tradehost_close_to_bars_seconds_count") == 0.0


# --- the ops files --------------------------------------------------------------------------------

NAME = re.compile(r"\btradehost_[a-z0-9_]+")


def served_names() -> set[str]:
    """Every sample name a board with a full status document and one of each message serves."""
    board = offered(status_doc())
    return {name for name, _ in samples_of(board)}


def test_the_prometheus_rules_are_valid_yaml_and_name_only_served_metrics() -> None:
    rules = yaml.safe_load((REPO / "ops" / "prometheus-rules.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    names = {name for expr in exprs for name in NAME.findall(str(expr))}
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}

    assert names, "no tradehost_ metric in the rules"
    assert names <= served_names(), names - served_names()
    no_trade = next(r for g in rules["groups"] for r in g["rules"] if r["alert"] == "TradehostNoTrade")
    assert 'tradehost_state{state="NO_TRADE"}' in no_trade["expr"] and no_trade["for"] == "5m"
    assert {"TradehostRoleRestarted", "TradehostMemoryGrowth", "TradehostMailFailing"} <= alerts


def test_the_grafana_dashboard_is_valid_json_and_names_only_served_metrics() -> None:
    dashboard = json.loads((REPO / "ops" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    names = {name for expr in exprs for name in NAME.findall(expr)}

    assert len(exprs) >= 20
    assert names <= served_names(), names - served_names()
    for histogram in ("close_to_bars", "bar_to_signal", "signal_to_wire", "order_round_trip"):
        assert f"tradehost_{histogram}_seconds_bucket" in names


def test_the_journals_size_and_its_warning_are_served() -> None:
    doc = status_doc()
    doc["journal"] = {"mb": 2100.5, "warn_mb": 2048.0, "warn": True}

    s = samples_of(offered(doc))

    assert one(s, "tradehost_journal_megabytes") == 2100.5
    assert one(s, "tradehost_journal_warn") == 1.0
