"""The order desk's protection: every open trade keeps a stop loss and a take profit at the broker.

A trade found without SL or TP (by the reconciler, or by the exit check) is repaired (the entry
rule's stops, measured from the live quote, the latest candle, or the entry price) or closed, as
asked; a close that fails latches ``unprotected:<trade id>``. At shutdown, pending entries are
cancelled and every open trade is checked, repaired where needed and verified from the broker's
own answer, retried until the supervisor's deadline (``shutdown.protection``).
"""

from __future__ import annotations

import threading

from actors.broker import Broker
from actors.core.backoff import Backoff
from actors.core.bars import BarCandle, average_true_range, validate_history
from actors.core.domain import Candle, InstrumentId, TradeId, TradeState
from actors.core.errors import BrokerError, BrokerRejectedError
from actors.core.exits import protective_stops
from actors.roles.execution.deskbase import DeskBase
from actors.roles.execution.jobs import Protect, Protection, ToSupervisor
from actors.runtime.journalrows import (
    ExecErrorRow,
    ExecProtectedRow,
    ExecProtectFailedRow,
    ExecRepairedRow,
    ShutdownProtectionRow,
)
from actors.runtime.messages import CauseHealthy, ProtectionReport, TradeProtection

STOP_ORDER_TYPES = frozenset({"STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP_LOSS", "GUARANTEED_STOP_LOSS"})


