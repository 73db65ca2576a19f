"""The broker reads behind a rebuilt day-start NAV (``actors.core.daystart`` does the arithmetic).

When a trading day begins without the host having watched its 17:00 New York rollover (a fresh
start, a lost ``recon-state.json``, a restart across the rollover, a weekend), the reconciler's
worker calls ``rebuild_day_start``: it reads the transactions since the rollover (from the saved
last transaction id when that is older than the rollover, else walking back from the account's
newest id), the trades that were open at the rollover (open now, or closed since: read one by
one), and the bid/ask of the last candle before the rollover for their instruments and the pairs
that convert their quote currencies to the home currency. What cannot be read makes the rebuild
fail (``DayStart.nav`` None, with the reason): the caller then falls back to the last NAV it
observed before the rollover.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.broker import Broker, Transaction
from actors.core.daystart import BoundaryTrade, day_start_nav, day_transactions, open_at_boundary, unrealized_at
from actors.core.domain import AccountState, TradeState
from actors.core.errors import BrokerRejectedError
from actors.core.timefmt import format_rfc3339

__all__ = ["DayStart", "rebuild_day_start", "transactions_from"]

FIRST_STEP = 100  # transactions read back at first when walking back to the rollover (x4 each time)


@dataclass(frozen=True, slots=True)
class DayStart:
    """A rebuilt day start: ``nav`` (None when it could not be rebuilt) and what it came from."""

    nav: float | None
    detail: dict[str, Any] = field(default_factory=dict)


def transactions_from(broker: Broker, boundary_ns: int, last_id: str) -> list[Transaction]:
    """The account's transactions at or after ``boundary_ns``, oldest first, read back from
    ``last_id`` (the account's newest) in growing pages until one starts before the boundary."""
    newest = int(last_id or 0)
    step = FIRST_STEP
    while True:
        start = max(1, newest - step)
        page = broker.transactions_since(str(start)).transactions if newest > start else ()
        if start == 1 or (page and page[0].ts < boundary_ns):
            return [t for t in page if t.ts >= boundary_ns]
        step *= 4


def _sign(units: Any) -> int:
    return 1 if float(units) > 0 else -1


def _boundary_trades(
    broker: Broker, trades: Sequence[TradeState], closed_units: dict[str, float], boundary_ns: int
) -> list[BoundaryTrade]:
    found = []
    open_ids = {t.id for t in trades}
    closed = [broker.trade(trade_id) for trade_id in sorted(closed_units) if trade_id not in open_ids]
    for trade in [*trades, *closed]:
        units_now = float(trade.current_units) if trade.id in open_ids else 0.0
        then = open_at_boundary(
            instrument=trade.instrument,
            price=float(trade.price),
            units_now=units_now,
            sign=_sign(trade.initial_units if trade.id not in open_ids else trade.current_units),
            opened_ns=trade.open_ts,
            boundary_ns=boundary_ns,
            closed_since=closed_units.get(trade.id, 0.0),
        )
        if then is not None:
            found.append(then)
    return found


def _quotes_before(
    broker: Broker, names: Iterable[str], boundary_ns: int, granularity: str
) -> dict[str, tuple[float, float]]:
    quotes = {}
    for name in sorted(set(names)):
        try:
            candles = broker.candles(name, granularity, to_ts=boundary_ns, count=1, price="BA")
        except BrokerRejectedError:
            continue  # not an instrument of this broker (a conversion pair tried the other way round)
        last = candles[-1] if candles else None
        if last is not None and last.bid is not None and last.ask is not None:
            quotes[name] = (float(last.bid.c), float(last.ask.c))
    return quotes


def _conversion_pairs(instruments: Iterable[str], home: str) -> set[str]:
    pairs = set()
    for name in instruments:
        quote = name.split("_", 1)[-1]
        if quote != home:
            pairs |= {f"{quote}_{home}", f"{home}_{quote}"}
    return pairs


def rebuild_day_start(
    broker: Broker,
    *,
    account: AccountState,
    trades: Sequence[TradeState],
    boundary_ns: int,
    since: Sequence[Transaction] | None,
    granularity: str,
) -> DayStart:
    """The NAV at the rollover ``boundary_ns`` plus the deposits and withdrawals since.

    Args:
        broker: where to read.
        account: the account read now.
        trades: the trades open now.
        boundary_ns: the 17:00 New York rollover that began the trading day (UTC ns).
        since: the transactions read since a saved id older than the rollover, or None: walk back.
        granularity: the candles whose last close before the rollover marks the trades then.

    Raises:
        BrokerError: a read failed (the poll fails and is retried).
    """
    txs = (
        transactions_from(broker, boundary_ns, account.last_transaction_id)
        if since is None
        else [t for t in since if t.ts >= boundary_ns]
    )
    day = day_transactions(t.raw for t in txs)
    then = _boundary_trades(broker, trades, dict(day.closed_units), boundary_ns)
    names = {t.instrument for t in then}
    quotes = _quotes_before(broker, names | _conversion_pairs(names, account.currency), boundary_ns, granularity)
    unrealized_then = unrealized_at(then, quotes, home=account.currency)
    detail: dict[str, Any] = {
        "boundary": format_rfc3339(boundary_ns),
        "transactions": day.count,
        "realized": round(day.realized, 4),
        "transfers": round(day.transfers, 4),
        "trades_open_then": len(then),
        "unrealized_now": float(account.unrealized_pl),
    }
    if unrealized_then is None:
        missing = sorted(names - set(quotes)) or sorted(_conversion_pairs(names, account.currency))
        return DayStart(None, {**detail, "why": f"no price at the rollover for {', '.join(missing)}"})
    nav = day_start_nav(
        nav=float(account.nav),
        unrealized_now=float(account.unrealized_pl),
        unrealized_then=unrealized_then,
        realized=day.realized,
    )
    return DayStart(nav, {**detail, "unrealized_then": round(unrealized_then, 4)})
