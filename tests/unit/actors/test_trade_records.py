"""The trade family's records that leave the process keep their form: the state files a host wrote
before (the reconciler's known trades, the execution role's memos, the shadow book) and the
messages it sent (``AccountSnapshot`` with its ``TradeView``s, ``ProtectionReport`` with its
``TradeProtection``s) still load, and are written again byte for byte. The files under
``tests/data/written-before`` were written by the code before the trade records were converged
(commit bec8042), not by the code under test.

And the family's conversions from the broker's ``TradeState`` (the source of truth) agree with
each other: the snapshot's ``TradeView.of``, the reconciler's ``KnownTrade.of``.
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from actors.broker.shadow.state import Book, read_book
from actors.core.domain import Direction, TradeState
from actors.core.truth import KnownTrade
from actors.roles.execution.memos import TradeMemo, load_memos, save_memos
from actors.roles.reconciler.state import ReconState
from actors.runtime.messages import AccountSnapshot, ProtectionReport, TradeView, decode, encode

pytestmark = pytest.mark.unit

BEFORE = Path(__file__).parents[2] / "data" / "written-before"


def _written_before(name: str) -> bytes:
    # The bytes the earlier code wrote (bar a final newline an editor may add).
    return (BEFORE / name).read_bytes().rstrip(b"\n")


def test_a_reconciler_state_written_before_loads_and_is_saved_again_byte_for_byte(tmp_path: Path) -> None:
    state = ReconState.load(BEFORE / "recon-state.json")

    state.save(tmp_path / "recon-state.json")

    assert state.last_transaction_id == "6371" and state.zone is not None and state.zone.peak_nav == 100250.5
    assert state.known["6370"] == KnownTrade(
        trade_id="6370", instrument="USD_JPY", units="-5000", stop_loss=None, take_profit="149.500"
    )
    assert (tmp_path / "recon-state.json").read_bytes() == _written_before("recon-state.json")


def test_execution_memos_written_before_load_and_are_saved_again_byte_for_byte(tmp_path: Path) -> None:
    memos = load_memos(BEFORE / "execution-state.json")

    save_memos(tmp_path / "execution-state.json", memos)

    assert memos["6367"] == TradeMemo(
        trade_id="6367", intent_id="main.EUR_USD.1709733600000000000.L", instrument="EUR_USD", direction="long",
        units="10000", initial_stop_loss="1.08300", corr="bar-EUR_USD-M15-1709733600000000000",
        model_version="32ff71fb3d00", open_bar_ts=1709733600000000000,
    )  # fmt: skip
    assert (tmp_path / "execution-state.json").read_bytes() == _written_before("execution-state.json")


def test_a_shadow_book_written_before_loads_and_is_written_again_byte_for_byte() -> None:
    book = read_book(BEFORE / "shadow-book.json")

    assert book is not None
    trade = book.trades["2"]
    assert (trade.price, trade.stop_loss_price) == (Decimal("1.08510"), Decimal("1.08300"))
    assert book.trade_by_client == {"main.EUR_USD.1.L": "2"}
    assert book.encode() == _written_before("shadow-book.json")
    assert Book.decode(book.encode()).encode() == book.encode()


@pytest.mark.parametrize("name", ["account-snapshot.msg.json", "protection-report.msg.json"])
def test_trade_messages_sent_before_decode_and_encode_byte_for_byte(name: str) -> None:
    sent = _written_before(name)

    envelope = decode(sent)

    assert isinstance(envelope.body, AccountSnapshot | ProtectionReport)
    assert _without_added(encode(envelope)) == sent


# Fields added since those records were written (each with a default that reads an old message
# the same): dropped before comparing, so everything else stays pinned byte for byte.
ADDED_SINCE = {"drawdown_resumed": False}  # issue 16: a resume after drawdown_stop


def _without_added(encoded: bytes) -> bytes:
    raw = orjson.loads(encoded)
    for key, default in ADDED_SINCE.items():
        if key in raw["body"]:
            assert raw["body"].pop(key) == default
    return orjson.dumps(raw)


def _broker_trade(**fields: object) -> TradeState:
    base: dict[str, object] = {
        "id": "6367", "instrument": "EUR_USD", "price": Decimal("1.08450"), "open_ts": 1709733600000000000,
        "state": "OPEN", "initial_units": Decimal(10000), "current_units": Decimal(10000), "realized_pl": Decimal(0),
        "unrealized_pl": Decimal("12.3000"), "client_id": "main.EUR_USD.1709733600000000000.L",
        "client_tag": "tradehost-main", "stop_loss_order_id": "6368", "stop_loss_price": Decimal("1.08300"),
        "take_profit_order_id": "6369", "take_profit_price": Decimal("1.09100"),
    }  # fmt: skip
    return TradeState(**{**base, **fields})  # type: ignore[arg-type]


def test_the_snapshot_carries_the_broker_trade_as_it_was_sent_before() -> None:
    snapshot = decode(_written_before("account-snapshot.msg.json")).body
    short = _broker_trade(
        id="6370", instrument="USD_JPY", price=Decimal("151.200"), open_ts=1709733600000000001,
        initial_units=Decimal(-5000), current_units=Decimal(-5000), unrealized_pl=Decimal("-1.2000"), client_id=None,
        stop_loss_price=None, take_profit_price=None,
    )  # fmt: skip

    views = (TradeView.of(_broker_trade()), TradeView.of(short))

    assert isinstance(snapshot, AccountSnapshot)
    assert views == snapshot.trades
    assert short.direction is Direction.SHORT and _broker_trade().direction is Direction.LONG


def test_the_reconcilers_memory_and_the_snapshot_read_a_broker_trade_alike() -> None:
    # Decimals with an exponent are written out in full by both (never "1E+4").
    trade = _broker_trade(current_units=Decimal("1E+4"), stop_loss_price=Decimal("1.083E0"), take_profit_price=None)

    known, view = KnownTrade.of(trade), TradeView.of(trade)

    assert known == KnownTrade(
        trade_id="6367", instrument="EUR_USD", units="10000", stop_loss="1.083", take_profit=None,
        client_id="main.EUR_USD.1709733600000000000.L",
    )  # fmt: skip
    shared = {k: v for k, v in asdict(view).items() if k in asdict(known)}
    assert shared == asdict(known)
