"""``ctl status``: execution against a fake and the table it renders, nulls included."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.ctl.commands import COMMANDS
from tests.fakes import FakeSupervisor

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

STATUS = COMMANDS["status"]


def _doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "state": "NO_TRADE",
        "reasons": [
            {"code": "role_down:feed", "detail": "exit 3", "latched": False, "since_ns": 1},
            {"code": "operator_pause", "detail": "paused by operator", "latched": True, "since_ns": 2},
        ],
        "paused": True,
        "mode": "shadow",
        "pid": 4242,
        "uptime_s": 12.34,
        "actors": {
            "feed": {
                "pid": 101,
                "alive": True,
                "status": "running",
                "restarts": 2,
                "heartbeat_age_s": 0.25,
                "rss_mb": 48.0,
                "queue_depth": 0,
                "uptime_s": 3.0,
            },
            "risk": {
                "pid": None,
                "alive": False,
                "status": "failed",
                "restarts": 5,
                "heartbeat_age_s": None,
                "rss_mb": None,
                "queue_depth": None,
                "uptime_s": None,
            },
        },
        "broker": {"connected": None, "last_ok": None},
        "positions": None,
        "daily_pnl": None,
        "dd_zone": None,
    }
    doc.update(overrides)
    return doc


def test_status_returns_the_supervisors_document_unchanged() -> None:
    doc = _doc()
    fake = FakeSupervisor(status_doc=doc)

    assert STATUS.execute(fake, STATUS.validate({})) is doc
    assert fake.calls == [("status", ())]


def test_the_table_shows_state_reasons_and_one_line_per_role() -> None:
    lines = STATUS.render(_doc()).splitlines()

    assert lines[0] == "state: NO_TRADE   mode: shadow   pid: 4242   uptime: 12.3s"
    assert lines[1] == "reasons:"
    assert lines[2] == "  - role_down:feed: exit 3"
    assert lines[3] == "  - operator_pause (latched): paused by operator"
    feed = next(line for line in lines if line.startswith("feed "))
    assert feed.split() == ["feed", "running", "101", "2", "0.2s", "48.0", "MB"]


def test_null_values_are_rendered_as_dashes() -> None:
    text = STATUS.render(_doc())

    risk = next(line for line in text.splitlines() if line.startswith("risk "))
    assert risk.split() == ["risk", "failed", "-", "5", "-", "-"]
    assert text.splitlines()[-1].split() == [
        "broker:",
        "connected=unknown",
        "last_ok=-",
        "positions=-",
        "daily_pnl=-",
        "dd_zone=-",
    ]


def test_a_document_of_nulls_still_renders() -> None:
    doc = {
        "state": None,
        "reasons": None,
        "paused": None,
        "mode": None,
        "pid": None,
        "uptime_s": None,
        "actors": None,
        "broker": None,
        "positions": None,
        "daily_pnl": None,
        "dd_zone": None,
    }

    text = STATUS.render(doc)

    assert text.splitlines()[0] == "state: None   mode: None   pid: None   uptime: -"
    assert "reasons:" not in text
    assert "connected=unknown" in text


def test_an_empty_document_still_renders() -> None:
    text = STATUS.render({})

    assert text.startswith("state: None")
    assert "role" in text


def test_a_role_whose_status_is_null_is_rendered_with_a_dash() -> None:
    doc = _doc(
        actors={"feed": {"pid": None, "status": None, "restarts": None, "heartbeat_age_s": None, "rss_mb": None}}
    )

    feed = next(line for line in STATUS.render(doc).splitlines() if line.startswith("feed "))

    assert feed.split() == ["feed", "-", "-", "-", "-", "-"]


def test_open_trades_and_the_watchdog_are_listed() -> None:
    trade = {
        "trade_id": "7",
        "instrument": "EUR_USD",
        "units": "-1000",
        "price": "1.10000",
        "stop_loss": "1.10500",
        "take_profit": None,
        "unrealized_pl": "-2.50",
    }
    checks = [
        {"name": "disk", "value": "9000", "limit": "500", "verdict": "ok"},
        {"name": "memory:risk", "value": "1200", "limit": "1024", "verdict": "breach"},
    ]
    watchdog = {"checks": checks, "mail": "on", "mail_queued": 1, "mail_sent": 3, "mail_failed": 0}
    text = STATUS.render(_doc(positions=[trade], daily_pnl="-12.5", dd_zone=1, watchdog=watchdog))

    assert "positions=1 daily_pnl=-12.5 dd_zone=1" in text
    assert "trade 7 EUR_USD -1000 @ 1.10000  SL=1.10500 TP=- P&L=-2.50" in text
    assert "watchdog: 1/2 checks ok: memory:risk breach  mail=on sent=3 queued=1 failed=0" in text


def test_the_market_line_counts_rejected_bars_and_ticks() -> None:
    market = {
        "instruments": [{"instrument": "EUR_USD", "open": True, "since_ns": 1, "why": "", "next_open_ns": None}],
        "last_bar_ns": 5,
        "bars_published": 40,
        "bars_rejected": 1,
        "ticks_rejected": 7,
    }
    line = next(x for x in STATUS.render(_doc(market=market)).splitlines() if x.startswith("market:"))
    assert line == "market: EUR_USD open  bars=40 rejected=1 ticks_rejected=7"


def test_the_account_line_shows_nav_with_its_currency_day_start_peak_drawdown_and_a_resume() -> None:
    doc = _doc()
    doc["account"] = {
        "currency": "USD", "nav": "84400.0000", "unrealized_pl": "-1200.5000", "day_start_nav": "85000.0000",
        "daily_pnl": "-600.0000", "peak_nav": "100000.0000", "drawdown": 0.156, "zone": 3, "multiplier": 0.25,
        "drawdown_resumed": True,
    }  # fmt: skip

    line = next(x for x in STATUS.render(doc).splitlines() if x.startswith("account:"))

    assert "NAV 84400.0000 USD" in line and "unrealized -1200.5000" in line and "day start 85000.0000" in line
    assert "today -600.0000" in line and "peak 100000.0000" in line and "drawdown 15.60%" in line
    assert "zone 3 (size x0.25)" in line
    assert "resumed after drawdown_stop" in line
