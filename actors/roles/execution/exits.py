"""The order desk's exit pass at each close: closes reported, then every open trade's exits managed.

Trades the desk opened or saw open and the broker no longer shows were closed there (SL/TP, or
outside the host): each is reported CLOSED with its real P&L (a close that cannot be read is
tried again at the next closes, then reported without its P&L and alerted). Every open trade then
goes through the exit rules (``actors.core.exits.manage_trade``: breakeven, trailing, time exit),
whose actions become broker-side stop changes or closes; one found without SL or TP stops trading
at once and is repaired (``actors.roles.execution.protection``). A trade the desk has no memo of
(adopted, or its own whose outcome it never learned) gets one from the broker's trade
(``actors.core.exits.entry_from_broker``, journaled ``exec.managed``), so every rule applies to it.
"""

from __future__ import annotations

from decimal import Decimal

from actors.broker import Broker
from actors.core.closing import at_close
from actors.core.domain import InstrumentId, TradeState
from actors.core.entry import host_tag
from actors.core.errors import BrokerError
from actors.core.exits import CloseTrade, ExitAction, MoveStopLoss, bars_held, entry_from_broker, manage_trade
from actors.core.truth import realized_pl, trade_origin
from actors.roles.execution.jobs import Protect, Publish
from actors.roles.execution.memos import TradeMemo, save_memos
from actors.roles.execution.protection import ProtectionDesk
from actors.runtime.journalrows import ExecClosedRow, ExecErrorRow, ExecManagedRow, ExecStopMovedRow
from actors.runtime.messages import TOPIC_EXEC_REPORT, ExecutionReport, ExitsChecked

CLOSE_REPORT_TRIES = 3  # closes in a row a gone trade's close may fail to be read before it is given up


class ExitDesk(ProtectionDesk):
    """The order desk's exit pass (see the module docstring)."""

    # --- exits and protection ---

    def _exits(self, broker: Broker, bar_ts: int) -> bool:
        """One close in the order every book follows (``actors.core.closing.at_close``): trades closed
        at the broker reported, every open trade's exits managed (a time exit closes now), then the
        risk role told the close's exits are checked (``ExitsChecked``), so it decides the close's
        signals.

        Returns:
            True when every close was reported (a failed look-up is tried again next close and
            given up after ``CLOSE_REPORT_TRIES``, then reported without its P&L and alerted).
        """
        self.last_bar_ts = max(self.last_bar_ts, bar_ts)
        return at_close(_DeskClose(self, broker, bar_ts))

    def _settle_gone(self, broker: Broker) -> tuple[bool, dict[str, TradeState]]:
        """Report the trades closed at the broker; the trades open now, and whether every close is reported."""
        trades = {t.id: t for t in broker.open_trades()}
        # Trades this desk opened (memos) or saw open: gone now means closed at the broker.
        gone = {*self.memos, *self.known_open} - set(trades)
        unreported = {trade_id: self.known_open[trade_id] for trade_id in gone if trade_id in self.known_open}
        for trade_id in sorted(gone):
            if self._report_gone(broker, trade_id):
                unreported.pop(trade_id, None)
        self.known_open = {**unreported, **trades}  # a copy: closing a trade below forgets it there
        settled = not any(trade_id in self.known_open or trade_id in self.memos for trade_id in gone)
        return settled, trades

    def _unprotected_seen(self, broker: Broker, trade: TradeState) -> None:
        # Seen here first maybe (before the reconciler's next poll): no trading from this moment,
        # and one repair at once; the reconciler retries and escalates past its deadline.
        sides = (("SL", trade.stop_loss_price), ("TP", trade.take_profit_price))
        missing = " and ".join(name for name, price in sides if price is None)
        detail = f"trade {trade.id} {trade.instrument} has no {missing} at the broker (seen by the exit check)"
        self._request_no_trade(f"unprotected:{trade.id}", detail)
        self._protect_requested(broker, Protect(trade.id, "repair", trade.instrument))

    def _report_gone(self, broker: Broker, trade_id: str) -> bool:
        why = "closed at the broker (SL/TP or outside the host)"
        try:
            self._report_closed(broker, trade_id, reason=why)
        except BrokerError as e:
            tries = self.report_failures[trade_id] = self.report_failures.get(trade_id, 0) + 1
            error = f"{type(e).__name__}: {e}"
            self.journal(ExecErrorRow(job="Exits", trade_id=trade_id, error=error, tries=tries))
            if tries < CLOSE_REPORT_TRIES:
                return False
            memo = self.memos.pop(trade_id, None)
            save_memos(self.state_path, self.memos)
            instrument = str(
                getattr(self.known_open.get(trade_id), "instrument", "") or (memo.instrument if memo else "")
            )
            detail = f"trade {trade_id} ({instrument}) is gone but its close could not be read ({error}); P&L unknown"
            self.journal(
                ExecClosedRow(trade_id=trade_id, instrument=instrument, reason=why, realized_pl="unknown"),
                corr=memo.corr if memo else None,
            )
            self._report(ExecutionReport(status="CLOSED", instrument=InstrumentId(instrument), trade_id=trade_id,
                                         intent_id=memo.intent_id if memo else "", reason=why), None)  # fmt: skip
            self._alert("error", f"close_unread:{instrument}", detail)
        self.report_failures.pop(trade_id, None)
        return True

    def _exit_actions(self, broker: Broker, trade: TradeState, bar_ts: int) -> tuple[ExitAction, ...]:
        """One open trade at a close: the exit rules (breakeven, trailing, time exit)."""
        quote = self.market.prices.get(trade.instrument)
        if quote is None or not quote.tradeable:
            return ()
        memo = self.memos.get(trade.id) or self._memo_from_broker(trade)
        if memo is None:
            return ()
        return manage_trade(
            trade,
            initial_stop_loss=Decimal(memo.initial_stop_loss) if memo.initial_stop_loss else None,
            bars_held=bars_held(memo.open_bar_ts, bar_ts, self.granularity),
            bid=float(quote.bid),
            ask=float(quote.ask),
            atr=self.market.atr(trade.instrument, self.risk.atr_period),
            instrument=self._instrument(broker, trade.instrument),
            config=self.cfg,
        )

    def _move_stop(self, broker: Broker, trade: TradeState, action: MoveStopLoss) -> None:
        memo = self.memos.get(trade.id)
        broker.set_trade_orders(trade.id, stop_loss=action.price)
        self.journal(
            ExecStopMovedRow(
                trade_id=trade.id,
                instrument=trade.instrument,
                reason=action.reason,
                stop_loss=format(action.price, "f"),
                was=str(trade.stop_loss_price),
            ),
            corr=memo.corr if memo else None,
        )

    def _memo_from_broker(self, trade: TradeState) -> TradeMemo | None:
        """The memo of an open trade the desk has none of (adopted, another host's, or its own
        whose memo was lost), from the broker's trade, remembered and journaled ``exec.managed``;
        None while the trade has no SL (it is being repaired: R is taken once it has one)."""
        if trade.stop_loss_price is None:
            return None
        entry = entry_from_broker(trade, self.granularity)
        why = trade_origin(trade, own_tag=host_tag(self.host_id))
        sl = None if entry.initial_stop_loss is None else format(entry.initial_stop_loss, "f")
        memo = self.memos[trade.id] = TradeMemo(
            trade_id=trade.id,
            intent_id=(trade.client_id or "") if why == "own" else "",
            instrument=trade.instrument,
            direction=trade.direction.value,
            units=format(trade.initial_units, "f"),
            initial_stop_loss=sl or "",
            corr=None,
            model_version="",
            open_bar_ts=entry.open_bar_ts,
        )
        save_memos(self.state_path, self.memos)
        self.journal(
            ExecManagedRow(
                trade_id=trade.id,
                instrument=trade.instrument,
                why=why,
                entry_price=format(trade.price, "f"),
                initial_stop_loss=sl,
                open_ts=trade.open_ts,
                open_bar_ts=entry.open_bar_ts,
            )
        )
        return memo

    def _report_closed(self, broker: Broker, trade_id: str, *, reason: str) -> None:
        was = broker.trade(trade_id)
        self._book_closed(was.id, was.instrument, reason=reason, realized=realized_pl(was))