class ProtectionDesk(DeskBase):
    """The order desk's protection (see the module docstring)."""

    def _protect_requested(self, broker: Broker, job: Protect) -> None:
        """The reconciler's request for an unprotected trade: repair or close; a close that fails
        latches ``unprotected:<trade id>`` with what the operator must do."""
        code = f"unprotected:{job.trade_id}"
        try:
            outcome = self._protect(broker, job.trade_id, job.action, why="reconciler")
        except BrokerError as e:
            error = f"{type(e).__name__}: {e}"
            self.journal(
                ExecProtectFailedRow(trade_id=job.trade_id, instrument=job.instrument, action=job.action, error=error)
            )
            if job.action == "close":
                detail = (
                    f"trade {job.trade_id} {job.instrument} has no SL or TP at the broker and could not be closed "
                    f"({error}): close it at the broker by hand (or `tradehost ctl flatten --yes`), then "
                    "`tradehost ctl resume`"
                )
                self._request_no_trade(code, detail, latch=True)
            return
        self.journal(
            ExecProtectedRow(trade_id=job.trade_id, instrument=job.instrument, action=job.action, outcome=outcome)
        )
        self.permit.release(code)
        self.post(ToSupervisor(CauseHealthy(code=code)))

    def _protect(self, broker: Broker, trade_id: str, action: str, *, why: str) -> str:
        """Give an open trade that lacks SL or TP the missing orders ("repair") or close it.

        Returns ``protected`` (it had both), ``repaired`` (the broker's answer shows both now),
        ``closed`` or ``gone`` (no longer open).

        Raises:
            BrokerError: a read, the repair or the close failed (the caller retries or escalates).
        """
        trade = broker.trade(trade_id)
        if trade.state != "OPEN":
            return "gone"
        if trade.stop_loss_price is not None and trade.take_profit_price is not None:
            return "protected"
        if action == "close":
            self._close(broker, trade, reason=f"unprotected ({why})")
            return "closed"
        self._repair(broker, trade, why=why)
        after = broker.trade(trade_id)  # the broker's word, not the request's
        if after.state != "OPEN":
            return "gone"
        if after.stop_loss_price is None or after.take_profit_price is None:
            raise BrokerRejectedError(f"trade {trade_id}: the repair was answered but the trade still lacks SL or TP")
        return "repaired"

    def _repair(self, broker: Broker, trade: TradeState, *, why: str) -> None:
        # The stop of a repair is the entry rule's: sl_atr_mult ATRs of the instrument's validated
        # bars (read from the broker when this process has none yet, after a restart), measured from
        # the current price; 0.5 % of the price only when no ATR can be had at all.
        meta = self._instrument(broker, trade.instrument)
        atr, bid, ask, basis = self._repair_inputs(broker, trade)
        sl, tp = protective_stops(
            trade.direction,
            bid=bid,
            ask=ask,
            atr=atr,
            instrument=meta,
            sl_atr_mult=self.risk.sl_atr_mult,
            reward_ratio=self.risk.reward_ratio,
        )
        sent_sl = sl if trade.stop_loss_price is None else None
        sent_tp = tp if trade.take_profit_price is None else None
        broker.set_trade_orders(trade.id, stop_loss=sent_sl, take_profit=sent_tp)
        row = ExecRepairedRow(
            trade_id=trade.id,
            instrument=trade.instrument,
            reason=f"repaired ({why})",
            # Only what was sent: a TP the trade already had is not journaled as set.
            stop_loss=None if sent_sl is None else format(sent_sl, "f"),
            take_profit=None if sent_tp is None else format(sent_tp, "f"),
            atr=atr,
            price_basis=basis,
        )
        memo = self.memos.get(trade.id)
        self.journal(row, corr=memo.corr if memo else None)

    def _repair_inputs(self, broker: Broker, trade: TradeState) -> tuple[float | None, float, float, str]:
        """The ATR and the bid/ask a repair measures from, and where the price came from."""
        name = trade.instrument
        atr = self.market.atr(name, self.risk.atr_period)
        quote = self.market.prices.get(name)
        latest: Candle | None = None
        if atr is None or quote is None:
            try:
                # Enough bars before the ATR's own for the spike check, as every loader reads them.
                count = self.risk.atr_period + self.bar_checks.atr_bars + 2
                candles = broker.candles(name, self.granularity, count=count, price="BA")
            except BrokerError as e:
                self.journal(ExecErrorRow(job="Repair", trade_id=trade.id, error=f"candles: {e}"))
                candles = []
            complete = [c for c in candles if c.complete and c.bid is not None and c.ask is not None]
            if atr is None:  # computed here: the market view belongs to the actor's thread
                bars, _rejected = validate_history(
                    [BarCandle.from_candle(c) for c in complete],
                    granularity=self.granularity,
                    pip_location=self._pip(broker, name),
                    config=self.bar_checks,
                )
                value = average_true_range(bars, period=self.risk.atr_period)
                atr = None if value is None else float(value)
            latest = candles[-1] if candles and candles[-1].bid is not None and candles[-1].ask is not None else None
        if quote is not None:
            return atr, float(quote.bid), float(quote.ask), "live quote"
        if latest is not None and latest.bid is not None and latest.ask is not None:
            return atr, float(latest.bid.c), float(latest.ask.c), "latest candle"
        return atr, float(trade.price), float(trade.price), "entry price (no price known)"

    def _shutdown_protection(self, broker: Broker, job: Protection, stop: threading.Event) -> ProtectionReport:
        """Cancel pending entries, then check every open trade's SL and TP at the broker, repairing
        what lacks them, retrying with backoff until ``job.until`` (monotonic): complete only when
        the open trades were read and every one is verified protected."""
        backoff = Backoff(0.2, 2.0)
        cancelled: list[str] = []
        checked: dict[str, TradeProtection] = {}
        pending: int | None = None
        attempts = 0
        error = "not checked"
        read = False
        while True:
            attempts += 1
            try:
                pending = self._cancel_entries(broker, cancelled)
                trades = broker.open_trades()
                read, error = True, ""
                checked = {t.id: checked[t.id] for t in trades if t.id in checked and checked[t.id].verified}
                for trade in trades:
                    if trade.id not in checked:
                        checked[trade.id] = self._check_one(broker, trade)
            except BrokerError as e:
                error = f"{type(e).__name__}: {e}"
            complete = read and not error and all(t.verified for t in checked.values())
            left_s = job.until - self.clock.monotonic()
            if complete or left_s <= 0 or stop.wait(min(backoff.next_delay(), left_s)):
                break
        summary = self._protection_summary(checked, cancelled, complete=complete, read=read, error=error)
        report = ProtectionReport(
            complete=complete,
            trades=tuple(checked.values()),
            cancelled_orders=tuple(cancelled),
            pending_orders=pending,
            attempts=attempts,
            summary=summary,
        )
        self.journal(
            ShutdownProtectionRow(
                complete=complete,
                trades={t.trade_id: t.outcome for t in checked.values()},
                unverified=[t.trade_id for t in report.unverified],
                cancelled_orders=cancelled,
                pending_orders=pending,
                attempts=attempts,
                error=error,
                summary=summary,
            )
        )
        return report

    def _cancel_entries(self, broker: Broker, cancelled: list[str]) -> int:
        entries = [o for o in broker.pending_orders() if o.type not in STOP_ORDER_TYPES and not o.trade_id]
        for order in entries:
            if order.id not in cancelled:
                broker.cancel_order(order.id)
                cancelled.append(order.id)
        return len([o for o in entries if o.id not in cancelled])

    def _check_one(self, broker: Broker, trade: TradeState) -> TradeProtection:
        try:
            outcome = self._protect(broker, trade.id, "repair", why="shutdown check")
            after = broker.trade(trade.id) if outcome == "repaired" else trade
        except BrokerError as e:
            outcome, after = f"failed: {type(e).__name__}: {e}", trade
        verified = outcome in ("protected", "repaired", "closed", "gone")
        return TradeProtection(
            trade_id=TradeId(trade.id),
            instrument=InstrumentId(trade.instrument),
            units=format(after.current_units, "f"),
            stop_loss=None if after.stop_loss_price is None else format(after.stop_loss_price, "f"),
            take_profit=None if after.take_profit_price is None else format(after.take_profit_price, "f"),
            outcome=outcome,
            verified=verified,
        )

    @staticmethod
    def _protection_summary(
        checked: dict[str, TradeProtection], cancelled: list[str], *, complete: bool, read: bool, error: str
    ) -> str:
        outcomes = [t.outcome for t in checked.values()]
        counts = (
            f"{len(outcomes)} open trades, {outcomes.count('protected')} already protected, "
            f"{outcomes.count('repaired')} repaired, {len(cancelled)} pending entries cancelled"
        )
        if complete:
            return counts
        if not read:
            return f"NOT VERIFIED: the open trades could not be read ({error}); {counts}"
        naked = ", ".join(
            f"{t.trade_id} {t.instrument} (SL {t.stop_loss or 'NONE'}, TP {t.take_profit or 'NONE'}: {t.outcome})"
            for t in checked.values()
            if not t.verified
        )
        return f"NOT VERIFIED: {naked or error}; {counts}"
