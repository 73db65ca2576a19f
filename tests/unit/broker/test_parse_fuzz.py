"""Malformed broker answers: every parser returns its typed result or raises BrokerTemporaryError.

The fuzz starts from the recorded OANDA payloads in tests/data/oanda-examples and mutates them
(keys dropped, values replaced by null, lists, objects, "abc", "NaN", "Infinity", huge numbers,
booleans, garbage nested anywhere). Targeted cases pin the ones the issue names, and the
precision helpers are fed absurd instrument metadata.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.broker.oanda import parse as p
from actors.broker.oanda.precision import MAX_PRECISION, build_trade_orders, format_price, format_units
from actors.core.domain import Price
from actors.core.errors import BrokerError, BrokerRejectedError, BrokerTemporaryError

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "oanda-examples"


def example(name: str) -> Any:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


_TRADES = example("open_trades")["trades"]
_MARKET_ORDER = {
    "id": "6366", "type": "MARKET", "state": "FILLED", "instrument": "EUR_USD", "units": "10000",
    "clientExtensions": {"id": "host-20240305-0001"}, "fillingTransactionID": "6367", "tradeOpenedID": "6367",
}  # fmt: skip


def _fill(obj: Mapping[str, Any]) -> Any:
    return p.fill_result(obj, client_id="c-1", last_transaction_id="9")


def _close(obj: Mapping[str, Any]) -> Any:
    return p.close_result(obj, trade_id="6367", last_transaction_id="9")


# Each parser with the recorded objects it is meant for.
PARSERS: dict[str, tuple[Callable[[Any], Any], list[Any]]] = {
    "instrument": (p.instrument, example("account_instruments")["instruments"]),
    "account_state": (p.account_state, [example("account_summary")["account"]]),
    "candle": (p.candle, example("candles")["candles"] + example("candles_bid_ask")["candles"]),
    "price_event": (p.price_event, [example("price"), example("heartbeat")]),
    "trade_state": (p.trade_state, _TRADES),
    "order_state": (p.order_state, [_MARKET_ORDER] + [t["takeProfitOrder"] for t in _TRADES]),
    "transaction": (p.transaction, example("transactions_since_id")["transactions"]),
    "transaction_event": (
        p.transaction_event,
        [example("transaction_heartbeat"), *example("transactions_since_id")["transactions"]],
    ),
    "fill_result": (_fill, [example("order_fill_response")["orderFillTransaction"]]),
    "close_result": (_close, [example("trade_close_response")["orderFillTransaction"]]),
    # The body-level helpers as oanda.py combines them with the parsers.
    "child": (lambda body: p.account_state(p.child(body, "account")), [example("account_summary")]),
    "children": (lambda body: [p.trade_state(t) for t in p.children(body, "trades")], [example("open_trades")]),
    "text": (lambda body: p.text(body, "lastTransactionID"), [example("open_trades")]),
    "optional_text": (lambda body: p.optional_text(body, "lastTransactionID"), [example("open_trades")]),
    "decimal": (lambda obj: p.decimal(obj, "balance"), [example("account_summary")["account"]]),
}

NASTY_TEXTS = [
    "abc", "", " ", "NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "1e999999", "-1e999999",
    "1e-999999", "1e999999999", "1E+16", "0.000000000000000000000001", "9" * 40, "9" * 5000,
    "2024-13-45T99:99:99Z", "0000-01-01T00:00:00Z", "-1", "1,5", "0x10", "1_0", "\x00", "☃",
]  # fmt: skip
GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**20, -(10**20), 10**4000, 2**63, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(NASTY_TEXTS),
    st.text(max_size=12),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=3),
)


@st.composite
def mutated(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with some keys dropped, some values replaced by garbage, the rest mutated deeper."""
    if depth > 0 and draw(st.integers(0, 9)) == 0:
        return draw(GARBAGE)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            action = draw(st.sampled_from(["keep", "keep", "keep", "drop", "garbage", "nest"]))
            if action == "drop":
                continue
            if action == "garbage":
                out[key] = draw(GARBAGE)
            elif action == "nest":
                out[key] = {"wrapped": item} if draw(st.booleans()) else [item]
            else:
                out[key] = draw(mutated(item, depth + 1))
        if draw(st.integers(0, 4)) == 0:
            out[draw(st.text(max_size=6))] = draw(GARBAGE)
        return out
    if isinstance(value, list):
        items = [draw(mutated(item, depth + 1)) for item in value]
        if items and draw(st.integers(0, 4)) == 0:
            items.insert(draw(st.integers(0, len(items))), draw(GARBAGE))
        return items
    return value


