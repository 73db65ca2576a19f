"""The v20 REST routes of the emulator: path patterns, query parsing and the handlers.

Each handler takes the ``Emulator`` and a parsed ``Call`` and returns ``(status, body)`` or
raises ``ApiError``. Statuses follow the v20 spec and what oandapyV20 expects: 201 for
``POST .../orders`` and ``PUT .../orders/{spec}`` (replace), 200 otherwise. The two streaming
paths are recognised here but served by ``streams.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from actors.broker.emulator.app import Emulator
from actors.broker.emulator.candles import CandleQuery, CandleQueryError
from actors.broker.emulator.dependents import set_trade_orders
from actors.broker.emulator.instruments import instrument_json
from actors.broker.emulator.views import find_order, find_trade, positions_json, price_json, summary_json, trade_json
from actors.broker.emulator.wire import ApiError, Ts
from actors.core.timefmt import parse_time

__all__ = ["ROUTES", "STREAM_PATHS", "Call", "bool_param", "csv_param", "match_route", "order_log_fields"]

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Call:
    """One parsed API request."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    groups: tuple[str, ...]
    forced_cancel: str | None = None
    forced_reject: str | None = None


Handler = Callable[[Emulator, Call], tuple[int, Json]]


def csv_param(call: Call, name: str) -> list[str]:
    """A csv (or repeated) query parameter as a list."""
    return [item for value in call.query.get(name, []) for item in value.split(",") if item]


def bool_param(call: Call, name: str, default: bool) -> bool:
    """A boolean query parameter (``True``/``true``/``1``)."""
    values = call.query.get(name)
    if not values:
        return default
    value = values[-1].lower()
    if value not in ("true", "false", "1", "0"):
        raise ApiError(400, {"errorMessage": f"Invalid value specified for '{name}'"})
    return value in ("true", "1")


def _one(call: Call, name: str) -> str | None:
    values = call.query.get(name)
    return values[-1] if values else None


def _last(emu: Emulator) -> str:
    return emu.account.last_transaction_id


def accounts(emu: Emulator, call: Call) -> tuple[int, Json]:
    return 200, {"accounts": [{"id": emu.account.account_id, "tags": []}]}


def account_details(emu: Emulator, call: Call) -> tuple[int, Json]:
    acc = emu.account
    acc.catch_up()
    with acc.lock:
        body = summary_json(acc)
        body["trades"] = [trade_json(acc, t) for t in reversed(acc.open_trade_list())]
        body["orders"] = [dict(o) for o in acc.orders.values() if o["state"] == "PENDING"]
        body["positions"] = positions_json(acc)
        return 200, {"account": body, "lastTransactionID": acc.last_transaction_id}


def summary(emu: Emulator, call: Call) -> tuple[int, Json]:
    acc = emu.account
    acc.catch_up()
    with acc.lock:
        return 200, {"account": summary_json(acc), "lastTransactionID": acc.last_transaction_id}


def instruments(emu: Emulator, call: Call) -> tuple[int, Json]:
    wanted = csv_param(call, "instruments")
    names = list(emu.account.instruments)
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise ApiError(400, {"errorMessage": "Invalid value specified for 'instruments'"})
    chosen = [emu.account.instruments[n] for n in (wanted or names)]
    return 200, {"instruments": [instrument_json(s) for s in chosen], "lastTransactionID": _last(emu)}


def candles(emu: Emulator, call: Call) -> tuple[int, Json]:
    try:
        count = _one(call, "count")
        start, end = _one(call, "from"), _one(call, "to")
        query = CandleQuery(
            instrument=call.groups[0],
            granularity=_one(call, "granularity") or "S5",
            price=_one(call, "price") or "M",
            count=None if count is None else int(count),
            from_ns=None if start is None else parse_time(start),
            to_ns=None if end is None else parse_time(end),
            include_first=bool_param(call, "includeFirst", True),
        )
    except ValueError as e:
        raise ApiError(400, {"errorMessage": f"Invalid value specified: {e}"}) from e
    if query.instrument not in emu.account.instruments:
        raise ApiError(400, {"errorMessage": "Invalid value specified for 'instrument'"})
    try:
        return 200, emu.candles.query(query, now_ns=emu.clock.now_ns())
    except CandleQueryError as e:
        raise ApiError(400, {"errorMessage": str(e)}) from e


