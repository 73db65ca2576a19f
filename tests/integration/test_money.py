"""The numbers that stop trading (issue 16): NAV, day start, peak, deposits and resume, in the real
tree against the emulator, at the thresholds an operator uses (100,000 USD, ``risk.daily_loss_limit``
0.03, the default drawdown zones 5 % / 10 % / 15 %).

The losses are real: a replayed EUR_USD whose price declines (or gaps at the weekend open) by a
known amount while a large trade is open, so the account's NAV at the broker (or the shadow book's,
marked at the stream's bid/ask) falls past the limit. Every test failed before its fix; the
failure each showed is in the issue's report.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.broker import MarketOrderRequest
from actors.broker.emulator import AdminClient, EmulatorOptions, running_emulator
from actors.broker.shadow.book import ShadowBook
from actors.core.domain import Price
from actors.core.timefmt import parse_time
from tests.conftest import FAST
from tests.fakebroker import InMemoryBroker
from tests.helpers import Host, host_report, poll_until, running_host, short_tmp_dir
from tests.synthetic import synthetic_candles, write_candle_files

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

NS = 1_000_000_000
BAR_NS = 15 * 60 * NS
UNITS = 1_000_000  # a large EUR_USD long: 0.001 of price is 1,000 USD
# Live mode; the host opens nothing itself (the test brings the trade); the account read every second.
QUIET = [
    *FAST,
    "feed.bar_wait_s=2",
    "risk.min_probability=0.99",
    "risk.cooldown_after_loss_s=0",
    "execution.time_exit_bars=0",
    "reconciler.poll_interval_s=1.0",
    'host.mode="live"',
]


def _eur_usd(
    directory: Path, *, first: str, last: str, offset: Callable[[int], float], gap_at: int | None = None
) -> tuple[list[str], Any]:
    """A replay file of EUR_USD: a seeded random walk at the emulator's volatility, moved by
    ``offset(bar start ns)`` (a decline), each bar opening at the previous close except the bar
    starting at ``gap_at`` (a gap at the weekend open). Returns the ``--data`` items and the frame."""
    frame = synthetic_candles(("EUR_USD",), first, last, seed=5, momentum=0.0)["EUR_USD"]
    shift = np.array([offset(int(t)) for t in frame.index])
    for side in ("open", "high", "low", "close"):
        frame[side] = frame[side] + shift
    closes = frame["close"].to_numpy()
    opens = frame["open"].to_numpy().copy()
    keep = np.array([int(t) == gap_at for t in frame.index])
    opens[1:] = np.where(keep[1:], opens[1:], closes[:-1])
    frame["open"] = opens
    frame["high"] = np.maximum(frame["high"].to_numpy(), np.maximum(opens, closes))
    frame["low"] = np.minimum(frame["low"].to_numpy(), np.minimum(opens, closes))
    frame = frame.round({"open": 5, "high": 5, "low": 5, "close": 5})
    return write_candle_files({"EUR_USD": frame}, directory), frame


def _decline(start: str, bars: int, step: float) -> Callable[[int], float]:
    """An offset that falls by ``step`` per bar for ``bars`` bars from ``start``, then stays down."""
    t0 = parse_time(start)
    return lambda ts: -step * min(bars, max(0, (ts - t0) // BAR_NS + 1))


def _close_at(frame: Any, when: str) -> float:
    """The file's close of the last bar ending at or before ``when``."""
    end = parse_time(when)
    starts = frame.index.to_numpy(dtype=np.int64)
    return float(frame["close"].to_numpy()[starts + BAR_NS <= end][-1])


def _data(items: list[str]) -> str:
    return f"broker.emulator.data={json.dumps(items)}"


def _reason(status: dict[str, Any], code: str) -> dict[str, Any]:
    return next((r for r in status["reasons"] if r["code"] == code), {})


def _latched(host: Host, code: str, timeout_s: float) -> dict[str, Any]:
    """Poll until ``code`` is among the reasons; the status then (on a timeout, the money rows too)."""
    try:
        return poll_until(
            lambda: (s := host.status()) and _reason(s, code) and s, timeout_s=timeout_s, what=f"reason {code}"
        )
    except BaseException:
        print(host_report(host))
        for kind in ("recon.day_start", "account.snapshot", "reason.raised", "reason.cleared"):
            print(kind, [row["body"] for row in host.journal(kind)][-12:])
        raise