def _assert_typed(value: Any, tp: Any, where: str) -> None:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        errors = []
        for option in typing.get_args(tp):
            try:
                _assert_typed(value, option, where)
            except AssertionError as e:
                errors.append(str(e))
            else:
                return
        raise AssertionError(f"{where}: {value!r} is none of {tp}: {errors}")
    if tp is type(None):
        assert value is None, f"{where}: {value!r} is not None"
    elif origin is tuple:
        assert isinstance(value, tuple), f"{where}: {value!r} is not a tuple"
        (item_tp, *_) = typing.get_args(tp)
        for i, item in enumerate(value):
            _assert_typed(item, item_tp, f"{where}[{i}]")
    elif origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        assert isinstance(value, Mapping), f"{where}: {value!r} is not a mapping"
    elif tp is Decimal:
        assert isinstance(value, Decimal) and value.is_finite(), f"{where}: {value!r} is not a finite Decimal"
        assert value == 0 or abs(value.adjusted()) <= 20, f"{where}: {value!r} is absurd"
    elif tp is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not an int"
    elif tp is Any:
        pass
    elif dataclasses.is_dataclass(tp):
        assert_typed_result(value)
    else:
        assert isinstance(value, tp), f"{where}: {value!r} is not a {tp}"


def assert_typed_result(result: Any) -> None:
    """Every field of a result dataclass holds a value of its declared type (recursively)."""
    if isinstance(result, list):
        for item in result:
            assert_typed_result(item)
        return
    if isinstance(result, Decimal):
        _assert_typed(result, Decimal, "decimal")
        return
    if not dataclasses.is_dataclass(result):
        assert result is None or isinstance(result, str | Mapping), f"{result!r} is not a parser result"
        return
    hints = typing.get_type_hints(type(result))
    for f in dataclasses.fields(result):
        _assert_typed(getattr(result, f.name), hints[f.name], f"{type(result).__name__}.{f.name}")


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_recorded_payload_parses_into_a_typed_result(name: str) -> None:
    parser, samples = PARSERS[name]
    for sample in samples:
        assert_typed_result(parser(sample))


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_mutated_payload_gives_a_typed_result_or_a_temporary_error_naming_the_field(name: str, data: st.DataObject):
    parser, samples = PARSERS[name]
    sample = data.draw(st.sampled_from(samples))
    mutant = data.draw(mutated(sample))
    try:
        result = parser(mutant)
    except BrokerTemporaryError as e:
        assert str(e).startswith("malformed broker answer: '"), str(e)
    else:
        assert_typed_result(result)


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(garbage=GARBAGE)
def test_garbage_instead_of_an_object_is_a_temporary_error(name: str, garbage: Any) -> None:
    parser, _ = PARSERS[name]
    if isinstance(garbage, dict) and name in ("children", "optional_text"):
        # An object without the key is a well-formed answer: no trades, no last transaction id.
        assert_typed_result(parser(garbage))
        return
    with pytest.raises(BrokerTemporaryError, match=r"^malformed broker answer: '"):
        parser(garbage)


# --- the cases the issue names -----------------------------------------------------------------


def _account(**changes: Any) -> dict[str, Any]:
    return {**example("account_summary")["account"], **changes}


@pytest.mark.parametrize("value", ["abc", "1.5", 1.5, True, [], {}, -1, 10**12])
def test_a_malformed_open_trade_count_names_the_field(value: Any) -> None:
    with pytest.raises(BrokerTemporaryError, match=r"'openTradeCount'"):
        p.account_state(_account(openTradeCount=value))


def test_a_count_sent_as_a_digit_string_is_read() -> None:
    assert p.account_state(_account(openTradeCount="3")).open_trade_count == 3


@pytest.mark.parametrize("value", [None, "abc", 1000, -1, 5.5, False])
def test_an_absurd_or_missing_display_precision_names_the_field(value: Any) -> None:
    obj = {**example("account_instruments")["instruments"][0], "displayPrecision": value}
    with pytest.raises(BrokerTemporaryError, match=r"'displayPrecision'"):
        p.instrument(obj)


@pytest.mark.parametrize("value", ["abc", -5, 1.5, [], "1e3"])
def test_a_malformed_candle_volume_names_the_field(value: Any) -> None:
    obj = {**example("candles")["candles"][0], "volume": value}
    with pytest.raises(BrokerTemporaryError, match=r"'volume'"):
        p.candle(obj)


