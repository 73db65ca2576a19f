"""Market data and models in the real tree: bars on the market's clock, faults, the model role."""

from __future__ import annotations

import itertools
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from actors.broker.emulator import AdminClient
from tests.conftest import FAST
from tests.helpers import Host, poll_until, run_cli, running_host, short_tmp_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

# A Wednesday morning in New York on the emulator's clock, 300x real time: an M15 bar every 3 s.
WEEKDAY = '"2024-03-06T14:00:00Z"'
MARKET = [*FAST, f"broker.emulator.start={WEEKDAY}", "broker.emulator.speed=300", "feed.bar_wait_s=2"]
INSTRUMENTS = ("EUR_USD", "GBP_USD", "USD_JPY")


def _admin(host: Host) -> AdminClient:
    return AdminClient(host.status()["broker"]["api_url"])


def _bars(host: Host) -> list[dict[str, Any]]:
    return host.journal("md.bar")


def _closes(host: Host) -> list[int]:
    return sorted({e["body"]["bar_ts"] for e in _bars(host)})


def _wait_closes(host: Host, n: int, timeout_s: float = 60) -> list[int]:
    return poll_until(lambda: (c := _closes(host)) and len(c) >= n and c, timeout_s=timeout_s, what=f"{n} closes")


def _journal_with_corr(host: Host, kind: str) -> list[dict[str, Any]]:
    import sqlite3

    db = sqlite3.connect(f"file:{host.run_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT seq, corr, body FROM journal WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
    finally:
        db.close()
    return [{"seq": s, "corr": c, "body": json.loads(b)} for s, c, b in rows]


def test_bars_close_on_the_market_clock_and_every_bar_is_predicted_under_its_bar_id() -> None:
    with running_host(MARKET) as host:
        closes = _wait_closes(host, 3)
        poll_until(lambda: len(_journal_with_corr(host, "model.signal")) >= 6, timeout_s=30)

        # Aligned M15 closes, consecutive, every instrument validated and published.
        assert all(ts % (15 * 60 * 10**9) == 0 for ts in closes)
        assert all(b - a == 15 * 60 * 10**9 for a, b in itertools.pairwise(closes))
        bars = _journal_with_corr(host, "md.bar")
        assert {b["body"]["instrument"] for b in bars} == set(INSTRUMENTS)
        assert host.journal("feed.bar_rejected") == []
        # Every signal carries the corr of the bar it was computed for.
        bar_ids = {b["corr"] for b in bars}
        signals = _journal_with_corr(host, "model.signal")
        assert all(s["corr"] in bar_ids for s in signals)
        assert all(s["corr"] == f"bar-{s['body']['instrument']}-M15-{s['body']['bar_ts']}" for s in signals)
        assert all(0.0 <= s["body"]["p_up"] <= 1.0 for s in signals)
        status = host.status()
        assert status["model"]["state"] == "loaded" and status["model"]["predictions"] >= 6
        assert {m["instrument"]: m["open"] for m in status["market"]["instruments"]} == dict.fromkeys(INSTRUMENTS, True)
        assert host.journal("model.loaded")[0]["body"]["history"] == dict.fromkeys(INSTRUMENTS, 109)


def _candle_requests(admin: AdminClient, after_ns: int) -> tuple[int, int]:
    # (candles/latest requests, per-instrument candle requests) the emulator logged after ``after_ns``.
    log = [e for e in admin.requests() if e["method"] == "GET" and e["ts_ns"] > after_ns]
    latest = sum(1 for e in log if str(e["path"]).endswith("/candles/latest"))
    paths = [str(e["path"]) for e in log]
    single = sum(1 for p in paths if p.startswith("/v3/instruments/") and p.endswith("/candles"))
    return latest, single


def test_each_close_is_fetched_in_one_candles_latest_request_for_every_instrument() -> None:
    with running_host(MARKET) as host:
        admin = _admin(host)
        _wait_closes(host, 2)
        since = max(r.ts_ns for r in host.journal_rows("md.bar"))
        closes = _wait_closes(host, 5)

        latest, single = _candle_requests(admin, since)
        # Three closes after ``since``: one request each (a retry when a candle is still closing),
        # and none per instrument.
        assert 3 <= latest <= 3 * 3, (latest, single)
        assert single == 0, (latest, single)
        bars = _journal_with_corr(host, "md.bar")
        for ts in closes[1:]:
            assert {b["body"]["instrument"] for b in bars if b["body"]["bar_ts"] == ts} == set(INSTRUMENTS)
        assert host.journal("feed.bar_rejected") == []


def test_a_broker_without_candles_latest_is_asked_per_instrument_and_never_again() -> None:
    with running_host(MARKET) as host:
        admin = _admin(host)
        admin.fault("http_error", status=404, path="/candles/latest", count=1000)
        _wait_closes(host, 1)
        since = max(r.ts_ns for r in host.journal_rows("md.bar"))
        closes = _wait_closes(host, 4)

        latest, single = _candle_requests(admin, since)
        assert latest == 0, (latest, single)  # the one 404 (before ``since``) was enough
        assert single >= 3 * len(INSTRUMENTS), (latest, single)
        bars = _journal_with_corr(host, "md.bar")
        for ts in closes[1:]:
            assert {b["body"]["instrument"] for b in bars if b["body"]["bar_ts"] == ts} == set(INSTRUMENTS)
        assert host.journal("feed.bar_rejected") == []


def test_a_frozen_candle_is_skipped_after_the_wait_and_the_next_bars_are_fine() -> None:
    with running_host(MARKET) as host:
        admin = _admin(host)
        _wait_closes(host, 1)
        admin.fault("freeze_candles")
        missing = poll_until(
            lambda: [e for e in host.journal("feed.bar_rejected") if e["body"]["reason"] == "missing"], timeout_s=60
        )
        admin.fault("unfreeze_candles")
        after = missing[-1]["body"]["bar_ts"]
        poll_until(lambda: [ts for ts in _closes(host) if ts > after], timeout_s=60, what="a bar after the freeze")
        assert "within 2s although the broker had prices" in missing[0]["body"]["detail"]
        assert host.status()["state"] == "TRADING"  # a skipped bar is journaled, not an outage


@pytest.mark.parametrize(
    ("kind", "reason"),
    # absurd (every price 1e300): the broker layer refuses the answer as malformed, so no candle
    # comes (as for OANDA's); a price the wire carries but no market has is out_of_range (unit tests).
    [("spike", "spike"), ("crossed", "ohlc_inconsistent"), ("jump", "jump"), ("absurd", "missing")],
)
def test_a_bad_tick_in_a_candle_is_rejected_with_its_reason_and_the_others_go_out(kind: str, reason: str) -> None:
    with running_host(MARKET) as host:
        _wait_closes(host, 1)
        _admin(host).fault("bad_candle", instrument="GBP_USD", kind=kind)
        rejected = poll_until(lambda: host.journal("feed.bar_rejected"), timeout_s=60)
        body = rejected[0]["body"]
        assert (body["instrument"], body["reason"]) == ("GBP_USD", reason)
        if reason == "missing":
            assert "malformed broker answer" in body["detail"], body
        else:
            assert body["candle"]["ts"] == body["bar_ts"]
        bad_ts = body["bar_ts"]
        published = {e["body"]["instrument"] for e in _bars(host) if e["body"]["bar_ts"] == bad_ts}
        assert published == {"EUR_USD", "USD_JPY"}


def test_a_stalled_stream_goes_stale_reconnects_and_the_bars_resume() -> None:
    with running_host([*MARKET, "feed.stale_after_s=2", "broker.stream_timeout_s=6"]) as host:
        _wait_closes(host, 1)
        _admin(host).fault("stream", action="stall", seconds=4)
        poll_until(lambda: host.journal("feed.stream_stale"), timeout_s=30)
        stalled_at = host.journal("feed.stream_stale")[0]["seq"]
        poll_until(
            lambda: [e for e in host.journal("md.bar") if e["seq"] > stalled_at], timeout_s=60, what="bars after"
        )
        host.wait_state("TRADING", timeout_s=30)


def test_a_halted_market_is_not_an_alarm_and_leaves_no_false_gap() -> None:
    with running_host(MARKET) as host:
        admin = _admin(host)
        _wait_closes(host, 1)
        admin.fault("halt")
        halted = poll_until(
            lambda: [e for e in host.journal("feed.market") if e["body"]["why"] == "halted"], timeout_s=30
        )
        admin.fault("resume")
        poll_until(lambda: [e for e in host.journal("md.bar") if e["seq"] > halted[-1]["seq"]], timeout_s=60)
        assert host.journal("feed.bar_rejected") == []  # no prices during the halt: no gap
        assert host.status()["state"] == "TRADING"


def test_a_weekend_passes_in_silence_and_trading_resumes_at_the_open() -> None:
    # Friday 16:40 New York (EST: 21:40 UTC), at 300x as MARKET (the close 4 s later); jump over the
    # weekend with the admin API.
    friday = '"2024-03-08T21:40:00Z"'
    with running_host(
        [*FAST, f"broker.emulator.start={friday}", "broker.emulator.speed=300", "feed.bar_wait_s=2"]
    ) as host:
        admin = _admin(host)
        poll_until(lambda: [e for e in host.journal("feed.market") if e["body"]["why"] == "weekend"], timeout_s=60)
        admin.advance(48 * 3600 + 30 * 60)  # to Sunday 17:10 New York (EDT since 02:00: 21:10 UTC)
        reopened = poll_until(
            lambda: [e for e in host.journal("feed.market") if e["body"]["open"] and e["seq"] > 0], timeout_s=60
        )
        poll_until(lambda: [e for e in _bars(host) if e["body"]["bar_ts"] > reopened[0]["body"]["since_ns"]], 60)
        assert host.journal("feed.bar_rejected") == []
        assert host.journal("feed.stream_down") == []
        states = [e["body"]["to"] for e in host.journal("state.changed")]
        assert "NO_TRADE" not in states  # the weekend is expected silence, not an alarm


def test_a_missing_model_latches_model_missing_and_the_host_runs_on_without_signals() -> None:
    with running_host([*MARKET, 'model.dir="/nonexistent/model"'], wait="NO_TRADE") as host:
        status = poll_until(lambda: (s := host.status())["model"] and s, timeout_s=30)
        reason = next(r for r in status["reasons"] if r["code"] == "model_missing")
        assert reason["latched"] and "/nonexistent/model" in reason["detail"]
        assert status["model"]["state"] == "missing"
        _wait_closes(host, 1)  # bars go on
        assert host.journal("model.signal") == []


def test_a_model_of_another_granularity_is_refused_as_a_mismatch() -> None:
    out = short_tmp_dir() / "m5"
    res = run_cli("train", "--granularity", "M5", "--bars", "1500", "--out", str(out))
    assert res.returncode == 0, res.stderr
    with running_host([*MARKET, f"model.dir={json.dumps(str(out))}"], wait="NO_TRADE") as host:
        status = poll_until(lambda: (s := host.status())["model"] and s["model"]["state"] != "loading" and s, 30)
        assert status["model"]["state"] == "mismatch"
        reason = next(r for r in status["reasons"] if r["code"] == "model_mismatch")
        assert "M5" in reason["detail"] and reason["latched"]


def test_kill_9_of_the_model_mid_stream_is_warm_again_at_once_and_predicts_the_next_bar() -> None:
    with running_host(MARKET) as host:
        poll_until(lambda: host.journal("model.signal"), timeout_s=60)
        old = host.status()["actors"]["model"]["pid"]
        os.kill(old, signal.SIGKILL)
        loaded = poll_until(lambda: (e := host.journal("model.loaded")) and len(e) >= 2 and e, timeout_s=60)
        assert loaded[-1]["body"]["history"] == dict.fromkeys(INSTRUMENTS, 109)  # the whole window at once
        restarted_at = loaded[-1]["seq"]
        signals = poll_until(lambda: [e for e in host.journal("model.signal") if e["seq"] > restarted_at], timeout_s=60)
        # The first close after the restart is predicted: no waiting for 109 new bars.
        first_close_after = min(e["body"]["bar_ts"] for e in _bars(host) if e["seq"] > restarted_at)
        assert signals[0]["body"]["bar_ts"] == first_close_after


def test_nan_features_skip_that_instrument_with_its_context_and_the_others_go_on(tmp_path: Path) -> None:
    # EUR_USD replays a file that starts just before the emulator's start: its window is far shorter
    # than the features' lookback, so its features are NaN (warm-up) while the others predict.
    start_s = 1_709_733_600  # 2024-03-06T14:00:00Z
    lines = ["time,open,high,low,close,volume"]
    price = 1.0850
    for i in range(-20, 400):
        t = start_s + i * 900
        lines.append(f"{t},{price:.5f},{price + 0.0008:.5f},{price - 0.0007:.5f},{price + 0.0001:.5f},100")
        price += 0.0001 if i % 3 else -0.0002
    data = tmp_path / "EUR_USD_M15.csv"
    data.write_text("\n".join(lines) + "\n")
    overrides = [*MARKET, f"broker.emulator.data=[{json.dumps('EUR_USD=' + str(data))}]"]
    with running_host(overrides) as host:
        skipped = poll_until(lambda: host.journal("model.skipped"), timeout_s=60)
        body = skipped[0]["body"]
        assert body["instrument"] == "EUR_USD"
        assert body["reason"].startswith("non-finite features:")
        assert set(body["features"]) and body["model_version"]
        poll_until(
            lambda: {e["body"]["instrument"] for e in host.journal("model.signal")} >= {"GBP_USD", "USD_JPY"},
            timeout_s=60,
        )
        poll_until(lambda: host.status()["model"]["skipped"] >= 1, timeout_s=10)