def _market_after(url: str, when: str, timeout_s: float) -> None:
    poll_until(lambda: AdminClient(url).state()["time_ns"] >= parse_time(when), timeout_s=timeout_s, what=when)


def _adopted(host: Host, trade_id: str) -> dict[str, Any]:
    return poll_until(
        lambda: (s := host.status()) and any(p["trade_id"] == trade_id for p in s["positions"] or ()) and s,
        timeout_s=60,
        what=f"trade {trade_id} in the host's account",
    )


def _day_start_row(host: Host, boundary: str) -> dict[str, Any]:
    """The ``recon.day_start`` row of the trading day that began at ``boundary`` (journaled a moment
    after the snapshot that the status shows)."""
    return poll_until(
        lambda: next(
            (e["body"] for e in host.journal("recon.day_start") if e["body"]["boundary"].startswith(boundary)), None
        ),
        timeout_s=30,
        what=f"recon.day_start of {boundary}",
    )


def _money(text: str) -> float:
    return float(Decimal(text))


# --- 1. the shadow book's NAV is marked to market -----------------------------------------------------


def test_a_shadow_nav_with_an_open_loss_past_the_daily_limit_latches_daily_loss_limit() -> None:
    # Arrange: EUR_USD falls ~0.0096 from 15:00 on a Wednesday; a shadow run left a 1,000,000 long
    # open at 14:00 (the shadow book the host restarts with)
    work = short_tmp_dir("thmoney")
    start = "2024-03-06T14:00:00Z"
    items, frame = _eur_usd(
        work / "data", first="2024-02-26T00:00:00Z", last="2024-03-08T00:00:00Z",
        offset=_decline("2024-03-06T15:00:00Z", 12, 0.0008),
    )  # fmt: skip
    entry_mid = _close_at(frame, start)
    run_dir = work / "run"
    run_dir.mkdir(mode=0o700)
    inner = InMemoryBroker()
    book = ShadowBook(inner, run_dir / "shadow-book.db")
    half = Decimal("0.00007")
    mid = Decimal(f"{entry_mid:.5f}")
    book.on_price(
        Price(instrument="EUR_USD", ts=parse_time(start), bid=mid - half, ask=mid + half,
              closeout_bid=mid - half, closeout_ask=mid + half, tradeable=True)
    )  # fmt: skip
    book.submit_market_order(
        MarketOrderRequest(
            instrument="EUR_USD", units=Decimal(UNITS), client_id="manual-1",
            stop_loss=mid - Decimal("0.05"), take_profit=mid + Decimal("0.05"),
        )
    )  # fmt: skip
    book.close()
    shadow = [*QUIET[:-1], _data(items), f'broker.emulator.start="{start}"', "broker.emulator.speed=300"]

    # Act: the host runs on while the price falls
    with running_host(shadow, run_dir=run_dir) as host:
        url = host.status()["broker"]["api_url"]
        latched = _latched(host, "daily_loss_limit", timeout_s=150)
        _market_after(url, "2024-03-06T18:30:00Z", timeout_s=60)
        later = host.status()

    # Assert: the day started at 100,000 (the trade opened this trading day); NAV is marked at the bid
    account = latched["account"]
    assert latched["mode"] == "shadow"
    assert _money(account["day_start_nav"]) == pytest.approx(100_000.0, abs=1.0)
    assert _money(account["nav"]) <= 97_000.0 and _money(account["unrealized_pl"]) <= -3_000.0
    assert _money(later["account"]["nav"]) == pytest.approx(
        100_000.0 + (_close_at(frame, "2024-03-06T18:30:00Z") - float(mid)) * UNITS, abs=2_500.0
    )


# --- 2. day start and peak from the first account read -----------------------------------------------


def test_the_day_start_and_the_peak_are_the_first_account_read_not_the_nav_after_the_first_bar() -> None:
    # Arrange: a fresh account of 100,000 and a gate that trades the first bar's signals
    trading = [
        *QUIET,
        'broker.emulator.start="2024-03-06T14:00:00Z"',
        "broker.emulator.speed=300",
        "risk.min_probability=0.5001",
    ]

    # Act: the first bar's entries fill
    with running_host(trading) as host:
        poll_until(lambda: host.journal("exec.filled"), timeout_s=120, what="an entry")
        status = poll_until(lambda: (s := host.status())["account"] and s["account"]["open_trades"] and s, timeout_s=30)

    # Assert: the day began, and the peak stands, at the NAV before any trade
    account = status["account"]
    assert account["day_start_nav"] == "100000.0000"
    assert _money(account["peak_nav"]) >= 100_000.0
    assert _money(account["daily_pnl"]) == pytest.approx(_money(account["nav"]) - 100_000.0, abs=0.01)


