"""Error translation from recorded OANDA responses (requests_mock), never a real host."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import requests_mock

from actors.broker import MarketOrderRequest
from actors.broker.config import BrokerConfig, Credentials
from actors.broker.oanda.client import OandaBroker
from actors.broker.oanda.pacing import Retrier, RetryPolicy
from actors.broker.oanda.translate import error_from_fill_response, error_from_status
from actors.core.errors import BrokerAmbiguousError, BrokerFatalError, BrokerRejectedError, BrokerTemporaryError

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "oanda-examples"
BASE = "http://broker.invalid"
ACCOUNT = "101-004-1234567-001"
TOKEN = "tok-very-secret-0123456789"  # noqa: S105 - fake


def example(name: str) -> str:
    return (EXAMPLES / f"{name}.json").read_text()


@pytest.fixture
def broker():
    b = OandaBroker(
        BrokerConfig(kind="oanda", api_url=BASE),
        Credentials(token=TOKEN, account_id=ACCOUNT),
        sleep=lambda s: None,
        retrier=Retrier(RetryPolicy(attempts=2, base_delay_s=0.0), sleep=lambda s: None),
        lookup_delays_s=(0.0, 0.0),
    )
    yield b
    b.close()


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (400, "order_reject_response", BrokerRejectedError),
        (401, "error_401", BrokerFatalError),
        (403, "error_403", BrokerFatalError),
        (404, "error_404_no_such_order", BrokerRejectedError),
        (429, None, BrokerTemporaryError),
        (502, None, BrokerTemporaryError),
        (504, None, BrokerTemporaryError),
    ],
)
def test_status_codes_map_to_what_the_caller_must_do(status, body, kind):
    text = example(body) if body else "<html>gateway</html>"
    error = error_from_status(status, text, op="read")
    assert type(error) is kind
    if status == 400:
        assert error.reason == "TAKE_PROFIT_ON_FILL_PRICE_PRECISION_EXCEEDED"
        assert error.transaction["type"] == "MARKET_ORDER_REJECT"
    if status == 404:
        assert error.reason == "NO_SUCH_ORDER"


def test_5xx_on_an_order_submission_is_ambiguous():
    assert isinstance(error_from_status(504, "{}", op="submit", order_post=True), BrokerAmbiguousError)


def test_a_201_without_a_fill_is_a_rejection_with_the_cancel_reason():
    error = error_from_fill_response(json.loads(example("order_cancelled_fok_response")), op="submit")
    assert error is not None and error.reason == "MARKET_HALTED"
    assert error_from_fill_response(json.loads(example("order_fill_response")), op="submit") is None


def _instruments(m: requests_mock.Mocker) -> None:
    m.get(f"{BASE}/v3/accounts/{ACCOUNT}/instruments", text=example("account_instruments"))


REQUEST = MarketOrderRequest(instrument="EUR_USD", units=Decimal(10000), client_id="host-20240305-0001")


def test_recorded_fill_becomes_an_order_result(broker):
    with requests_mock.Mocker() as m:
        _instruments(m)
        m.post(f"{BASE}/v3/accounts/{ACCOUNT}/orders", text=example("order_fill_response"), status_code=201)
        result = broker.submit_market_order(REQUEST)
        sent = m.request_history[-1]
    assert result.trade_id == "6367" and result.fill_price == Decimal("1.08512")
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(sent.body)["order"]["units"] == "10000"


def test_recorded_cancel_raises_rejected(broker):
    with requests_mock.Mocker() as m:
        _instruments(m)
        m.post(f"{BASE}/v3/accounts/{ACCOUNT}/orders", text=example("order_cancelled_fok_response"), status_code=201)
        with pytest.raises(BrokerRejectedError) as e:
            broker.submit_market_order(REQUEST)
    assert e.value.reason == "MARKET_HALTED"


def test_read_timeout_on_submit_is_resolved_through_the_client_id(broker):
    order = {
        "order": {"id": "6366", "type": "MARKET", "state": "FILLED", "fillingTransactionID": "6367"},
        "lastTransactionID": "6369",
    }
    fill = {
        "transaction": json.loads(example("order_fill_response"))["orderFillTransaction"],
        "lastTransactionID": "6369",
    }
    with requests_mock.Mocker() as m:
        _instruments(m)
        m.post(f"{BASE}/v3/accounts/{ACCOUNT}/orders", exc=requests.exceptions.ReadTimeout("read timed out"))
        m.get(
            f"{BASE}/v3/accounts/{ACCOUNT}/orders/@host-20240305-0001",
            [{"text": example("error_404_no_such_order"), "status_code": 404}, {"json": order}],
        )
        m.get(f"{BASE}/v3/accounts/{ACCOUNT}/transactions/6367", json=fill)
        result = broker.submit_market_order(REQUEST)
        posts = [r for r in m.request_history if r.method == "POST"]
    assert result.resolved_by_lookup and result.trade_id == "6367" and len(posts) == 1


def test_connection_refused_on_submit_is_temporary_not_ambiguous(broker):
    with requests_mock.Mocker() as m:
        _instruments(m)
        m.post(f"{BASE}/v3/accounts/{ACCOUNT}/orders", exc=requests.exceptions.ConnectTimeout("connect"))
        with pytest.raises(BrokerTemporaryError):
            broker.submit_market_order(REQUEST)


def test_reads_retry_then_fail_temporary_and_token_is_scrubbed(broker, caplog):
    caplog.set_level(logging.DEBUG)
    with requests_mock.Mocker() as m:
        m.get(
            f"{BASE}/v3/accounts/{ACCOUNT}/summary",
            exc=requests.exceptions.ConnectionError(f"boom Bearer {TOKEN}"),
        )
        with pytest.raises(BrokerTemporaryError) as e:
            broker.account_summary()
        assert len(m.request_history) == 2
    assert TOKEN not in str(e.value) and "***" in str(e.value)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_unexpected_2xx_status_is_temporary_for_reads(broker):
    with requests_mock.Mocker() as m:
        m.get(f"{BASE}/v3/accounts/{ACCOUNT}/summary", text=example("account_summary"), status_code=202)
        with pytest.raises(BrokerTemporaryError):
            broker.account_summary()


def test_registered_environment_is_a_new_key(broker):
    import oandapyV20.oandapyV20 as core  # noqa: N813

    assert broker.environment.startswith("tradehost-")
    assert core.TRADING_ENVIRONMENTS["practice"]["api"] == "https://api-fxpractice.oanda.com"
    assert core.TRADING_ENVIRONMENTS["live"]["api"] == "https://api-fxtrade.oanda.com"


def _trade_details(m: requests_mock.Mocker) -> str:
    trade = json.loads(example("open_trades"))["trades"][0]
    m.get(f"{BASE}/v3/accounts/{ACCOUNT}/trades/{trade['id']}", json={"trade": trade, "lastTransactionID": "9"})
    return str(trade["id"])


def test_a_stop_loss_created_and_cancelled_at_once_is_not_reported_as_set(broker):
    with requests_mock.Mocker() as m:
        _instruments(m)
        trade_id = _trade_details(m)
        answer = {
            "stopLossOrderTransaction": {"id": "10", "type": "STOP_LOSS_ORDER"},
            "stopLossOrderCreatedCancelTransaction": {
                "id": "11",
                "type": "ORDER_CANCEL",
                "reason": "STOP_LOSS_ON_FILL_LOSS",
            },
            "lastTransactionID": "11",
        }
        m.put(f"{BASE}/v3/accounts/{ACCOUNT}/trades/{trade_id}/orders", json=answer)
        with pytest.raises(BrokerRejectedError) as e:
            broker.set_trade_orders(trade_id, stop_loss=Decimal("1.05000"))
    assert e.value.reason == "STOP_LOSS_ON_FILL_LOSS"


def test_the_new_order_ids_come_from_the_answer_not_a_lagging_re_read(broker):
    with requests_mock.Mocker() as m:
        _instruments(m)
        trade_id = _trade_details(m)
        m.put(f"{BASE}/v3/accounts/{ACCOUNT}/trades/{trade_id}/orders", text=example("trade_orders_modify_response"))
        result = broker.set_trade_orders(trade_id, stop_loss=Decimal("1.05000"), take_profit=Decimal("1.20000"))
    answer = json.loads(example("trade_orders_modify_response"))
    assert result.stop_loss_order_id == answer["stopLossOrderTransaction"]["id"]
    assert result.take_profit_order_id == answer["takeProfitOrderTransaction"]["id"]
