"""Daily loss limit and drawdown zones: a small persistent state and one pure update function.

``update_zones(state, nav=..., now_ns=..., config=...)`` folds one NAV observation into a
``ZoneState`` (peak NAV, day-start NAV, the current trading day, the latest NAV, two latches and
the operator's resume) and returns the new state with a ``ZoneVerdict``. The reconciler calls it
with every account read (the first one too, before the system trades) and persists the state;
the risk role reads the verdict; ``tradehost backtest`` calls the same function per bar.

- **Daily loss limit.** A trading day runs from one 17:00 New York rollover to the next
  (``actors.core.markethours``). The day's P&L is NAV minus the day-start NAV: the NAV at the
  rollover that began the day, moved by the deposits and withdrawals since (``transfer``: money
  paid in or out is not profit or loss). The caller that can rebuild the NAV at the rollover from
  the broker passes it (``day_start_nav``, see ``actors.core.daystart``); otherwise it is the latest
  NAV observed before the rollover (nothing was observed in between: the market was closed, as over
  a weekend, whose gap at the Sunday open therefore counts against the day that opens then), or the
  observation's own NAV when it falls on the rollover or is the very first. Once the loss reaches
  ``risk.daily_loss_limit`` * day-start NAV (at the limit counts), no new entries until the next
  trading day: the latch clears itself at the first observation after the next rollover, never
  earlier (an operator's resume cannot lift it).
- **Drawdown zones.** Drawdown = (peak NAV - NAV) / peak NAV; the peak moves with deposits and
  withdrawals too. ``risk.drawdown_zones`` lists (drawdown, multiplier) pairs by rising drawdown:
  a drawdown below the first limit is zone 0 with the first multiplier; at or above it and below
  the second, zone 1; ...; at or above the last limit, zone ``len(zones)``: no new trades, latched
  until an operator resumes. The resume (``resume_after_drawdown_stop``) keeps the peak: from then
  on entries are sized at the last zone's multiplier, and the stop does not latch again, until the
  NAV makes a new peak (then the zones apply afresh).

Times are UTC nanoseconds passed in (market time in a replay); an observation older than the
state's trading day never starts a new day (prices can arrive out of order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from actors.core import markethours

if TYPE_CHECKING:
    from actors.core.config import RiskConfig

__all__ = ["ZoneState", "ZoneVerdict", "resume_after_drawdown_stop", "update_zones", "zone_of"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneState:
    """What the zones remember across observations (and across restarts: persist it).

    Attributes:
        peak_nav: the highest NAV seen (home currency).
        day_start_nav: the NAV at the first observation of the current trading day.
        day_start_ns: the 17:00 New York rollover that began the current trading day (UTC ns).
        day_end_ns: the rollover that ends it (UTC ns).
        daily_loss_hit: the daily loss limit was reached today (clears at the next day).
        drawdown_stop: the drawdown went beyond the last zone (cleared only by an operator).
        last_nav: the NAV of the latest observation (None: none yet, in a state saved before it
            was kept).
        resumed: an operator resumed after the drawdown stop: the last zone's multiplier, and no
            new stop, until a new peak.
    """

    peak_nav: float
    day_start_nav: float
    day_start_ns: int
    day_end_ns: int
    daily_loss_hit: bool = False
    drawdown_stop: bool = False
    last_nav: float | None = None
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for the reconciler's state file; ``last_nav`` and ``resumed`` only when set,
        so a state without them is written as before)."""
        return (
            {
                "peak_nav": self.peak_nav,
                "day_start_nav": self.day_start_nav,
                "day_start_ns": self.day_start_ns,
                "day_end_ns": self.day_end_ns,
                "daily_loss_hit": self.daily_loss_hit,
                "drawdown_stop": self.drawdown_stop,
            }
            | ({} if self.last_nav is None else {"last_nav": self.last_nav})
            | ({"resumed": True} if self.resumed else {})
        )

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ZoneState:
        """The state saved by ``to_dict`` (``last_nav`` and ``resumed`` may be missing: a state saved
        before they were kept).

        Raises:
            ValueError: a field is missing or of the wrong type.
        """
        try:
            state = cls(
                peak_nav=_number(raw["peak_nav"]),
                day_start_nav=_number(raw["day_start_nav"]),
                day_start_ns=_integer(raw["day_start_ns"]),
                day_end_ns=_integer(raw["day_end_ns"]),
                daily_loss_hit=_flag(raw["daily_loss_hit"]),
                drawdown_stop=_flag(raw["drawdown_stop"]),
                last_nav=None if raw.get("last_nav") is None else _number(raw["last_nav"]),
                resumed=_flag(raw.get("resumed", False)),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed zone state: {e}") from e
        if state.day_end_ns <= state.day_start_ns:
            raise ValueError("malformed zone state: the trading day ends before it starts")
        return state


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{value!r} is not a finite number")
    return float(value)


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is not true or false")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneVerdict:
    """What one observation means for new entries.

    Attributes:
        zone: the drawdown zone, 0-based; ``len(risk.drawdown_zones)`` is beyond the last.
        multiplier: the size multiplier of the zone; 0.0 while ``drawdown_stop`` holds.
        drawdown: (peak - NAV) / peak, 0.0 at the peak.
        daily_pnl: NAV minus the day-start NAV (home currency).
        daily_loss_hit: no new entries until the next trading day.
        drawdown_stop: no new entries until an operator resumes (latched).
        new_day: this observation began a new trading day (the daily latch was cleared).
        resumed: trading goes on after an operator's resume of the drawdown stop, at the last
            zone's multiplier until a new peak.
    """

    zone: int
    multiplier: float
    drawdown: float
    daily_pnl: float
    daily_loss_hit: bool
    drawdown_stop: bool
    new_day: bool = False
    resumed: bool = False


def zone_of(drawdown: float, zones: tuple[tuple[float, float], ...]) -> tuple[int, float]:
    """The zone index and multiplier of ``drawdown`` (``(len(zones), 0.0)`` beyond the last).

    Args:
        drawdown: (peak - NAV) / peak.
        zones: (drawdown limit, multiplier) pairs by rising limit, as ``risk.drawdown_zones``.
    """
    for index, (limit, multiplier) in enumerate(zones):
        if drawdown < limit:
            return index, multiplier
    return len(zones), 0.0


def _drawdown(peak: float, nav: float) -> float:
    return (peak - nav) / peak if peak > 0 else 1.0


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} {value!r} is not a finite number")


