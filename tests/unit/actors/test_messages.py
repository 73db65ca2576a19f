"""Envelope, body registry, encode/decode: round trips and every way a payload can be bad."""

from __future__ import annotations

import collections
import contextlib
import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.domain import InstrumentId, IntentId, TradeId
from actors.core.errors import MessageDecodeError
from actors.runtime.messages import (
    MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
    AccountSnapshot,
    AlertCleared,
    AlertRaised,
    Bar,
    BarsClosed,
    Body,
    BrokerHealth,
    CauseHealthy,
    CheckResult,
    Envelope,
    ExecutionReport,
    ExitsChecked,
    FlattenRequested,
    Heartbeat,
    InstrumentMarket,
    IntentSkipped,
    MarketReport,
    ModelReport,
    NoTradeRequested,
    Prices,
    PriceTick,
    ProtectionReport,
    ProtectionRequested,
    Reason,
    ReconcileNow,
    ReconciliationCompleted,
    RestartRequested,
    RiskIntent,
    RoleEvent,
    RoleStopping,
    SignalProduced,
    SignalSkipped,
    StopRole,
    SystemState,
    SystemStateChanged,
    TradeProtection,
    TradeView,
    WatchdogReport,
    decode,
    encode,
    make_envelope,
    new_id,
    to_jsonable,
)
from actors.runtime.messages.body import _REGISTRY

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

_TRADE = TradeView(
    trade_id=TradeId("42"),
    instrument=InstrumentId("EUR_USD"),
    units="-12000",
    price="1.10040",
    open_ts=1_700_000_100_000_000_000,
    unrealized_pl="-3.2000",
    stop_loss="1.10300",
    take_profit=None,
    client_id="main.EUR_USD.1700000100000000000.S",
)
_CHECK = CheckResult(name="rss:model", value="210.5 MB", limit="1024 MB", verdict="ok")
_PRICES = Prices(o="1.10010", h="1.10060", l="1.09980", c="1.10040")
_MARKET = InstrumentMarket(instrument=InstrumentId("USD_JPY"), open=False, since_ns=1, why="weekend", next_open_ns=2)

