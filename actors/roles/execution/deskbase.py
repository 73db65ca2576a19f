"""The order desk's state and the primitives every part of it shares.

What the desk was given (configuration, market view, journal, broker factory, clock ...), what it
keeps (the trade memos, instrument metadata, the trades it saw open), and the few steps the
entries, the exits and the protection all take: an instrument's metadata, a report or an alert
handed to the actor, a no-trade request to the supervisor, and a trade closed at the broker,
journaled and reported. ``actors.roles.execution.desk.OrderDesk`` puts the parts together.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from actors.broker import Broker
from actors.broker.connect import BrokerFactory
from actors.core.clock import Clock
from actors.core.config import BarValidationConfig
from actors.core.domain import Instrument, InstrumentId, TradeState
from actors.core.errors import BrokerError
from actors.core.truth import realized_pl
from actors.roles.execution.jobs import Handback, Job, Publish, ToSupervisor
from actors.roles.execution.memos import load_memos, save_memos
from actors.roles.execution.tradeview import TradeView
from actors.runtime.journal import Journal
from actors.runtime.journalrows import ExecClosedRow, WriteRecord
from actors.runtime.marketview import MarketView
from actors.runtime.messages import TOPIC_ALERT, TOPIC_EXEC_REPORT, AlertRaised, ExecutionReport, NoTradeRequested

if TYPE_CHECKING:
    from actors.core.config import ExecutionConfig, RiskConfig
    from actors.runtime.actor import Permit


class DeskBase:
    """The order desk's state and shared steps (constructed as ``OrderDesk``, which documents the
    arguments)."""

    def __init__(
        self,
        *,
        cfg: ExecutionConfig,
        risk: RiskConfig,
        granularity: str,
        market: MarketView,
        state_path: Path,
        journal: WriteRecord,
        journal_db: Journal,
        post: Callable[[Handback], None],
        permit: Permit,
        open_broker: BrokerFactory,
        host_id: str,
        clock: Clock,
        bar_checks: BarValidationConfig | None = None,
    ) -> None:
        self.cfg = cfg
        self.risk = risk
        self.granularity = granularity
        self.market = market
        self.state_path = state_path
        self.journal = journal
        self.journal_db = journal_db
        self.post = post
        self.permit = permit
        self.open_broker = open_broker
        self.host_id = host_id
        self.clock = clock
        self.bar_checks = bar_checks or BarValidationConfig()
        self.jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self.broker: Broker | None = None
        self.memos = load_memos(state_path)  # an unreadable file fails the role: a human looks
        self.meta: dict[str, Instrument] = {}
        self.known_open: dict[str, TradeState] = {}
        self.report_failures: dict[str, int] = {}  # trade id -> failed look-ups of its close
        self.last_bar_ts = 0
        self.trade_view = TradeView(clock, cfg.trade_view_stale_s)  # kept by the actor's transactions worker

    def _instrument(self, broker: Broker, name: str) -> Instrument:
        meta = self.meta.get(name)
        if meta is None:
            meta = self.meta[name] = broker.instruments([name])[0]
        return meta

    def _report(self, report: ExecutionReport, corr: str | None) -> None:
        self.post(Publish(TOPIC_EXEC_REPORT, report, corr))

    def _alert(self, severity: str, code: str, detail: str) -> None:
        self.post(Publish(TOPIC_ALERT, AlertRaised(severity=severity, code=code, detail=detail), None))

    def allows_entry(self) -> bool:
        """The role's trading permit, as it stands now."""
        return self.permit.allows_entry()

    def _request_no_trade(self, code: str, detail: str, *, latch: bool = False) -> None:
        # The supervisor raises the reason and alerts it (one path: never an alert alone, and the
        # mail tells the state the reason led to). Until a sys.state carries it, the permit holds:
        # the next queued order must not leave on a TRADING state the supervisor sent before.
        self.permit.hold(code)
        self.post(ToSupervisor(NoTradeRequested(code=code, detail=detail, latch=latch)))

    def _pip(self, broker: Broker, name: str) -> int:
        return self._instrument(broker, name).pip_location

    def _close(self, broker: Broker, trade: TradeState, *, reason: str) -> None:
        result = broker.close_trade(trade.id)
        self.trade_view.expect(result.last_transaction_id)
        # The trade's P&L, not only this close's: partial reductions before it count (the same
        # figure the reconciler and a close at the broker report: ``realized_pl``).
        try:
            realized = realized_pl(broker.trade(trade.id))
        except BrokerError:  # the close's transaction on top of what the trade had realized before it
            realized = trade.realized_pl + result.realized_pl
        self.known_open.pop(trade.id, None)
        self._book_closed(trade.id, trade.instrument, reason=reason, realized=realized, price=result.price)

    def _book_closed(
        self, trade_id: str, instrument: str, *, reason: str, realized: Decimal, price: Decimal | None = None
    ) -> None:
        """A closed trade's memo forgotten, its ``exec.closed`` row and its CLOSED report (the
        desk's own close gives its fill ``price``; a close at the broker has none)."""
        memo = self.memos.pop(trade_id, None)
        save_memos(self.state_path, self.memos)
        self.journal(
            ExecClosedRow(
                trade_id=trade_id,
                instrument=instrument,
                reason=reason,
                price=None if price is None else format(price, "f"),
                realized_pl=format(realized, "f"),
                model_version=memo.model_version if memo else "",
            ),
            corr=memo.corr if memo else None,
        )
        self._report(
            ExecutionReport(
                status="CLOSED",
                instrument=InstrumentId(instrument),
                trade_id=trade_id,
                intent_id=memo.intent_id if memo else "",
                reason=reason,
                realized_pl=format(realized, "f"),
            ),
            memo.corr if memo else None,
        )
