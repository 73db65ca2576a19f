"""The backtest's metrics as documented: win rate, profit factor, drawdown, exposure, average R, ratios."""

from __future__ import annotations

import pytest

from supervisor.offline.backtest.metrics import TRADE_COLUMNS, compute_metrics, trades_csv
from supervisor.offline.backtest.records import ClosedTrade

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def _trade(trade_id: int, pnl: float, reason: str = "stop_loss") -> ClosedTrade:
    return ClosedTrade(
        trade_id=str(trade_id),
        intent_id=f"main.EUR_USD.{trade_id}.L",
        instrument="EUR_USD",
        direction="long",
        signal_bar_ns=trade_id * 900 * 10**9,
        entry_ns=(trade_id + 1) * 900 * 10**9,
        entry_price=1.08501,
        units=1000.0,
        stop_loss=1.08001,
        take_profit=1.09251,
        exit_ns=(trade_id + 3) * 900 * 10**9,
        exit_price=1.09,
        exit_reason=reason,
        pnl_home=pnl,
        risk_home=50.0,
        bars_held=3,
        p_up=0.7,
    )


def test_win_rate_profit_factor_and_average_r_come_from_the_closed_trades() -> None:
    trades = [_trade(1, 100.0), _trade(2, -50.0), _trade(3, 200.0), _trade(4, -50.0, "end_of_data")]
    m = compute_metrics(
        trades, equity=[100.0, 110.0, 99.0, 120.0], exposed_bars=3, opening_nav=100.0, granularity="M15"
    )
    assert (m["trades"], m["open_at_end"], m["win_rate"]) == (4, 1, 0.5)
    assert m["profit_factor"] == 3.0
    assert m["average_r"] == 1.0  # (2 - 1 + 4 - 1) / 4
    assert m["max_drawdown"] == 0.1  # from 110 down to 99
    assert m["max_drawdown_home"] == 11.0
    assert m["exposure"] == 0.75
    assert (m["net_pnl"], m["return"], m["final_nav"]) == (20.0, 0.2, 120.0)
    assert m["exits"] == {"end_of_data": 1, "stop_loss": 3}
    assert m["sharpe"] is not None and m["sortino"] is not None


def test_undefined_ratios_are_null_not_infinite() -> None:
    m = compute_metrics([_trade(1, 10.0)], equity=[101.0], exposed_bars=1, opening_nav=100.0, granularity="M15")
    assert m["profit_factor"] is None  # nothing lost
    assert m["sharpe"] is None and m["sortino"] is None  # one return
    none = compute_metrics([], equity=[100.0, 100.0, 100.0], exposed_bars=0, opening_nav=100.0, granularity="M15")
    assert (none["win_rate"], none["average_r"], none["sharpe"], none["exposure"]) == (None, None, None, 0.0)


def test_trades_csv_lists_trades_by_id_with_prices_at_the_instruments_precision() -> None:
    text = trades_csv([_trade(10, -5.0), _trade(2, 5.0)], {"EUR_USD": 5})
    lines = text.splitlines()
    assert lines[0] == ",".join(TRADE_COLUMNS)
    assert [line.split(",")[0] for line in lines[1:]] == ["2", "10"]
    assert lines[1].split(",")[6] == "1.08501" and lines[1].split(",")[13] == "5.0000"
