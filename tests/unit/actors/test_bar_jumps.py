"""An absurd bar and a real level shift (issue 17, defect 12): one bar rule for the feed and the files.

A flat bar at 1e300 has a range of 0, so the spike check (range against the ATR) passed it, and a
flat bar 5 % away from its neighbours as well. The bar checks now bound the price itself (a price
beyond what the pipeline's floats hold to the pip is ``out_of_range``) and the gap between a bar
and the last accepted one (``jump``: the tick checks' bound, ``actors.core.ticks.jump_bound``). A
real level shift is not a spike: a gap over a market closure is accepted at once, one within a
session once ``feed.bar_reanchor_bars`` bars in a row hold the new level (the tick checks'
re-anchoring run, ``actors.core.ticks.LevelRun``). The live feed's bars and a candle file's go
through the same rule: the same sequence gets the same verdicts from both.

Prices are EUR_USD M15 bars with bid and ask (a spread of about a pip, moves of ~6 pips a bar:
an ATR of about 8 pips), from Friday 2024-03-08 00:00Z; the market closes at 22:00Z (17:00 New
York, EST) and opens again on Sunday at 22:00Z.
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

from actors.core.bars import BarCandle, BarReason, validate_history
from actors.core.config import FeedConfig
from actors.core.domain import OHLC, Candle
from actors.ml.candlefile import frame_from_candles, validated_frame
from actors.roles.feed import FeedActor, _Fetched
from actors.runtime.actor import HeartbeatDue
from actors.runtime.messages import TOPIC_MD_BAR, Bar
from tests.fakebroker import InMemoryBroker
from tests.fakes import ManualClock, RecordingRuntime
from tests.helpers import poll_until

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

NS = 1_000_000_000
STEP = 900 * NS
FRIDAY = 1_709_856_000 * NS  # 2024-03-08T00:00:00Z
CLOSE = FRIDAY + 22 * 3600 * NS  # Friday 17:00 New York: the weekend closure begins
OPEN = CLOSE + 48 * 3600 * NS  # Sunday 17:00 New York
CONFIG = FeedConfig(instruments=("EUR_USD",))


def _walk(starts: Sequence[int], seed: int, price: float = 1.0850) -> list[Candle]:
    """Candles at ``starts``, each opening at the previous close (a random walk)."""
    rng = np.random.default_rng(seed)
    out = []
    for ts in starts:
        o, c = price, price + float(rng.normal(0, 0.0006))
        h, lo = max(o, c) + abs(float(rng.normal(0, 0.0003))), min(o, c) - abs(float(rng.normal(0, 0.0003)))
        out.append(_candle(ts, (o, h, lo, c)))
        price = c
    return out


def _candle(ts: int, mid: tuple[float, float, float, float], volume: int = 100) -> Candle:
    def side(shift: float) -> OHLC:
        o, h, lo, c = (Decimal(repr(round(v + shift, 5))) for v in mid)  # no quantize: 1e300 has no room
        return OHLC(o=o, h=h, l=lo, c=c)

    return Candle(ts=ts, volume=volume, complete=True, bid=side(-0.00006), ask=side(0.00006))


def _flat(ts: int, price: float) -> Candle:
    # A bar whose four prices are one: a range of 0, which no spike check sees.
    return _candle(ts, (price, price, price, price))


def _scaled(candle: Candle, factor: float) -> Candle:
    assert candle.bid is not None and candle.ask is not None
    mid = [float((b + a) / 2) * factor for b, a in zip(_ohlc(candle.bid), _ohlc(candle.ask), strict=True)]
    return _candle(candle.ts, (mid[0], mid[1], mid[2], mid[3]), candle.volume)


def _ohlc(ohlc: OHLC) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return ohlc.o, ohlc.h, ohlc.l, ohlc.c


def _friday(n: int, seed: int = 1) -> list[Candle]:
    return _walk([FRIDAY + i * STEP for i in range(n)], seed)


def _verdicts(candles: Sequence[Candle]) -> dict[int, str]:
    """Bar start -> "ok" or the reason, from ``validate_history`` (the rule of every loader)."""
    bars = [BarCandle.from_candle(c) for c in candles]
    accepted, rejected = validate_history(bars, granularity="M15", pip_location=-4, config=CONFIG)
    out = {b.ts: "ok" for b in accepted}
    out.update({r.candle.ts: r.reason.value for r in rejected})
    return out


# --- the rule ----------------------------------------------------------------------------------------


def test_a_flat_1e300_bar_is_out_of_range_and_the_next_bars_are_accepted() -> None:
    candles = _friday(40)
    candles[30] = _flat(candles[30].ts, 1e300)

    verdicts = _verdicts(candles)

    assert verdicts[candles[30].ts] == BarReason.OUT_OF_RANGE.value
    assert [ts for ts, v in verdicts.items() if v != "ok"] == [candles[30].ts]


def test_a_1e300_bar_with_nothing_before_it_is_out_of_range_too() -> None:
    # No neighbours: the absolute limit alone decides (the first bar of a file or of a broker load).
    candles = [_flat(FRIDAY, 1e300), *_walk([FRIDAY + i * STEP for i in range(1, 5)], seed=2)]

    assert _verdicts(candles)[FRIDAY] == BarReason.OUT_OF_RANGE.value


def test_an_isolated_flat_bar_5_percent_away_is_a_jump_and_the_next_bar_at_the_old_level_passes() -> None:
    candles = _friday(40)
    candles[30] = _flat(candles[30].ts, float(candles[29].bid.c + candles[29].ask.c) / 2 * 1.05)  # type: ignore[union-attr]

    verdicts = _verdicts(candles)

    assert verdicts[candles[30].ts] == BarReason.JUMP.value
    assert [ts for ts, v in verdicts.items() if v != "ok"] == [candles[30].ts]


def test_a_level_shift_within_a_session_is_accepted_once_the_following_bars_hold_it() -> None:
    candles = _friday(40)
    shifted = [*candles[:30], *(_scaled(c, 1.03) for c in candles[30:])]  # +3 % from bar 30 on, for good
    confirm = CONFIG.bar_reanchor_bars

    verdicts = _verdicts(shifted)

    # The first bars at the new level are refused (an outlier is not known from a shift yet); the
    # bar_reanchor_bars-th in a row at that level is accepted, and every bar after it.
    assert [verdicts[c.ts] for c in shifted[30 : 30 + confirm - 1]] == [BarReason.JUMP.value] * (confirm - 1)
    assert {verdicts[c.ts] for c in shifted[30 + confirm - 1 :]} == {"ok"}
    assert {verdicts[c.ts] for c in shifted[:30]} == {"ok"}


def test_a_3_percent_gap_over_the_weekend_is_accepted_at_once() -> None:
    friday = _walk(list(range(CLOSE - 40 * STEP, CLOSE, STEP)), seed=3)
    sunday = [_scaled(c, 1.03) for c in _walk(list(range(OPEN, OPEN + 20 * STEP, STEP)), seed=4)]

    verdicts = _verdicts([*friday, *sunday])

    assert set(verdicts.values()) == {"ok"}


def test_two_outliers_that_disagree_with_each_other_are_both_refused() -> None:
    # A run holds a level only while its bars agree: +5 % then -5 % is no new level.
    candles = _friday(40)
    ref = float(candles[29].bid.c + candles[29].ask.c) / 2  # type: ignore[union-attr]
    candles[30] = _flat(candles[30].ts, ref * 1.05)
    candles[31] = _flat(candles[31].ts, ref * 0.95)

    verdicts = _verdicts(candles)

    assert (verdicts[candles[30].ts], verdicts[candles[31].ts]) == (BarReason.JUMP.value, BarReason.JUMP.value)
    assert verdicts[candles[32].ts] == "ok"


# --- the live feed and a candle file decide alike -------------------------------------------------------


class _Broker(InMemoryBroker):
    """An in-memory broker whose price stream stays open and silent (the test hands the feed its
    closed candles as the bars worker would)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed_stream = threading.Event()

    def pricing_stream(self, instruments: Sequence[str], *, snapshot: bool = True) -> Iterator[Any]:
        self.closed_stream.wait()
        return iter(())


