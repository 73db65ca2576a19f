"""The emulator's market: determinism, candles agreeing with the stream, weekends, replay."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal

import numpy as np
import pytest

from actors.broker import MarketOrderRequest
from actors.broker.emulator.app import Emulator, EmulatorOptions
from actors.broker.emulator.candles import CandleQuery
from actors.broker.emulator.path import HOUR_S
from actors.core.timefmt import NS, parse_time
from tests.integration.emulator.conftest import START, make_broker

pytestmark = pytest.mark.integration


def _emulator(**kw) -> Emulator:
    options = {"start": START, "seed": 3, **kw}
    return Emulator(EmulatorOptions(**options))


def _candles(emu: Emulator, granularity: str, count: int, price: str = "M") -> list[dict]:
    q = CandleQuery(instrument="EUR_USD", granularity=granularity, count=count, price=price)
    return emu.candles.query(q, now_ns=emu.clock.now_ns())["candles"]


def test_the_same_seed_gives_the_same_price_path_and_another_seed_does_not():
    a, b, c = _emulator(), _emulator(), _emulator(seed=4)
    try:
        assert [x["mid"] for x in _candles(a, "M1", 300)] == [x["mid"] for x in _candles(b, "M1", 300)]
        assert [x["mid"] for x in _candles(a, "M1", 300)] != [x["mid"] for x in _candles(c, "M1", 300)]
        assert [x["mid"] for x in _candles(a, "H1", 48)] == [x["mid"] for x in _candles(b, "H1", 48)]
    finally:
        for emu in (a, b, c):
            emu.stop()


def test_the_same_seed_gives_the_same_fills(emu_factory):
    fills = []
    for _ in range(2):
        emu = emu_factory(seed=11, speed=1e-6)
        broker = make_broker(emu)
        try:
            result = broker.submit_market_order(
                MarketOrderRequest(instrument="EUR_USD", units=Decimal(1000), client_id="det-1")
            )
            fills.append((result.fill_price, result.trade_id))
        finally:
            broker.close()
    assert fills[0] == fills[1]


def test_candles_of_every_granularity_agree_with_the_ticks():
    emu = _emulator()
    try:
        s5 = _candles(emu, "S5", 720, "MBA")
        m1 = _candles(emu, "M1", 60, "MBA")
        first_m1 = m1[0]["time"].ns
        inside = [c for c in s5 if first_m1 <= c["time"].ns < first_m1 + 60 * NS]
        assert inside[0]["bid"]["o"] == m1[0]["bid"]["o"]
        assert inside[-1]["ask"]["c"] == m1[0]["ask"]["c"]
        assert max(Decimal(c["mid"]["h"]) for c in inside) == Decimal(m1[0]["mid"]["h"])
        assert sum(c["volume"] for c in inside) == m1[0]["volume"]
        for candle in s5[-50:]:
            last_second = min(candle["time"].ns // NS + 4, emu.market.candle_cutoff_s())
            quote = emu.market.quote("EUR_USD", last_second)
            assert f"{quote.bid:.5f}" == candle["bid"]["c"]
            assert f"{quote.ask:.5f}" == candle["ask"]["c"]
        h1 = _candles(emu, "H1", 3)
        h4 = _candles(emu, "H4", 2)
        assert all(Decimal(c["mid"]["h"]) >= Decimal(c["mid"]["l"]) for c in h1 + h4)
    finally:
        emu.stop()


def test_weekend_is_closed_with_no_candles_and_a_gap_at_the_open():
    emu = _emulator(start="2024-03-10T12:00:00Z")  # Sunday, before the 17:00 New York open
    try:
        now = emu.market.now_s()
        assert not emu.market.quote("EUR_USD").tradeable
        h1 = _candles(emu, "H1", 30)
        last = h1[-1]["time"].ns // NS
        assert now - last > 36 * HOUR_S  # nothing since Friday's close
        friday_close = Decimal(h1[-1]["mid"]["c"])
        emu.clock.advance(10 * HOUR_S)  # past Sunday 17:00 New York (21:00 UTC in DST)
        opened = _candles(emu, "M1", 5)
        assert emu.market.quote("EUR_USD").tradeable
        assert Decimal(opened[0]["mid"]["o"]) != friday_close
    finally:
        emu.stop()


def test_replay_of_a_candle_file(tmp_path):
    path = tmp_path / "EUR_USD_M1.csv"
    rows = ["time,open,high,low,close,volume"]
    start = parse_time("2024-03-06T10:00:00Z") // NS
    price = Decimal("1.10000")
    for i in range(240):
        o = price
        c = o + Decimal("0.00010") * (1 if i % 3 else -1)
        rows.append(f"{start + 60 * i},{o},{max(o, c) + Decimal('0.00005')},{min(o, c) - Decimal('0.00005')},{c},10")
        price = c
    path.write_text("\n".join(rows) + "\n")
    emu = Emulator(EmulatorOptions(data=(str(path),), start="2024-03-06T13:00:00Z"))
    try:
        m1 = _candles(emu, "M1", 30)
        assert len(m1) == 30
        assert m1[-1]["complete"] is False  # the 13:00 candle has only just begun
        expected = rows[1 + 151 : 1 + 180]
        for candle, row in zip(m1[:-1], expected, strict=True):
            _, o, h, lo, c, _ = row.split(",")
            assert (candle["mid"]["o"], candle["mid"]["h"], candle["mid"]["l"], candle["mid"]["c"]) == (o, h, lo, c)
    finally:
        emu.stop()


def test_a_replayed_candle_walks_open_nearer_extreme_other_extreme_close_in_small_steps(tmp_path):
    # An H1 candle whose high is nearer its open: the path holds the open, climbs to the high, falls
    # to the low and comes back to the close, never more than a sixth of a leg per tick, so a stop
    # between the open and the low fills about at its level (a four-tick path jumped to the low).
    path = tmp_path / "EUR_USD_H1.csv"
    start = parse_time("2024-03-06T10:00:00Z") // NS
    path.write_text(
        "time,open,high,low,close,volume\n"
        f"{start},1.10000,1.10300,1.09100,1.09500,10\n{start + 3600},1.09500,1.09600,1.09400,1.09550,10\n"
    )
    emu = Emulator(EmulatorOptions(data=(str(path),), start="2024-03-06T12:00:00Z"))
    try:
        ticks = emu.market.ticks("EUR_USD", start, start + 3599)
        mids = [round((b + a) / 2, 5) for b, a in zip(ticks.bids, ticks.asks, strict=True)]
        assert mids[0] == 1.10000 and ticks.seconds[1] - start >= 1200  # the open holds a third
        top, bottom = mids.index(1.10300), mids.index(1.09100)
        assert 0 < top < bottom < len(mids) - 1 and mids[-1] == 1.09500
        assert max(abs(b - a) for a, b in itertools.pairwise(mids)) <= (1.10300 - 1.09100) / 6 + 1e-9
        m1h = _candles(emu, "H1", 3)
        assert (m1h[0]["mid"]["o"], m1h[0]["mid"]["h"], m1h[0]["mid"]["l"], m1h[0]["mid"]["c"]) == (
            "1.10000", "1.10300", "1.09100", "1.09500",
        )  # fmt: skip
    finally:
        emu.stop()


@pytest.mark.parametrize("granularity", ["H2", "H4", "H6", "H8", "H12", "D"])
def test_day_aligned_candles_start_at_the_1700_new_york_grid_as_oanda_serves_them(broker, granularity):
    # OANDA aligns H2 to D on 17:00 New York (dailyAlignment=17); the host's bar clock expects it.
    from datetime import datetime
    from zoneinfo import ZoneInfo

    candles = broker.candles("EUR_USD", granularity, count=12)
    step_h = {"H2": 2, "H4": 4, "H6": 6, "H8": 8, "H12": 12, "D": 24}[granularity]
    assert len(candles) >= 3
    for candle in candles:
        local = datetime.fromtimestamp(candle.ts / NS, tz=ZoneInfo("America/New_York"))
        assert (local.minute, local.second) == (0, 0)
        assert (local.hour - 17) % step_h == 0, (granularity, local)


def test_a_fast_replayed_stream_sends_every_instruments_close_before_anything_past_the_bar(tmp_path):
    # At 14400x a wall poll spans minutes of market time, and every clock read in it is later than
    # the one before. When each instrument's quote (and the heartbeat) read the clock on its own,
    # one instrument's price or a heartbeat could cross a bar boundary before another instrument's
    # closing tick was sent: the host's bar clock closed the bar and priced that instrument's decision
    # at a tick before its close (a backtest decides at the close). The market clock here steps 3 s
    # at every read, deterministically, whatever the machine's load.
    from actors.broker.emulator.streams import StreamClosedError, serve_pricing

    names = ("EUR_USD", "GBP_USD", "USD_JPY")
    start = parse_time("2024-03-06T00:00:00Z") // NS
    rng = np.random.default_rng(5)
    paths = []
    for name in names:
        price, rows = (150.0 if name.endswith("JPY") else 1.1), ["time,open,high,low,close,volume"]
        scale = price * 0.002
        for i in range(12):
            o, c = price, price + float(rng.normal(0, scale))
            h, lo = max(o, c) + abs(float(rng.normal(0, scale))), min(o, c) - abs(float(rng.normal(0, scale)))
            rows.append(f"{start + 3600 * i},{o:.5f},{h:.5f},{lo:.5f},{c:.5f},100")
            price = float(f"{c:.5f}")
        path = tmp_path / f"{name}_H1.csv"
        path.write_text("\n".join(rows) + "\n")
        paths.append(str(path))
    emu = Emulator(
        EmulatorOptions(
            data=tuple(paths), start="2024-03-06T00:30:00Z", speed=14400.0, stream_poll_s=0.0, heartbeat_s=0.001
        )
    )
    clock = emu.clock
    reads = itertools.count()
    step_ns = 3 * NS // 14400  # of the wall clock: 3 market seconds
    clock._mono = lambda: clock._mono0 + next(reads) * step_ns  # a market that runs ahead of the poll
    end_ns = (start + 10 * HOUR_S) * NS
    items: list[tuple[int, str]] = []

    class Writer:
        def write_chunk(self, data: bytes) -> None:
            obj = json.loads(data)
            items.append((int(Decimal(obj["time"]) * NS), obj.get("instrument", "")))
            if items[-1][0] > end_ns:
                raise OSError("enough")

        def end_chunks(self) -> None:
            raise StreamClosedError

    try:
        serve_pricing(emu, Writer(), list(names), snapshot=False, unix=True)  # type: ignore[arg-type]
        closes = {(name, h): emu.market.quote(name, start + (h + 1) * HOUR_S - 1) for name in names for h in range(9)}
    finally:
        emu.stop()

    late = []
    for h in range(1, 10):
        boundary = (start + h * HOUR_S) * NS
        crossing = next(i for i, (ts, _) in enumerate(items) if ts >= boundary)
        for name in names:
            last = max((ts for ts, n in items[:crossing] if n == name), default=0) // NS
            if last != closes[(name, h - 1)].tick_s:
                late.append((h, name, last - boundary // NS))
    assert late == []
