"""What the reconciler remembers per trade stays bounded over months of trades (issue 19's soak)."""

from __future__ import annotations

import pytest

from actors.runtime.messages import ExecutionReport, make_envelope
from tests.unit.actors.test_reconciler_protection import _Reconciler, _trade

pytestmark = pytest.mark.unit


def _closed_by_execution(rec: _Reconciler, trade_id: str) -> None:
    report = ExecutionReport(status="CLOSED", instrument="EUR_USD", trade_id=trade_id, reason="STOP_LOSS_ORDER")
    rec.actor.on_message(make_envelope(report, src="execution"))


def test_closes_reported_by_the_execution_role_are_forgotten_once_no_poll_can_need_them() -> None:
    # A trade opened and closed between two account reads (at 3600x an M15 bar lasts 0.25 s) or
    # whose close the reconciler saw first: its CLOSED report came when no "closed" difference was
    # left to use it. A year of a busy host: ~20 000 trades.
    rec = _Reconciler()
    rec.actor.closed_by_host, rec.actor.close_reasons, rec.actor.prices = set(), {}, {}
    rec.poll(_trade("1", sl="1.08000", tp="1.09000"))  # one open, protected trade

    for n in range(2, 20_002):
        _closed_by_execution(rec, str(n))
        if n % 100 == 0:
            rec.poll(_trade("1", sl="1.08000", tp="1.09000"))
    _closed_by_execution(rec, "1")  # the open one, closed: its "closed" difference still needs it

    rec.poll(_trade("1", sl="1.08000", tp="1.09000"))  # read before the close reached the broker
    assert rec.actor.closed_by_host == {"1"}