@pytest.mark.parametrize(
    "price", ["NaN", "sNaN", "Infinity", "-Infinity", "1e999999", "1e17", "1e-999999", "9" * 40, float("nan")]
)
def test_non_finite_or_absurd_prices_are_refused_as_malformed(price: Any) -> None:
    obj = example("price")
    obj["bids"] = [{"price": price, "liquidity": 1}]
    with pytest.raises(BrokerTemporaryError, match=r"^malformed broker answer: 'price'"):
        p.price_event(obj)


def test_a_zero_price_is_left_for_the_feed_to_judge() -> None:
    # Not malformed: the feed's bar and tick validation journals it (bad_tick "zero" relies on it).
    obj = example("price")
    obj["bids"] = [{"price": "0", "liquidity": 1}]
    event = p.price_event(obj)
    assert isinstance(event, Price) and event.bid == 0


@pytest.mark.parametrize("value", ["1e999999999", "99999999999999", "-5", "2024-13-01T00:00:00Z", "yesterday", 1e300])
def test_an_absurd_time_is_refused_without_building_a_huge_number(value: Any) -> None:
    with pytest.raises(BrokerTemporaryError, match=r"'time'"):
        p.transaction({"id": "1", "type": "X", "time": value})


@pytest.mark.parametrize("value", ["true", 1, "yes"])
def test_a_boolean_sent_as_something_else_is_malformed_not_truthy(value: Any) -> None:
    obj = {**example("price"), "tradeable": value}
    with pytest.raises(BrokerTemporaryError, match=r"'tradeable'"):
        p.price_event(obj)


def test_client_extensions_that_are_not_an_object_are_malformed() -> None:
    trade = {**_TRADES[1], "clientExtensions": ["host-1"]}
    with pytest.raises(BrokerTemporaryError, match=r"'clientExtensions'"):
        p.trade_state(trade)


# --- precision helpers and absurd instrument metadata -------------------------------------------

EUR = p.instrument(example("account_instruments")["instruments"][0])


@pytest.mark.parametrize("precision", [-1, -5, MAX_PRECISION + 1, 1000, 10**9])
def test_absurd_display_precision_is_a_broker_error_not_invalid_operation(precision: int) -> None:
    inst = dataclasses.replace(EUR, display_precision=precision)
    with pytest.raises(BrokerTemporaryError, match=r"'displayPrecision'"):
        format_price(Decimal("1.1"), inst)
    with pytest.raises(BrokerTemporaryError, match=r"'displayPrecision'"):
        build_trade_orders(
            inst, stop_loss=Decimal("1.1"), take_profit=None, cancel_stop_loss=False, cancel_take_profit=False
        )


@pytest.mark.parametrize("precision", [-2, 1000])
def test_absurd_trade_units_precision_is_a_broker_error(precision: int) -> None:
    inst = dataclasses.replace(EUR, trade_units_precision=precision)
    with pytest.raises(BrokerTemporaryError, match=r"'tradeUnitsPrecision'"):
        format_units(Decimal(1000), inst)


def test_values_too_large_to_round_are_rejected_before_sending() -> None:
    with pytest.raises(BrokerRejectedError) as price:
        format_price(Decimal("1e30"), EUR)
    with pytest.raises(BrokerRejectedError) as units:
        format_units(Decimal("1e30"), EUR)
    assert (price.value.reason, units.value.reason) == ("PRICE_INVALID", "UNITS_LIMIT_EXCEEDED")


def test_a_price_that_rounds_to_zero_is_never_sent_as_zero() -> None:
    inst = dataclasses.replace(EUR, display_precision=0)
    with pytest.raises(BrokerRejectedError) as e:
        format_price(Decimal("0.4"), inst)
    assert e.value.reason == "PRICE_INVALID"


@settings(max_examples=300, deadline=None)
@given(
    value=st.decimals(allow_nan=True, allow_infinity=True),
    display=st.integers(-50, 50),
    units_precision=st.integers(-50, 50),
)
def test_precision_helpers_raise_only_broker_errors(value: Decimal, display: int, units_precision: int) -> None:
    inst = dataclasses.replace(EUR, display_precision=display, trade_units_precision=units_precision)
    for fn in (format_price, format_units):
        try:
            text = fn(value, inst)
        except BrokerError:
            continue
        assert Decimal(text).is_finite()