_PROTECTED = TradeProtection(
    trade_id=TradeId("42"),
    instrument=InstrumentId("EUR_USD"),
    units="1000",
    stop_loss="1.0812",
    take_profit="1.0900",
    outcome="repaired",
    verified=True,
)
SAMPLES: dict[str, Body] = {
    "Heartbeat": Heartbeat(
        role="feed", pid=123, rss_mb=45.5, queue_depth=2, handled=7, last_handled="Tick", decode_errors=1, gaps=3
    ),
    "ReconciliationCompleted": ReconciliationCompleted(ok=False, detail="2 positions differ"),
    "StopRole": StopRole(deadline_s=2.5, reason="ctl restart"),
    "RoleStopping": RoleStopping(role="risk", clean=True, detail="flushed"),
    "Reason": Reason(code="role_down:feed", detail="exit 3", latched=False, since_ns=17),
    "SystemStateChanged": SystemStateChanged(
        state=SystemState.NO_TRADE,
        reasons=(
            Reason(code="role_down:feed", detail="exit 3", latched=False, since_ns=1),
            Reason(code="operator_pause", detail="paused", latched=True, since_ns=2),
        ),
        paused=True,
        expires_ns=1_700_000_000_000_000_000,
        mode="live",
    ),
    "AlertRaised": AlertRaised(severity="critical", code="intensity", detail="feed restarted 5 times"),
    "RoleEvent": RoleEvent(kind="tick", detail={"n": 1, "nested": {"xs": [1, 2.5, "a", None, True]}}),
    "PriceTick": PriceTick(
        instrument="EUR_USD", ts=1_700_000_000_000_000_001, bid="1.08512", ask="1.08527", tradeable=True
    ),
    "BrokerHealth": BrokerHealth(source="stream", connected=False, last_ok_ns=None, detail="reset", reconnects=2),
    "AccountSnapshot": AccountSnapshot(
        currency="USD",
        balance="100000.0000",
        nav="100012.5000",
        unrealized_pl="12.5000",
        margin_used="333.3000",
        open_trades=1,
        pending_orders=2,
        last_transaction_id="42",
        ts=5,
        trades=(_TRADE,),
        day_start_nav="100000.0000",
        daily_pnl="12.5000",
        peak_nav="100100.0000",
        drawdown=0.0009,
        zone=0,
        multiplier=1.0,
    ),
    "Prices": _PRICES,
    "Bar": Bar(
        instrument=InstrumentId("EUR_USD"),
        granularity="M15",
        ts=1_700_000_100_000_000_000,
        bid=_PRICES,
        ask=Prices(o="1.10012", h="1.10062", l="1.09982", c="1.10042"),
        mid=Prices(o="1.10011", h="1.10061", l="1.09981", c="1.10041"),
        volume=412,
    ),
    "BarsClosed": BarsClosed(
        granularity="M15", ts=1_700_000_100_000_000_000, published=("EUR_USD",), rejected=("GBP_USD",), missing=()
    ),
    "InstrumentMarket": _MARKET,
    "MarketReport": MarketReport(instruments=(_MARKET,), last_bar_ns=3, bars_published=12, bars_rejected=1),
    "SignalProduced": SignalProduced(
        instrument=InstrumentId("EUR_USD"),
        bar_ts=1_700_000_100_000_000_000,
        p_up=0.61,
        direction="long",
        model_version="0123456789ab",
        features_hash="fedcba9876543210",
    ),
    "ExitsChecked": ExitsChecked(bar_ts=1_700_000_100_000_000_000),
    "SignalSkipped": SignalSkipped(
        instrument=InstrumentId("EUR_USD"), bar_ts=1_700_000_100_000_000_000, reason="nan_features"
    ),
    "ModelReport": ModelReport(state="loaded", version="0123456789ab", detail="models/default", loaded_at_ns=7),
    "AlertCleared": AlertCleared(code="role_down:feed", detail="healthy for 10 s"),
    "NoTradeRequested": NoTradeRequested(code="memory_limit:model", detail="rss 1210 MB > 1024 MB"),
    "CauseHealthy": CauseHealthy(code="disk_low"),
    "RestartRequested": RestartRequested(role="model", reason="rss 1210 MB > 1024 MB"),
    "CheckResult": _CHECK,
    "WatchdogReport": WatchdogReport(checks=(_CHECK,), mail="on", mail_queued=1, mail_sent=4, mail_failed=0),
    "TradeView": _TRADE,
    "RiskIntent": RiskIntent(
        intent_id=IntentId("main.EUR_USD.1700000100000000000.L"),
        instrument=InstrumentId("EUR_USD"),
        direction="long",
        units="12000",
        stop_loss="1.09800",
        take_profit="1.10400",
        decision_price=1.10042,
        sl_distance=0.00242,
        bar_ts=1_700_000_100_000_000_000,
        decided_ns=1_700_000_100_100_000_000,
        p_up=0.63,
        model_version="0123456789ab",
        multiplier=0.5,
    ),
    "IntentSkipped": IntentSkipped(
        instrument=InstrumentId("GBP_USD"), bar_ts=1, reason="below_threshold", p_up=0.52, model_version="0123"
    ),
    "ExecutionReport": ExecutionReport(
        status="FILLED",
        instrument=InstrumentId("EUR_USD"),
        intent_id="i",
        trade_id="42",
        price="1.10050",
        slippage_pips=0.8,
        latency_ms=12.5,
    ),
    "ReconcileNow": ReconcileNow(why="ctl reconcile"),
    "FlattenRequested": FlattenRequested(why="ctl flatten"),
    "ProtectionRequested": ProtectionRequested(
        trade_id=TradeId("42"), instrument=InstrumentId("EUR_USD"), action="repair"
    ),
    "TradeProtection": _PROTECTED,
    "ProtectionReport": ProtectionReport(
        complete=False,
        trades=(
            _PROTECTED,
            TradeProtection(
                trade_id=TradeId("43"),
                instrument=InstrumentId("USD_JPY"),
                units="-500",
                outcome="failed: HTTP 503",
                verified=False,
            ),
        ),
        cancelled_orders=("51",),
        pending_orders=0,
        attempts=4,
        summary="NOT VERIFIED: 43 USD_JPY",
    ),
}


