"""What happens at a bar's close, in order: one sequence for the live roles and ``tradehost backtest``.

At every close the open trades are settled before anything new is decided:

1. **Stops that hit inside the bar**: trades the broker closed on their SL or TP during the bar
   are settled (the book forgets them, their P&L is counted, a loss starts its cool-down). Live,
   the execution role reports every trade the broker no longer shows (``CLOSED`` with the real
   P&L); the backtest applies ``actors.core.fills.bar_exit`` to the bar's range.
2. **Exit rules**: every trade still open goes through ``actors.core.exits`` (breakeven,
   trailing, time exit) with the close's bid/ask; a stop is moved at once, a time exit closes
   the trade **now, at this close's price** (a market close), not at the next open.
3. **Entries**: only then are the close's signals decided, so a trade closed at this close
   (by its stop or by the time exit) no longer blocks a signal of the same close
   (``position_open``) and its loss counts (cool-down, daily loss) as it did live. Live, the
   execution role publishes ``ExitsChecked`` and the risk role decides on it; when a close
   could not be settled (a broker read failed), entries wait (the risk role skips them as
   ``exits_unchecked`` after ``risk.exits_wait_s``).

``at_close`` is that order; the execution role (``actors.roles.execution.exits``) and the
backtest (``supervisor.offline.backtest.book``) each give it the steps for their book
(``CloseSteps``) and call it at every close, so neither keeps an order of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from actors.core.exits import CloseTrade, ExitAction, MoveStopLoss

__all__ = ["CloseSteps", "at_close"]

T = TypeVar("T")


class CloseSteps(Protocol[T]):
    """One book's steps at a close (see the module docstring); ``T`` is its open trade."""

    def settle_stops(self) -> bool:
        """Settle the trades whose SL or TP hit inside the bar; False when a close is not known yet."""
        ...

    def open_trades(self) -> Iterable[T]:
        """The trades open after the stops were settled."""
        ...

    def exit_actions(self, trade: T) -> Sequence[ExitAction]:
        """The exit rules' actions for ``trade`` at this close (``actors.core.exits``)."""
        ...

    def move_stop(self, trade: T, action: MoveStopLoss) -> None:
        """Move the trade's SL (breakeven, trailing)."""
        ...

    def close_now(self, trade: T, action: CloseTrade) -> None:
        """Close the trade at the market, at this close (a time exit)."""
        ...

    def decide_entries(self) -> None:
        """Decide the close's signals (live: tell the risk role the close's exits are checked)."""
        ...


def at_close(steps: CloseSteps[T]) -> bool:
    """Run one close: stops settled, exit rules applied (a time exit closes now), then entries.

    Returns:
        True when every close was settled and the entries were decided; False when a close was
        not known yet (the entries of this close were not decided).
    """
    settled = steps.settle_stops()
    for trade in list(steps.open_trades()):
        for action in steps.exit_actions(trade):
            if isinstance(action, MoveStopLoss):
                steps.move_stop(trade, action)
            elif isinstance(action, CloseTrade):
                steps.close_now(trade, action)
    if settled:
        steps.decide_entries()
    return settled
