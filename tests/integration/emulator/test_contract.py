"""Contract: the unmodified oandapyV20 client against the emulator, endpoint by endpoint.

oandapyV20 itself checks each success status (it raises ValueError on any other 2xx), so a call
that returns proves the status; the shapes are compared with the OANDA examples.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import oandapyV20
import pytest
from oandapyV20.endpoints import accounts, instruments, orders, positions, pricing, trades, transactions
from oandapyV20.exceptions import V20Error

from actors.broker.oanda.session import register_environment
from tests.integration.emulator.conftest import Emu, example

pytestmark = pytest.mark.integration

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
OPTIONAL = {"clientExtensions", "tradeClientExtensions", "priceBound", "lastOrderFillTimestamp", "commission"}


def assert_shape(actual: Any, expected: Any, path: str = "$") -> None:
    """Every key of ``expected`` exists in ``actual`` with the same JSON type (recursively)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if key not in actual and key in OPTIONAL:
                continue
            assert key in actual, f"{path}.{key} is missing"
            assert_shape(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list"
        if expected and actual:
            assert_shape(actual[0], expected[0], f"{path}[0]")
    else:
        assert type(actual) is type(expected), f"{path}: {type(actual).__name__} != {type(expected).__name__}"
        if isinstance(expected, str) and RFC3339.match(expected):
            assert RFC3339.match(actual), f"{path}: {actual!r} is not RFC3339 with nanoseconds"


def _order(api: oandapyV20.API, emu: Emu, **extra: Any) -> dict[str, Any]:
    price = api.request(pricing.PricingInfo(emu.account, params={"instruments": "EUR_USD"}))["prices"][0]
    ask = Decimal(price["asks"][0]["price"])
    body = {
        "type": "MARKET",
        "instrument": "EUR_USD",
        "units": "10000",
        "timeInForce": "FOK",
        "positionFill": "DEFAULT",
        "clientExtensions": {"id": "host-0001", "tag": "strategy-a", "comment": "entry"},
        "tradeClientExtensions": {"id": "host-0001-trade", "tag": "strategy-a", "comment": "entry"},
        "takeProfitOnFill": {"price": str(ask + Decimal("0.00500")), "timeInForce": "GTC"},
        "stopLossOnFill": {"price": str(ask - Decimal("0.00500")), "timeInForce": "GTC"},
        **extra,
    }
    return api.request(orders.OrderCreate(emu.account, data={"order": body}))


def test_account_summary_and_instruments_match_the_examples(api, emu):
    summary = api.request(accounts.AccountSummary(emu.account))
    assert_shape(summary, example("account_summary"))
    insts = api.request(accounts.AccountInstruments(emu.account, params={"instruments": "EUR_USD,USD_JPY"}))
    assert_shape(insts, example("account_instruments"))
    by_name = {i["name"]: i for i in insts["instruments"]}
    assert by_name["USD_JPY"]["displayPrecision"] == 3 and by_name["EUR_USD"]["pipLocation"] == -4


def test_candles_mid_and_bid_ask_match_the_examples(api):
    mid = api.request(instruments.InstrumentsCandles("EUR_USD", params={"granularity": "M15", "count": 3}))
    assert_shape(mid, example("candles"))
    assert len(mid["candles"]) == 3 and mid["candles"][-1]["complete"] is False
    ba = api.request(
        instruments.InstrumentsCandles("USD_JPY", params={"granularity": "M15", "count": 2, "price": "BA"})
    )
    assert_shape(ba, example("candles_bid_ask"))
    assert re.match(r"^\d+\.\d{3}$", ba["candles"][0]["bid"]["o"])


def test_at_least_5000_candles_of_history_up_to_h1(api):
    for granularity in ("S5", "M1", "M15"):
        body = api.request(
            instruments.InstrumentsCandles("EUR_USD", params={"granularity": granularity, "count": 5000})
        )
        assert len(body["candles"]) == 5000
        times = [c["time"] for c in body["candles"]]
        assert times == sorted(times)


def test_candle_errors_are_400_with_oanda_messages(api):
    with pytest.raises(V20Error) as e:
        api.request(instruments.InstrumentsCandles("EUR_USD", params={"count": 5001}))
    assert e.value.code == 400 and json.loads(e.value.msg)["errorMessage"] == "Maximum value for 'count' exceeded"
    with pytest.raises(V20Error) as e:
        api.request(instruments.InstrumentsCandles("EUR_USD", params={"to": "2030-01-01T00:00:00Z"}))
    assert json.loads(e.value.msg) == example("error_400_candles_future_to")
    with pytest.raises(V20Error) as e:
        api.request(instruments.InstrumentsCandles("XXX_YYY", params={}))
    assert json.loads(e.value.msg) == example("error_400")


def test_candles_page_with_from_and_include_first_false(api):
    first = api.request(instruments.InstrumentsCandles("EUR_USD", params={"granularity": "M5", "count": 10}))
    anchor = first["candles"][2]["time"]
    page = api.request(
        instruments.InstrumentsCandles(
            "EUR_USD", params={"granularity": "M5", "from": anchor, "includeFirst": False, "count": 3}
        )
    )
    assert [c["time"] for c in page["candles"]] == [c["time"] for c in first["candles"][3:6]]


def test_market_order_fill_trades_positions_and_pending_orders(api, emu):
    filled = _order(api, emu)
    assert_shape(filled, example("order_fill_response"))
    assert filled["relatedTransactionIDs"] == [
        str(i) for i in range(int(filled["orderCreateTransaction"]["id"]), int(filled["lastTransactionID"]) + 1)
    ]
    assert filled["orderFillTransaction"]["tradeOpened"]["tradeID"] == filled["orderFillTransaction"]["id"]
    open_trades = api.request(trades.OpenTrades(emu.account))
    assert_shape(open_trades, example("open_trades"))
    assert open_trades["trades"][0]["clientExtensions"]["id"] == "host-0001-trade"
    assert_shape(api.request(positions.OpenPositions(emu.account)), example("open_positions"))
    pending = api.request(orders.OrdersPending(emu.account))["orders"]
    assert sorted(o["type"] for o in pending) == ["STOP_LOSS", "TAKE_PROFIT"]
    by_client = api.request(orders.OrderDetails(emu.account, "@host-0001"))["order"]
    assert by_client["state"] == "FILLED" and by_client["fillingTransactionID"] == filled["orderFillTransaction"]["id"]
    assert api.request(trades.TradeDetails(emu.account, "@host-0001-trade"))["trade"]["state"] == "OPEN"


def test_reject_is_400_with_a_transaction_that_consumes_an_id(api, emu):
    before = int(api.request(accounts.AccountSummary(emu.account))["lastTransactionID"])
    with pytest.raises(V20Error) as e:
        _order(api, emu, takeProfitOnFill={"price": "1.081205", "timeInForce": "GTC"})
    body = json.loads(e.value.msg)
    assert e.value.code == 400
    assert_shape(body, example("order_reject_response"))
    assert body["errorCode"] == "TAKE_PROFIT_ON_FILL_PRICE_PRECISION_EXCEEDED"
    assert int(body["lastTransactionID"]) == before + 1
    with pytest.raises(V20Error) as e:
        api.request(
            orders.OrderCreate(emu.account, data={"order": {"type": "MARKET", "instrument": "EUR_USD", "units": 1.5}})
        )
    assert json.loads(e.value.msg)["errorCode"] == "UNITS_PRECISION_EXCEEDED"


def test_duplicate_client_id_is_rejected(api, emu):
    _order(api, emu)
    with pytest.raises(V20Error) as e:
        _order(api, emu, tradeClientExtensions={"id": "other"})
    assert json.loads(e.value.msg)["errorCode"] == "CLIENT_ORDER_ID_ALREADY_EXISTS"


def test_halted_market_cancels_with_201_and_market_halted(api, emu):
    emu.admin.fault("halt")
    cancelled = _order(api, emu)
    assert_shape(cancelled, example("order_cancelled_fok_response"))
    assert cancelled["orderCancelTransaction"]["reason"] == "MARKET_HALTED"
    assert "orderFillTransaction" not in cancelled
    price = api.request(pricing.PricingInfo(emu.account, params={"instruments": "EUR_USD"}))["prices"][0]
    assert price["tradeable"] is False and price["status"] == "non-tradeable"


def test_insufficient_margin_cancels(api, emu):
    body = _order(
        api, emu, units="100000000", takeProfitOnFill={"price": "9.00000"}, stopLossOnFill={"price": "0.10000"}
    )
    assert body["orderCancelTransaction"]["reason"] == "INSUFFICIENT_MARGIN"


def test_modify_close_and_cancel_trade_orders(api, emu):
    filled = _order(api, emu)
    trade_id = filled["orderFillTransaction"]["tradeOpened"]["tradeID"]
    fill_price = Decimal(filled["orderFillTransaction"]["price"])
    modified = api.request(
        trades.TradeCRCDO(
            emu.account,
            trade_id,
            data={
                "takeProfit": {"price": str(fill_price + Decimal("0.01")), "timeInForce": "GTC"},
                "stopLoss": {"price": str(fill_price - Decimal("0.01")), "timeInForce": "GTC"},
            },
        )
    )
    assert_shape(modified, example("trade_orders_modify_response"))
    sl_id = modified["stopLossOrderTransaction"]["id"]
    cancelled = api.request(orders.OrderCancel(emu.account, sl_id))
    assert cancelled["orderCancelTransaction"]["reason"] == "CLIENT_REQUEST"
    closed = api.request(trades.TradeClose(emu.account, "@host-0001-trade"))
    assert_shape(closed, example("trade_close_response"))
    assert closed["orderFillTransaction"]["tradesClosed"][0]["tradeID"] == trade_id
    assert api.request(trades.OpenTrades(emu.account))["trades"] == []


def test_unknown_ids_are_404_with_no_such_codes(api, emu):
    with pytest.raises(V20Error) as e:
        api.request(orders.OrderDetails(emu.account, "@nope"))
    body = json.loads(e.value.msg)
    assert e.value.code == 404 and set(body) == set(example("error_404_no_such_order"))
    with pytest.raises(V20Error) as e:
        api.request(trades.TradeClose(emu.account, "999"))
    assert json.loads(e.value.msg)["errorCode"] == "NO_SUCH_TRADE"


def test_bad_token_is_401_and_foreign_account_is_403(emu):
    key = register_environment(emu.url)
    bad = oandapyV20.API(access_token="wrong", environment=key, request_params={"timeout": 5})  # noqa: S106
    good = oandapyV20.API(access_token=emu.options.token, environment=key, request_params={"timeout": 5})
    try:
        with pytest.raises(V20Error) as e:
            bad.request(accounts.AccountSummary(emu.account))
        assert e.value.code == 401 and json.loads(e.value.msg) == example("error_401")
        with pytest.raises(V20Error) as e:
            good.request(accounts.AccountSummary("101-001-9999999-001"))
        assert e.value.code == 403 and json.loads(e.value.msg) == example("error_403")
    finally:
        bad.close()
        good.close()


def test_transactions_since_id_and_unix_datetime_format(api, emu):
    _order(api, emu)
    body = api.request(transactions.TransactionsSinceID(emu.account, params={"id": 2}))
    assert_shape(body, example("transactions_since_id"))
    ids = [int(t["id"]) for t in body["transactions"]]
    assert ids == list(range(3, int(body["lastTransactionID"]) + 1))
    key = register_environment(emu.url)
    with oandapyV20.API(
        emu.options.token, environment=key, headers={"Accept-Datetime-Format": "UNIX"}, request_params={"timeout": 5}
    ) as unix:
        tx = unix.request(transactions.TransactionsSinceID(emu.account, params={"id": 2}))["transactions"][0]
    assert re.match(r"^\d{10}\.\d{9}$", tx["time"])


def test_pricing_stream_sends_snapshot_then_prices_and_heartbeats(api, emu):
    r = pricing.PricingStream(emu.account, params={"instruments": "EUR_USD,USD_JPY"})
    seen: list[dict[str, Any]] = []
    stream = api.request(r)
    for line in stream:
        seen.append(line)
        if any(x["type"] == "HEARTBEAT" for x in seen) and len(seen) >= 3:
            break
    stream.close()
    assert {seen[0]["instrument"], seen[1]["instrument"]} == {"EUR_USD", "USD_JPY"}
    assert_shape(seen[0], example("price"))
    assert_shape(next(x for x in seen if x["type"] == "HEARTBEAT"), example("heartbeat"))


def test_transaction_stream_sends_new_transactions_and_heartbeats(api, emu):
    stream = api.request(transactions.TransactionsStream(emu.account))
    first = next(stream)
    assert_shape(first, example("transaction_heartbeat"))
    emu.admin.fault("open_trade", instrument="EUR_USD", units="1000")
    types = []
    for line in stream:
        types.append(line["type"])
        if "ORDER_FILL" in types:
            break
    stream.close()
    assert types[:2] == ["MARKET_ORDER", "ORDER_FILL"]