def _good_raw(body: Body | None = None) -> dict[str, Any]:
    env = make_envelope(body or StopRole(deadline_s=1.0), src="supervisor", seq=3, corr="abc")
    raw: dict[str, Any] = orjson.loads(encode(env))
    return raw


def _decode_raw(raw: Any) -> Envelope:
    return decode(orjson.dumps(raw))


def test_every_registered_type_has_a_round_trip_sample() -> None:
    assert set(SAMPLES) == set(_REGISTRY)


@pytest.mark.parametrize("type_name", sorted(SAMPLES))
def test_every_registered_type_survives_encode_then_decode_unchanged(type_name: str) -> None:
    # Arrange
    body = SAMPLES[type_name]
    env = make_envelope(body, src="feed", seq=9, corr="parent-id")

    # Act
    decoded = decode(encode(env))

    # Assert
    assert decoded == env
    assert type(decoded.body) is type(body)


def test_nested_reasons_decode_as_a_tuple_of_reason_objects() -> None:
    env = make_envelope(SAMPLES["SystemStateChanged"], src="supervisor")

    body = decode(encode(env)).body

    assert isinstance(body, SystemStateChanged)
    assert isinstance(body.reasons, tuple)
    assert [type(r) for r in body.reasons] == [Reason, Reason]
    assert body.state is SystemState.NO_TRADE


def test_defaults_are_filled_in_when_optional_body_fields_are_absent() -> None:
    raw = _good_raw(SystemStateChanged(state=SystemState.TRADING, expires_ns=5))
    raw["body"] = {"state": "TRADING", "expires_ns": 5}

    body = _decode_raw(raw).body

    assert body == SystemStateChanged(state=SystemState.TRADING, expires_ns=5, reasons=(), paused=False, mode="shadow")


def test_an_integer_for_a_float_field_decodes_as_a_float() -> None:
    raw = _good_raw()
    raw["body"] = {"deadline_s": 2}

    body = _decode_raw(raw).body

    assert isinstance(body, StopRole)
    assert body.deadline_s == 2.0
    assert isinstance(body.deadline_s, float)


def test_message_ids_are_unique() -> None:
    ids = {new_id() for _ in range(1000)}

    assert len(ids) == 1000


def test_make_envelope_carries_type_version_source_sequence_and_correlation() -> None:
    env = make_envelope(StopRole(deadline_s=1.0), src="supervisor", seq=12, corr="c-1")

    assert (env.type, env.v, env.src, env.seq, env.corr) == ("StopRole", SCHEMA_VERSION, "supervisor", 12, "c-1")
    assert env.ts > 0


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"{", b"\xff\xfe", b"[1, 2]", b'"text"', b"42", b"null"],
    ids=["empty", "text", "truncated", "invalid-utf8", "array", "string", "number", "null"],
)
def test_a_payload_that_is_not_a_json_object_is_refused(payload: bytes) -> None:
    with pytest.raises(MessageDecodeError):
        decode(payload)


@pytest.mark.parametrize("missing", ["type", "v", "id", "ts", "src", "seq", "corr", "body"])
def test_an_envelope_lacking_any_field_is_refused(missing: str) -> None:
    raw = _good_raw()
    del raw[missing]

    with pytest.raises(MessageDecodeError, match=missing):
        _decode_raw(raw)


@pytest.mark.parametrize("kind", ["NoSuchType", "", "heartbeat", 7, None, ["Heartbeat"]])
def test_an_unknown_message_type_is_refused(kind: Any) -> None:
    raw = _good_raw()
    raw["type"] = kind

    with pytest.raises(MessageDecodeError, match="unknown message type"):
        _decode_raw(raw)


