"""The reconciliation compare: every difference between the trades the host knows and the broker's
open trades gets its kind, and the broker's view is what the host knows afterwards."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from actors.core.domain import TradeState
from actors.core.entry import host_tag
from actors.core.truth import KnownTrade, compare

pytestmark = pytest.mark.unit

OWN = host_tag("main")


def _trade(
    trade_id: str, *, tag: str | None = OWN, sl: str | None = "1.08300", tp: str | None = "1.09100"
) -> TradeState:
    return TradeState(
        id=trade_id, instrument="EUR_USD", price=Decimal("1.08500"), open_ts=1, state="OPEN",
        initial_units=Decimal(1000), current_units=Decimal(1000), realized_pl=Decimal(0), unrealized_pl=Decimal(0),
        client_tag=tag, stop_loss_price=None if sl is None else Decimal(sl),
        take_profit_price=None if tp is None else Decimal(tp),
    )  # fmt: skip


def test_each_difference_is_named_and_the_broker_wins() -> None:
    # Arrange: the host knew 1 (now with a moved SL) and 2 (now gone); 3, 4 and 5 are new to it.
    known = {"1": KnownTrade.of(_trade("1")), "2": KnownTrade.of(_trade("2"))}
    broker = [
        _trade("1", sl="1.08400"),
        _trade("3"),
        _trade("4", tag=None, tp=None),  # opened by hand, without a TP
        _trade("5", tag=host_tag("other")),
    ]

    # Act
    differences, now = compare(known, broker, own_tag=OWN)

    # Assert
    kinds = sorted((d.trade_id, d.kind) for d in differences)
    assert kinds == [("1", "changed"), ("2", "closed"), ("3", "caught_up"), ("4", "adopted"), ("4", "unprotected"),
                     ("5", "another_host")]  # fmt: skip
    assert now == {t.id: KnownTrade.of(t) for t in broker}
    changed = next(d for d in differences if d.kind == "changed")
    assert (changed.local or {})["stop_loss"] == "1.08300" and (changed.broker or {})["stop_loss"] == "1.08400"
    adopted = next(d for d in differences if d.kind == "adopted")
    assert adopted.body()["detail"].startswith("a trade the host did not open: adopted")


def test_nothing_differs_when_the_host_knows_what_the_broker_has() -> None:
    trades = [_trade("1"), replace(_trade("2"), current_units=Decimal(-500))]

    differences, now = compare({t.id: KnownTrade.of(t) for t in trades}, trades, own_tag=OWN)

    assert differences == [] and set(now) == {"1", "2"}
