"""Market closures and bar progress in the real tree on replayed real data (2017/18).

The embedded emulator replays the recorded EURUSD hours (``tests.realdata``) at 14400x (an H1 bar
every 0.25 s, a week in 42 s) through the whole tree in shadow mode, with a model trained on the
same file before the window. Christmas 2017 and New Year 2018 fell on a Monday: the market closed
on Friday 17:00 New York and reopened on Monday 17:00 (22:00 UTC), a day later than after a normal
weekend; the file has no candle in between. The watchdog's ``bar_overdue`` deadline runs on the
market's clock: it fires against an accelerated emulator whose candles freeze, and a holiday
longer than the deadline is silence, not an alarm.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actors.broker.emulator import AdminClient
from tests.conftest import FAST
from tests.helpers import Host, poll_until, run_cli, running_host, short_tmp_dir
from tests.markettime import utc
from tests.realdata import eurusd_h1_file

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

HOUR_NS = 3600 * 10**9


@pytest.fixture(scope="module")
def eurusd() -> tuple[Path, Path]:
    """The recorded EURUSD hours as a candle file, and an H1 EUR_USD model trained before 2017-12-20."""
    work = short_tmp_dir("thhol")
    data = eurusd_h1_file(work / "data")
    res = run_cli(
        "train", "--data", f"EUR_USD={data}", "--granularity", "H1", "--to", "2017-12-20",
        "--out", str(work / "model"), "--seed", "1",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return data, work / "model"


def _replay(data: Path, model: Path, start: str, *extra: str) -> list[str]:
    return [
        *FAST,
        f"broker.emulator.data=[{json.dumps(f'EUR_USD={data}')}]",
        f"broker.emulator.start={json.dumps(start)}",
        "broker.emulator.speed=14400",
        "broker.emulator.heartbeat_s=1",
        'feed.granularity="H1"',
        'feed.instruments=["EUR_USD"]',
        f"model.dir={json.dumps(str(model))}",
        *extra,
    ]


def _data_hours(data: Path, first: int, last: int) -> list[int]:
    """The candle starts of the file in [first, last]."""
    from actors.core.timefmt import parse_time

    lines = data.read_text(encoding="utf-8").splitlines()[1:]
    starts = (parse_time(line.split(",", 1)[0]) for line in lines)
    return [ts for ts in starts if first <= ts <= last]


def _bar_times(host: Host) -> list[int]:
    return sorted({e["body"]["bar_ts"] for e in host.journal("md.bar")})


def _markets(host: Host) -> list[dict[str, Any]]:
    return [e["body"] for e in host.journal("feed.market")]


def test_bars_resume_after_christmas_and_new_year_at_the_reopening_and_none_is_missed(
    eurusd: tuple[Path, Path],
) -> None:
    data, model = eurusd
    overrides = [o.replace("speed=14400", "speed=28800") for o in _replay(data, model, "2017-12-21T00:00:00Z")]
    with running_host(overrides) as host:
        # Act: run until the replay is past New Year (Wednesday 2018-01-03 00:00 UTC).
        poll_until(
            lambda: (b := _bar_times(host)) and b[-1] >= utc("2018-01-03T00:00"),
            timeout_s=200,
            what="bars past 2018-01-03",
        )
        bars = _bar_times(host)
        markets = _markets(host)
        rejected = host.journal("feed.bar_rejected")
        states = [e["body"]["to"] for e in host.journal("state.changed")]

    # Assert: every hour the file has from the first bar on is published, none besides.
    assert bars == _data_hours(data, bars[0], bars[-1])
    after_christmas = min(ts for ts in bars if ts > utc("2017-12-22T21:00"))
    after_new_year = min(ts for ts in bars if ts > utc("2017-12-29T21:00"))
    assert (after_christmas, after_new_year) == (utc("2017-12-25T22:00"), utc("2018-01-01T22:00"))
    assert rejected == []
    # The feed says the truth about each closure: the weekend from Friday 17:00 New York, the
    # holiday from Sunday 17:00, open again on Monday 17:00 New York (22:00 UTC), never a day early.
    for friday, sunday, monday in (
        (utc("2017-12-22T22:00"), utc("2017-12-24T22:00"), utc("2017-12-25T22:00")),
        (utc("2017-12-29T22:00"), utc("2017-12-31T22:00"), utc("2018-01-01T22:00")),
    ):
        seen = [m for m in markets if friday <= m["since_ns"] < monday + HOUR_NS]
        assert [(m["open"], m["why"], m["next_open_ns"]) for m in seen] == [
            (False, "weekend", monday),
            (False, "holiday", monday),
            (True, None, None),
        ], seen
        assert [m["since_ns"] for m in seen[:2]] == [friday, sunday]
        assert monday <= seen[2]["since_ns"] < monday + HOUR_NS  # the first price, or the heartbeat after 22:00
    assert "NO_TRADE" not in states  # a holiday is expected silence, not an alarm


def _overdue(host: Host) -> list[dict[str, Any]]:
    """The watchdog's bar_overdue verdict changes (breach and back)."""
    return [e["body"] for e in host.journal("watchdog.check") if e["body"]["code"] == "bar_overdue:EUR_USD"]