@pytest.mark.parametrize("version", [0, 2, -1, "1", None])
def test_an_unsupported_schema_version_is_refused(version: Any) -> None:
    raw = _good_raw()
    raw["v"] = version

    with pytest.raises(MessageDecodeError, match="version"):
        _decode_raw(raw)


@pytest.mark.parametrize("version", [True, 1.0], ids=["true", "one-point-zero"])
def test_a_version_that_only_compares_equal_to_one_is_refused(version: Any) -> None:
    raw = _good_raw()
    raw["v"] = version

    with pytest.raises(MessageDecodeError, match="version"):
        _decode_raw(raw)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("id", 1),
        ("id", None),
        ("src", 5),
        ("src", None),
        ("ts", "now"),
        ("ts", 1.5),
        ("ts", True),
        ("seq", "1"),
        ("seq", False),
        ("seq", 2.0),
        ("corr", 3),
        ("corr", ["a"]),
    ],
)
def test_an_envelope_field_of_the_wrong_type_is_refused(name: str, value: Any) -> None:
    raw = _good_raw()
    raw[name] = value

    with pytest.raises(MessageDecodeError, match=name):
        _decode_raw(raw)


@pytest.mark.parametrize("body", [[], "x", 1, None])
def test_a_body_that_is_not_an_object_is_refused(body: Any) -> None:
    raw = _good_raw()
    raw["body"] = body

    with pytest.raises(MessageDecodeError, match="body is not an object"):
        _decode_raw(raw)


@pytest.mark.parametrize(
    ("type_name", "body", "match"),
    [
        ("StopRole", {}, "missing field 'deadline_s'"),
        ("StopRole", {"deadline_s": 1.0, "extra": 1}, "unknown field"),
        ("StopRole", {"deadline_s": "soon"}, "deadline_s"),
        ("StopRole", {"deadline_s": True}, "deadline_s"),
        ("StopRole", {"deadline_s": 1.0, "reason": 5}, "reason"),
        ("Heartbeat", {"role": "feed", "pid": 1.5, "rss_mb": 1.0, "queue_depth": 0, "handled": 0}, "pid"),
        ("Heartbeat", {"role": "feed", "pid": True, "rss_mb": 1.0, "queue_depth": 0, "handled": 0}, "pid"),
        (
            "Heartbeat",
            {"role": "feed", "pid": 1, "rss_mb": 1.0, "queue_depth": 0, "handled": 0, "last_handled": 3},
            "last_handled",
        ),
        ("ReconciliationCompleted", {"ok": 1}, "ok"),
        ("RoleEvent", {"kind": "x", "detail": [1]}, "detail"),
        ("SystemStateChanged", {"state": "FLYING", "expires_ns": 1}, "state"),
        ("SystemStateChanged", {"state": ["TRADING"], "expires_ns": 1}, "state"),
        ("SystemStateChanged", {"state": "TRADING", "expires_ns": 1, "reasons": {}}, "reasons"),
        ("SystemStateChanged", {"state": "TRADING", "expires_ns": 1, "reasons": [1]}, "reasons"),
        (
            "SystemStateChanged",
            {
                "state": "TRADING",
                "expires_ns": 1,
                "reasons": [{"code": "x", "detail": "y", "latched": "no", "since_ns": 1}],
            },
            "latched",
        ),
        (
            "SystemStateChanged",
            {"state": "TRADING", "expires_ns": 1, "reasons": [{"code": "x", "detail": "y", "latched": True}]},
            "since_ns",
        ),
    ],
)
def test_a_body_with_a_missing_unknown_or_mistyped_field_is_refused(type_name: str, body: Any, match: str) -> None:
    raw = _good_raw(SAMPLES[type_name])
    raw["body"] = body

    with pytest.raises(MessageDecodeError, match=match):
        _decode_raw(raw)


def test_a_payload_larger_than_the_limit_is_refused_before_parsing() -> None:
    raw = _good_raw(RoleEvent(kind="big", detail={}))
    raw["body"]["detail"] = {"blob": "x" * MAX_MESSAGE_BYTES}

    with pytest.raises(MessageDecodeError, match="exceeds"):
        _decode_raw(raw)