def _moved(state: ZoneState, transfer: float) -> ZoneState:
    # A deposit (withdrawal) raises (lowers) every NAV the state remembers by its amount.
    last = None if state.last_nav is None else state.last_nav + transfer
    return replace(
        state, peak_nav=state.peak_nav + transfer, day_start_nav=state.day_start_nav + transfer, last_nav=last
    )


def _new_day(state: ZoneState | None, *, nav: float, now_ns: int, day_start_nav: float | None) -> ZoneState:
    day_start_ns = markethours.trading_day_start(now_ns)
    if day_start_nav is not None:
        start = day_start_nav  # rebuilt from the broker: the NAV at the rollover
    elif state is None or state.last_nav is None or now_ns == day_start_ns:
        start = nav  # the first observation, or one on the rollover itself
    else:
        start = state.last_nav  # nothing was observed since: the NAV at the rollover
    return ZoneState(
        peak_nav=max(nav, start) if state is None else max(state.peak_nav, start),
        day_start_nav=start,
        day_start_ns=day_start_ns,
        day_end_ns=markethours.next_rollover(now_ns),
        daily_loss_hit=False,
        drawdown_stop=False if state is None else state.drawdown_stop,
        last_nav=None if state is None else state.last_nav,
        resumed=False if state is None else state.resumed,
    )


def update_zones(
    state: ZoneState | None,
    *,
    nav: float,
    now_ns: int,
    config: RiskConfig,
    day_start_nav: float | None = None,
    transfer: float = 0.0,
) -> tuple[ZoneState, ZoneVerdict]:
    """Fold one NAV observation into the state.

    Args:
        state: the previous state; None for the very first observation.
        nav: the account's NAV now (home currency).
        now_ns: the time of the observation (UTC ns).
        config: the ``[risk]`` section (``daily_loss_limit``, ``drawdown_zones``).
        day_start_nav: when this observation begins a trading day (or is the first), the NAV at
            that day's rollover plus the deposits and withdrawals since, if the caller rebuilt it
            from the broker (``actors.core.daystart``); None: the latest NAV observed before the
            rollover (or this NAV, see the module docstring). Ignored within a day.
        transfer: deposits (+) and withdrawals (-) since the previous observation, in the home
            currency: not profit or loss, so the day-start NAV and the peak move by it.

    Returns:
        The new state and the verdict.

    Raises:
        ValueError: ``nav``, ``day_start_nav`` or ``transfer`` is not a finite number.
    """
    _finite("NAV", nav)
    _finite("transfer", transfer)
    if day_start_nav is not None:
        _finite("day-start NAV", day_start_nav)
    if state is not None and transfer:
        state = _moved(state, transfer)
    new_day = False
    if state is None or now_ns >= state.day_end_ns:
        new_day = state is not None
        state = _new_day(state, nav=nav, now_ns=now_ns, day_start_nav=day_start_nav)
    zones = config.drawdown_zones
    daily_pnl = nav - state.day_start_nav
    daily_loss_hit = state.daily_loss_hit or -daily_pnl >= config.daily_loss_limit * state.day_start_nav
    resumed = state.resumed and nav < state.peak_nav  # a new peak ends the resume
    peak = max(state.peak_nav, nav)
    drawdown = _drawdown(peak, nav)
    zone, multiplier = zone_of(drawdown, zones)
    drawdown_stop = state.drawdown_stop or (zone >= len(zones) and not resumed)
    state = replace(
        state,
        peak_nav=peak,
        daily_loss_hit=daily_loss_hit,
        drawdown_stop=drawdown_stop,
        last_nav=nav,
        resumed=resumed,
    )
    if drawdown_stop:
        zone, multiplier = len(zones), 0.0
    elif resumed:
        multiplier = zones[-1][1]  # the last zone's size until a new peak
    verdict = ZoneVerdict(
        zone=zone,
        multiplier=multiplier,
        drawdown=drawdown,
        daily_pnl=daily_pnl,
        daily_loss_hit=daily_loss_hit,
        drawdown_stop=drawdown_stop,
        new_day=new_day,
        resumed=resumed,
    )
    return state, verdict


def resume_after_drawdown_stop(state: ZoneState) -> ZoneState:
    """An operator's resume after the drawdown stop: clear the latch and keep the peak.

    From then on ``update_zones`` sizes entries at the last zone's multiplier and does not latch
    the stop again until the NAV makes a new peak (the zones then apply afresh).
    """
    if not state.drawdown_stop:
        return state
    return replace(state, drawdown_stop=False, resumed=True)
