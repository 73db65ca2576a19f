"""The feed's tick path (issue 14, defect 4): what it publishes, journals, counts and reports.

The pure rules are ``tests/unit/actors/test_ticks.py``; here the real ``FeedActor`` gets stream
items the way its stream worker hands them over, with EUR_USD M15 history (ATR about 8 pips) from
an in-memory broker and a manual clock, and the test reads what it published, journaled and sent
to the supervisor.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pykka
import pytest

from actors.core.config import FeedConfig
from actors.core.domain import OHLC, Candle, Price, PriceHeartbeat
from actors.roles.feed import FeedActor, _StreamItem
from actors.runtime.actor import HeartbeatDue
from actors.runtime.messages import TOPIC_MD_TICK, BrokerHealth, MarketReport, PriceTick
from tests.fakebroker import InMemoryBroker
from tests.fakes import ManualClock, RecordingRuntime
from tests.helpers import poll_until

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

NS = 1_000_000_000
STEP = 900 * NS
BARS = 40
T0 = 1_709_683_200 * NS  # 2024-03-06T00:00:00Z
NOW = T0 + BARS * STEP  # the stream's time: just after the last bar


class StreamlessBroker(InMemoryBroker):
    """An in-memory broker whose price stream stays open and silent (the test hands the feed its
    items directly, as the stream worker would)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed_stream = threading.Event()

    def pricing_stream(self, instruments: Sequence[str], *, snapshot: bool = True) -> Iterator[Any]:
        self.closed_stream.wait()
        return iter(())


def _history() -> list[Candle]:
    rng = np.random.default_rng(3)
    price, q, out = 1.0850, Decimal("0.00001"), []
    for i in range(BARS):
        o, c = price, price + float(rng.normal(0, 0.0006))
        h, lo = max(o, c) + abs(float(rng.normal(0, 0.0003))), min(o, c) - abs(float(rng.normal(0, 0.0003)))

        def side(shift: float, o: float = o, h: float = h, lo: float = lo, c: float = c) -> OHLC:
            o_, h_, l_, c_ = (Decimal(v + shift).quantize(q) for v in (o, h, lo, c))
            return OHLC(o=o_, h=h_, l=l_, c=c_)

        out.append(Candle(ts=T0 + i * STEP, volume=100, complete=True, bid=side(-0.00006), ask=side(0.00006)))
        price = c
    return out


@pytest.fixture
def feed() -> Iterator[tuple[pykka.ActorRef[FeedActor], RecordingRuntime, ManualClock]]:
    broker = StreamlessBroker()
    broker.candle_data[("EUR_USD", "M15")] = _history()
    clock = ManualClock(wall_ns=NOW, mono_s=500.0)
    runtime = RecordingRuntime(
        role="feed",
        role_config=FeedConfig(instruments=("EUR_USD",), stale_after_s=10.0),
        broker=broker,
        clock=clock,
    )
    ref = FeedActor.start(runtime)
    poll_until(lambda: _journal(runtime, "history.loaded"), timeout_s=10, what="the feed's history")
    try:
        yield ref, runtime, clock
    finally:
        broker.closed_stream.set()
        with contextlib.suppress(pykka.ActorDeadError):
            ref.stop()


def _journal(runtime: RecordingRuntime, kind: str) -> list[dict[str, Any]]:
    return [body for k, body, _ in list(runtime.journaled) if k == kind]


def _ticks(runtime: RecordingRuntime) -> list[PriceTick]:
    return [b for t, b, _ in list(runtime.published) if t.startswith(TOPIC_MD_TICK) and isinstance(b, PriceTick)]


def _price(bid: str, ask: str, ts: int) -> Price:
    return Price(
        instrument="EUR_USD",
        ts=ts,
        bid=Decimal(bid),
        ask=Decimal(ask),
        closeout_bid=Decimal(bid),
        closeout_ask=Decimal(ask),
        tradeable=True,
    )


def _feed(ref: pykka.ActorRef[FeedActor], *items: Price | PriceHeartbeat) -> None:
    for item in items:
        ref.tell(_StreamItem(item))
    ref.ask(HeartbeatDue(), timeout=5)  # handled after the items: the actor is through them


def _last(runtime: RecordingRuntime, kind: type) -> Any:
    return [b for b in list(runtime.sent) if isinstance(b, kind)][-1]