def test_frozen_candles_on_an_accelerated_emulator_raise_bar_overdue_within_the_market_week(
    eurusd: tuple[Path, Path],
) -> None:
    # A Monday at 14400x: a week passes in 42 s of wall time, so a deadline in wall seconds would
    # start over at every weekend's reopening; the deadline in market time is 1 h + 14400 x 11 s.
    data, model = eurusd
    with running_host(_replay(data, model, "2018-01-08T00:00:00Z", "feed.bar_wait_s=1")) as host:
        admin = AdminClient(host.status()["broker"]["api_url"])
        poll_until(lambda: _bar_times(host), timeout_s=60, what="a first bar")
        admin.fault("freeze_candles")
        frozen_ns = admin.state()["time_ns"]

        # Act: candles stand still while prices flow.
        status = poll_until(
            lambda: (s := host.status()) and "bar_overdue:EUR_USD" in {r["code"] for r in s["reasons"]} and s,
            timeout_s=90,
            what="bar_overdue:EUR_USD",
        )
        raised_ns = admin.state()["time_ns"]
        breach = _overdue(host)[0]
        last_bar = max(_bar_times(host))
        missing = [e for e in host.journal("feed.bar_rejected") if e["body"]["reason"] == "missing"]
        admin.fault("unfreeze_candles")
        host.wait_state("TRADING", timeout_s=60)  # transient: the bars come again, the reason clears

    # Assert: raised in the week the candles froze, after granularity + the market-time grace.
    assert status["state"] == "NO_TRADE"
    assert last_bar < frozen_ns < raised_ns < utc("2018-01-12T22:00")  # before Friday's close
    assert raised_ns - last_bar > (3600 + 14400 * 11) * 10**9
    assert breach["verdict"] == "breach" and "of market time while its market is open" in breach["detail"]
    assert missing, "the feed journals the bars the broker had prices for but no candle"


def test_a_holiday_longer_than_the_bar_deadline_raises_no_bar_overdue(eurusd: tuple[Path, Path]) -> None:
    # 6000x with feed.bar_wait_s = 1: bar_overdue is due 1 h + 6000 x 11 s = 19.3 h of open market
    # after the last bar, less than the 24 hours of Christmas (Sunday 22:00 to Monday 22:00 UTC): a
    # watchdog that counted the holiday as open market would breach from Monday 17:20 until the
    # first bar after the reopening (Monday 23:00), 5.7 market hours (3.4 s) to see it in.
    data, model = eurusd
    overrides = _replay(data, model, "2017-12-22T12:00:00Z", "feed.bar_wait_s=1")
    overrides = [o.replace("speed=14400", "speed=6000") for o in overrides]
    with running_host(overrides) as host:
        poll_until(
            lambda: (b := _bar_times(host)) and b[-1] >= utc("2017-12-26T04:00"),
            timeout_s=150,
            what="bars past Tuesday 2017-12-26 04:00",
        )
        checks = _overdue(host)
        states = [e["body"]["to"] for e in host.journal("state.changed")]
        holiday = [m for m in _markets(host) if m["why"] == "holiday"]

    assert checks == []
    assert "NO_TRADE" not in states
    assert [m["since_ns"] for m in holiday] == [utc("2017-12-24T22:00")]