def latest_candles(emu: Emulator, call: Call) -> tuple[int, Json]:
    # ``candleSpecifications=EUR_USD:M15:BA,...``: per specification the last two candles (the
    # latest complete one and the one forming), built by the same query as ``candles``.
    specs = csv_param(call, "candleSpecifications")
    if not specs:
        raise ApiError(400, {"errorMessage": "Invalid value specified for 'candleSpecifications'"})
    now_ns = emu.clock.now_ns()
    out = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or parts[0] not in emu.account.instruments:
            raise ApiError(400, {"errorMessage": "Invalid value specified for 'candleSpecifications'"})
        query = CandleQuery(
            instrument=parts[0],
            granularity=parts[1],
            price=parts[2] if len(parts) == 3 else "M",
            count=2,
            from_ns=None,
            to_ns=None,
            include_first=True,
        )
        try:
            out.append(emu.candles.query(query, now_ns=now_ns))
        except CandleQueryError as e:
            raise ApiError(400, {"errorMessage": str(e)}) from e
    return 200, {"latestCandles": out}


def pricing(emu: Emulator, call: Call) -> tuple[int, Json]:
    names = csv_param(call, "instruments")
    if not names or any(n not in emu.account.instruments for n in names):
        raise ApiError(400, {"errorMessage": "Invalid value specified for 'instruments'"})
    prices = [price_json(emu.account, n) for n in names]
    return 200, {"prices": prices, "time": Ts(emu.clock.now_ns())}


def open_trades(emu: Emulator, call: Call) -> tuple[int, Json]:
    acc = emu.account
    acc.catch_up()
    with acc.lock:
        trades = [trade_json(acc, t) for t in reversed(acc.open_trade_list())]
        return 200, {"trades": trades, "lastTransactionID": acc.last_transaction_id}


def trades_list(emu: Emulator, call: Call) -> tuple[int, Json]:
    acc = emu.account
    acc.catch_up()
    state = (_one(call, "state") or "OPEN").upper()
    ids = set(csv_param(call, "ids"))
    with acc.lock:
        chosen = [
            t for t in reversed(list(acc.trades.values()))
            if (state in ("ALL", t.state)) and (not ids or t.id in ids)
        ]  # fmt: skip
        count = int(_one(call, "count") or 50)
        body = [trade_json(acc, t) for t in chosen[:count]]
        return 200, {"trades": body, "lastTransactionID": acc.last_transaction_id}


def trade_details(emu: Emulator, call: Call) -> tuple[int, Json]:
    acc = emu.account
    acc.catch_up()
    with acc.lock:
        trade = find_trade(acc, call.groups[1])
        return 200, {"trade": trade_json(acc, trade), "lastTransactionID": acc.last_transaction_id}


def trade_close(emu: Emulator, call: Call) -> tuple[int, Json]:
    return 200, emu.account.close_trade(call.groups[1], call.body)


def trade_orders(emu: Emulator, call: Call) -> tuple[int, Json]:
    return 200, set_trade_orders(emu.account, call.groups[1], call.body)


def open_positions(emu: Emulator, call: Call) -> tuple[int, Json]:
    acc = emu.account
    acc.catch_up()
    with acc.lock:
        return 200, {"positions": positions_json(acc), "lastTransactionID": acc.last_transaction_id}


def pending_orders(emu: Emulator, call: Call) -> tuple[int, Json]:
    acc = emu.account
    acc.catch_up()
    with acc.lock:
        orders = [dict(o) for o in reversed(acc.orders.values()) if o["state"] == "PENDING"]
        return 200, {"orders": orders, "lastTransactionID": acc.last_transaction_id}


def order_details(emu: Emulator, call: Call) -> tuple[int, Json]:
    acc = emu.account
    acc.catch_up()
    with acc.lock:
        return 200, {"order": dict(find_order(acc, call.groups[1])), "lastTransactionID": acc.last_transaction_id}


def order_cancel(emu: Emulator, call: Call) -> tuple[int, Json]:
    return 200, emu.account.cancel_order(call.groups[1])


def order_create(emu: Emulator, call: Call) -> tuple[int, Json]:
    # Order faults are consumed by the server, which also handles the no-answer case.
    return 201, emu.account.create_order(call.body, forced_cancel=call.forced_cancel, forced_reject=call.forced_reject)


