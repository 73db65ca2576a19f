"""The backtest's book: fills, SL/TP, exits and decisions are the live rules' answers, bar by bar."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.broker.emulator.instruments import SPECS, instrument_json
from actors.broker.oanda.parse import instrument
from actors.core.bars import BarCandle
from actors.core.config import ExecutionConfig, RiskConfig
from actors.core.domain import OHLC, Quote, Signal, SkipReason, bar_id
from actors.core.entry import decide_entry
from actors.core.exits import bars_held, exit_actions
from actors.core.fills import bar_exit, market_fill
from actors.core.gate import check_entry
from actors.core.zones import update_zones
from actors.runtime.marketview import MarketView
from supervisor.offline.backtest.book import Simulation
from supervisor.offline.backtest.records import BarGrid, _OpenTrade
from supervisor.offline.backtest.rows import JournalRow

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

M15 = 900 * 10**9
START = 1_709_719_200 * 10**9  # 2024-03-06T10:00:00Z, a Wednesday morning: far from the rollover
META = {n: instrument(instrument_json(SPECS[n])) for n in ("EUR_USD", "USD_JPY")}
SPREAD = 0.00014
RISK = RiskConfig(min_probability=0.6, cooldown_after_loss_s=0.0)
EXECUTION = ExecutionConfig(slippage_pips=0.2, time_exit_bars=0)


def _grid(bars: list[tuple[float, float, float, float]], *, spread: float = SPREAD) -> BarGrid:
    values = np.array(bars, dtype=np.float64)
    return BarGrid(
        times=START + np.arange(len(bars), dtype=np.int64) * M15,
        instruments=("EUR_USD",),
        mid={side: values[:, [k]] for k, side in enumerate(("open", "high", "low", "close"))},
        spread=np.full((len(bars), 1), spread),
        volume=np.full((len(bars), 1), 100.0),
    )


def _flat(n: int, price: float = 1.085, width: float = 0.0005) -> list[tuple[float, float, float, float]]:
    return [(price, price + width, price - width, price)] * n


class _Run:
    def __init__(self, bars: list[tuple[float, float, float, float]], **kw: Any) -> None:
        self.rows: list[JournalRow] = []
        self.sim = Simulation(
            _grid(bars),
            meta=META,
            risk=kw.get("risk", RISK),
            execution=kw.get("execution", EXECUTION),
            granularity="M15",
            home_currency="USD",
            nav=kw.get("nav", 100_000.0),
            model_version="abc",
            journal_level=kw.get("level", "all"),
            emit=self.rows.extend,
        )

    def step(self, row: int, p_up: float = 0.5) -> None:
        self.sim.step(row, [p_up], [True], lambda j: {})

    def kinds(self, kind: str) -> list[JournalRow]:
        return [r for r in self.rows if r[0] == kind]


WARM = 16  # bars before the first decision: the ATR's 14 (+1) are there


def _entered_long(bars: list[tuple[float, float, float, float]], **kw: Any) -> _Run:
    run = _Run(_flat(WARM) + bars, **kw)
    for row in range(WARM):
        run.sim.warm_up(row)
    run.step(WARM, 0.9)  # long at this close
    return run


def test_the_backtest_cuts_an_entry_to_the_margin_its_account_has() -> None:
    # A 10 000 USD account risking 2 % on a 1.5-pip stop: 1.3 M units by risk, 276 000 by 30 NAVs of
    # EUR exposure, whose 9 990 USD of margin is more than the 9 500 above the reserve: cut to it.
    risk = replace(RISK, risk_per_trade=0.02, max_exposure_per_currency=30.0)
    run = _Run(_flat(WARM + 1, width=0.00005), risk=risk, nav=10_000.0)
    for row in range(WARM):
        run.sim.warm_up(row)
    run.step(WARM, 0.9)
    [(_, intent, _, _)] = run.kinds("risk.intent")
    unit = 1.085 * 0.0333 + SPREAD  # margin and spread of one unit
    assert Decimal(intent["units"]) == Decimal(int(9_500 / unit))  # 261 920 units
    assert intent["margin_home"] == pytest.approx(float(intent["units"]) * unit, abs=1e-3)


def test_no_margin_left_in_the_backtest_book_is_a_margin_skip() -> None:
    # The same account, its margin taken by an open trade on another instrument (as the risk role
    # sees the broker's account), so not even one unit fits.
    risk = replace(RISK, risk_per_trade=0.02, max_exposure_per_currency=30.0)
    run = _Run(_flat(WARM + 1, width=0.00005), risk=risk, nav=10_000.0)
    for row in range(WARM):
        run.sim.warm_up(row)
    from actors.core.domain import Direction, Position

    run.sim.book["USD_JPY"] = Position(instrument="USD_JPY", direction=Direction.LONG, units=250_000.0,
                                           entry_price=150.0)  # fmt: skip
    run.sim.mids["USD_JPY"] = 150.0  # 250 000 USD at 0.04: all 10 000 USD of margin used
    run.step(WARM, 0.9)
    [(_, skip, _, _)] = [r for r in run.kinds("risk.skip") if r[1]["reason"] != "below_threshold"]
    assert skip["reason"] == "margin" and skip["direction"] == "long"


def test_an_entry_decided_at_a_close_fills_at_the_next_open_on_the_ask_worse_by_the_slippage() -> None:
    # Arrange: the bar after the decision opens higher than the decision bar closed.
    run = _entered_long([(1.085, 1.0853, 1.0847, 1.085), (1.0860, 1.0862, 1.0858, 1.0860)])

    # Act
    run.step(WARM + 1)

    # Assert
    intent = run.kinds("risk.intent")[0]
    filled = run.kinds("exec.filled")[0]
    corr = bar_id("EUR_USD", "M15", START + WARM * M15)
    assert intent[2] == corr and filled[2] == corr
    assert intent[1]["decision_price"] == pytest.approx(1.085 + SPREAD / 2)  # the decision bar's closing ask
    expected = market_fill(1, 1.0860 - SPREAD / 2, 1.0860 + SPREAD / 2, slippage=0.00002, precision=5)
    assert float(filled[1]["fill_price"]) == pytest.approx(expected)
    assert filled[3] == START + (WARM + 1) * M15  # stamped with the open's market time
    assert filled[1]["slippage_pips"] == pytest.approx((expected - intent[1]["decision_price"]) / 0.0001, abs=1e-3)


def test_a_bar_that_reaches_both_the_stop_and_the_target_closes_at_the_stop() -> None:
    # Arrange: the levels of a long decided at the close of bar WARM (they do not depend on later bars)
    decided = (1.085, 1.0853, 1.0847, 1.085)
    probe = _entered_long([decided, decided])
    intent = probe.kinds("risk.intent")[0][1]
    sl, tp = float(intent["stop_loss"]), float(intent["take_profit"])
    run = _entered_long([decided, (1.085, tp + 0.001, sl - 0.001, 1.085)])  # the fill bar reaches both

    # Act
    run.step(WARM + 1)

    # Assert
    closed = run.kinds("exec.closed")
    assert len(closed) == 1 and closed[0][1]["reason"] == "stop_loss"
    expected = bar_exit(
        1,
        sl,
        tp,
        round(1.085 - SPREAD / 2, 5),
        round(tp + 0.001 - SPREAD / 2, 5),
        round(sl - 0.001 - SPREAD / 2, 5),
        slippage=0.00002,
        precision=5,
    )
    assert expected is not None and float(closed[0][1]["price"]) == pytest.approx(expected[1])
    assert closed[0][3] == START + (WARM + 2) * M15  # learnt at the bar's close
    assert run.sim.book == {}


def test_a_time_exit_closes_at_the_close_it_is_decided_at_then_that_close_decides_entries() -> None:
    # Live (actors.core.closing.at_close): the execution role closes a time-exited trade at the close,
    # then the risk role decides that close's signals; so a signal at that close is not position_open.
    execution = replace(EXECUTION, time_exit_bars=2, breakeven_after_r=0.0, trailing_after_r=100.0)
    bars = [(1.085, 1.0853, 1.0847, 1.085), (1.085, 1.0853, 1.0847, 1.0851), (1.0851, 1.0854, 1.0848, 1.0852)]
    run = _entered_long([*bars, (1.0852, 1.0855, 1.0849, 1.0852)], execution=execution)
    run.step(WARM + 1)
    run.step(WARM + 2, 0.9)  # the 2nd bar held closes: time exit, and a long signal at the same close

    closed = run.kinds("exec.closed")
    assert [c[1]["reason"] for c in closed] == ["time_exit"]
    assert closed[0][3] == START + (WARM + 3) * M15  # at the close of the 2nd bar held
    expected = market_fill(-1, 1.0852 - SPREAD / 2, 1.0852 + SPREAD / 2, slippage=0.00002, precision=5)
    assert float(closed[0][1]["price"]) == pytest.approx(expected)  # the close's bid, not the next open
    [skip_or_intent] = [r for r in run.rows if r[0] in ("risk.intent", "risk.skip") and r[3] == closed[0][3]]
    assert skip_or_intent[0] == "risk.intent", skip_or_intent[1]
    assert run.sim.out.trades[0].exit_ns == closed[0][3]


@pytest.mark.parametrize("trailing_after_r", [0.0, 0.1])
def test_the_backtest_trails_only_when_trailing_after_r_is_above_zero(trailing_after_r: float) -> None:
    # A long whose market climbs 3 pips a bar (well under 1 R: the stop is 1.5 ATRs of ~10 pips
    # below), with a 2-ATR trail and no breakeven: the live exit rule decides, so a 0 (off) never
    # moves the stop, where 0.1 R moves it as soon as the trail is tighter than the stop.
    execution = replace(EXECUTION, breakeven_after_r=0.0, trailing_after_r=trailing_after_r, trailing_atr_mult=2.0)
    climb = [(1.085 + k * 0.0003, 1.0855 + k * 0.0003, 1.0845 + k * 0.0003, 1.085 + (k + 1) * 0.0003) for k in range(8)]
    run = _entered_long(climb, execution=execution)
    for row in range(WARM + 1, WARM + 8):
        run.step(row)

    moved = run.kinds("exec.exit_changed")
    assert run.kinds("exec.filled") and not run.kinds("exec.closed")
    if trailing_after_r:
        assert moved and {r[1]["reason"] for r in moved} == {"trailing"}
    else:
        assert moved == []


def test_an_open_position_makes_the_next_signal_a_position_open_skip() -> None:
    run = _entered_long(_flat(3))
    run.step(WARM + 1, 0.9)
    skips = run.kinds("risk.skip")
    assert skips[-1][1]["reason"] == "position_open" and skips[-1][1]["direction"] is None


@pytest.mark.parametrize(
    ("level", "kinds"),
    [
        ("all", ["md.bar", "model.signal", "risk.skip"]),
        ("decisions", ["model.signal"]),
        ("trades", []),
    ],
)
def test_a_below_threshold_signal_is_journaled_as_the_level_asks(level: str, kinds: list[str]) -> None:
    run = _Run(_flat(WARM + 1), level=level)
    for row in range(WARM):
        run.sim.warm_up(row)
    run.step(WARM, 0.55)
    assert [r[0] for r in run.rows] == kinds
    if level == "all":
        assert run.rows[2][1]["reason"] == "below_threshold"


def _live_atr(bars: list[tuple[float, float, float, float]], upto: int, spread: float = SPREAD) -> float | None:
    # The risk role's ATR: a MarketView fed with bid/ask bars as the feed publishes them.
    view = MarketView(keep_bars=RISK.atr_period + 1)
    for k, (o, h, low, c) in enumerate(bars[: upto + 1]):
        half = Decimal(str(spread)) / 2
        mid = [Decimal(repr(float(v))) for v in (o, h, low, c)]
        bid = OHLC(o=mid[0] - half, h=mid[1] - half, l=mid[2] - half, c=mid[3] - half)
        ask = OHLC(o=mid[0] + half, h=mid[1] + half, l=mid[2] + half, c=mid[3] + half)
        view.on_bar("EUR_USD", BarCandle(ts=START + k * M15, volume=100, complete=True, bid=bid, ask=ask))
    return view.atr("EUR_USD", RISK.atr_period)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    p_up=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
    held=st.sampled_from([None, "long", "short"]),
)
def test_the_backtest_decision_is_decide_entry_with_the_risk_roles_atr(
    p_up: float, seed: int, held: str | None
) -> None:
    # Arrange: random bars, maybe an open position on another instrument
    rng = np.random.default_rng(seed)
    closes = 1.085 * np.exp(np.cumsum(rng.normal(0, 0.0006, WARM + 1)))
    bars = [
        (c, c + abs(rng.normal(0, 0.0004)) + 0.00002, c - abs(rng.normal(0, 0.0004)) - 0.00002, c)
        for c in np.round(closes, 5)
    ]
    run = _Run(bars)
    for row in range(WARM):
        run.sim.warm_up(row)
    book = {}
    if held:
        from actors.core.domain import Direction, Position

        book["USD_JPY"] = Position(instrument="USD_JPY", direction=Direction(held), units=50_000.0, entry_price=150.0)
        run.sim.book.update(book)
        run.sim.mids["USD_JPY"] = 150.0
    nav = 100_000.0
    _state, zone = update_zones(None, nav=nav, now_ns=START + (WARM + 1) * M15, config=RISK)
    run.sim.zone = zone
    signal = Signal(instrument="EUR_USD", bar_ts_ns=START + WARM * M15, p_up=p_up, model_version="abc")
    run.sim.warm_up(WARM)
    close = bars[WARM][3]

    # Act
    ours = run.sim._decision(WARM, 0, signal, START + (WARM + 1) * M15, nav)

    # Assert: the rule called directly with everything, the ATR as the risk role computes it, the
    # margin available as the emulator's account has it (NAV less the margin of the open book)
    mids = {"EUR_USD": close, **({"USD_JPY": 150.0} if held else {})}
    used = 50_000.0 * 0.04 if held else 0.0  # USD_JPY: the USD units times its marginRate
    theirs = decide_entry(
        signal,
        Quote(bid=round(close - SPREAD / 2, 5), ask=round(close + SPREAD / 2, 5), tradeable=True),
        _live_atr(bars, WARM),
        instrument=META["EUR_USD"],
        book=book,
        mids=mids,
        nav=nav,
        home_currency="USD",
        now_ns=START + (WARM + 1) * M15,
        last_loss_close_ns={},
        zone=zone,
        margin_available=nav - used,
        config=RISK,
    )
    assert ours == theirs


def _trade(sign: int, entry: float, stop: float, current: float) -> _OpenTrade:
    return _OpenTrade(
        trade_id="1",
        intent_id="i",
        column=0,
        instrument="EUR_USD",
        sign=sign,
        units=1000.0,
        units_text="1000",
        entry_price=entry,
        initial_stop_loss=stop,
        stop_loss=current,
        take_profit=entry + sign * 0.01,
        open_bar_ts=START,
        open_start_ns=START,
        entry_ns=START + M15,
        corr="c",
        risk_home=1.0,
        p_up=0.9,
        open_factor=1.0,
    )


@settings(max_examples=300, deadline=None)
@given(
    sign=st.sampled_from([1, -1]),
    risk_ticks=st.integers(5, 200),
    move_ticks=st.integers(-300, 600),
    tightened=st.integers(0, 300),
    atr_ticks=st.integers(1, 400),
    mult=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    after_r=st.sampled_from([0.0, 0.5, 1.0, 1.5]),
)
def test_exits_computed_without_the_atr_when_it_cannot_matter_are_the_rules_answer(  # noqa: PLR0917
    sign: int, risk_ticks: int, move_ticks: int, tightened: int, atr_ticks: int, mult: float, after_r: float
) -> None:
    # Arrange: a trade, a price, an ATR; the backtest's ATR is the one given
    tick = 0.00001
    entry = 1.08500
    initial = round(entry - sign * risk_ticks * tick, 5)
    current = round(initial + sign * min(tightened, risk_ticks + max(move_ticks, 0)) * tick, 5)
    bid = round(entry + sign * move_ticks * tick, 5)
    ask = round(bid + 0.00014, 5)
    execution = replace(EXECUTION, trailing_atr_mult=mult, trailing_after_r=after_r, breakeven_after_r=1.0)
    run = _Run(_flat(2), execution=execution)
    atr = atr_ticks * tick
    run.sim._atr = lambda j: atr  # type: ignore[method-assign]

    # Act
    ours = run.sim._exit_actions(0, _trade(sign, entry, initial, current), 3, bid, ask)

    # Assert
    theirs = exit_actions(
        sign, entry, abs(entry - initial), current, 3, bid, ask, atr, pip=0.0001, precision=5, config=execution
    )
    assert ours == theirs


@settings(max_examples=200, deadline=None)
@given(open_bars=st.integers(0, 3000), held_bars=st.integers(0, 1500), limit=st.integers(1, 400))
def test_the_bars_held_shortcut_never_changes_when_a_time_exit_fires(
    open_bars: int, held_bars: int, limit: int
) -> None:
    run = _Run(_flat(2), execution=replace(EXECUTION, time_exit_bars=limit))
    opened = START + open_bars * M15
    trade = replace_trade(_trade(1, 1.085, 1.084, 1.084), opened)
    now = opened + held_bars * M15
    assert (run.sim._held(trade, now) >= limit) == (bars_held(opened, now, "M15") >= limit)


def replace_trade(trade: _OpenTrade, opened: int) -> _OpenTrade:
    trade.open_bar_ts = trade.open_start_ns = opened
    return trade


def test_trades_still_open_at_the_end_close_at_the_last_close_as_end_of_data() -> None:
    run = _entered_long(_flat(3))
    run.step(WARM + 1)
    run.step(WARM + 2)
    outcome = run.sim.finish()
    assert [t.exit_reason for t in outcome.trades] == ["end_of_data"]
    assert outcome.trades[0].exit_price == pytest.approx(1.085 - SPREAD / 2)  # marked at the bid, as the NAV
    trade = outcome.trades[0]
    assert math.isclose(trade.pnl_home, trade.units * (trade.exit_price - trade.entry_price), abs_tol=1e-3)


@settings(max_examples=300, deadline=None)
@given(
    p_up=st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.4, 0.6, 0.48, 0.52, 0.0, 1.0, 0.5])),
    threshold=st.sampled_from([0.5000001, 0.52, 0.55, 0.6, 0.7, 0.99, 1.0]),
)
def test_the_below_threshold_band_is_exactly_where_the_gate_says_below_threshold(p_up: float, threshold: float) -> None:
    risk = replace(RISK, min_probability=threshold)
    low, high = _Run(_flat(2), risk=risk).sim.band
    signal = Signal(instrument="EUR_USD", bar_ts_ns=START, p_up=p_up, model_version="abc")
    gate = check_entry(signal, None, instrument=META["EUR_USD"], book={}, exposure={}, nav=1.0, home_currency="USD",
                       now_ns=START, last_loss_close_ns={}, config=risk)  # fmt: skip
    assert (low < p_up < high) == (gate.reason is SkipReason.BELOW_THRESHOLD)


def test_net_pnl_equals_the_sum_of_trades_csv_when_a_trade_is_open_at_the_end() -> None:
    # Arrange: a 500 000-unit long still open at the last close, in profit
    import csv
    import io

    from supervisor.offline.backtest.metrics import compute_metrics, trades_csv

    risk = replace(RISK, risk_per_trade=0.02, max_exposure_per_currency=30.0)
    run = _entered_long([(1.085, 1.0853, 1.0847, 1.085), *_flat(2, price=1.0860)], risk=risk)
    run.step(WARM + 1)
    run.step(WARM + 2)

    # Act
    outcome = run.sim.finish()
    metrics = compute_metrics(
        outcome.trades, equity=outcome.equity, exposed_bars=outcome.exposed, opening_nav=100_000.0, granularity="M15"
    )
    rows = list(csv.DictReader(io.StringIO(trades_csv(outcome.trades, {"EUR_USD": 5}))))

    # Assert: one mark for the open trade in both (the last close's bid, as the NAV marks it)
    assert [r["exit_reason"] for r in rows] == ["end_of_data"] and float(rows[0]["units"]) > 100_000
    assert float(rows[0]["exit_price"]) == pytest.approx(1.0860 - SPREAD / 2)
    assert metrics["net_pnl"] == pytest.approx(sum(float(r["pnl"]) for r in rows), abs=5e-5)
    assert metrics["final_nav"] == pytest.approx(100_000.0 + metrics["net_pnl"], abs=5e-5)


def test_bid_ask_candles_are_used_where_the_source_has_them_not_mid_and_the_closing_spread() -> None:
    # Arrange: a long's next bar whose bid dips 6 pips below its mid low (the spread widened inside
    # the bar; it closed at the usual spread): mid - half the closing spread never reaches the stop.
    decided = (1.085, 1.0853, 1.0847, 1.085)
    probe = _entered_long([decided, decided])
    sl = float(probe.kinds("risk.intent")[0][1]["stop_loss"])
    bars = [*_flat(WARM), decided, (1.085, 1.0853, sl + 0.0003, 1.085)]
    grid = _grid(bars)
    values = np.array(bars, dtype=np.float64)
    bid = {side: values[:, [k]] - SPREAD / 2 for k, side in enumerate(("open", "high", "low", "close"))}
    ask = {side: values[:, [k]] + SPREAD / 2 for k, side in enumerate(("open", "high", "low", "close"))}
    bid["low"][-1, 0] = sl - 0.0003  # the bid's own low, below the stop
    with_quotes = replace(grid, bid=bid, ask=ask)
    outcomes = {}
    for name, g in (("mid_spread", grid), ("bid_ask", with_quotes)):
        run = _Run(bars)
        run.sim = Simulation(g, meta=META, risk=RISK, execution=EXECUTION, granularity="M15", home_currency="USD",
                             nav=100_000.0, model_version="abc", journal_level="all", emit=run.rows.extend)  # fmt: skip
        for row in range(WARM):
            run.sim.warm_up(row)
        run.step(WARM, 0.9)
        run.step(WARM + 1)
        outcomes[name] = [c[1]["reason"] for c in run.kinds("exec.closed")]

    # Assert: only the bid/ask candle shows the stop hit
    assert outcomes == {"mid_spread": [], "bid_ask": ["stop_loss"]}
