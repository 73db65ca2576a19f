"""The trading invariants of issue 14, judged over a whole run from the broker's own records.

The host's promise is checked against what the broker saw, not what the host says it did: the
emulator's request log (every order POST with its wall-clock time and client id, see
docs/emulator.md "The request log") and its transaction history (every transaction with the wall
time it was recorded at). The host's journal gives only the system state history
(``state.changed`` rows, a new run's ``host.started``) and the execution role's own accounts
(``exec.sending`` and its outcome rows). Both clocks are ``time.time_ns()`` on one machine.

The invariants (``check_run`` asserts all of them at once, each violation named):

(a) **No order POST while the system was not TRADING**, beyond the permit's propagation. A role
    opens a trade only while it holds an unexpired TRADING permit (``actors.runtime.actor.Permit``):
    - A recorded change (a ``state.changed`` row leaving TRADING) reaches the order desk after the
      supervisor has journaled it and published ``sys.state`` (``supervisor.tree.Supervisor.settle``: the
      row, whose time is taken before the SQLite insert, then ``StatePublisher.state`` at once),
      one bus hop (~100 µs) and the execution actor's mailbox; the order desk checks the permit
      in ``_submit`` and then still reads the open trades (one REST GET) and journals
      ``exec.sending`` before the POST leaves. Measured on this machine: the POST follows
      ``exec.sending`` by 1-3 ms and the whole window is a few ms. ``PERMIT_PROPAGATION_S`` (1 s)
      is that window on a loaded 2-core machine with two orders of magnitude to spare, and a
      third of the permit's life: a POST later than that after TRADING ended was sent on a
      permit that the supervisor had revoked out loud.
    - A change by silence (the root killed: no row is written, no ``sys.state`` comes any more)
      ends the permit only when it expires: ``supervisor.permit_ttl_s`` after the last
      ``sys.state`` (the roles count it from receipt on their monotonic clock, the supervisor
      from publication on its wall clock, whichever comes first). Tests give the kill time as an
      outage; a POST up to ``permit_ttl_s`` after it is allowed, nothing later.
(b) **No client id POSTed twice**, and no order POST without one: an order whose answer was lost
    is resolved by its client id, never sent again.
(c) **No open trade without SL and TP for longer than** ``reconciler.repair_deadline_s`` **+ one
    reconciler poll**, from the broker's transactions alone: a trade is naked from its fill (or
    the cancel of its SL or TP) until both are set again (or it closes). Transactions of one
    batch share a time, so the SL/TP created on fill leave no naked span.
(d) **Every** ``exec.sending`` **has an outcome row** by the end: ``exec.filled``,
    ``exec.cancelled``, ``exec.rejected``, ``exec.resolved`` or a final ``exec.ambiguous`` (the
    same set ``actors.roles.execution.desk`` reads back after a restart).
(e) **The state returns to TRADING by itself after a transient fault, and only after**
    ``ctl resume`` **after a latched one**: ``back_by_itself`` and ``back_only_after_resume``
    wait for it and assert it, and ``fault_timing`` measures the time to NO_TRADE and back for
    the README's table.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.helpers import Host, JournalRow, poll_until

__all__ = [
    "OUTCOME_KINDS",
    "PERMIT_PROPAGATION_S",
    "BrokerRecord",
    "Limits",
    "NakedSpan",
    "StateEvent",
    "Timing",
    "back_by_itself",
    "back_only_after_resume",
    "check_run",
    "client_id_violations",
    "fault_timing",
    "limits_of",
    "naked_spans",
    "orders_while_not_trading",
    "record_broker",
    "sendings_without_outcome",
    "settle",
    "state_events",
    "wait_no_trade",
    "wait_trading",
]

NS = 1_000_000_000
TRADING = "TRADING"
# See the module docstring (a): the in-flight window of one entry after a revocation out loud.
PERMIT_PROPAGATION_S = 1.0
OUTCOME_KINDS = ("exec.filled", "exec.cancelled", "exec.rejected", "exec.resolved")
# The orders that protect a trade (v20 transaction types), by the slot they fill.
DEPENDENT_TYPES = frozenset(
    {"STOP_LOSS_ORDER", "GUARANTEED_STOP_LOSS_ORDER", "TRAILING_STOP_LOSS_ORDER", "TAKE_PROFIT_ORDER"}
)


# --- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """The host's own settings the invariants are judged by."""

    permit_ttl_s: float
    repair_deadline_s: float
    poll_interval_s: float
    propagation_s: float = PERMIT_PROPAGATION_S

    @property
    def naked_limit_s(self) -> float:
        """How long a trade may stay without SL and TP: the repair deadline plus one poll."""
        return self.repair_deadline_s + self.poll_interval_s