def transactions_since(emu: Emulator, call: Call) -> tuple[int, Json]:
    acc = emu.account
    acc.catch_up()
    raw = _one(call, "id")
    if raw is None or not raw.isdigit():
        raise ApiError(400, {"errorMessage": "Invalid value specified for 'id'"})
    with acc.lock:
        since = int(raw)
        if since > int(acc.last_transaction_id):
            raise ApiError(
                404,
                {
                    "errorCode": "NO_SUCH_TRANSACTION",
                    "errorMessage": "The transaction ID specified does not exist",
                    "lastTransactionID": acc.last_transaction_id,
                },
            )
        txs = [dict(tx) for tx in acc.transactions[since:]]
        return 200, {"transactions": txs, "lastTransactionID": acc.last_transaction_id}


def transaction_details(emu: Emulator, call: Call) -> tuple[int, Json]:
    acc = emu.account
    with acc.lock:
        tx_id = call.groups[1]
        if not tx_id.isdigit() or not 1 <= int(tx_id) <= len(acc.transactions):
            raise ApiError(
                404,
                {
                    "errorCode": "NO_SUCH_TRANSACTION",
                    "errorMessage": "The transaction ID specified does not exist",
                    "lastTransactionID": acc.last_transaction_id,
                },
            )
        return 200, {
            "transaction": dict(acc.transactions[int(tx_id) - 1]),
            "lastTransactionID": acc.last_transaction_id,
        }


_A = r"/v3/accounts/([^/]+)"
STREAM_PATHS = {
    re.compile(f"^{_A}/pricing/stream$"): "pricing",
    re.compile(f"^{_A}/transactions/stream$"): "transactions",
}
ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (re.compile(r"^/v3/accounts$"), {"GET": accounts}),
    (re.compile(r"^/v3/instruments/([^/]+)/candles$"), {"GET": candles}),
    (re.compile(f"^{_A}$"), {"GET": account_details}),
    (re.compile(f"^{_A}/summary$"), {"GET": summary}),
    (re.compile(f"^{_A}/instruments$"), {"GET": instruments}),
    (re.compile(f"^{_A}/pricing$"), {"GET": pricing}),
    (re.compile(f"^{_A}/candles/latest$"), {"GET": latest_candles}),
    (re.compile(f"^{_A}/openTrades$"), {"GET": open_trades}),
    (re.compile(f"^{_A}/trades$"), {"GET": trades_list}),
    (re.compile(f"^{_A}/trades/([^/]+)$"), {"GET": trade_details}),
    (re.compile(f"^{_A}/trades/([^/]+)/close$"), {"PUT": trade_close}),
    (re.compile(f"^{_A}/trades/([^/]+)/orders$"), {"PUT": trade_orders}),
    (re.compile(f"^{_A}/(?:openPositions|positions)$"), {"GET": open_positions}),
    (re.compile(f"^{_A}/(?:pendingOrders|orders)$"), {"GET": pending_orders, "POST": order_create}),
    (re.compile(f"^{_A}/orders/([^/]+)$"), {"GET": order_details}),
    (re.compile(f"^{_A}/orders/([^/]+)/cancel$"), {"PUT": order_cancel}),
    (re.compile(f"^{_A}/transactions/sinceid$"), {"GET": transactions_since}),
    (re.compile(f"^{_A}/transactions/(\\d+)$"), {"GET": transaction_details}),
]


_ORDER_POST = re.compile(f"^{_A}/orders$")


def order_log_fields(method: str, path: str, raw: bytes) -> dict[str, str | None]:
    """For ``POST /v3/accounts/{id}/orders``: the order's ``client_id`` (``clientExtensions.id``),
    ``order_type`` and ``instrument`` as the body says them (None where it does not), for the
    request log; ``{}`` for any other request. Never raises: a malformed body is logged as such."""
    if method != "POST" or not _ORDER_POST.match(path):
        return {}
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    order = body.get("order") if isinstance(body, dict) else None
    order = order if isinstance(order, dict) else {}
    ext = order.get("clientExtensions")
    client_id = ext.get("id") if isinstance(ext, dict) else None
    return {
        "client_id": client_id if isinstance(client_id, str) else None,
        "order_type": order["type"] if isinstance(order.get("type"), str) else None,
        "instrument": order["instrument"] if isinstance(order.get("instrument"), str) else None,
    }


def match_route(method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
    """The handler and path groups for ``method path``; ApiError 404/405 otherwise."""
    for pattern, handlers in ROUTES:
        match = pattern.match(path)
        if match:
            if method not in handlers:
                raise ApiError(405, {"errorMessage": f"The method {method} is not allowed on {path}"})
            return handlers[method], match.groups()
    raise ApiError(404, {"errorMessage": f"The path {path} does not exist"})
