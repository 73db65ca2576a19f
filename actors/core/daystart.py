"""The day-start NAV rebuilt from the broker's records: what a restart or a lost state cannot forget.

The daily loss limit measures today's P&L from the NAV at the 17:00 New York rollover that began
the trading day (``actors.core.zones``). A host that was not watching at that moment (it was down
across the rollover, lost its saved state, or the market was closed, as over a weekend) rebuilds
that NAV from what the broker keeps:

    NAV at the rollover + today's deposits and withdrawals
        = NAV now - realized P&L since the rollover - (unrealized P&L now - unrealized P&L at the rollover)

- **Realized P&L since the rollover**: the ``pl`` and ``financing`` of every transaction since
  then (OANDA's ``ORDER_FILL``, ``DAILY_FINANCING``, ...). ``TRANSFER_FUNDS`` (``amount``) is money
  paid in or out, not profit or loss: it stays in the day-start NAV, and is reported on its own.
- **Unrealized P&L at the rollover**: the trades open then (open now and opened before it, with the
  units closed since added back; or closed since, with the units closed since), each marked where
  the broker marks an open trade (a long at the bid, a short at the ask) at the last price before
  the rollover (the broker's candles), converted to the home currency at the mids of that moment
  (``actors.core.money.quote_to_home``). Over a weekend the last price before Sunday's rollover is
  Friday's close, so the gap at the open counts against the day that opens then.

Pure: the reconciler reads the transactions, the trades and the candles and calls these
functions; amounts are floats in the home currency.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from actors.core.money import quote_to_home

__all__ = ["BoundaryTrade", "DayTransactions", "day_start_nav", "day_transactions", "open_at_boundary", "unrealized_at"]


def _amount(raw: Mapping[str, Any], key: str) -> float:
    try:
        value = float(raw.get(key) or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) else 0.0


@dataclass(frozen=True, slots=True)
class DayTransactions:
    """What the transactions since a rollover say about the day's money.

    Attributes:
        realized: the ``pl`` plus ``financing`` of every transaction (home currency).
        transfers: deposits (+) and withdrawals (-): the ``amount`` of every ``TRANSFER_FUNDS``.
        closed_units: trade id -> the units (absolute) its fills closed since the rollover.
        count: how many transactions were read.
    """

    realized: float = 0.0
    transfers: float = 0.0
    closed_units: Mapping[str, float] = field(default_factory=dict)
    count: int = 0


def day_transactions(raws: Iterable[Mapping[str, Any]]) -> DayTransactions:
    """Sum the transactions since a rollover (OANDA's wire objects, oldest first)."""
    realized = transfers = 0.0
    closed: dict[str, float] = {}
    count = 0
    for raw in raws:
        count += 1
        if raw.get("type") == "TRANSFER_FUNDS":
            transfers += _amount(raw, "amount")
            continue
        realized += _amount(raw, "pl") + _amount(raw, "financing")
        entries = list(raw.get("tradesClosed") or ())
        if isinstance(raw.get("tradeReduced"), Mapping):
            entries.append(raw["tradeReduced"])
        for entry in entries:
            if isinstance(entry, Mapping) and entry.get("tradeID"):
                trade_id = str(entry["tradeID"])
                closed[trade_id] = closed.get(trade_id, 0.0) + abs(_amount(entry, "units"))
    return DayTransactions(realized=realized, transfers=transfers, closed_units=closed, count=count)


@dataclass(frozen=True, slots=True, kw_only=True)
class BoundaryTrade:
    """A trade as it was open at the rollover.

    Attributes:
        instrument: e.g. ``EUR_USD``.
        units: signed units open at the rollover (positive long).
        price: its opening price.
    """

    instrument: str
    units: float
    price: float


def open_at_boundary(
    *, instrument: str, price: float, units_now: float, sign: int, opened_ns: int, boundary_ns: int, closed_since: float
) -> BoundaryTrade | None:
    """The trade as it was at the rollover, or None when it opened after it (or had no units then).

    Args:
        instrument: the trade's instrument.
        price: its opening price.
        units_now: its units now, signed (0 for a trade closed since).
        sign: +1 long, -1 short.
        opened_ns: when it opened (UTC ns).
        boundary_ns: the rollover (UTC ns).
        closed_since: units (absolute) its fills closed since the rollover (``DayTransactions``).
    """
    if opened_ns >= boundary_ns:
        return None
    units = sign * (abs(units_now) + closed_since)
    return BoundaryTrade(instrument=instrument, units=units, price=price) if units else None


def unrealized_at(
    trades: Iterable[BoundaryTrade], quotes: Mapping[str, tuple[float, float]], *, home: str
) -> float | None:
    """The unrealized P&L of ``trades`` at the given bid/ask, in the home currency.

    Args:
        trades: the trades open at the rollover.
        quotes: instrument -> (bid, ask) at the rollover, for the trades' instruments and the pairs
            their quote currencies convert through.
        home: the account's home currency.

    Returns:
        The sum, or None when a trade's instrument has no price or its currency cannot be
        converted (then the NAV at the rollover cannot be rebuilt).
    """
    mids = {name: (bid + ask) / 2.0 for name, (bid, ask) in quotes.items()}
    total = 0.0
    for trade in trades:
        quote = quotes.get(trade.instrument)
        factor = quote_to_home(trade.instrument.split("_", 1)[-1], home, mids)
        if quote is None or factor is None:
            return None
        mark = quote[0] if trade.units > 0 else quote[1]
        total += (mark - trade.price) * trade.units * factor
    return total


def day_start_nav(*, nav: float, unrealized_now: float, unrealized_then: float, realized: float) -> float:
    """The NAV at the rollover plus the deposits and withdrawals since (the module docstring).

    Args:
        nav: the NAV now.
        unrealized_now: the unrealized P&L now (the broker's).
        unrealized_then: the unrealized P&L at the rollover (``unrealized_at``).
        realized: the realized P&L since the rollover (``DayTransactions.realized``).
    """
    return nav - realized - (unrealized_now - unrealized_then)
