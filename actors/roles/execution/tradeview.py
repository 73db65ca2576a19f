"""The execution role's view of the trades open at the broker, kept current by the transaction stream.

The send-time check (no entry on an instrument that already has a trade at the broker) used to
read the broker's open trades before every entry: a REST round trip in the order path. The view
answers it from memory instead, and only when it can vouch for its answer:

- it starts from a REST snapshot taken *after* the stream is known to be connected (its first
  line arrived): the account's last transaction id, then the open trades; the stream's
  transactions after that id are replayed as set operations, in order, so a transaction the
  snapshot already holds changes nothing;
- every transaction must carry the next id: a jump is a gap (the view is dropped and rebuilt
  from a new snapshot); so is a heartbeat whose ``lastTransactionID`` is ahead of the view;
- an ``ORDER_FILL`` it cannot read (no trade id where one belongs) is a gap too;
- silence longer than ``execution.trade_view_stale_s`` (heartbeats every 5 s at OANDA), a broken
  or ended stream, or an order of the host's own whose outcome is unknown makes it unusable until
  the next snapshot;
- an answer is given only once the view has applied every transaction the desk's own requests
  reported (``expect``): a fill the broker answered a moment ago is in the view before the next
  entry is checked against it (the desk waits a few milliseconds for the stream, then reads REST).

``TradeView`` is pure state behind a lock (the stream worker writes, the order desk reads);
``follow_transactions`` is the worker's loop around ``Broker.transaction_stream``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from actors.broker import Broker, Transaction, TransactionHeartbeat
from actors.core.backoff import Backoff
from actors.core.clock import Clock
from actors.core.errors import BrokerError

__all__ = ["TradeView", "ViewAnswer", "follow_transactions"]


@dataclass(frozen=True, slots=True)
class ViewAnswer:
    """What the view says of an instrument: the id of a trade open on it ("" when none)."""

    trade_id: str


def _tx_id(value: str) -> int | None:
    return int(value) if value.isdigit() else None


class TradeView:
    """Open trades (id -> instrument) as of transaction ``last_id``, and whether that can be vouched for.

    Args:
        clock: monotonic time for staleness.
        stale_s: silence on the stream after which the view is not used.
    """

    def __init__(self, clock: Clock, stale_s: float) -> None:
        self.clock = clock
        self.stale_s = stale_s
        self._cond = threading.Condition()
        self._trades: dict[str, str] = {}
        self._last_id: int | None = None  # None: no snapshot (or dropped): not usable
        self._heard_s = 0.0
        self._expected = 0  # the newest transaction id the desk's own requests reported
        self.state = "down"  # down | synced
        self.detail = "not connected"

    # --- the stream worker's side ---

    def snapshot(self, trades: dict[str, str], last_id: str) -> None:
        """A REST snapshot: ``trades`` (id -> instrument) as of transaction ``last_id`` or later."""
        with self._cond:
            self._trades = dict(trades)
            self._last_id = _tx_id(last_id)
            self._heard_s = self.clock.monotonic()
            self.state, self.detail = ("synced", "") if self._last_id is not None else ("down", "bad snapshot id")
            self._cond.notify_all()

    def drop(self, why: str) -> None:
        """Stop vouching until the next snapshot."""
        with self._cond:
            self._last_id = None
            self.state, self.detail = "down", why
            self._cond.notify_all()

    def heard(self, item: Transaction | TransactionHeartbeat) -> str:
        """Apply one stream line; returns "" or why the view was dropped (a gap: take a snapshot)."""
        with self._cond:
            self._heard_s = self.clock.monotonic()
            if self._last_id is None:
                return ""  # waiting for a snapshot: nothing to apply to
            if isinstance(item, TransactionHeartbeat):
                last = _tx_id(item.last_transaction_id)
                if last is None or last > self._last_id:
                    return self._gap(f"heartbeat at transaction {item.last_transaction_id}, view at {self._last_id}")
                return ""
            tx_id = _tx_id(item.id)
            if tx_id is None:
                return self._gap(f"transaction id {item.id!r}")
            if tx_id <= self._last_id:
                return ""  # already in the snapshot
            if tx_id != self._last_id + 1:
                return self._gap(f"transaction {tx_id} after {self._last_id}")
            if item.type == "ORDER_FILL" and not self._apply_fill(item):
                return self._gap(f"ORDER_FILL {tx_id} without its trade ids")
            self._last_id = tx_id
            self._cond.notify_all()
            return ""

    def _gap(self, why: str) -> str:
        self._last_id = None
        self.state, self.detail = "down", f"gap: {why}"
        self._cond.notify_all()
        return self.detail

    def _apply_fill(self, tx: Transaction) -> bool:
        raw = tx.raw
        instrument = raw.get("instrument")
        opened = raw.get("tradeOpened")
        closed = raw.get("tradesClosed") or []
        if not isinstance(closed, list) or (opened is not None and not isinstance(opened, dict)):
            return False
        ids = [c.get("tradeID") if isinstance(c, dict) else None for c in closed]
        if any(not isinstance(i, str) for i in ids):
            return False
        for trade_id in ids:
            self._trades.pop(str(trade_id), None)
        if opened is not None:
            trade_id = opened.get("tradeID")
            if not isinstance(trade_id, str) or not isinstance(instrument, str):
                return False
            self._trades[trade_id] = instrument
        return True  # a reduction (tradeReduced) leaves the trade open

    # --- the order desk's side ---

    def expect(self, last_transaction_id: str) -> None:
        """The desk's own request moved the account to ``last_transaction_id``: no answer before then."""
        tx_id = _tx_id(last_transaction_id)
        if tx_id is not None:
            with self._cond:
                self._expected = max(self._expected, tx_id)

    def usable(self) -> bool:
        """Whether the view can answer now (synced, fresh, caught up with the desk's requests)."""
        with self._cond:
            return self._usable()

    def _usable(self) -> bool:
        return (
            self._last_id is not None
            and self._last_id >= self._expected
            and self.clock.monotonic() - self._heard_s <= self.stale_s
        )

    def open_trade_on(self, instrument: str, wait_s: float) -> ViewAnswer | None:
        """The trade open on ``instrument`` (``ViewAnswer("")``: none), or None when the view
        cannot vouch for its answer within ``wait_s`` (the caller reads the broker instead)."""
        deadline = self.clock.monotonic() + wait_s
        with self._cond:
            while not self._usable():
                left = deadline - self.clock.monotonic()
                if left <= 0 or self._last_id is None:
                    return None
                self._cond.wait(left)
            held = sorted(t for t, name in self._trades.items() if name == instrument)
            return ViewAnswer(held[0] if held else "")


