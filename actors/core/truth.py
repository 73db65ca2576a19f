"""The broker is the truth: what the reconciler compares, remembers and reports (pure).

``compare`` sets the host's known trades against the broker's open trades and names every
difference (``ReconDifference.kind``, the journal's ``recon.difference`` rows):

- ``adopted``: a broker trade the host does not know (opened by hand, or by another system):
  taken into the book and alerted. It counts as a position for the risk gate, a missing SL or TP
  is repaired as any trade's is, ``ctl flatten`` closes it, and the exit rules manage it from its
  entry as the broker shows it (``actors.core.exits.entry_from_broker``: R from its SL, the bars
  held from its open time);
- ``caught_up``: a trade of this host (its tag) the reconciler had not seen yet: taken in quietly;
- ``another_host``: a trade tagged by another tradehost instance: a second host trades this
  account (latched ``another_host``);
- ``closed``: a known trade the broker no longer has open (SL/TP, or closed behind the host's
  back): dropped, with its real P&L from the broker (``realized_pl``: the trade's, partial
  reductions included);
- ``changed``: units, SL or TP differ: the broker wins;
- ``unprotected``: an open trade without SL or TP: the execution role repairs or closes it.

The known trades (``KnownTrade``, built from the broker's ``TradeState`` by ``KnownTrade.of``) are
what the reconciler remembers across restarts, with the last transaction id and the zone state
(``actors.roles.reconciler.state.ReconState``, written crash-safely); their fields are the
``local`` and ``broker`` sides of a ``recon.difference`` row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from actors.core.domain import TradeState
from actors.core.entry import HOST_TAG_PREFIX

if TYPE_CHECKING:
    from decimal import Decimal

__all__ = ["KnownTrade", "ReconDifference", "compare", "realized_pl", "trade_origin"]

_ADOPTED = (
    "a trade the host did not open: adopted (it counts against the risk limits, is kept protected "
    "and its exits are managed from its broker entry)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownTrade:
    """A trade as the host last knew it (units signed, prices as decimal strings): what the
    reconciler remembers of a broker trade (``of``) and compares the next read with."""

    trade_id: str
    instrument: str
    units: str
    stop_loss: str | None
    take_profit: str | None
    client_id: str | None = None

    @classmethod
    def of(cls, trade: TradeState) -> KnownTrade:
        """The broker's trade as the host now knows it (decimals written out in full, as
        ``TradeView.of`` writes them)."""
        sl, tp = trade.stop_loss_price, trade.take_profit_price
        return cls(
            trade_id=trade.id,
            instrument=trade.instrument,
            units=format(trade.current_units, "f"),
            stop_loss=None if sl is None else format(sl, "f"),
            take_profit=None if tp is None else format(tp, "f"),
            client_id=trade.client_id,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconDifference:
    """One difference between the host and the broker (a ``recon.difference`` row)."""

    kind: str
    trade_id: str
    instrument: str
    local: dict[str, Any] | None
    broker: dict[str, Any] | None
    detail: str = ""

    def body(self) -> dict[str, Any]:
        """The journal row's body: both sides."""
        return {
            "kind": self.kind,
            "trade_id": self.trade_id,
            "instrument": self.instrument,
            "local": self.local,
            "broker": self.broker,
            "detail": self.detail,
        }


def realized_pl(closed: TradeState) -> Decimal:
    """The realized P&L of a closed trade, the one figure every surface reports for its close
    (``exec.closed``, the execution report, ``recon.difference``, the ``recon_closed`` alert): the
    broker's trade ``realizedPL`` read after the close, which is the sum of the ``realizedPL`` of
    every transaction that reduced or closed it (partial reductions included, financing apart).
    The closing transaction alone misses the reductions before it.

    Args:
        closed: the trade as the broker reports it after its close.
    """
    return closed.realized_pl


def trade_origin(trade: TradeState, *, own_tag: str) -> str:
    """Who opened a trade, by its client tag: ``own`` (this host's tag), ``another_host`` (another
    tradehost instance's) or ``adopted`` (anyone else: by hand, another system).

    Args:
        trade: a broker trade.
        own_tag: this host's order tag (``actors.core.entry.host_tag``).
    """
    tag = trade.client_tag or ""
    if tag == own_tag:
        return "own"
    return "another_host" if tag.startswith(HOST_TAG_PREFIX) else "adopted"


def compare(
    known: Mapping[str, KnownTrade], broker_trades: Sequence[TradeState], *, own_tag: str
) -> tuple[list[ReconDifference], dict[str, KnownTrade]]:
    """The differences, and the known trades afterwards (the broker's view, always).

    Args:
        known: the trades the host knew, by id.
        broker_trades: the broker's open trades.
        own_tag: this host's order tag (``actors.core.entry.host_tag``).
    """
    out: list[ReconDifference] = []
    now: dict[str, KnownTrade] = {}
    for trade in broker_trades:
        seen = KnownTrade.of(trade)
        now[trade.id] = seen
        was = known.get(trade.id)
        if was is None:
            origin = trade_origin(trade, own_tag=own_tag)
            if origin == "own":
                kind, detail = "caught_up", "a trade of this host, seen for the first time"
            elif origin == "another_host":
                kind, detail = "another_host", f"tagged {trade.client_tag!r}: another tradehost trades this account"
            else:
                kind, detail = "adopted", _ADOPTED
            out.append(
                ReconDifference(
                    kind=kind,
                    trade_id=trade.id,
                    instrument=trade.instrument,
                    local=None,
                    broker=asdict(seen),
                    detail=detail,
                )
            )
        elif (was.units, was.stop_loss, was.take_profit) != (seen.units, seen.stop_loss, seen.take_profit):
            out.append(
                ReconDifference(
                    kind="changed",
                    trade_id=trade.id,
                    instrument=trade.instrument,
                    local=asdict(was),
                    broker=asdict(seen),
                    detail="the broker wins",
                )
            )
        if seen.stop_loss is None or seen.take_profit is None:
            missing = " and ".join(n for n, v in (("SL", seen.stop_loss), ("TP", seen.take_profit)) if v is None)
            out.append(
                ReconDifference(
                    kind="unprotected",
                    trade_id=trade.id,
                    instrument=trade.instrument,
                    local=None,
                    broker=asdict(seen),
                    detail=f"no {missing} at the broker",
                )
            )
    for trade_id, was in known.items():
        if trade_id not in now:
            out.append(
                ReconDifference(
                    kind="closed",
                    trade_id=trade_id,
                    instrument=was.instrument,
                    local=asdict(was),
                    broker=None,
                    detail="no longer open at the broker",
                )
            )
    return out, now
