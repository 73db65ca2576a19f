"""One rule for every bar that enters features or an ATR (issue 14, defect 5).

``validate_history`` is the live feed's ``validate_bar`` over a sequence; the model role's window,
the risk role's ATR bars (both loaded from the broker at every (re)start) and the offline
commands' candle files go through it, so a bar the feed rejects live never comes back through a
restart or a backtest. Prices are EUR_USD, GBP_USD and USD_JPY M15 bars as the emulator serves
them; the bad bars are the emulator's ``bad_candle`` kinds (a 5 % spike in the highs, ask below
bid at the close) and a 1e300 high from a broken file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pykka
import pytest

from actors.core.bars import BarCandle, BarReason, average_true_range, validate_bar, validate_candles, validate_history
from actors.core.config import BarValidationConfig, FeedConfig, ModelConfig, RiskConfig
from actors.core.domain import OHLC, Candle, Instrument
from actors.ml.candlefile import frame_from_candles, validated_frame
from actors.roles.model import ModelActor
from actors.roles.risk.actor import RiskActor
from tests.fakebroker import InMemoryBroker
from tests.fakes import ManualClock, RecordingRuntime
from tests.helpers import TEST_MODEL_DIR, poll_until

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

STEP = 900 * 10**9
T0 = 1_709_683_200 * 10**9  # 2024-03-06T00:00:00Z: on the M15 grid
CONFIG = BarValidationConfig()
FEED = FeedConfig()
DIGITS = {"EUR_USD": 5, "GBP_USD": 5, "USD_JPY": 3}
PIP_LOCATION = {"EUR_USD": -4, "GBP_USD": -4, "USD_JPY": -2}
START = {"EUR_USD": 1.0850, "GBP_USD": 1.2700, "USD_JPY": 149.50}


def _candles(name: str, n: int, seed: int) -> list[Candle]:
    """``n`` M15 candles with bid and ask, ~0.1 % moves, a spread of about a pip."""
    rng = np.random.default_rng(seed)
    q = Decimal(10) ** -DIGITS[name]
    pip = 10.0 ** PIP_LOCATION[name]
    price = START[name]
    out = []
    for i in range(n):
        o, c = price, price * float(np.exp(rng.normal(0, 0.001)))
        h, lo = max(o, c) * (1 + abs(rng.normal(0, 0.0004))), min(o, c) * (1 - abs(rng.normal(0, 0.0004)))
        half = pip * 0.6

        def side(shift: float, o: float = o, h: float = h, lo: float = lo, c: float = c) -> OHLC:
            return OHLC(
                o=Decimal(o + shift).quantize(q),
                h=Decimal(h + shift).quantize(q),
                l=Decimal(lo + shift).quantize(q),
                c=Decimal(c + shift).quantize(q),
            )

        out.append(
            Candle(ts=T0 + i * STEP, volume=int(rng.integers(20, 500)), complete=True, bid=side(-half), ask=side(half))
        )
        price = c
    return out


def _spiked(candle: Candle) -> Candle:
    # The emulator's bad_candle "spike": the highs 5 % up.
    assert candle.bid is not None and candle.ask is not None
    up = Decimal("1.05")
    bid = OHLC(o=candle.bid.o, h=candle.bid.h * up, l=candle.bid.l, c=candle.bid.c)
    ask = OHLC(o=candle.ask.o, h=candle.ask.h * up, l=candle.ask.l, c=candle.ask.c)
    return Candle(ts=candle.ts, volume=candle.volume, complete=True, bid=bid, ask=ask)


def _crossed(candle: Candle) -> Candle:
    # The emulator's bad_candle "crossed": bid and ask closes swapped.
    assert candle.bid is not None and candle.ask is not None
    b, a = candle.bid, candle.ask
    return Candle(
        ts=candle.ts,
        volume=candle.volume,
        complete=True,
        bid=OHLC(o=b.o, h=b.h, l=b.l, c=a.c),
        ask=OHLC(o=a.o, h=a.h, l=a.l, c=b.c),
    )


def _bars(candles: list[Candle]) -> list[BarCandle]:
    return [BarCandle.from_candle(c) for c in candles]


# --- validate_history --------------------------------------------------------------------------------


def test_validate_history_is_validate_bar_over_the_sequence_against_the_accepted_bars() -> None:
    candles = _candles("EUR_USD", 60, seed=1)
    candles[30] = _spiked(candles[30])
    candles[45] = _crossed(candles[45])
    bars = _bars(candles)

    accepted, rejected = validate_history(bars, granularity="M15", pip_location=-4, config=CONFIG)

    assert [(r.candle.ts, r.reason) for r in rejected] == [
        (bars[30].ts, BarReason.SPIKE),
        (bars[45].ts, BarReason.OHLC_INCONSISTENT),
    ]
    assert [b.ts for b in accepted] == [b.ts for i, b in enumerate(bars) if i not in (30, 45)]
    # Each verdict is the live feed's: validate_bar with the accepted bars before it as history.
    for r in rejected:
        before = [b for b in accepted if b.ts < r.candle.ts][-(CONFIG.atr_bars + 1) :]
        verdict = validate_bar(r.candle, granularity="M15", pip_location=-4, config=CONFIG, history=before)
        assert (verdict.reason, verdict.detail) == (r.reason, r.detail)


def test_a_bar_after_a_rejected_spike_is_checked_against_the_bars_before_the_spike() -> None:
    # The spike never enters the ATR, so the bar after it is judged as the feed judges it live.
    candles = _candles("USD_JPY", 40, seed=2)
    candles[20] = _spiked(candles[20])
    accepted, rejected = validate_history(_bars(candles), granularity="M15", pip_location=-2, config=CONFIG)
    assert [r.reason for r in rejected] == [BarReason.SPIKE]
    assert "x ATR" in rejected[0].detail
    atr_with_spike = average_true_range(_bars(candles[6:21]), period=14)
    atr_without = average_true_range(accepted[5:20], period=14)
    assert atr_with_spike is not None and atr_without is not None and atr_with_spike > 3 * atr_without


def test_the_forming_bar_is_not_history_and_a_bar_out_of_order_is_rejected() -> None:
    candles = _candles("EUR_USD", 5, seed=3)
    forming = Candle(ts=T0 + 5 * STEP, volume=3, complete=False, bid=candles[0].bid, ask=candles[0].ask)
    again = candles[2]  # a duplicate of an earlier bar, e.g. two broker pages that overlap
    accepted, rejected = validate_history(
        _bars([*candles, again, forming]), granularity="M15", pip_location=-4, config=CONFIG
    )
    assert [b.ts for b in accepted] == [c.ts for c in candles]
    assert [(r.candle.ts, r.reason) for r in rejected] == [(again.ts, BarReason.MISALIGNED)]


def test_history_given_before_the_sequence_counts_for_the_first_bars() -> None:
    candles = _candles("GBP_USD", 30, seed=4)
    candles[20] = _spiked(candles[20])
    bars = _bars(candles)
    # Alone, the spike is among the first atr_bars bars: no ATR yet, it passes.
    _, alone = validate_history(bars[10:], granularity="M15", pip_location=-4, config=CONFIG)
    assert alone == []
    _, with_history = validate_history(bars[10:], granularity="M15", pip_location=-4, config=CONFIG, history=bars[:10])
    assert [r.candle.ts for r in with_history] == [bars[20].ts]


def test_validate_candles_returns_the_broker_candles_it_accepted() -> None:
    candles = _candles("EUR_USD", 40, seed=5)
    candles[35] = _spiked(candles[35])
    accepted, rejected = validate_candles(candles, granularity="M15", pip_location=-4, config=CONFIG)
    assert accepted == [c for i, c in enumerate(candles) if i != 35]
    assert [r.candle.ts for r in rejected] == [candles[35].ts]


# --- candle files (train, backtest) --------------------------------------------------------------------


def test_a_candle_files_1e300_high_is_left_out_with_its_reason() -> None:
    frame = frame_from_candles(_candles("EUR_USD", 50, seed=6))
    broken = frame.index[40]
    frame.loc[broken, "high"] = 1e300  # finite and > 0: the file reader lets it through
    kept, rejected = validated_frame(frame, granularity="M15", pip_location=-4, config=CONFIG)
    # Beyond any price (the absolute limit, before the spike check that catches it too).
    assert [(r.candle.ts, r.reason) for r in rejected] == [(int(broken), BarReason.OUT_OF_RANGE)]
    assert list(kept.index) == [t for t in frame.index if t != broken]
    pd.testing.assert_frame_equal(kept, frame.drop(index=broken))


def test_a_frame_without_spread_or_volume_is_checked_with_the_fallback_spread() -> None:
    frame = frame_from_candles(_candles("EUR_USD", 30, seed=7))
    frame["spread"] = np.nan
    frame["volume"] = np.nan
    kept, rejected = validated_frame(frame, granularity="M15", pip_location=-4, config=CONFIG, spread_fallback=0.00014)
    assert rejected == [] and len(kept) == 30
    wide = validated_frame(frame, granularity="M15", pip_location=-4, config=CONFIG, spread_fallback=0.0060)
    assert {r.reason for r in wide[1]} == {BarReason.SPREAD_TOO_WIDE}  # 60 pips > feed.max_spread_pips


def test_a_file_bar_and_the_same_broker_candle_get_the_same_verdict() -> None:
    # A backtest from files and one from the broker drop the same bars.
    candles = _candles("GBP_USD", 50, seed=8)
    candles[30] = _spiked(candles[30])
    candles[42] = _crossed(candles[42])
    _, from_broker = validate_candles(candles, granularity="M15", pip_location=-4, config=CONFIG)
    _, from_file = validated_frame(frame_from_candles(candles), granularity="M15", pip_location=-4, config=CONFIG)
    assert [(r.candle.ts, r.reason) for r in from_file] == [(r.candle.ts, r.reason) for r in from_broker]


# --- the roles that load history -----------------------------------------------------------------------

INSTRUMENTS = ("EUR_USD", "GBP_USD", "USD_JPY")


def _instrument(name: str) -> Instrument:
    return Instrument(
        name=name,
        type="CURRENCY",
        display_precision=DIGITS[name],
        pip_location=PIP_LOCATION[name],
        trade_units_precision=0,
        minimum_trade_size=Decimal(1),
        maximum_order_units=Decimal(100_000_000),
        margin_rate=Decimal("0.0333"),
    )


def _broker(bad_index: int) -> tuple[InMemoryBroker, int]:
    broker = InMemoryBroker(instruments=[_instrument(n) for n in INSTRUMENTS])
    for seed, name in enumerate(INSTRUMENTS):
        broker.candle_data[(name, "M15")] = _candles(name, 200, seed=10 + seed)
    gbp = broker.candle_data[("GBP_USD", "M15")]
    gbp[bad_index] = _spiked(gbp[bad_index])
    return broker, gbp[bad_index].ts


@contextlib.contextmanager
def _started(actor: Any, runtime: RecordingRuntime) -> Iterator[pykka.ActorRef[Any]]:
    ref = actor.start(runtime)
    try:
        yield ref
    finally:
        with contextlib.suppress(pykka.ActorDeadError):
            ref.stop()


def _loaded(runtime: RecordingRuntime) -> dict[str, Any]:
    rows = [body for kind, body, _ in list(runtime.journaled) if kind == "history.loaded"]
    return rows[-1] if rows else {}


def test_the_models_window_loaded_at_start_leaves_out_a_bar_the_feed_rejects() -> None:
    broker, bad_ts = _broker(bad_index=190)
    runtime = RecordingRuntime(
        role="model",
        role_config=ModelConfig(dir=str(TEST_MODEL_DIR)),
        broker=broker,
        clock=ManualClock(wall_ns=T0 + 200 * STEP),
        shared={"feed": FEED},
    )
    with _started(ModelActor, runtime) as ref:
        loaded = poll_until(lambda: _loaded(runtime), timeout_s=30, what="history.loaded")
        windows = ref.proxy().windows.get(timeout=10)
        wide = windows.wide()

    assert loaded["purpose"] == "features"
    assert [(r["instrument"], r["bar_ts"], r["reason"]) for r in loaded["rejected"]] == [("GBP_USD", bad_ts, "spike")]
    assert bad_ts not in set(wide.close["GBP_USD"].dropna().index)
    assert bad_ts in set(wide.close["EUR_USD"].dropna().index)  # the other instruments keep their bar
    assert windows.held("GBP_USD") == windows.size  # read with enough bars to fill the window anyway
    assert float(wide.high["GBP_USD"].max()) < START["GBP_USD"] * 1.03


def test_the_risk_roles_atr_bars_loaded_at_start_leave_out_a_bar_the_feed_rejects() -> None:
    broker, bad_ts = _broker(bad_index=195)
    runtime = RecordingRuntime(
        role="risk",
        role_config=RiskConfig(),
        broker=broker,
        clock=ManualClock(wall_ns=T0 + 200 * STEP),
        shared={"feed": FEED},
    )
    with _started(RiskActor, runtime) as ref:
        loaded = poll_until(lambda: _loaded(runtime), timeout_s=30, what="history.loaded")
        market = ref.proxy().market.get(timeout=10)
        atr = market.atr("GBP_USD", 14)

    assert loaded["purpose"] == "atr"
    assert [(r["instrument"], r["bar_ts"], r["reason"]) for r in loaded["rejected"]] == [("GBP_USD", bad_ts, "spike")]
    assert bad_ts not in {b.ts for b in market.bars["GBP_USD"]}
    good = [c for c in broker.candle_data[("GBP_USD", "M15")] if c.ts != bad_ts]
    expected = average_true_range(_bars(good), period=14)
    assert expected is not None and atr == pytest.approx(float(expected), rel=1e-12)
    # With the spike the ATR, and so every stop distance, would be several times larger.
    spiked = average_true_range(_bars(broker.candle_data[("GBP_USD", "M15")]), period=14)
    assert spiked is not None and float(spiked) > 3 * atr