class _DeskClose:
    """The order desk's steps at one close, for ``actors.core.closing.at_close``: a broker error on
    one trade is journaled and that trade's exits wait for the next close; the others go on."""

    def __init__(self, desk: ExitDesk, broker: Broker, bar_ts: int) -> None:
        self.desk, self.broker, self.bar_ts = desk, broker, bar_ts
        self.trades: dict[str, TradeState] = {}

    def settle_stops(self) -> bool:
        settled, self.trades = self.desk._settle_gone(self.broker)
        return settled

    def open_trades(self) -> list[TradeState]:
        return list(self.trades.values())

    def exit_actions(self, trade: TradeState) -> tuple[ExitAction, ...]:
        if trade.stop_loss_price is None or trade.take_profit_price is None:
            self.desk._unprotected_seen(self.broker, trade)
        try:
            return self.desk._exit_actions(self.broker, trade, self.bar_ts)
        except BrokerError as e:
            self._failed(trade, e)
            return ()

    def move_stop(self, trade: TradeState, action: MoveStopLoss) -> None:
        try:
            self.desk._move_stop(self.broker, trade, action)
        except BrokerError as e:
            self._failed(trade, e)

    def close_now(self, trade: TradeState, action: CloseTrade) -> None:
        try:
            self.desk._close(self.broker, trade, reason=action.reason)
        except BrokerError as e:
            self._failed(trade, e)

    def decide_entries(self) -> None:
        # Every close of this bar reported: the risk role may decide the close's signals.
        self.desk.post(Publish(TOPIC_EXEC_REPORT, ExitsChecked(bar_ts=self.bar_ts), None))

    def _failed(self, trade: TradeState, e: BrokerError) -> None:
        # This trade's exits wait for the next close; the others go on.
        self.desk.journal(ExecErrorRow(job="Exits", trade_id=trade.id, error=f"{type(e).__name__}: {e}"))
