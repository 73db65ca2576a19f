"""A late feed catches up: the closes queued behind a slow fetch are fetched together, one candle
request per instrument (not one per instrument per bar), and every bar is published once, in order."""

from __future__ import annotations

import itertools
import time
from collections import Counter

import pytest

from actors.broker.emulator import AdminClient
from tests.conftest import FAST
from tests.helpers import poll_until, running_host

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

# A Wednesday afternoon in London on the emulator's clock, 300x real time: an M15 bar every 3 s.
WEEKDAY = '"2024-03-06T14:00:00Z"'
MARKET = [
    *FAST,
    f"broker.emulator.start={WEEKDAY}",
    "broker.emulator.speed=300",
    "feed.bar_wait_s=2",
    "broker.timeout_s=30",  # the held request below is slow, not failed
]
INSTRUMENTS = ("EUR_USD", "GBP_USD", "USD_JPY")
M15_NS = 15 * 60 * 10**9
HOLD_S = 10.0  # the held candles/latest request: three or four closes queue behind it


def test_closes_queued_behind_a_slow_fetch_are_fetched_in_one_request_per_instrument() -> None:
    with running_host(MARKET) as host:
        admin = AdminClient(host.status()["broker"]["api_url"])
        poll_until(lambda: host.journal("md.bar"), timeout_s=60, what="a first close")
        armed_ns = time.time_ns()
        admin.fault("latency", seconds=HOLD_S, count=1, path="/candles/latest")
        held = poll_until(
            lambda: [r for r in admin.requests() if r["ts_ns"] > armed_ns and r["path"].endswith("/candles/latest")],
            timeout_s=30,
            what="the held candles/latest request",
        )[0]
        # The closes that queued while it was held, and one more after them (fetched on time).
        behind = int((HOLD_S * 300) // 900)
        last_bar = poll_until(
            lambda: (
                (c := {r.body["bar_ts"] for r in host.journal_rows("md.bar") if r.ts_ns > held["ts_ns"]})
                and len(c) >= behind + 2
                and max(c)
            ),
            timeout_s=60,
            what=f"{behind + 2} closes after the held request",
        )
        caught_up_ns = max(r.ts_ns for r in host.journal_rows("md.bar") if r.body["bar_ts"] == last_bar)

        log = [r for r in admin.requests() if armed_ns < r["ts_ns"] <= caught_up_ns and r["method"] == "GET"]
        single = Counter(r["path"].split("/")[3] for r in log if r["path"].endswith("/candles"))
        # One request per instrument for all the queued bars, not one per instrument per bar.
        assert single == dict.fromkeys(INSTRUMENTS, 1), single

        rows = host.journal_rows("md.bar")
        published = Counter((r.body["instrument"], r.body["bar_ts"]) for r in rows)
        assert max(published.values()) == 1, [k for k, n in published.items() if n > 1]  # none twice
        for name in INSTRUMENTS:
            bars = [r.body["bar_ts"] for r in rows if r.body["instrument"] == name]
            assert bars == sorted(bars), name  # in order
            assert all(b - a == M15_NS for a, b in itertools.pairwise(bars)), (name, bars)  # none skipped
            assert bars[-1] >= last_bar
        assert host.journal("feed.bar_rejected") == []
