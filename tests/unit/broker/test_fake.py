"""InMemoryBroker behaves like the Protocol says."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.broker import Broker, MarketOrderRequest
from actors.core.errors import BrokerRejectedError, BrokerTemporaryError
from tests.fakebroker import InMemoryBroker

pytestmark = pytest.mark.unit


def test_fake_implements_the_protocol_and_triggers_stops():
    broker = InMemoryBroker()
    assert isinstance(broker, Broker)
    broker.set_price("EUR_USD", Decimal("1.10000"), Decimal("1.10010"))
    result = broker.submit_market_order(
        MarketOrderRequest(instrument="EUR_USD", units=Decimal(1000), client_id="a", trade_client_id="a-t",
                           stop_loss=Decimal("1.09000"), take_profit=Decimal("1.12000"))
    )  # fmt: skip
    assert broker.order("@a").state == "FILLED" and broker.trade("@a-t").id == result.trade_id
    assert len(broker.pending_orders()) == 2
    broker.set_price("EUR_USD", Decimal("1.08990"), Decimal("1.09000"))
    assert broker.open_trades() == []
    assert broker.account_summary().balance < Decimal(100_000)


def test_fake_scripts_rejections_and_failures():
    broker = InMemoryBroker()
    broker.set_price("EUR_USD", Decimal("1.1"), Decimal("1.1001"))
    broker.reject_next("MARKET_HALTED")
    with pytest.raises(BrokerRejectedError) as e:
        broker.submit_market_order(MarketOrderRequest(instrument="EUR_USD", units=Decimal(1), client_id="x"))
    assert e.value.reason == "MARKET_HALTED"
    broker.fail_next(BrokerTemporaryError("down"))
    with pytest.raises(BrokerTemporaryError):
        broker.account_summary()
    assert broker.calls[-1] == "account_summary"
