"""OandaBroker on malformed answers and its REST health hook (requests_mock, never a real host).

A read whose answer cannot be read is BrokerTemporaryError (worth a retry); an order-path request
(submit, cancel, close, SL/TP) that the broker answered but whose answer cannot be read is
BrokerAmbiguousError (it may have been carried out: never "temporary", which invites a resend).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_mock

from actors.broker import MarketOrderRequest
from actors.broker.config import BrokerConfig, Credentials
from actors.broker.oanda.client import OandaBroker
from actors.broker.oanda.pacing import Retrier, RetryPolicy
from actors.core.errors import BrokerAmbiguousError, BrokerRejectedError, BrokerTemporaryError

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "oanda-examples"
BASE = "http://broker.invalid"
ACCOUNT = "101-004-1234567-001"
TOKEN = "tok-very-secret-0123456789"  # noqa: S105 - fake
URL = f"{BASE}/v3/accounts/{ACCOUNT}"


def example(name: str) -> Any:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


class Outcomes(list[tuple[bool, str]]):
    """Records what the health hook heard."""

    def __call__(self, ok: bool, detail: str) -> None:
        self.append((ok, detail))


def _broker(hook: Callable[[bool, str], None] | None = None, attempts: int = 2) -> OandaBroker:
    return OandaBroker(
        BrokerConfig(kind="oanda", api_url=BASE),
        Credentials(token=TOKEN, account_id=ACCOUNT),
        sleep=lambda s: None,
        retrier=Retrier(RetryPolicy(attempts=attempts, base_delay_s=0.0), sleep=lambda s: None),
        lookup_delays_s=(0.0, 0.0),
        on_request_outcome=hook,
    )


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


@pytest.fixture
def broker(outcomes: Outcomes) -> Iterator[OandaBroker]:
    b = _broker(outcomes)
    yield b
    b.close()


@pytest.fixture
def mock() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as m:
        m.get(f"{URL}/instruments", json=example("account_instruments"))
        yield m


REQUEST = MarketOrderRequest(instrument="EUR_USD", units=Decimal(10000), client_id="host-1")
TRADE = example("open_trades")["trades"][1]  # EUR_USD, id 6367


# --- reads: malformed is temporary -------------------------------------------------------------

READS: list[Any] = [
    ("account_summary", (), "/summary", {"lastTransactionID": "1"}, "'account'"),
    ("account_summary", (), "/summary", [1, 2], "not an object"),
    ("account_summary", (), "/summary", {"account": {**example("account_summary")["account"], "NAV": "NaN"}}, "'NAV'"),
    ("open_trades", (), "/openTrades", {"trades": {"id": "1"}}, "'trades'"),
    ("pending_orders", (), "/pendingOrders", {"orders": None, "x": 1}, None),
    ("order", ("@c-1",), "/orders/@c-1", {"order": "FILLED"}, "'order'"),
    ("trade", ("6367",), "/trades/6367", {"trade": None}, "'trade'"),
    ("transactions_since", ("5",), "/transactions/sinceid", {"lastTransactionID": {}}, "'lastTransactionID'"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "args", "path", "body", "field"), READS)
def test_a_malformed_read_answer_is_temporary_and_names_the_field(  # noqa: PLR0917 - parametrized
    broker: OandaBroker, mock: requests_mock.Mocker, method: str, args: tuple[str, ...], path: str, body: Any,
    field: str | None,
):  # fmt: skip
    mock.get(f"{URL}{path}", json=body)
    if field is None:  # null where a list is expected is an empty list
        assert getattr(broker, method)(*args) == []
        return
    with pytest.raises(BrokerTemporaryError, match="malformed broker answer") as e:
        getattr(broker, method)(*args)
    assert field in str(e.value)


def test_absurd_instrument_metadata_is_a_temporary_error_not_a_crash(broker: OandaBroker):
    instruments = example("account_instruments")
    instruments["instruments"][0]["displayPrecision"] = 1000
    with requests_mock.Mocker() as m:
        m.get(f"{URL}/instruments", json=instruments)
        with pytest.raises(BrokerTemporaryError, match="'displayPrecision'"):
            broker.instruments()


def test_malformed_candles_are_temporary(broker: OandaBroker):
    with requests_mock.Mocker() as m:
        m.get(f"{BASE}/v3/instruments/EUR_USD/candles", json={"candles": [{"time": "x", "volume": "abc"}]})
        with pytest.raises(BrokerTemporaryError, match="malformed broker answer"):
            broker.candles("EUR_USD", "M1", count=1)


# --- the order path: answered but unreadable is ambiguous --------------------------------------


def _order_lookup(mock: requests_mock.Mocker, *answers: dict[str, Any]) -> None:
    mock.get(f"{URL}/orders/@host-1", [{"json": a} for a in answers])


def test_a_fill_that_cannot_be_read_is_ambiguous(broker: OandaBroker, mock: requests_mock.Mocker):
    fill = {**example("order_fill_response")["orderFillTransaction"], "price": "Infinity"}
    mock.post(f"{URL}/orders", json={"orderFillTransaction": fill, "lastTransactionID": "9"}, status_code=201)
    with pytest.raises(BrokerAmbiguousError, match="'price'"):
        broker.submit_market_order(REQUEST)
    assert len([r for r in mock.request_history if r.method == "POST"]) == 1


def test_a_submit_answer_that_is_not_an_object_is_resolved_through_the_client_id(
    broker: OandaBroker, mock: requests_mock.Mocker
):
    mock.post(f"{URL}/orders", json=["not", "an", "object"], status_code=201)
    order = {"id": "6366", "type": "MARKET", "state": "FILLED", "fillingTransactionID": "6367"}
    _order_lookup(mock, {"order": order, "lastTransactionID": "6369"})
    fill = example("order_fill_response")["orderFillTransaction"]
    mock.get(f"{URL}/transactions/6367", json={"transaction": fill, "lastTransactionID": "6369"})
    result = broker.submit_market_order(REQUEST)
    assert result.resolved_by_lookup and result.trade_id == "6367"
    assert len([r for r in mock.request_history if r.method == "POST"]) == 1


def test_an_unreadable_cancel_in_a_submit_answer_is_resolved_not_rejected(
    broker: OandaBroker, mock: requests_mock.Mocker
):
    mock.post(f"{URL}/orders", json={"orderCancelTransaction": "MARKET_HALTED"}, status_code=201)
    order = {"id": "6366", "type": "MARKET", "state": "CANCELLED", "cancellingTransactionID": "6367"}
    _order_lookup(mock, {"order": order})
    mock.get(f"{URL}/transactions/6367", json={"transaction": {"id": "6367", "reason": "MARKET_HALTED"}})
    with pytest.raises(BrokerRejectedError) as e:
        broker.submit_market_order(REQUEST)
    assert e.value.reason == "MARKET_HALTED"


@pytest.mark.parametrize(
    "answer",
    [{"order": "FILLED"}, {"order": {"state": "FILLED", "fillingTransactionID": {"id": 1}}}, {"order": None}],
)
def test_unreadable_look_up_answers_leave_the_outcome_ambiguous_never_temporary(
    broker: OandaBroker, mock: requests_mock.Mocker, answer: dict[str, Any]
):
    mock.post(f"{URL}/orders", exc=requests.exceptions.ReadTimeout("read timed out"))
    _order_lookup(mock, answer)
    with pytest.raises(BrokerAmbiguousError, match="outcome unknown"):
        broker.submit_market_order(REQUEST)
    assert len([r for r in mock.request_history if r.method == "POST"]) == 1


@pytest.mark.parametrize("answer", [{}, {"orderCancelTransaction": "6400"}, {"orderCancelTransaction": {"id": {}}}])
def test_a_cancel_whose_answer_cannot_be_read_is_ambiguous(
    broker: OandaBroker, mock: requests_mock.Mocker, answer: dict[str, Any]
):
    mock.put(f"{URL}/orders/6368/cancel", json=answer)
    with pytest.raises(BrokerAmbiguousError, match="cannot be read"):
        broker.cancel_order("6368")


def test_a_readable_cancel_returns_its_transaction_id(broker: OandaBroker, mock: requests_mock.Mocker):
    mock.put(f"{URL}/orders/6368/cancel", json={"orderCancelTransaction": {"id": "6400"}, "lastTransactionID": "6400"})
    assert broker.cancel_order("6368") == "6400"


@pytest.mark.parametrize(
    "change",
    [
        {"tradesClosed": {"tradeID": "6367"}},
        {"tradesClosed": ["6367"]},
        {"units": "NaN"},
        {"pl": None},
        {"id": ["6382"]},
    ],
)
def test_a_close_whose_fill_cannot_be_read_is_ambiguous(
    broker: OandaBroker, mock: requests_mock.Mocker, change: dict[str, Any]
):
    answer = example("trade_close_response")
    answer["orderFillTransaction"] = {**answer["orderFillTransaction"], **change}
    mock.put(f"{URL}/trades/6367/close", json=answer)
    with pytest.raises(BrokerAmbiguousError, match="filled, but the answer cannot be read"):
        broker.close_trade("6367")


def test_a_close_with_a_fill_that_is_not_an_object_is_ambiguous(broker: OandaBroker, mock: requests_mock.Mocker):
    mock.put(f"{URL}/trades/6367/close", json={"orderFillTransaction": "6382"})
    with pytest.raises(BrokerAmbiguousError):
        broker.close_trade("6367")


def test_a_recorded_close_still_reads(broker: OandaBroker, mock: requests_mock.Mocker):
    mock.put(f"{URL}/trades/6367/close", json=example("trade_close_response"))
    result = broker.close_trade("6367")
    assert result.trade_id == "6367" and result.units == Decimal(-10000)


def _trade(mock: requests_mock.Mocker, *answers: dict[str, Any]) -> None:
    mock.get(
        f"{URL}/trades/6367", [{"json": a} if "status" not in a else {"status_code": a["status"]} for a in answers]
    )


GOOD_TRADE = {"trade": TRADE, "lastTransactionID": "9"}


@pytest.mark.parametrize(
    "answer",
    [
        {"stopLossOrderTransaction": "6400"},
        {"stopLossOrderTransaction": {"id": None, "type": "STOP_LOSS_ORDER"}},
        {"stopLossOrderRejectTransaction": ["STOP_LOSS_ON_FILL_LOSS"]},
        {"stopLossOrderTransaction": {"id": "6400"}, "lastTransactionID": {"id": "6400"}},
    ],
)
def test_an_sl_tp_answer_that_cannot_be_read_is_ambiguous(
    broker: OandaBroker, mock: requests_mock.Mocker, answer: dict[str, Any]
):
    _trade(mock, GOOD_TRADE)
    mock.put(f"{URL}/trades/6367/orders", json=answer)
    with pytest.raises(BrokerAmbiguousError):
        broker.set_trade_orders("6367", stop_loss=Decimal("1.05"))


def test_a_failed_re_read_after_a_carried_out_sl_change_is_ambiguous_not_temporary(
    broker: OandaBroker, mock: requests_mock.Mocker
):
    _trade(mock, GOOD_TRADE, {"status": 503}, {"status": 503})
    mock.put(
        f"{URL}/trades/6367/orders", json={"stopLossOrderTransaction": {"id": "6400"}, "lastTransactionID": "6400"}
    )
    with pytest.raises(BrokerAmbiguousError, match="carried out"):
        broker.set_trade_orders("6367", stop_loss=Decimal("1.05"))
    assert len([r for r in mock.request_history if r.method == "PUT"]) == 1


def test_when_both_new_orders_are_in_the_answer_no_re_read_is_needed(broker: OandaBroker, mock: requests_mock.Mocker):
    _trade(mock, GOOD_TRADE, {"status": 503}, {"status": 503})
    mock.put(f"{URL}/trades/6367/orders", json=example("trade_orders_modify_response"))
    result = broker.set_trade_orders("6367", stop_loss=Decimal("1.05"), take_profit=Decimal("1.2"))
    assert result.stop_loss_order_id and result.take_profit_order_id


# --- the REST health hook ----------------------------------------------------------------------


def test_an_answer_is_reported_healthy(broker: OandaBroker, outcomes: Outcomes):
    with requests_mock.Mocker() as m:
        m.get(f"{URL}/summary", json=example("account_summary"))
        broker.account_summary()
    assert outcomes == [(True, "ok")]


def test_a_4xx_reject_is_an_answer_and_reported_healthy(broker: OandaBroker, outcomes: Outcomes):
    with requests_mock.Mocker() as m:
        m.get(f"{URL}/orders/@x", json=example("error_404_no_such_order"), status_code=404)
        with pytest.raises(BrokerRejectedError):
            broker.order("@x")
    assert outcomes == [(True, "ok")]


@pytest.mark.parametrize(("status", "label"), [(503, "HTTP 503"), (429, "HTTP 429"), (502, "HTTP 502")])
def test_every_retried_5xx_or_429_attempt_is_reported_unhealthy(
    broker: OandaBroker, outcomes: Outcomes, status: int, label: str
):
    with requests_mock.Mocker() as m:
        m.get(
            f"{URL}/summary",
            [{"status_code": status, "text": "<html>\n busy \n</html>"}, {"json": example("account_summary")}],
        )
        broker.account_summary()
    assert [ok for ok, _ in outcomes] == [False, True]
    assert label in outcomes[0][1] and "\n" not in outcomes[0][1]


def test_a_timeout_is_reported_with_a_scrubbed_one_line_reason(broker: OandaBroker, outcomes: Outcomes):
    with requests_mock.Mocker() as m:
        m.get(f"{URL}/summary", exc=requests.exceptions.ReadTimeout(f"read timed out\nBearer {TOKEN}"))
        with pytest.raises(BrokerTemporaryError):
            broker.account_summary()
    assert [ok for ok, _ in outcomes] == [False, False]  # both attempts count
    reason = outcomes[0][1]
    assert "ReadTimeout" in reason and TOKEN not in reason and "***" in reason and "\n" not in reason


def test_an_unreadable_answer_is_reported_unhealthy(broker: OandaBroker, outcomes: Outcomes):
    with requests_mock.Mocker() as m:
        m.get(f"{URL}/summary", text="<html>maintenance</html>")
        with pytest.raises(BrokerTemporaryError):
            broker.account_summary()
    assert outcomes and not any(ok for ok, _ in outcomes)


def test_an_order_post_that_timed_out_is_reported_too(broker: OandaBroker, outcomes: Outcomes, mock):
    mock.post(f"{URL}/orders", exc=requests.exceptions.ReadTimeout("read timed out"))
    _order_lookup(mock, {"order": {"id": "1", "type": "MARKET", "state": "PENDING"}})
    with pytest.raises(BrokerAmbiguousError):
        broker.submit_market_order(REQUEST)
    # instruments ok, the POST failed, three look-ups answered
    assert [ok for ok, _ in outcomes] == [True, False, True, True, True]


def test_a_hook_that_raises_is_logged_and_never_breaks_the_request(caplog: pytest.LogCaptureFixture):
    def hook(ok: bool, detail: str) -> None:
        raise RuntimeError("hook bug")

    broker = _broker(hook)
    with requests_mock.Mocker() as m:
        m.get(f"{URL}/summary", json=example("account_summary"))
        assert broker.account_summary().id == ACCOUNT
    assert any("on_request_outcome" in r.getMessage() and r.exc_info for r in caplog.records)


def test_streams_are_not_reported(broker: OandaBroker, outcomes: Outcomes):
    lines = json.dumps(example("price")) + "\n" + json.dumps(example("heartbeat")) + "\n"
    with requests_mock.Mocker() as m:
        m.get(f"{URL}/pricing/stream", text=lines)
        with pytest.raises(BrokerTemporaryError, match="ended the stream"):
            list(broker.pricing_stream(["EUR_USD"]))
    assert outcomes == []


def test_no_hook_is_fine(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING)
    broker = _broker(None)
    with requests_mock.Mocker() as m:
        m.get(f"{URL}/summary", json=example("account_summary"))
        assert broker.account_summary().id == ACCOUNT
    assert not caplog.records