def limits_of(host: Host) -> Limits:
    """The limits from the host's configuration as ``tradehost run`` reads it (its overrides
    included); ``reconciler.repair_deadline_s`` is 30 s (the issue's default) where this version
    of the host has no such key yet."""
    cfg = host.config()
    reconciler = cfg.roles["reconciler"]
    return Limits(
        permit_ttl_s=cfg.supervisor.permit_ttl_s,
        repair_deadline_s=float(getattr(reconciler, "repair_deadline_s", 30.0)),
        poll_interval_s=reconciler.poll_interval_s,
    )


@dataclass(frozen=True)
class BrokerRecord:
    """What one emulator account saw: its request log and transaction history, read at ``at_ns``."""

    requests: list[dict[str, Any]]
    transactions: list[dict[str, Any]]
    at_ns: int


def record_broker(admin: Any) -> BrokerRecord:
    """Read an emulator's records now (``admin`` is an ``AdminClient``)."""
    requests = admin.requests()
    transactions = admin.transactions()
    return BrokerRecord(requests=requests, transactions=transactions, at_ns=time.time_ns())


def order_posts(records: Iterable[BrokerRecord]) -> list[dict[str, Any]]:
    """Every ``POST /v3/accounts/{id}/orders`` of the records, oldest first."""
    posts = [
        r
        for record in records
        for r in record.requests
        if r["method"] == "POST" and r["path"].startswith("/v3/accounts/") and r["path"].endswith("/orders")
    ]
    return sorted(posts, key=lambda r: r["ts_ns"])


# --- (a) no order while not trading -------------------------------------------------------------


@dataclass(frozen=True)
class StateEvent:
    """The system entered ``state`` at ``ts_ns``; ``how``: ``change`` (a ``state.changed`` row),
    ``start`` (a new run's ``host.started``) or ``silence`` (an outage the test caused)."""

    ts_ns: int
    state: str
    how: str
    reasons: tuple[str, ...] = ()


def state_events(rows: Sequence[JournalRow], outages: Sequence[int] = ()) -> list[StateEvent]:
    """The state history of every run in the journal; ``outages`` are wall times (ns) at which the
    test killed the root (the supervisor fell silent: state ``DOWN``)."""
    events = [StateEvent(ts, "DOWN", "silence") for ts in outages]
    for row in rows:
        if row.kind == "state.changed":
            events.append(StateEvent(row.ts_ns, str(row.body["to"]), "change", tuple(row.body.get("reasons", ()))))
        elif row.kind == "host.started":
            events.append(StateEvent(row.ts_ns, "STARTING", "start"))
    order = {"silence": 0, "start": 1, "change": 2}
    return sorted(events, key=lambda e: (e.ts_ns, order[e.how]))


