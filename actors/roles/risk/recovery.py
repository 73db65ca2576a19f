"""What a (re)started risk role rebuilds from the journal (pure over journal rows): the intents still
in flight (``InFlight``: an instrument's newest intent counts until the journal ends its story:
cancelled, refused, expired, filled and then closed, or unresolved followed by a full
reconciliation) and the loss cool-downs, including a losing close the execution role journaled
while this role was down (``UnheardLoss``). The journal, not a state file: it also holds what
happened while the role was not running.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from actors.core.domain import Direction, Position
from actors.runtime.journal import JournalEntry

log = logging.getLogger(__name__)

# The journal rows a restarted role reads back: its own, the execution role's (each intent's
# outcome, each close) and the reconciler's full reconciliations.
RECOVERY_KINDS = (
    "risk.intent", "risk.intent_expired", "risk.cooldown", "exec.sending", "exec.filled", "exec.resolved",
    "exec.cancelled", "exec.rejected", "exec.ambiguous", "exec.closed", "recon.completed",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class UnheardLoss:
    """A losing close the execution role journaled while the risk role was not there to hear it.

    Attributes:
        trade_id: the closed trade.
        realized_pl: its P&L (home currency, decimal string).
        journaled_ns: when its ``exec.closed`` row was written (wall clock).
    """

    trade_id: str
    realized_pl: str
    journaled_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovered:
    """What a restarted risk role takes over from the journal (``recover``).

    Attributes:
        in_flight: by instrument, the intent whose journaled story has not ended.
        losses: by instrument, the market time of the last losing close a cool-down was started
            for (``risk.cooldown`` rows).
        unheard: by instrument, the newest losing close within ``risk.cooldown_after_loss_s`` that
            no ``risk.cooldown`` row answers: its market time is estimated once the role knows
            the market's time (``unheard_loss_ns``).
    """

    in_flight: dict[str, InFlight]
    losses: dict[str, int]
    unheard: dict[str, UnheardLoss]


def _loss(realized_pl: object) -> bool:
    try:
        return Decimal(str(realized_pl)) < 0
    except InvalidOperation:  # "unknown": the close could not be read
        return False


def recover(
    entries: Iterable[JournalEntry], *, now_ns: int, now_mono: float, cooldown_after_loss_s: float
) -> Recovered:
    """Rebuild the intents in flight and the loss cool-downs from the journal's rows.

    An instrument's newest ``risk.intent`` is in flight unless the journal ended its story: an
    ``exec.cancelled``, ``exec.rejected``, ``exec.resolved`` cancelled or ``risk.intent_expired``
    row, an ``exec.closed`` of the trade it filled, or a final ``exec.ambiguous`` (unresolved)
    followed by a ``recon.completed`` (a full read of the broker's trades after the order's last
    word: if it filled, the account shows it). Sent (``exec.sending``) or unresolved, it counts as
    reported (never expires, as live); never taken, its age is its row's age, so
    ``risk.intent_expiry_s`` applies as before the restart. Filled, it counts until the account
    shows its trade (as live) or ``risk.intent_expiry_s`` after the fill: the start-up check keeps
    that longer than an account read takes to show a fill, so a trade no read shows by then has
    closed (a close whose row lacks the trade id cannot hold a slot for ever).

    Args:
        entries: the journal rows of ``RECOVERY_KINDS`` (any order).
        now_ns: the wall clock now (the journal's ``ts_ns`` clock).
        now_mono: the role's monotonic clock now (``InFlight.since``).
        cooldown_after_loss_s: ``risk.cooldown_after_loss_s``.
    """
    story = _Story()
    for e in sorted(entries, key=lambda e: e.seq):
        story.read(e)
    unheard = {
        instrument: UnheardLoss(
            trade_id=str(e.body.get("trade_id")), realized_pl=str(e.body.get("realized_pl")), journaled_ns=e.ts_ns
        )
        for instrument, e in story.last_loss.items()
        if str(e.body.get("trade_id")) not in story.heard and (now_ns - e.ts_ns) / 1e9 < cooldown_after_loss_s
    }
    return Recovered(
        in_flight=_in_flight(story, now_ns=now_ns, now_mono=now_mono), losses=story.losses, unheard=unheard
    )


@dataclass(slots=True)
class _Story:
    """What the journal's rows say of each intent and each losing close, read in journal order."""

    newest: dict[str, JournalEntry] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    sent: set[str] = field(default_factory=set)
    filled: dict[str, tuple[str, int]] = field(default_factory=dict)  # intent id -> (trade id or "", fill row's ts)
    unresolved: set[str] = field(default_factory=set)
    closed: set[str] = field(default_factory=set)
    heard: set[str] = field(default_factory=set)
    losses: dict[str, int] = field(default_factory=dict)
    last_loss: dict[str, JournalEntry] = field(default_factory=dict)

    def read(self, e: JournalEntry) -> None:
        """Take the next row."""
        body, kind = e.body, e.kind
        intent_id, trade_id = str(body.get("intent_id") or ""), str(body.get("trade_id") or "")
        instrument = str(body.get("instrument") or "")
        if kind == "risk.intent":
            self.newest[instrument] = e
        elif kind == "exec.sending":
            self.sent.add(intent_id)
        elif kind in ("exec.cancelled", "exec.rejected", "risk.intent_expired") or (
            kind == "exec.resolved" and body.get("outcome") == "cancelled"
        ):
            self.ended.add(intent_id)
        elif kind in ("exec.filled", "exec.resolved"):
            self.filled[intent_id] = (trade_id, e.ts_ns)
        elif kind == "exec.ambiguous" and body.get("final"):
            self.unresolved.add(intent_id)
        elif kind == "recon.completed" and body.get("ok") is True:
            self.ended |= self.unresolved
            self.unresolved.clear()
        elif kind == "exec.closed":
            self.closed.add(trade_id)
            if _loss(body.get("realized_pl")):
                self.last_loss[instrument] = e
        elif kind == "risk.cooldown" and isinstance(body.get("since_ns"), int):
            self.heard.add(trade_id)
            self.losses[instrument] = max(self.losses.get(instrument, body["since_ns"]), body["since_ns"])


def _in_flight(story: _Story, *, now_ns: int, now_mono: float) -> dict[str, InFlight]:
    # Each instrument's newest intent whose story the journal did not end (see ``recover``).
    in_flight: dict[str, InFlight] = {}
    for instrument, e in story.newest.items():
        body = e.body
        intent_id = str(body.get("intent_id") or "")
        fill = story.filled.get(intent_id)
        if intent_id in story.ended or (fill is not None and fill[0] in story.closed):
            continue
        try:
            position = Position(
                instrument=instrument,
                direction=Direction(body["direction"]),
                units=float(body["units"]),
                entry_price=float(body["decision_price"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            log.error("risk.intent row %d cannot be rebuilt (%s): %s", e.seq, err, body)
            continue
        margin = body.get("margin_home")
        in_flight[instrument] = InFlight(
            intent_id=intent_id,
            position=position,
            since=now_mono - (now_ns - (e.ts_ns if fill is None else fill[1])) / 1e9,
            reported=fill is None and (intent_id in story.sent or intent_id in story.unresolved),
            margin_home=float(margin) if isinstance(margin, int | float) else None,
            filled_before_restart=fill is not None,
        )
    return in_flight


def unheard_loss_ns(loss: UnheardLoss, *, market_ns: int, now_ns: int) -> int:
    """The market time a cool-down starts at for a loss the role never heard of.

    Its ``exec.closed`` row was written ``now_ns - journaled_ns`` wall seconds ago; the market
    moved at least as far in that time (a live market runs at the wall clock's pace, a replay or
    an accelerated emulator faster), so the close happened no later than ``market_ns`` less that
    age: the estimate never ends the cool-down before the real one would.
    """
    return market_ns - max(0, now_ns - loss.journaled_ns)


@dataclass(slots=True)
class InFlight:
    """An intent sent or filled and not yet in ``recon.state``: it counts as a position.

    Attributes:
        intent_id: the intent's id (the order's client id).
        position: the position it would open.
        since: when it was decided (the role's monotonic clock).
        reported: the execution role has reported on it (so it took it: never expired).
        margin_home: what it took from the margin available (``SizedEntry.margin_home``); None:
            unknown, valued as ``actors.core.money.position_margin`` of its position.
        filled_before_restart: the journal says it filled before this role started (``since``
            is then the fill's time): it counts until the account shows its trade, or at most
            ``risk.intent_expiry_s``, by when every account read shows a trade still open.
    """

    intent_id: str
    position: Position
    since: float
    reported: bool = False
    margin_home: float | None = None
    filled_before_restart: bool = False
