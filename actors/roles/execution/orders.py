"""The execution role's pure side: intents to orders, what it remembers of its trades, exits' inputs.

``market_order`` turns a ``RiskIntent`` into the one kind of order the host sends: MARKET, FOK,
``stopLossOnFill`` and ``takeProfitOnFill`` at the intent's prices, ``clientExtensions.id`` = the
intent id (and the trade's), tagged with this host's instance id; it refuses an intent without
both stops (``MissingStops``: such an order is never sent). ``TradeMemo`` is what execution
remembers per trade it opened (the intent, the bar's corr, the model version, the initial SL that
defines R for exit management), persisted crash-safely in ``execution-state.json``;
``bars_held`` counts the bars a trade has been open on the market's calendar (a weekend is no
bars). ``slippage_pips`` compares the fill with the decision price, positive when worse.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from actors.broker import MarketOrderRequest
from actors.core.entry import host_tag
from actors.runtime.messages import RiskIntent

__all__ = ["MissingStops", "intent_from_rows", "market_order"]


class MissingStops(ValueError):
    """An intent without a valid stop loss and take profit: the order is never sent."""


def market_order(intent: RiskIntent, *, host_id: str) -> MarketOrderRequest:
    """The order for ``intent``.

    Raises:
        MissingStops: the intent lacks a positive SL or TP, or its units are not positive.
    """
    try:
        units, sl, tp = Decimal(intent.units), Decimal(intent.stop_loss), Decimal(intent.take_profit)
    except (InvalidOperation, ValueError) as e:
        raise MissingStops(f"intent {intent.intent_id}: units or stops are not numbers") from e
    if not (units.is_finite() and sl.is_finite() and tp.is_finite()) or units <= 0 or sl <= 0 or tp <= 0:
        raise MissingStops(f"intent {intent.intent_id}: needs positive units, stop loss and take profit")
    sign = 1 if intent.direction == "long" else -1
    if (sl - tp) * sign >= 0:
        raise MissingStops(f"intent {intent.intent_id}: the stop loss is not on the losing side of the take profit")
    return MarketOrderRequest(
        instrument=intent.instrument,
        units=units * sign,
        client_id=intent.intent_id,
        trade_client_id=intent.intent_id,
        tag=host_tag(host_id),
        comment=f"model {intent.model_version}"[:128],
        stop_loss=sl,
        take_profit=tp,
        time_in_force="FOK",
    )


def intent_from_rows(sending: dict[str, Any], decided: dict[str, Any] | None, *, decided_ns: int) -> RiskIntent | None:
    """The intent of an ``exec.sending`` journal row, rebuilt with its ``risk.intent`` row, so an
    outcome found after a restart is booked like any other (None when the rows do not hold it).

    Args:
        sending: the ``exec.sending`` row's body (units signed, the stops as sent).
        decided: the ``risk.intent`` row's body of the same intent id, or None when it is missing.
        decided_ns: when it was taken (the sending row's time).
    """
    try:
        units = Decimal(str(sending["units"]))
        direction = "long" if units > 0 else "short"
        decision_price = float((decided or {}).get("decision_price") or 0.0)
        stop_loss = str(sending["stop_loss"])
        return RiskIntent(
            intent_id=sending["intent_id"],
            instrument=sending["instrument"],
            direction=direction,
            units=format(abs(units), "f"),
            stop_loss=stop_loss,
            take_profit=str(sending["take_profit"]),
            decision_price=decision_price,
            sl_distance=abs(decision_price - float(stop_loss)) if decision_price else 0.0,
            bar_ts=int((decided or {}).get("bar_ts") or 0),
            decided_ns=decided_ns,
            p_up=float((decided or {}).get("p_up") or 0.5),
            model_version=str(sending.get("model_version", "")),
            multiplier=float((decided or {}).get("multiplier") or 1.0),
        )
    except (KeyError, TypeError, ValueError, InvalidOperation):
        return None