def orders_while_not_trading(
    posts: Sequence[dict[str, Any]], events: Sequence[StateEvent], limits: Limits
) -> list[str]:
    """Violations of (a): order POSTs that no TRADING permit can explain."""
    out = []
    for post in posts:
        t = post["ts_ns"]
        before = [e for e in events if e.ts_ns <= t]
        if before and before[-1].state == TRADING:
            continue
        # The last TRADING span before the POST, and how it ended.
        ended: StateEvent | None = None
        for i, e in enumerate(before):
            if e.state == TRADING and i + 1 < len(before):
                ended = before[i + 1]
        state = before[-1].state if before else "no host yet"
        if ended is None:
            out.append(f"order POST {post.get('client_id')} at {t}: the system was never TRADING before it ({state})")
            continue
        tolerance_s = limits.permit_ttl_s if ended.how == "silence" else limits.propagation_s
        late_s = (t - ended.ts_ns) / NS
        if late_s > tolerance_s:
            out.append(
                f"order POST {post.get('client_id')} ({post.get('instrument')}) {late_s:.3f}s after TRADING ended "
                f"({ended.how}: -> {ended.state} {list(ended.reasons)}); allowed {tolerance_s:g}s; "
                f"state at the POST: {state}"
            )
    return out


# --- (b) client ids -----------------------------------------------------------------------------


def client_id_violations(posts: Sequence[dict[str, Any]]) -> list[str]:
    """Violations of (b): a client id POSTed more than once, an order POST without one."""
    counts = Counter(p.get("client_id") for p in posts)
    out = [f"client id {cid} POSTed {n} times" for cid, n in counts.items() if cid is not None and n > 1]
    if counts.get(None):
        out.append(f"{counts[None]} order POST(s) without a client id")
    return out


# --- (c) naked trades ---------------------------------------------------------------------------


@dataclass
class NakedSpan:
    """A time a trade was open at the broker without an SL or a TP (``end_ns`` None: still)."""

    trade_id: str
    instrument: str
    start_ns: int
    end_ns: int | None
    missing: str

    def seconds(self, at_ns: int) -> float:
        """Its length, up to ``at_ns`` if it has not ended."""
        return ((self.end_ns if self.end_ns is not None else at_ns) - self.start_ns) / NS


@dataclass
class _Trade:
    instrument: str
    stop: str | None = None
    profit: str | None = None
    naked_since: int | None = None
    missing: set[str] = field(default_factory=set)  # what was missing during the current span

    def update(self, trade_id: str, wall: int, spans: list[NakedSpan]) -> None:
        now_missing = {name for name, order in (("SL", self.stop), ("TP", self.profit)) if order is None}
        if now_missing and self.naked_since is None:
            self.naked_since = wall
        # What was missing for some time; within the batch the span began in, only the latest.
        self.missing = now_missing if self.naked_since == wall else self.missing | now_missing
        if not now_missing and self.naked_since is not None:
            self.end(trade_id, wall, spans)

    def end(self, trade_id: str, wall: int | None, spans: list[NakedSpan]) -> None:
        if self.naked_since is not None:
            missing = "+".join(sorted(self.missing))
            spans.append(NakedSpan(trade_id, self.instrument, self.naked_since, wall, missing))
        self.naked_since, self.missing = None, set()


def naked_spans(transactions: Sequence[dict[str, Any]]) -> list[NakedSpan]:
    """Every span of (c) in one account's transaction history (``GET /admin/transactions``):
    trades open without SL or TP, longer than zero (the SL/TP of a fill come in its batch, a
    replacement cancels and creates in one batch)."""
    trades: dict[str, _Trade] = {}
    dependents: dict[str, tuple[str, str]] = {}  # order id -> (trade id, "stop" | "profit")
    spans: list[NakedSpan] = []
    for tx in sorted(transactions, key=lambda t: int(t["id"])):
        wall, kind = int(tx["wall_ns"]), tx["type"]
        if kind == "ORDER_FILL":
            for closed in tx.get("tradesClosed") or ():
                trade = trades.pop(closed["tradeID"], None)
                if trade is not None:
                    trade.end(closed["tradeID"], wall, spans)
            opened = tx.get("tradeOpened")
            if opened:
                trade = trades[opened["tradeID"]] = _Trade(instrument=tx.get("instrument", ""))
                trade.update(opened["tradeID"], wall, spans)
        elif kind in DEPENDENT_TYPES:
            trade_id = tx.get("tradeID", "")
            if trade_id in trades:
                slot = "profit" if kind == "TAKE_PROFIT_ORDER" else "stop"
                dependents[tx["id"]] = (trade_id, slot)
                setattr(trades[trade_id], slot, tx["id"])
                trades[trade_id].update(trade_id, wall, spans)
        elif kind == "ORDER_CANCEL":
            trade_id, slot = dependents.get(tx.get("orderID", ""), ("", ""))
            trade = trades.get(trade_id)
            if trade is not None and getattr(trade, slot) == tx["orderID"]:
                setattr(trade, slot, None)
                trade.update(trade_id, wall, spans)
    for trade_id, trade in trades.items():
        trade.end(trade_id, None, spans)
    return [s for s in spans if s.end_ns is None or s.end_ns > s.start_ns]


