"""One order at every close, live and in the backtest (``actors.core.closing.at_close``): stops that
hit inside the bar settled, the exit rules applied (a time exit closes at that close), then the
close's entries decided; and both the execution role and ``tradehost backtest`` run their close
through it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.core import closing
from actors.core.closing import at_close
from actors.core.exits import TIME_EXIT, CloseTrade, ExitAction, MoveStopLoss

pytestmark = pytest.mark.unit


class _Steps:
    def __init__(self, trades: dict[str, tuple[ExitAction, ...]], *, settled: bool = True) -> None:
        self.trades = trades
        self.settled = settled
        self.log: list[str] = []

    def settle_stops(self) -> bool:
        self.log.append("settle")
        self.trades.pop("stopped", None)  # its SL hit inside the bar
        return self.settled

    def open_trades(self) -> list[str]:
        return list(self.trades)

    def exit_actions(self, trade: str) -> tuple[ExitAction, ...]:
        return self.trades[trade]

    def move_stop(self, trade: str, action: MoveStopLoss) -> None:
        self.log.append(f"move {trade}")

    def close_now(self, trade: str, action: CloseTrade) -> None:
        self.log.append(f"close {trade} {action.reason}")
        del self.trades[trade]

    def decide_entries(self) -> None:
        self.log.append(f"decide with {sorted(self.trades)} open")


def test_a_close_settles_stops_then_applies_exits_then_decides_with_the_time_exited_trade_gone() -> None:
    steps = _Steps(
        {"stopped": (), "old": (CloseTrade(TIME_EXIT),), "winner": (MoveStopLoss(Decimal("1.1"), "breakeven"),)}
    )
    assert at_close(steps) is True
    assert steps.log == ["settle", "close old time_exit", "move winner", "decide with ['winner'] open"]


def test_a_close_not_settled_applies_the_exits_but_decides_no_entry() -> None:
    steps = _Steps({"old": (CloseTrade(TIME_EXIT),)}, settled=False)
    assert at_close(steps) is False
    assert steps.log == ["settle", "close old time_exit"]


def test_the_execution_role_and_the_backtest_both_run_their_close_through_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a spy on the one sequence, where each caller looks it up
    import actors.roles.execution.exits as desk_exits
    from supervisor.offline.backtest import book
    from tests.unit.actors.test_orderdesk_exits import BAR, _desk
    from tests.unit.supervisor.test_backtest_book import _flat, _Run

    callers: list[str] = []

    def spy(steps: Any) -> bool:
        callers.append(type(steps).__module__)
        return closing.at_close(steps)

    monkeypatch.setattr(desk_exits, "at_close", spy)
    monkeypatch.setattr(book, "at_close", spy)
    from actors.roles.execution.jobs import Exits
    from tests.fakebroker import InMemoryBroker

    # Act: one close of the order desk, one close of the backtest
    posted: list[Any] = []
    _desk(tmp_path, posted, [])._do(InMemoryBroker(), Exits(BAR), stop=None)  # type: ignore[arg-type]
    _Run(_flat(2)).step(1)

    # Assert
    assert callers == ["actors.roles.execution.exits", "supervisor.offline.backtest.book"]