# --- 3. a restart across 17:00 New York, or a lost recon-state.json, keeps the day's losses --------------


@pytest.mark.parametrize("state_file", ["kept", "lost"])
def test_a_restart_across_1700_new_york_keeps_the_losses_made_since_the_day_began(state_file: str) -> None:
    # Arrange: a broker that outlives the host; EUR_USD falls ~0.0096 in the two hours after Wednesday's
    # 17:00 New York (22:00 UTC); a 1,000,000 long is open from 16:00 New York
    work = short_tmp_dir("thmoney")
    items, frame = _eur_usd(
        work / "data", first="2024-02-26T00:00:00Z", last="2024-03-08T00:00:00Z",
        offset=_decline("2024-03-06T22:00:00Z", 12, 0.0008),
    )  # fmt: skip
    options = EmulatorOptions(start="2024-03-06T21:00:00Z", speed=60.0, heartbeat_s=1.0, data=tuple(items))
    run_dir = work / "run"
    with running_emulator(options) as (url, admin):
        host_args = [*QUIET, f'broker.api_url="{url}"']
        with running_host(host_args, run_dir=run_dir) as host:
            trade_id = admin.fault(
                "open_trade", instrument="EUR_USD", units=UNITS, stop_loss_distance="0.05", take_profit_distance="0.05"
            )["trade_id"]
            _adopted(host, trade_id)
            poll_until(lambda: host.journal("md.bar"), timeout_s=60, what="a bar before the restart")
            before = host.status()
        # The host is down across 17:00 New York while the price falls.
        admin.advance(4 * 3600 - (admin.state()["time_ns"] - parse_time("2024-03-06T21:00:00Z")) / NS)
        if state_file == "lost":
            (run_dir / "recon-state.json").unlink()

        # Act
        with running_host(host_args, run_dir=run_dir, wait=None) as again:
            latched = _latched(again, "daily_loss_limit", timeout_s=90)
            day_start = _day_start_row(again, "2024-03-06T22:00:00")

    # Assert: the day started at the NAV of 17:00 New York, before the fall
    assert before["account"]["open_trades"] == 1
    assert day_start["from"] == "broker" and day_start["trades_open_then"] == 1  # rebuilt, not the last NAV seen
    account = latched["account"]
    fall = (_close_at(frame, "2024-03-07T01:00:00Z") - _close_at(frame, "2024-03-06T22:00:00Z")) * UNITS
    assert fall < -3_000.0
    assert _money(account["daily_pnl"]) == pytest.approx(fall, abs=1_500.0)
    assert _money(account["day_start_nav"]) == pytest.approx(_money(account["nav"]) - fall, abs=1_500.0)


# --- 4. the weekend gap counts against Monday's day ----------------------------------------------------


def test_a_weekend_gap_counts_against_the_day_that_starts_at_the_sunday_open() -> None:
    # Arrange: EUR_USD reopens 0.0045 lower on Sunday 17:00 New York (22:00 UTC); a 1,000,000 long
    # is open over the weekend
    work = short_tmp_dir("thmoney")
    sunday_open = parse_time("2024-02-25T22:00:00Z")
    items, frame = _eur_usd(
        work / "data", first="2024-02-12T00:00:00Z", last="2024-02-28T00:00:00Z",
        offset=lambda ts: -0.0045 if ts >= sunday_open else 0.0, gap_at=sunday_open,
    )  # fmt: skip
    friday = [*QUIET, _data(items), 'broker.emulator.start="2024-02-23T21:30:00Z"', "broker.emulator.speed=60"]
    with running_host(friday) as host:
        url = host.status()["broker"]["api_url"]
        admin = AdminClient(url)
        trade_id = admin.fault(
            "open_trade", instrument="EUR_USD", units=UNITS, stop_loss_distance="0.05", take_profit_distance="0.05"
        )["trade_id"]
        _adopted(host, trade_id)
        _market_after(url, "2024-02-23T22:00:30Z", timeout_s=60)  # Friday 17:00 New York: closed
        friday_nav = _money(host.status()["account"]["nav"])

        # Act: the weekend passes; the market reopens with the gap
        admin.advance((parse_time("2024-02-25T22:05:00Z") - admin.state()["time_ns"]) / NS)
        latched = _latched(host, "daily_loss_limit", timeout_s=90)
        day_start = _day_start_row(host, "2024-02-25T22:00:00")

    # Assert: the day that began on Sunday 17:00 New York began at Friday's closing NAV
    assert day_start["from"] == "broker" and day_start["trades_open_then"] == 1  # rebuilt, not the last NAV seen
    gap = (_close_at(frame, "2024-02-25T22:15:00Z") - _close_at(frame, "2024-02-23T22:00:00Z")) * UNITS
    account = latched["account"]
    assert gap < -3_000.0
    assert _money(account["day_start_nav"]) == pytest.approx(friday_nav, abs=300.0)
    assert _money(account["daily_pnl"]) == pytest.approx(gap, abs=1_000.0)