def naked_violations(record: BrokerRecord, limits: Limits) -> list[str]:
    """Violations of (c) in one account."""
    out = []
    for span in naked_spans(record.transactions):
        seconds = span.seconds(record.at_ns)
        if seconds > limits.naked_limit_s:
            still = " and still is" if span.end_ns is None else ""
            out.append(
                f"trade {span.trade_id} ({span.instrument}) was open without {span.missing} for {seconds:.1f}s{still}; "
                f"allowed {limits.repair_deadline_s:g}s + one {limits.poll_interval_s:g}s poll"
            )
    return out


# --- (d) outcomes -------------------------------------------------------------------------------


def sendings_without_outcome(rows: Sequence[JournalRow]) -> list[str]:
    """Violations of (d): intent ids journaled as sent with no outcome row."""
    done = {r.body.get("intent_id") for r in rows if r.kind in OUTCOME_KINDS}
    done |= {r.body.get("intent_id") for r in rows if r.kind == "exec.ambiguous" and r.body.get("final")}
    sent = [r.body.get("intent_id") for r in rows if r.kind == "exec.sending"]
    return [f"exec.sending {intent} has no outcome row" for intent in sent if intent not in done]


# --- the whole run ------------------------------------------------------------------------------


def settle(host: Host, timeout_s: float) -> list[JournalRow]:
    """End a run's trading for the checks: pause entries (``ctl pause``), then wait until every
    order journaled as sent has its outcome; returns the journal then."""
    res = host.ctl("pause")
    assert res.returncode == 0, res.stderr
    poll_until(
        lambda: not sendings_without_outcome(host.journal_rows()), timeout_s=timeout_s, what="every order's outcome"
    )
    return host.journal_rows()


def check_run(
    rows: Sequence[JournalRow],
    records: Sequence[BrokerRecord],
    limits: Limits,
    *,
    outages: Sequence[int] = (),
) -> None:
    """Assert (a)-(d) over a run: ``rows`` the whole journal, ``records`` one per broker account
    (a fresh embedded emulator after a restart is another account), ``outages`` the wall times
    the test killed the root at."""
    posts = order_posts(records)
    problems = {
        "(a) order POSTs while not TRADING": orders_while_not_trading(posts, state_events(rows, outages), limits),
        "(b) client ids": client_id_violations(posts),
        "(c) trades without SL and TP": [v for record in records for v in naked_violations(record, limits)],
        "(d) exec.sending without an outcome": sendings_without_outcome(rows),
    }
    found = {name: items for name, items in problems.items() if items}
    assert not found, "invariants violated:\n" + "\n".join(
        f"  {name}:\n" + "\n".join(f"    - {item}" for item in items) for name, items in found.items()
    )