@contextlib.contextmanager
def _feed(history: list[Candle]) -> Iterator[tuple[pykka.ActorRef[FeedActor], RecordingRuntime]]:
    broker = _Broker()
    broker.candle_data[("EUR_USD", "M15")] = history
    runtime = RecordingRuntime(
        role="feed",
        role_config=CONFIG,
        broker=broker,
        clock=ManualClock(wall_ns=history[-1].ts + STEP, mono_s=500.0),
    )
    ref = FeedActor.start(runtime)
    poll_until(
        lambda: [b for k, b, _ in list(runtime.journaled) if k == "history.loaded"],
        timeout_s=10,
        what="the feed's history",
    )
    try:
        yield ref, runtime
    finally:
        broker.closed_stream.set()
        with contextlib.suppress(pykka.ActorDeadError):
            ref.stop()


def _sequence() -> tuple[list[Candle], list[Candle]]:
    """Friday's first 40 bars (the feed's history), then: the rest of Friday with a flat 1e300 bar,
    an isolated flat bar 5 % up and a +3 % level shift at 16:00Z; Sunday's open 3 % above Friday's
    close."""
    friday = _friday(88, seed=5)  # up to 21:45Z
    ref = float(friday[49].bid.c + friday[49].ask.c) / 2  # type: ignore[union-attr]
    friday[45] = _flat(friday[45].ts, 1e300)
    friday[50] = _flat(friday[50].ts, ref * 1.05)
    friday = [*friday[:64], *(_scaled(c, 1.03) for c in friday[64:])]  # from 16:00Z
    last = float(friday[-1].bid.c + friday[-1].ask.c) / 2  # type: ignore[union-attr]
    sunday = _walk(list(range(OPEN, OPEN + 12 * STEP, STEP)), seed=6, price=last * 1.03)
    return friday[:40], [*friday[40:], *sunday]