# --- 5. a resume after drawdown_stop trades at the last zone's size ------------------------------------


def test_a_resume_after_the_drawdown_stop_keeps_the_peak_and_trades_at_the_last_zones_size() -> None:
    # Arrange: EUR_USD falls ~0.012 from 16:00 on a Wednesday while a 2,000,000 long is open: a loss
    # of ~24 % of 100,000, realized when the trade is closed
    work = short_tmp_dir("thmoney")
    items, _frame = _eur_usd(
        work / "data", first="2024-02-26T00:00:00Z", last="2024-03-09T00:00:00Z",
        offset=_decline("2024-03-06T16:00:00Z", 12, 0.001),
    )  # fmt: skip
    trading = [
        *QUIET,
        _data(items),
        'broker.emulator.start="2024-03-06T14:00:00Z"',
        "broker.emulator.speed=300",
        "risk.min_probability=0.5001",
    ]
    with running_host(trading) as host:
        url = host.status()["broker"]["api_url"]
        admin = AdminClient(url)
        trade_id = admin.fault(
            "open_trade", instrument="EUR_USD", units=2 * UNITS, stop_loss_distance="0.05",
            take_profit_distance="0.05",
        )["trade_id"]  # fmt: skip
        _adopted(host, trade_id)
        _market_after(url, "2024-03-06T19:15:00Z", timeout_s=90)
        admin.fault("close_trade", trade=trade_id)
        stopped = _latched(host, "drawdown_stop", timeout_s=60)
        # The next trading day (17:00 New York) lifts the daily loss limit, not the drawdown stop.
        admin.advance(4 * 3600)
        poll_until(
            lambda: [e for e in host.journal("reason.cleared") if e["body"]["code"] == "daily_loss_limit"],
            timeout_s=60,
            what="the daily loss limit lifted by the new day",
        )
        assert _reason(host.status(), "drawdown_stop")

        # Act
        resumed = host.ctl("resume")
        after = max(e["seq"] for e in host.journal())
        intents = poll_until(
            lambda: [e["body"] for e in host.journal("risk.intent") if e["seq"] > after],
            timeout_s=120,
            what="an entry after the resume",
        )
        status = host.status()

    # Assert: the peak stays where it was; entries are sized at the last zone's multiplier
    assert resumed.returncode == 0, resumed.stderr
    assert stopped["account"]["drawdown"] >= 0.15
    account = status["account"]
    assert _money(account["peak_nav"]) == pytest.approx(_money(stopped["account"]["peak_nav"]), abs=0.01)
    assert account["drawdown"] >= 0.15 and account["drawdown_resumed"] is True
    assert account["multiplier"] == 0.25
    assert {i["multiplier"] for i in intents} == {0.25}
    assert not _reason(status, "drawdown_stop")


# --- 6. a resume cannot lift the daily loss limit, and says so everywhere --------------------------------