# --- (e) back to trading, and the timings -------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """How the state answered a fault at ``fault_ns``: seconds to NO_TRADE (None: it never went
    there) and back to TRADING (from the fault; for a latched fault, from ``ctl resume``)."""

    to_no_trade_s: float | None
    back_s: float | None
    back_by: str
    reasons: tuple[str, ...]

    def cells(self) -> tuple[str, str]:
        """The two table cells."""
        to = "—" if self.to_no_trade_s is None else f"{self.to_no_trade_s:.2f} s"
        if self.back_s is None:
            back = "—"
        elif self.back_by == "ctl resume":
            back = f"{self.back_s:.2f} s after `ctl resume`"
        else:
            back = f"{self.back_s:.2f} s"
        return to, back


def fault_timing(rows: Sequence[JournalRow], fault_ns: int) -> Timing:
    """Time to NO_TRADE and back to TRADING after ``fault_ns``, from the ``state.changed`` rows."""
    changes = [r for r in rows if r.kind == "state.changed" and r.ts_ns >= fault_ns]
    no_trade = next((r for r in changes if r.body["to"] == "NO_TRADE"), None)
    resumes = [r for r in rows if r.kind == "operator.resume" and r.ts_ns >= fault_ns and r.body.get("cleared")]
    after_ns = no_trade.ts_ns if no_trade is not None else fault_ns
    back = next((r for r in changes if r.body["to"] == TRADING and r.ts_ns >= after_ns), None)
    if back is None:
        return Timing(None if no_trade is None else (no_trade.ts_ns - fault_ns) / NS, None, "", ())
    resume = next((r for r in resumes if r.ts_ns <= back.ts_ns), None)
    base_ns, by = (resume.ts_ns, "ctl resume") if resume is not None else (fault_ns, "itself")
    reasons = tuple(no_trade.body.get("reasons", ())) if no_trade is not None else ()
    return Timing(
        None if no_trade is None else (no_trade.ts_ns - fault_ns) / NS, (back.ts_ns - base_ns) / NS, by, reasons
    )


def _reason_codes(status: dict[str, Any]) -> list[str]:
    return [r["code"] for r in status["reasons"]]


def wait_no_trade(host: Host, code_prefix: str, timeout_s: float) -> dict[str, Any]:
    """Wait for NO_TRADE with a reason whose code starts with ``code_prefix``; returns the status."""

    def check() -> dict[str, Any]:
        status = host.status()
        if status["state"] == "NO_TRADE" and any(c.startswith(code_prefix) for c in _reason_codes(status)):
            return status
        raise AssertionError(f"state {status['state']}, reasons {_reason_codes(status)}")  # the last value seen

    result: dict[str, Any] = poll_until(check, timeout_s=timeout_s, what=f"NO_TRADE with a {code_prefix} reason")
    return result


def wait_trading(host: Host, timeout_s: float) -> dict[str, Any]:
    """Wait for TRADING; a timeout names the state and reasons last seen."""

    def check() -> dict[str, Any]:
        status = host.status()
        if status["state"] == TRADING:
            return status
        raise AssertionError(f"state {status['state']}, reasons {_reason_codes(status)}")  # the last value seen

    result: dict[str, Any] = poll_until(check, timeout_s=timeout_s, what="TRADING")
    return result


def back_by_itself(host: Host, fault_ns: int, timeout_s: float) -> None:
    """(e) for a transient fault: TRADING again without any operator action."""
    wait_trading(host, timeout_s)
    resumed = [r for r in host.journal_rows("operator.resume") if r.ts_ns >= fault_ns]
    assert not resumed, "back to TRADING was expected without ctl resume"


def back_only_after_resume(host: Host, code_prefix: str, *, hold_s: float, timeout_s: float) -> None:
    """(e) for a latched fault: NO_TRADE with the reason holds for ``hold_s`` (several cool-downs:
    it does not clear by itself), then ``ctl resume`` brings TRADING back."""
    deadline = time.monotonic() + hold_s
    while time.monotonic() < deadline:  # a continuous check of a state that must not change
        status = host.status()
        assert status["state"] != TRADING, f"back to TRADING without ctl resume: {status['reasons']}"
        assert any(c.startswith(code_prefix) for c in _reason_codes(status)), status["reasons"]
        time.sleep(0.2)
    res = host.ctl("resume")
    assert res.returncode == 0, res.stderr
    wait_trading(host, timeout_s)