def follow_transactions(
    view: TradeView,
    broker: Callable[[], Broker | None],
    stop: threading.Event,
    *,
    snapshot: Callable[[], tuple[dict[str, str], str]],
    on_change: Callable[[str, str], None],
) -> None:
    """The stream worker: connect, snapshot after the first line, apply, and start over on any
    break, end or gap (with backoff). ``broker()`` gives the client whose ``transaction_stream``
    is followed (None until it exists); ``snapshot()`` reads (open trades id -> instrument, the
    last transaction id read before them) or raises ``BrokerError``; ``on_change(state, detail)``
    hears each change of state."""
    backoff = Backoff(0.5, 15.0)
    while not stop.is_set():
        client = broker()
        if client is None:  # the desk has not opened its broker yet
            stop.wait(0.05)
            continue
        why = "stream ended"
        try:
            for item in client.transaction_stream():
                if stop.is_set():
                    return
                if view.state == "down":
                    # Connected (a line arrived): the snapshot now misses nothing the stream will not replay.
                    trades, last_id = snapshot()
                    view.snapshot(trades, last_id)
                    on_change(view.state, f"snapshot at transaction {last_id}: {len(trades)} open trades")
                    backoff.reset()
                gap = view.heard(item)
                if gap:
                    on_change("down", gap)
        except BrokerError as e:
            why = f"{type(e).__name__}: {e}"
        view.drop(why)
        on_change("down", why)
        stop.wait(backoff.next_delay())