def test_a_spike_is_not_published_journaled_once_and_counted_and_good_prices_go_on(feed) -> None:
    ref, runtime, _clock = feed
    last_close = _history()[-1]
    assert last_close.bid is not None
    good = str(last_close.bid.c), str(last_close.bid.c + Decimal("0.00012"))

    _feed(ref, PriceHeartbeat(ts=NOW), _price(*good, NOW + NS))
    _feed(ref, _price("1.13920", "1.13932", NOW + 2 * NS), _price("1.13925", "1.13937", NOW + 3 * NS))
    _feed(ref, _price(*good, NOW + 4 * NS))

    assert [t.ts for t in _ticks(runtime)] == [NOW + NS, NOW + 4 * NS]
    rows = _journal(runtime, "feed.tick_rejected")
    assert len(rows) == 1  # the second spike is counted, not journaled (the rate limit)
    assert rows[0]["reason"] == "jump" and rows[0]["counts"] == {"jump": 1} and not rows[0]["summary"]
    assert rows[0]["bid"] == "1.13920" and "ATR" in rows[0]["detail"]
    assert _last(runtime, MarketReport).ticks_rejected == 2
    assert _last(runtime, BrokerHealth).connected  # two spikes are not an outage


def test_the_counted_rejections_are_journaled_at_the_end_of_the_period(feed) -> None:
    ref, runtime, clock = feed
    _feed(ref, PriceHeartbeat(ts=NOW), _price("1.08400", "1.08412", NOW + NS))
    spikes = [_price("0", "0", NOW + (2 + i) * NS) for i in range(5)]
    _feed(ref, *spikes)
    clock.advance(61.0)
    _feed(ref, PriceHeartbeat(ts=NOW + 70 * NS))
    rows = _journal(runtime, "feed.tick_rejected")
    assert [(r["reason"], r["counts"], r["summary"]) for r in rows] == [
        ("non_positive", {"non_positive": 1}, False),
        ("non_positive", {"non_positive": 4}, True),
    ]


def test_prices_refused_for_longer_than_stale_after_s_report_the_stream_unhealthy_until_one_passes(feed) -> None:
    ref, runtime, clock = feed
    _feed(ref, PriceHeartbeat(ts=NOW), _price("1.08400", "1.08412", NOW + NS))
    for i in range(24):  # 12 s of spikes 10 % apart: they never agree, nothing re-anchors
        clock.advance(0.5)
        bid = "1.13920" if i % 2 else "1.02980"
        _feed(ref, _price(bid, str(Decimal(bid) + Decimal("0.00012")), NOW + (2 + i) * NS))
    health = _last(runtime, BrokerHealth)
    assert not health.connected and "EUR_USD" in health.detail and "frozen" in health.detail
    clock.advance(0.5)
    _feed(ref, _price("1.08405", "1.08417", NOW + 30 * NS))
    assert _last(runtime, BrokerHealth).connected


def test_a_level_shift_within_a_session_waits_for_a_bar_that_shows_it(feed) -> None:
    ref, runtime, _clock = feed
    _feed(ref, PriceHeartbeat(ts=NOW), _price("1.08400", "1.08412", NOW + NS))
    shifted = [_price("1.09600", "1.09612", NOW + (2 + i) * NS) for i in range(8)]  # 120 pips away
    _feed(ref, *shifted)
    # The stream alone cannot move the level: the broker's candles (the feed's bars) must show it.
    assert [t.ts for t in _ticks(runtime)] == [NOW + NS]
    assert _journal(runtime, "feed.tick_reanchored") == []
    assert _last(runtime, MarketReport).ticks_rejected == 8


def test_a_gap_over_the_weekend_is_accepted_after_five_agreeing_prices_and_journaled(feed) -> None:
    ref, runtime, _clock = feed
    _feed(ref, PriceHeartbeat(ts=NOW), _price("1.08400", "1.08412", NOW + NS))  # Wednesday
    sunday = 1_710_108_000 * NS  # 2024-03-10T22:00:00Z, an hour after the week's opening
    _feed(ref, PriceHeartbeat(ts=sunday))  # heartbeats went on over the weekend
    shifted = [_price("1.09600", "1.09612", sunday + (1 + i) * NS) for i in range(5)]  # 120 pips away
    _feed(ref, *shifted)
    assert [t.ts for t in _ticks(runtime)] == [NOW + NS, sunday + 5 * NS]
    (row,) = _journal(runtime, "feed.tick_reanchored")
    assert (row["from_mid"], row["to_mid"], row["ticks"], row["reason"]) == ("1.08406", "1.09606", 5, "jump")
    assert _last(runtime, MarketReport).ticks_rejected == 4
