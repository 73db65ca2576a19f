"""The ``latency`` fault limited to one path and method: a slow order, nothing else slowed."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from actors.broker import MarketOrderRequest, OrderResult
from actors.broker.oanda.client import OandaBroker
from tests.helpers import poll_until
from tests.integration.emulator.conftest import Emu, make_broker

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_a_latency_on_the_order_path_holds_the_order_and_nothing_else(broker: OandaBroker, emu: Emu) -> None:
    # A slow order: other requests answer at once, and the order is not at the broker until the
    # delay ends (a thread sends it; the test reads the account meanwhile).
    ask = broker.candles("EUR_USD", "S5", count=1, price="BA")[-1].ask
    assert ask is not None
    request = MarketOrderRequest(instrument="EUR_USD", units=Decimal(1000), client_id="c-slow",
                                 trade_client_id="c-slow-trade", stop_loss=ask.c - Decimal("0.0050"),
                                 take_profit=ask.c + Decimal("0.0050"))  # fmt: skip
    emu.admin.fault("latency", seconds=2.0, count=1, path="/orders", method="POST")
    done: list[OrderResult] = []
    sender = threading.Thread(target=lambda: done.append(make_broker(emu).submit_market_order(request)))
    started = time.monotonic()
    sender.start()
    try:
        poll_until(lambda: any(r["method"] == "POST" for r in emu.admin.requests()), timeout_s=5, what="the POST")
        assert broker.open_trades() == []  # held: not carried out yet
        assert time.monotonic() - started < 2.0  # and the read was not delayed
    finally:
        sender.join(timeout=10)
    assert done and time.monotonic() - started >= 2.0
    assert [t.client_id for t in broker.open_trades()] == ["c-slow-trade"]