def test_the_live_feed_and_a_candle_file_give_the_same_bars_the_same_verdicts() -> None:
    history, later = _sequence()
    with _feed(history) as (ref, runtime):
        for candle in later:
            ref.tell(_Fetched(candle.ts, {"EUR_USD": BarCandle.from_candle(candle)}))
        ref.ask(HeartbeatDue(), timeout=5)  # handled after the bars: the actor is through them
        live = {
            b.ts: "ok" for t, b, _ in list(runtime.published) if t == TOPIC_MD_BAR + "EUR_USD" and isinstance(b, Bar)
        }
        live.update({b["bar_ts"]: b["reason"] for k, b, _ in list(runtime.journaled) if k == "feed.bar_rejected"})

    frame = frame_from_candles([*history, *later])
    kept, rejected = validated_frame(frame, granularity="M15", pip_location=-4, config=CONFIG)
    from_file = {int(ts): "ok" for ts in kept.index}
    from_file.update({r.candle.ts: r.reason.value for r in rejected})

    assert {ts: live[ts] for ts in sorted(live)} == {c.ts: from_file[c.ts] for c in later}
    refused = {ts: v for ts, v in live.items() if v != "ok"}
    shift_at = FRIDAY + 64 * STEP
    assert refused == {
        FRIDAY + 45 * STEP: BarReason.OUT_OF_RANGE.value,
        FRIDAY + 50 * STEP: BarReason.JUMP.value,
        **{shift_at + i * STEP: BarReason.JUMP.value for i in range(CONFIG.bar_reanchor_bars - 1)},
    }
    assert all(live[c.ts] == "ok" for c in later if c.ts >= OPEN)  # the weekend gap is no jump


def test_a_guards_kept_ranges_give_the_atr_of_its_bars_after_a_preload_and_checks() -> None:
    # The guard sums kept true ranges for speed (validate_history over a year of bars): after bars
    # loaded at start and bars checked since (accepted, refused, a jump), the same ATR as computed
    # from the bars themselves.
    from actors.core.bars import BarGuard, average_true_range

    bars = [BarCandle.from_candle(c) for c in _walk([FRIDAY + i * STEP for i in range(40)], seed=5)]
    guard = BarGuard(granularity="M15", config=CONFIG, history=bars[:3])
    guard.preload(bars[3:20])
    for candle in [*bars[20:30], BarCandle.from_candle(_flat(FRIDAY + 30 * STEP, 1.14)), *bars[31:]]:
        guard.check(candle, pip_location=-4)
        assert guard.ranges.atr() == average_true_range(guard.recent, period=CONFIG.atr_bars)