def test_a_resume_of_the_daily_loss_limit_is_refused_until_the_next_trading_day_and_nothing_says_resolved() -> None:
    # Arrange: EUR_USD falls ~0.0096 from 15:00 on a Wednesday while a 1,000,000 long is open
    work = short_tmp_dir("thmoney")
    items, _frame = _eur_usd(
        work / "data", first="2024-02-26T00:00:00Z", last="2024-03-08T00:00:00Z",
        offset=_decline("2024-03-06T15:00:00Z", 12, 0.0008),
    )  # fmt: skip
    live = [*QUIET, _data(items), 'broker.emulator.start="2024-03-06T14:00:00Z"', "broker.emulator.speed=300"]
    with running_host(live) as host:
        url = host.status()["broker"]["api_url"]
        admin = AdminClient(url)
        trade_id = admin.fault(
            "open_trade", instrument="EUR_USD", units=UNITS, stop_loss_distance="0.05", take_profit_distance="0.05"
        )["trade_id"]
        _adopted(host, trade_id)
        _latched(host, "daily_loss_limit", timeout_s=120)

        # Act
        resumed = host.ctl("resume")
        read_at = host.status()["account"]["ts"]
        status = poll_until(
            lambda: (s := host.status())["account"]["ts"] > read_at + 2 * NS and s,
            timeout_s=30,
            what="two account reads after the resume",
        )
        journal = host.journal()

    # Assert: refused with one line that says until when; the reason stays; no recovery anywhere
    assert resumed.returncode == 1
    assert resumed.stderr.count("\n") == 1
    assert "daily_loss_limit" in resumed.stderr and "next trading day" in resumed.stderr
    reason = _reason(status, "daily_loss_limit")
    assert reason and reason["latched"]
    assert "ctl resume" in reason["detail"] and "next trading day" in reason["detail"]
    assert not [e for e in journal if e["kind"] == "alert.cleared" and e["body"].get("code") == "daily_loss_limit"]
    assert not [e for e in journal if e["kind"] == "reason.cleared" and e["body"].get("code") == "daily_loss_limit"]
    refused = [e["body"] for e in journal if e["kind"] == "operator.resume"]
    assert refused and refused[-1]["refused"] == ["daily_loss_limit"] and refused[-1]["cleared"] == []


# --- deposits and withdrawals are not profit or loss; the account's history is journaled ---------------


def test_a_withdrawal_is_not_a_loss_it_moves_the_day_start_and_the_peak_and_every_change_is_journaled() -> None:
    # Arrange: a live account of 100,000 with nothing open
    live = [*QUIET, 'broker.emulator.start="2024-03-06T14:00:00Z"', "broker.emulator.speed=60"]
    with running_host(live) as host:
        url = host.status()["broker"]["api_url"]
        poll_until(lambda: host.journal("md.bar"), timeout_s=60, what="a bar: the host has been running a while")
        read_at = host.status()["account"]["ts"]
        poll_until(lambda: host.status()["account"]["ts"] > read_at + 2 * NS, timeout_s=30, what="two reads after it")

        # Act: 5,000 (5 % of the NAV, past the 3 % daily limit and the first 5 % drawdown zone) paid out
        AdminClient(url).fault("transfer_funds", amount="-5000")
        status = poll_until(
            lambda: (s := host.status())["account"] and _money(s["account"]["nav"]) < 96_000.0 and s,
            timeout_s=30,
            what="the NAV after the withdrawal",
        )
        text = host.ctl("status").stdout
        transfers = poll_until(lambda: host.journal("account.transfer"), timeout_s=10, what="account.transfer")
        snapshots = [e["body"] for e in host.journal("account.snapshot")]

    # Assert: no daily loss, no drawdown; the peak and the day start moved down by the withdrawal
    account = status["account"]
    assert not _reason(status, "daily_loss_limit") and not account["daily_loss_hit"]
    assert _money(account["nav"]) == pytest.approx(95_000.0, abs=0.01)
    assert _money(account["day_start_nav"]) == pytest.approx(95_000.0, abs=0.01)
    assert _money(account["peak_nav"]) == pytest.approx(95_000.0, abs=0.01)
    assert _money(account["daily_pnl"]) == pytest.approx(0.0, abs=0.01)
    assert account["drawdown"] == 0.0 and account["zone"] == 0
    assert [t["body"]["amount"] for t in transfers] == ["-5000.0000"]
    # account.snapshot: one row per change, the first before the withdrawal and the last after it
    assert _money(snapshots[0]["nav"]) == pytest.approx(100_000.0) and snapshots[0]["currency"] == "USD"
    assert _money(snapshots[-1]["nav"]) == pytest.approx(95_000.0) and snapshots[-1]["day_start_nav"] == "95000.0000"
    assert all(a != b for a, b in itertools.pairwise(snapshots))
    assert {"balance", "unrealized_pl", "margin_used", "margin_available", "peak_nav", "drawdown", "zone"} <= set(
        snapshots[-1]
    )
    # ctl status shows the NAV with its currency, the day start, the peak and the drawdown in %
    line = next(x for x in text.splitlines() if x.startswith("account:"))
    assert "NAV 95000.0000 USD" in line and "day start 95000.0000" in line and "drawdown 0.00%" in line
