"""The shadow book: virtual fills at bid/ask, SL/TP on ticks, client ids, persistence, nothing sent."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.broker import Broker, MarketOrderRequest, Transaction, TransactionHeartbeat
from actors.broker.shadow.book import ShadowBook
from actors.broker.shadow.state import read_book
from actors.broker.shadow.store import BookReader
from actors.core.domain import OHLC, Candle, Instrument, Price
from actors.core.errors import BrokerRejectedError, ConfigError, InvariantViolation
from tests.fakebroker import InMemoryBroker
from tests.fakes import ManualClock

pytestmark = pytest.mark.unit

EUR_USD = Instrument(
    name="EUR_USD", type="CURRENCY", display_precision=5, pip_location=-4, trade_units_precision=0,
    minimum_trade_size=Decimal(1), maximum_order_units=Decimal(100_000_000), margin_rate=Decimal("0.0333"),
)  # fmt: skip
USD_JPY = dataclasses.replace(
    EUR_USD, name="USD_JPY", display_precision=3, pip_location=-2, margin_rate=Decimal("0.04")
)
EUR_GBP = dataclasses.replace(EUR_USD, name="EUR_GBP", margin_rate=Decimal("0.05"))
ORDER_PATH = {"submit_market_order", "close_trade", "set_trade_orders", "cancel_order"}
ACCOUNT_READS = {"order", "trade", "open_trades", "pending_orders", "transactions_since"}
T0 = 1_709_733_600_000_000_000  # 2024-03-06 14:00 UTC
WRITTEN_BEFORE = Path(__file__).parents[2] / "data" / "written-before"


class RecordingBroker(InMemoryBroker):
    """The real-broker stand-in: records every call; an order-path call fails the test outright."""

    def submit_market_order(self, request: MarketOrderRequest) -> Any:
        self.calls.append("submit_market_order")
        raise AssertionError("an order reached the inner broker")

    def close_trade(self, spec: str, units: Decimal | None = None) -> Any:
        self.calls.append("close_trade")
        raise AssertionError("a close reached the inner broker")

    def set_trade_orders(self, spec: str, **kwargs: Any) -> Any:
        self.calls.append("set_trade_orders")
        raise AssertionError("an SL/TP change reached the inner broker")

    def cancel_order(self, spec: str) -> str:
        self.calls.append("cancel_order")
        raise AssertionError("a cancel reached the inner broker")


@pytest.fixture
def inner() -> RecordingBroker:
    return RecordingBroker(instruments=(EUR_USD, USD_JPY, EUR_GBP), balance=Decimal(50_000))


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "shadow.db"


def open_book(inner: Broker, path: Path, **kwargs: Any) -> ShadowBook:
    return ShadowBook(inner, path, clock=ManualClock(wall_ns=T0), **kwargs)


@pytest.fixture
def book(inner: RecordingBroker, state_path: Path) -> ShadowBook:
    return open_book(inner, state_path)


def price(book: ShadowBook, bid: str, ask: str, *, name: str = "EUR_USD", ts: int = T0, tradeable: bool = True) -> None:
    book.on_price(
        Price(instrument=name, ts=ts, bid=Decimal(bid), ask=Decimal(ask), closeout_bid=Decimal(bid),
              closeout_ask=Decimal(ask), tradeable=tradeable)
    )  # fmt: skip


def order(units: int, client_id: str = "main.EUR_USD.1.L", **kwargs: Any) -> MarketOrderRequest:
    fields: dict[str, Any] = {
        "instrument": "EUR_USD",
        "stop_loss": Decimal("1.08300"),
        "take_profit": Decimal("1.08900"),
    }
    if units < 0:
        fields.update(stop_loss=Decimal("1.08700"), take_profit=Decimal("1.08100"))
    fields.update(kwargs)
    return MarketOrderRequest(units=Decimal(units), client_id=client_id, trade_client_id=client_id, **fields)


# --- Fills ---------------------------------------------------------------------------------------


def test_it_is_a_broker_and_starts_from_the_real_accounts_nav(book: ShadowBook):
    assert isinstance(book, Broker)
    summary = book.account_summary()
    assert summary.balance == summary.nav == Decimal(50_000)
    assert summary.currency == "USD" and summary.open_trade_count == 0 and summary.last_transaction_id == "0"


def test_a_buy_fills_at_the_ask_and_a_sell_at_the_bid(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    buy = book.submit_market_order(order(10_000))
    assert buy.fill_price == Decimal("1.08510") and buy.units == Decimal(10_000) and buy.trade_id is not None
    price(book, "1.08500", "1.08510", name="USD_JPY")  # irrelevant instrument: nothing changes
    sell = book.submit_market_order(order(-10_000, client_id="b", instrument="EUR_USD"))
    assert sell.fill_price == Decimal("1.08500")
    # The sell netted the long out (non-hedging account): nothing is open, the spread was lost.
    assert sell.trade_id is None and book.open_trades() == []
    assert book.account_summary().balance == Decimal(50_000) - Decimal("1.0000")


def test_slippage_makes_fills_worse(inner: RecordingBroker, state_path: Path):
    book = open_book(inner, state_path, slippage_pips=0.2)
    price(book, "1.08500", "1.08510")
    assert book.submit_market_order(order(1000)).fill_price == Decimal("1.08512")
    result = book.close_trade("@main.EUR_USD.1.L")
    assert result.price == Decimal("1.08498") and result.units == Decimal(-1000)


@pytest.mark.parametrize("tradeable", [None, False])
def test_without_a_tradeable_price_an_order_is_cancelled_as_market_halted(book: ShadowBook, tradeable):
    if tradeable is not None:
        price(book, "1.08500", "1.08510", tradeable=tradeable)
    with pytest.raises(BrokerRejectedError) as e:
        book.submit_market_order(order(1000))
    assert e.value.reason == "MARKET_HALTED"
    assert book.order("@main.EUR_USD.1.L").state == "CANCELLED"
    assert book.open_trades() == []


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"stop_loss": Decimal("1.08500")}, "STOP_LOSS_ON_FILL_LOSS"),  # at the bid: would trigger at once
        ({"take_profit": Decimal("1.08500")}, "TAKE_PROFIT_ON_FILL_LOSS"),
        ({"price_bound": Decimal("1.08505")}, "BOUNDS_VIOLATION"),
    ],
)
def test_fok_checks_cancel_like_oanda(book: ShadowBook, kwargs, reason):
    price(book, "1.08500", "1.08510")
    with pytest.raises(BrokerRejectedError) as e:
        book.submit_market_order(order(1000, **kwargs))
    assert e.value.reason == reason and e.value.transaction["type"] == "ORDER_CANCEL"


def test_an_order_larger_than_the_margin_allows_is_cancelled(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    with pytest.raises(BrokerRejectedError) as e:
        book.submit_market_order(order(2_000_000))  # 2 M EUR x 3.33 % = 72 000 USD > 50 000
    assert e.value.reason == "INSUFFICIENT_MARGIN"
    book.submit_market_order(order(1_000_000, client_id="smaller"))
    assert book.account_summary().margin_used == Decimal("36132.1650")  # 1 M x mid 1.08505 x 3.33 %


def test_a_request_the_real_broker_would_refuse_to_send_is_refused_and_not_recorded(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    with pytest.raises(BrokerRejectedError):
        book.submit_market_order(order(1000, client_id="not url safe"))
    assert book.account_summary().last_transaction_id == "0"


def test_no_conversion_rate_cancels_the_order(book: ShadowBook):
    price(book, "0.85770", "0.85780", name="EUR_GBP")  # no GBP_USD price yet
    with pytest.raises(BrokerRejectedError) as e:
        book.submit_market_order(
            order(1000, instrument="EUR_GBP", stop_loss=Decimal("0.85500"), take_profit=Decimal("0.86000"))
        )
    assert e.value.reason == "SHADOW_NO_CONVERSION_RATE"


# --- SL/TP on ticks ------------------------------------------------------------------------------


def test_a_longs_stop_loss_triggers_on_the_bid_and_books_the_loss(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    trade_id = book.submit_market_order(order(10_000)).trade_id
    price(book, "1.08301", "1.08300", ts=T0 + 1)  # the ask touches the SL, the bid does not
    assert len(book.open_trades()) == 1
    # Through the SL between two prices of the session: the broker filled it at its level.
    price(book, "1.08290", "1.08300", ts=T0 + 2)
    assert book.open_trades() == []
    closed = book.trade(str(trade_id))
    assert closed.state == "CLOSED" and closed.realized_pl == Decimal("-21.0000")
    assert book.account_summary().balance == Decimal("49979.0000")
    kinds = [(t.type, t.raw.get("reason")) for t in book.transactions_since("0").transactions]
    assert ("ORDER_FILL", "STOP_LOSS_ORDER") in kinds and ("ORDER_CANCEL", "LINKED_TRADE_CLOSED") in kinds
    assert book.pending_orders() == []


def test_a_shorts_take_profit_triggers_on_the_ask(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    book.submit_market_order(order(-10_000))
    price(book, "1.08090", "1.08101", ts=T0 + 1)  # the bid is through the TP, the ask is not
    assert len(book.open_trades()) == 1
    price(book, "1.08090", "1.08100", ts=T0 + 2)
    assert book.open_trades() == []
    assert book.account_summary().balance == Decimal("50040.0000")  # (1.08500 - 1.08100) x 10 000


def test_a_stop_loss_fill_pays_the_slippage(inner: RecordingBroker, state_path: Path):
    book = open_book(inner, state_path, slippage_pips=0.2)
    price(book, "1.08500", "1.08510")
    book.submit_market_order(order(10_000))  # fills at 1.08512
    price(book, "1.08300", "1.08310", ts=T0 + 1)  # SL fills at 1.08298
    assert book.account_summary().balance == Decimal(50_000) + (Decimal("1.08298") - Decimal("1.08512")) * 10_000


M15 = 900 * 10**9


def _bar(ts: int, bid: tuple[str, str, str, str], spread: str = "0.00010") -> Candle:
    o, h, lo, c = (Decimal(x) for x in bid)
    d = Decimal(spread)
    return Candle(
        ts=ts, volume=10, complete=True,
        bid=OHLC(o=o, h=h, l=lo, c=c), ask=OHLC(o=o + d, h=h + d, l=lo + d, c=c + d),
    )  # fmt: skip


def test_a_stop_the_bar_reached_between_streamed_prices_fills_by_the_backtests_bar_rule(book: ShadowBook):
    # Arrange: a long entered at the bar's open; the stream's prices never went below 1.08400.
    price(book, "1.08500", "1.08510", ts=T0)
    trade_id = book.submit_market_order(order(10_000)).trade_id
    price(book, "1.08400", "1.08410", ts=T0 + 60 * 10**9)

    # Act: the closed bar's bid went down to the SL (and up to the TP: the stop first)
    book.on_bar("EUR_USD", _bar(T0, ("1.08500", "1.08950", "1.08250", "1.08450")), T0 + M15)

    # Assert
    closed = book.trade(str(trade_id))
    assert closed.state == "CLOSED" and closed.realized_pl == Decimal("-21.0000")  # (1.08300 - 1.08510) x 10 000
    fill = [t for t in book.transactions_since("0").transactions if t.raw.get("reason") == "STOP_LOSS_ORDER"]
    assert len(fill) == 1


def test_a_bar_that_reached_neither_level_or_a_trade_entered_late_in_it_changes_nothing(book: ShadowBook):
    price(book, "1.08500", "1.08510", ts=T0 + 300 * 10**9)  # entered a third into the bar
    book.submit_market_order(order(10_000))

    book.on_bar("EUR_USD", _bar(T0, ("1.08500", "1.08950", "1.08250", "1.08450")), T0 + M15)
    book.on_bar("EUR_USD", _bar(T0 + M15, ("1.08450", "1.08600", "1.08350", "1.08500")), T0 + 2 * M15)

    assert len(book.open_trades()) == 1


def test_no_trigger_while_the_market_is_not_tradeable(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    book.submit_market_order(order(10_000))
    price(book, "1.08000", "1.08010", ts=T0 + 1, tradeable=False)
    assert len(book.open_trades()) == 1


def test_unrealized_pnl_and_nav_follow_the_price_converted_to_home(book: ShadowBook):
    price(book, "150.000", "150.010", name="USD_JPY")
    book.submit_market_order(
        order(100_000, instrument="USD_JPY", stop_loss=Decimal("149.000"), take_profit=Decimal("151.000"))
    )
    price(book, "150.310", "150.320", name="USD_JPY", ts=T0 + 1)
    summary = book.account_summary()
    expected = (Decimal("0.300") * 100_000 * Decimal(repr(1 / 150.315))).quantize(Decimal("0.0001"))
    assert summary.unrealized_pl == expected and summary.nav == Decimal(50_000) + expected
    result = book.close_trade("@main.EUR_USD.1.L")  # the trade's client id
    assert result.realized_pl == expected and book.account_summary().balance == Decimal(50_000) + expected


def test_a_cross_books_its_pnl_through_the_conversion_pair(book: ShadowBook):
    price(book, "1.26490", "1.26510", name="GBP_USD")
    price(book, "0.85770", "0.85780", name="EUR_GBP")
    book.submit_market_order(
        order(10_000, instrument="EUR_GBP", stop_loss=Decimal("0.85500"), take_profit=Decimal("0.86000"))
    )
    price(book, "0.86000", "0.86010", name="EUR_GBP", ts=T0 + 1)  # TP: +22 pips of GBP
    assert book.account_summary().balance == Decimal(50_000) + (Decimal("22.0") * Decimal("1.265")).quantize(
        Decimal("0.0001")
    )


# --- Changes, look-ups, transactions -------------------------------------------------------------


def test_client_ids_find_the_order_and_the_trade(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    result = book.submit_market_order(order(1000))
    found = book.order("@main.EUR_USD.1.L")
    assert found.state == "FILLED" and found.filling_transaction_id == result.fill_transaction_id
    assert found.trade_opened_id == result.trade_id
    assert book.trade("@main.EUR_USD.1.L").id == result.trade_id
    with pytest.raises(BrokerRejectedError) as e:
        book.order("@unknown")
    assert e.value.reason == "NO_SUCH_ORDER"
    with pytest.raises(BrokerRejectedError) as e:
        book.trade("@unknown")
    assert e.value.reason == "NO_SUCH_TRADE"


def test_a_reused_client_id_answers_with_the_earlier_outcome_and_sends_nothing_new(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    first = book.submit_market_order(order(1000))
    last_id = book.account_summary().last_transaction_id
    again = book.submit_market_order(order(1000))
    assert again.resolved_by_lookup and again.trade_id == first.trade_id and again.fill_price == first.fill_price
    assert book.account_summary().last_transaction_id == last_id and len(book.open_trades()) == 1
    with pytest.raises(BrokerRejectedError) as e:  # a new order id, but the trade client id is taken
        book.submit_market_order(
            dataclasses.replace(order(1000, client_id="other"), trade_client_id="main.EUR_USD.1.L")
        )
    assert e.value.reason == "CLIENT_TRADE_ID_ALREADY_EXISTS"
    price(book, "1.08500", "1.08510", tradeable=False)
    with pytest.raises(BrokerRejectedError):
        book.submit_market_order(order(1000, client_id="halted"))
    with pytest.raises(BrokerRejectedError) as e:
        book.submit_market_order(order(1000, client_id="halted"))
    assert e.value.reason == "MARKET_HALTED"


def test_sl_and_tp_can_be_replaced_and_cancelled(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    trade_id = str(book.submit_market_order(order(1000)).trade_id)
    old_sl = book.trade(trade_id).stop_loss_order_id
    result = book.set_trade_orders(trade_id, stop_loss=Decimal("1.08450"))
    trade = book.trade(trade_id)
    assert trade.stop_loss_price == Decimal("1.08450") and result.stop_loss_order_id != old_sl
    assert book.order(str(old_sl)).state == "CANCELLED"
    book.set_trade_orders(trade_id, cancel_take_profit=True)
    assert book.trade(trade_id).take_profit_price is None
    assert [o.type for o in book.pending_orders()] == ["STOP_LOSS"]
    cancel_id = book.cancel_order(str(result.stop_loss_order_id))
    assert book.trade(trade_id).stop_loss_price is None and book.pending_orders() == []
    assert book.transactions_since(str(int(cancel_id) - 1)).transactions[0].type == "ORDER_CANCEL"
    with pytest.raises(BrokerRejectedError) as e:
        book.cancel_order(str(result.stop_loss_order_id))
    assert e.value.reason == "ORDER_DOESNT_EXIST"


def test_a_stop_moved_through_the_price_fills_at_once(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    trade_id = str(book.submit_market_order(order(1000)).trade_id)
    book.set_trade_orders(trade_id, stop_loss=Decimal("1.08500"))  # at the bid
    assert book.trade(trade_id).state == "CLOSED"


def test_a_partial_close_reduces_the_trade(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    trade_id = str(book.submit_market_order(order(1000)).trade_id)
    result = book.close_trade(trade_id, Decimal(400))
    assert result.units == Decimal(-400) and book.trade(trade_id).current_units == Decimal(600)
    with pytest.raises(BrokerRejectedError) as e:
        book.close_trade(trade_id, Decimal(601))
    assert e.value.reason == "CLOSE_TRADE_UNITS_EXCEED_TRADE_SIZE"
    book.close_trade(trade_id)
    with pytest.raises(BrokerRejectedError) as e:
        book.close_trade(trade_id)
    assert e.value.reason == "NO_SUCH_TRADE"


def test_a_close_without_a_tradeable_price_is_market_halted(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    trade_id = str(book.submit_market_order(order(1000)).trade_id)
    price(book, "1.08500", "1.08510", tradeable=False)
    with pytest.raises(BrokerRejectedError) as e:
        book.close_trade(trade_id)
    assert e.value.reason == "MARKET_HALTED" and book.trade(trade_id).state == "OPEN"


def test_trades_and_transactions_are_virtual(book: ShadowBook):
    price(book, "1.08500", "1.08510")
    book.submit_market_order(order(1000))
    book.submit_market_order(order(500, client_id="second"))
    assert [t.current_units for t in book.open_trades()] == [Decimal(500), Decimal(1000)]  # newest first
    page = book.transactions_since("0")
    assert [t.id for t in page.transactions] == [str(i) for i in range(1, len(page.transactions) + 1)]
    assert page.last_transaction_id == page.transactions[-1].id
    assert page.transactions[0].ts == T0 and page.transactions[0].raw["clientExtensions"]["id"] == "main.EUR_USD.1.L"


def test_the_transaction_stream_yields_new_transactions_and_heartbeats(inner: RecordingBroker, state_path: Path):
    book = open_book(inner, state_path, heartbeat_s=0.01)
    stream = book.transaction_stream()
    assert isinstance(next(stream), TransactionHeartbeat)
    price(book, "1.08500", "1.08510")
    book.submit_market_order(order(1000))
    batch = [next(stream) for _ in range(4)]
    assert [getattr(t, "type", None) for t in batch] == [
        "MARKET_ORDER", "ORDER_FILL", "TAKE_PROFIT_ORDER", "STOP_LOSS_ORDER",
    ]  # fmt: skip
    # A close from another thread reaches the waiting stream too.
    worker = threading.Thread(target=book.close_trade, args=("@main.EUR_USD.1.L",))
    worker.start()
    worker.join(5)
    seen: list[Transaction] = []
    while len(seen) < 4:  # the close's order, fill and the two cancelled dependents
        item = next(stream)
        if isinstance(item, Transaction):
            seen.append(item)
    assert [(t.type, t.raw.get("reason")) for t in seen] == [
        ("MARKET_ORDER", "TRADE_CLOSE"),
        ("ORDER_FILL", "MARKET_ORDER_TRADE_CLOSE"),
        ("ORDER_CANCEL", "LINKED_TRADE_CLOSED"),
        ("ORDER_CANCEL", "LINKED_TRADE_CLOSED"),
    ]
    book.close()
    assert [t for t in stream if isinstance(t, Transaction)] == []  # and it ends


# --- Persistence ---------------------------------------------------------------------------------


def test_the_book_survives_a_restart_and_its_stops_still_trigger(inner: RecordingBroker, state_path: Path):
    first = open_book(inner, state_path)
    price(first, "1.08500", "1.08510")
    result = first.submit_market_order(order(10_000))
    before = first.account_summary()
    # A new host process: another book over the same file, with an inner whose NAV differs.
    other_inner = RecordingBroker(instruments=(EUR_USD,), balance=Decimal(1))
    second = open_book(other_inner, state_path)
    assert second.account_summary().balance == before.balance
    assert second.account_summary().last_transaction_id == before.last_transaction_id
    assert second.trade("@main.EUR_USD.1.L").id == result.trade_id
    assert second.order("@main.EUR_USD.1.L").state == "FILLED"
    assert "account_summary" not in other_inner.calls  # the saved book, not the real NAV
    price(second, "1.08300", "1.08310", ts=T0 + 5)
    assert second.open_trades() == []
    assert second.account_summary().balance == Decimal("49979.0000")
    third = open_book(RecordingBroker(instruments=(EUR_USD,)), state_path)
    assert third.trade(str(result.trade_id)).state == "CLOSED"
    assert int(third.account_summary().last_transaction_id) > int(before.last_transaction_id)


def test_the_book_file_is_private(book: ShadowBook, state_path: Path):
    price(book, "1.08500", "1.08510")
    book.submit_market_order(order(1000))
    for path in (state_path, state_path.with_name(state_path.name + "-wal")):
        assert path.stat().st_mode & 0o777 == 0o600


def _book_bytes(path: Path) -> bytes:
    reader = BookReader(path)
    try:
        return reader.load().encode()
    finally:
        reader.close()


def _trade_and_close_many(book: ShadowBook, n: int, *, start: int = 0) -> None:
    for i in range(start, start + n):
        result = book.submit_market_order(order(1000, client_id=f"c{i}"))
        book.close_trade(str(result.trade_id))


def _refused(call: Any) -> None:
    with pytest.raises(BrokerRejectedError):
        call()


def test_every_change_is_saved_whole_and_a_fresh_load_gives_the_same_book(inner: RecordingBroker, state_path: Path):
    # Arrange: everything the order path can do, the file read back after each step
    book = open_book(inner, state_path)
    steps = [
        lambda: price(book, "1.08500", "1.08510"),
        lambda: book.submit_market_order(order(1000)),
        lambda: book.submit_market_order(order(-500, client_id="b")),  # nets against the first
        lambda: book.set_trade_orders("@main.EUR_USD.1.L", stop_loss=Decimal("1.08400")),
        lambda: book.cancel_order(str(book.trade("@main.EUR_USD.1.L").take_profit_order_id)),
        lambda: book.close_trade("@main.EUR_USD.1.L", Decimal(100)),
        lambda: book.submit_market_order(order(2000, client_id="c", stop_loss=Decimal("1.08480"))),
        lambda: price(book, "1.08400", "1.08410", ts=T0 + 1),  # the stops fire
        lambda: _refused(lambda: book.submit_market_order(order(10**9, client_id="d"))),  # recorded, cancelled
    ]
    # Act / Assert: after every step the file holds exactly the book in memory
    for step in steps:
        step()
        assert _book_bytes(state_path) == book._book.encode()
    assert book.open_trades() == []


def test_a_change_writes_what_it_touched_however_long_the_history(book: ShadowBook, state_path: Path):
    # Arrange: 300 closed trades in the book
    price(book, "1.08500", "1.08510")
    _trade_and_close_many(book, 300)
    # Act: one more order, then its close
    result = book.submit_market_order(order(1000, client_id="last"))
    db = sqlite3.connect(state_path)
    change = db.execute("SELECT change FROM account").fetchone()[0]
    rows = {t: db.execute(f"SELECT count(*) FROM {t} WHERE change = ?", (change,)).fetchone()[0]  # noqa: S608
            for t in ("trades", "orders")}  # fmt: skip
    # Assert: the order's change wrote its trade and its three orders (MARKET, TP, SL), nothing older
    assert rows == {"trades": 1, "orders": 3}
    book.close_trade(str(result.trade_id))
    change = db.execute("SELECT change FROM account").fetchone()[0]
    rows = {t: db.execute(f"SELECT count(*) FROM {t} WHERE change = ?", (change,)).fetchone()[0]  # noqa: S608
            for t in ("trades", "orders")}  # fmt: skip
    assert rows == {"trades": 1, "orders": 3}  # the closed trade, its close order, its cancelled TP and SL
    db.close()
    assert _book_bytes(state_path) == book._book.encode()


def test_a_corrupt_book_file_is_a_clear_error(inner: RecordingBroker, state_path: Path):
    state_path.write_bytes(b"{not a database" * 100)
    with pytest.raises(ConfigError, match="shadow book is corrupt"):
        open_book(inner, state_path)


def test_a_book_of_another_version_is_a_clear_error(book: ShadowBook, inner: RecordingBroker, state_path: Path):
    book.close()
    db = sqlite3.connect(state_path)
    db.execute("UPDATE account SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="shadow book is corrupt"):
        open_book(inner, state_path)


def test_a_json_book_of_an_older_version_is_migrated_once(inner: RecordingBroker, tmp_path: Path):
    # Arrange: the JSON book an earlier version wrote (one open EUR_USD long with SL/TP)
    legacy = tmp_path / "shadow-book.json"
    shutil.copyfile(WRITTEN_BEFORE / "shadow-book.json", legacy)
    written = read_book(legacy)
    assert written is not None
    # Act
    book = open_book(inner, tmp_path / "shadow-book.db")
    # Assert: the same book, from the JSON file, which is kept aside; the open says what it migrated
    assert book._book.encode() == written.encode()
    assert "account_summary" not in inner.calls  # the saved book, not the real NAV
    assert book.trade("@main.EUR_USD.1.L").stop_loss_price == Decimal("1.08300")
    assert book.migrated is not None and book.migrated["trades"] == 1
    assert not legacy.exists() and (tmp_path / "shadow-book.json.migrated").exists()
    assert _book_bytes(tmp_path / "shadow-book.db") == written.encode()
    # ... and it trades on: its stop still triggers, after a restart too, with no second migration
    price(book, "1.08200", "1.08210", ts=T0 + 10**12)
    assert book.open_trades() == []
    book.close()
    again = open_book(RecordingBroker(instruments=(EUR_USD,)), tmp_path / "shadow-book.db")
    assert again.migrated is None
    assert again._book.encode() == _book_bytes(tmp_path / "shadow-book.db")
    assert again.trade("@main.EUR_USD.1.L").state == "CLOSED"


def test_a_reader_in_another_connection_never_sees_half_a_change(inner: RecordingBroker, state_path: Path):
    # Arrange: a writer trading and closing in a thread, a reader refreshing as fast as it can
    writer = open_book(inner, state_path)
    price(writer, "1.08500", "1.08510")
    start = writer.account_summary().balance
    reader = open_book(inner, state_path, read_only=True)
    done = threading.Event()

    def trade() -> None:
        _trade_and_close_many(writer, 150)
        done.set()

    thread = threading.Thread(target=trade)
    thread.start()
    seen = 0
    # Act / Assert: every state the reader sees is whole: the balance is the start plus every
    # trade's P&L, no trade is open (each change opens or closes one) without its SL/TP orders
    while not done.is_set() or seen < 2:
        reader.account_summary()
        book = reader._book
        assert book.balance == start + sum((t.realized_pl for t in book.trades.values()), Decimal(0))
        open_ = [t for t in book.trades.values() if t.state == "OPEN"]
        assert len(open_) <= 1
        for t in open_:
            assert book.orders[str(t.stop_loss_order_id)].state == "PENDING"
        assert [int(t["id"]) for t in book.transactions] == list(range(1, book.next_id))
        seen += done.is_set()
    thread.join()
    assert reader._book.encode() == writer._book.encode()


def test_a_reader_sees_the_writers_book_and_cannot_trade(inner: RecordingBroker, state_path: Path):
    writer = open_book(inner, state_path)
    reader = open_book(inner, state_path, read_only=True)
    price(writer, "1.08500", "1.08510")
    price(reader, "1.08500", "1.08510")
    writer.submit_market_order(order(1000))
    assert len(reader.open_trades()) == 1
    with pytest.raises(InvariantViolation):
        reader.submit_market_order(order(1000, client_id="x"))
    with pytest.raises(InvariantViolation):
        reader.close_trade("@main.EUR_USD.1.L")
    price(reader, "1.08000", "1.08010", ts=T0 + 1)  # a reader never triggers
    assert len(reader.open_trades()) == 1 and len(writer.open_trades()) == 1


def test_a_reader_without_a_book_refuses_to_start(inner: RecordingBroker, state_path: Path):
    with pytest.raises(ConfigError, match="no shadow book"):
        open_book(inner, state_path, read_only=True)


# --- Nothing reaches the broker ------------------------------------------------------------------


def test_no_order_path_call_and_no_account_read_ever_reaches_the_inner_broker(inner: RecordingBroker, state_path: Path):
    # Arrange: everything the order path can do, on a fresh book and on a restored one.
    book = open_book(inner, state_path)
    list(book.pricing_stream(["EUR_USD"]))  # read-through (the fake has no price: only a heartbeat)
    price(book, "1.08500", "1.08510")
    a = str(book.submit_market_order(order(1000)).trade_id)
    book.submit_market_order(order(-500, client_id="b"))
    book.set_trade_orders(a, stop_loss=Decimal("1.08400"), take_profit=Decimal("1.09000"))
    book.cancel_order(str(book.trade(a).take_profit_order_id))
    book.close_trade(a, Decimal(100))
    for spec in (a, "@main.EUR_USD.1.L"):
        book.trade(spec)
    book.order("@b")
    book.open_trades(), book.pending_orders(), book.account_summary()
    book.transactions_since("0")
    restored = open_book(inner, state_path)
    price(restored, "1.08000", "1.08010", ts=T0 + 1)
    restored.account_summary()
    # Assert: the inner broker saw market-data reads and the one starting NAV read, nothing else.
    assert not ORDER_PATH & set(inner.calls)
    assert not ACCOUNT_READS & set(inner.calls)
    assert inner.calls.count("account_summary") == 1
    assert set(inner.calls) <= {"account_summary", "instruments", "pricing_stream"}
    assert inner.trades == {} and inner.orders == {}