def test_a_payload_just_under_the_limit_is_accepted() -> None:
    raw = _good_raw(RoleEvent(kind="big", detail={}))
    raw["body"]["detail"] = {"blob": ""}
    overhead = len(orjson.dumps(raw))
    raw["body"]["detail"]["blob"] = "x" * (MAX_MESSAGE_BYTES - overhead)
    payload = orjson.dumps(raw)
    assert len(payload) == MAX_MESSAGE_BYTES

    body = decode(payload).body

    assert isinstance(body, RoleEvent)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    "make_body",
    [
        lambda x: StopRole(deadline_s=x),
        lambda x: Heartbeat(role="feed", pid=1, rss_mb=x, queue_depth=0, handled=0),
        lambda x: RoleEvent(kind="k", detail={"a": [1, {"b": x}]}),
        lambda x: RoleEvent(kind="k", detail={"a": (x,)}),
    ],
    ids=["top-level-field", "heartbeat-field", "nested-in-dict-and-list", "nested-in-tuple"],
)
def test_non_finite_floats_are_refused_at_encode_time(make_body: Any, bad: float) -> None:
    env = make_envelope(make_body(bad), src="feed")

    with pytest.raises(ValueError, match="non-finite"):
        encode(env)


class _Floaty(float):
    pass


class _Listy(list[Any]):
    pass


@pytest.mark.parametrize(
    "detail",
    [
        lambda: collections.OrderedDict(x=math.nan),
        lambda: collections.defaultdict(int, x=math.nan),
        lambda: {"xs": _Listy([math.nan])},
        lambda: {"x": _Floaty("nan")},
    ],
    ids=["ordered-dict", "defaultdict", "list-subclass", "float-subclass"],
)
def test_non_finite_floats_inside_subclasses_of_dict_list_or_float_are_refused(detail: Any) -> None:
    env = make_envelope(RoleEvent(kind="k", detail=detail()), src="feed")

    with pytest.raises(ValueError, match="non-finite"):
        encode(env)


def test_encoded_envelopes_are_plain_json_with_the_enum_as_its_value() -> None:
    env = make_envelope(SAMPLES["SystemStateChanged"], src="supervisor")

    raw = orjson.loads(encode(env))

    assert raw["type"] == "SystemStateChanged"
    assert raw["body"]["state"] == "NO_TRADE"
    assert raw["body"]["reasons"][1] == {"code": "operator_pause", "detail": "paused", "latched": True, "since_ns": 2}
    assert "TYPE" not in raw["body"]


def test_to_jsonable_turns_a_body_into_plain_values() -> None:
    assert to_jsonable(SAMPLES["Reason"]) == {
        "code": "role_down:feed",
        "detail": "exit 3",
        "latched": False,
        "since_ns": 17,
    }


def test_a_second_class_claiming_a_registered_type_name_is_rejected() -> None:
    with pytest.raises(TypeError, match="duplicate message type"):
        type("Impostor", (Body,), {"TYPE": "Heartbeat", "__qualname__": "Impostor"})


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    type_name=st.sampled_from(sorted(SAMPLES)),
    overrides=st.dictionaries(st.text(max_size=12), _json_values, max_size=4),
    drop=st.sets(st.sampled_from(["role", "pid", "state", "expires_ns", "deadline_s", "kind", "reasons", "ok"])),
)
def test_decode_raises_only_message_decode_error_for_any_json_body(
    type_name: str, overrides: dict[str, Any], drop: set[str]
) -> None:
    raw = _good_raw(SAMPLES[type_name])
    body = {k: v for k, v in raw["body"].items() if k not in drop}
    body.update(overrides)
    raw["body"] = body

    try:
        env = _decode_raw(raw)
    except MessageDecodeError:
        return
    assert isinstance(env.body, _REGISTRY[type_name])


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=256))
def test_decode_raises_only_message_decode_error_for_arbitrary_bytes(payload: bytes) -> None:
    with contextlib.suppress(MessageDecodeError):
        decode(payload)
