"""Money across currencies (pure): the factor that converts an amount from one currency into the
account's home currency through the mids the host has (direct, inverse, or a cross through one
other currency), the net exposure per currency of a book of open positions, and the margin the
broker holds for them (units x mid x quote->home x the instrument's ``marginRate``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Container, Mapping
from typing import TYPE_CHECKING

from actors.core.domain import Direction, Position

if TYPE_CHECKING:
    from actors.core.domain import Instrument


_HUBS = ("USD", "EUR", "GBP", "JPY")


def quote_to_home(currency: str, home: str, mids: Mapping[str, float]) -> float | None:
    """The factor that converts an amount in ``currency`` to the home currency.

    Tries, in order: the same currency (1.0); a direct pair ``CCY_HOME`` (its mid); the inverse
    pair ``HOME_CCY`` (1 / its mid); then a cross through one other currency (USD, EUR, GBP, JPY
    first, then any other currency in ``mids``, in sorted order, so the choice is deterministic).

    Args:
        currency: the currency an amount is in (e.g. a trade's quote currency).
        home: the account's home currency.
        mids: mid prices by instrument name (``EUR_USD`` -> 1.0850).

    Returns:
        The factor, or None when ``mids`` cannot convert (or holds a non-positive price on the
        way).
    """
    if currency == home:
        return 1.0
    route = _route(currency, home, mids)
    if route is None:
        return None
    factor = 1.0
    for name, inverted in route:
        mid = mids[name]
        if not mid > 0:
            return None
        factor *= 1.0 / mid if inverted else mid
    return factor


def _leg(from_ccy: str, to_ccy: str, names: Container[str]) -> tuple[str, bool] | None:
    direct = f"{from_ccy}_{to_ccy}"
    if direct in names:
        return direct, False
    inverse = f"{to_ccy}_{from_ccy}"
    if inverse in names:
        return inverse, True
    return None


def _route(currency: str, home: str, names: Collection[str]) -> tuple[tuple[str, bool], ...] | None:
    # The instruments (and whether each is inverted) that take ``currency`` to ``home``.
    if currency == home:
        return ()
    leg = _leg(currency, home, names)
    if leg is not None:
        return (leg,)
    others = {c for name in names for c in name.split("_")} - {currency, home}
    for hub in (*[h for h in _HUBS if h in others], *sorted(others - set(_HUBS))):
        first = _leg(currency, hub, names)
        if first is not None:
            second = _leg(hub, home, names)
            if second is not None:
                return first, second
    return None


def conversion_refusal(instruments: Collection[str], home: str) -> str:
    """Why a configuration cannot trade: instruments whose quote currency no route through the
    configured instruments' own prices converts into the home currency (the route ``quote_to_home``
    takes at every decision), so every signal of theirs would be skipped as ``no_conversion_rate``;
    "" when every one converts.

    Sizing, margin and exposure value a position through its quote currency only, so only quote
    currencies need a route. The pair to add is named: ``QUOTE_HOME`` (or ``HOME_QUOTE``, the way
    the broker lists it). One line, for the start-up refusal and for ``tradehost backtest``.

    Args:
        instruments: the configured instruments (``feed.instruments``): the prices the host has.
        home: the account's home currency.
    """
    missing: dict[str, list[str]] = {}
    for name in instruments:
        _, quote = name.split("_", 1)
        if _route(quote, home, instruments) is None:
            missing.setdefault(quote, []).append(name)
    return "; ".join(
        f"feed.instruments: {', '.join(names)} {'is' if len(names) == 1 else 'are'} quoted in {quote}, and no "
        f"configured instrument converts {quote} into the account currency {home}: add {quote}_{home} (or "
        f"{home}_{quote}) to feed.instruments, or remove {', '.join(names)} (every signal would be skipped as "
        "no_conversion_rate)"
        for quote, names in sorted(missing.items())
    )


def currency_exposure(book: Mapping[str, Position], mids: Mapping[str, float], home: str) -> dict[str, float]:
    """Signed net exposure per currency in the home currency (positive: long the currency).

    A long of ``units`` BASE_QUOTE is long BASE and short QUOTE by the same notional: units * mid
    * quote_to_home(QUOTE). A position whose instrument has no mid is valued at its entry price.
    A currency that cannot be valued (no conversion rate) is NaN, which the gate and the sizing
    treat as "over the limit": unsure, no new exposure.

    Args:
        book: open positions by instrument.
        mids: mid prices by instrument.
        home: the account's home currency (it appears in the result like any other currency).
    """
    out: dict[str, float] = {}
    for name, position in book.items():
        base, quote = name.split("_", 1)
        factor = quote_to_home(quote, home, mids)
        price = mids.get(name, position.entry_price)
        notional = math.nan if factor is None else position.units * price * factor
        signed = notional if position.direction is Direction.LONG else -notional
        out[base] = out.get(base, 0.0) + signed
        out[quote] = out.get(quote, 0.0) - signed
    return out


def position_margin(
    book: Mapping[str, Position], instruments: Mapping[str, Instrument], mids: Mapping[str, float], home: str
) -> float:
    """The margin the broker holds for ``book``, in the home currency (the valuation ``size_entry`` uses).

    Each position: units * mid * ``quote_to_home(QUOTE)`` * its instrument's ``marginRate``; a
    position whose instrument has no mid is valued at its entry price. A position that cannot be
    valued (no metadata, no conversion rate) makes the total NaN, which sizing treats as no margin
    left: unsure, no new entry.

    Args:
        book: open positions by instrument.
        instruments: instrument metadata by name (``marginRate``).
        mids: mid prices by instrument.
        home: the account's home currency.
    """
    total = 0.0
    for name, position in book.items():
        meta = instruments.get(name)
        factor = quote_to_home(name.split("_", 1)[1], home, mids)
        if meta is None or factor is None:
            return math.nan
        total += position.units * mids.get(name, position.entry_price) * factor * float(meta.margin_rate)
    return total
