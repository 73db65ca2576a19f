"""Daily loss limit and drawdown zones: a small persistent state and one pure update function.

``update_zones(state, nav=..., now_ns=..., config=...)`` folds one NAV observation into a
``ZoneState`` (peak NAV, day-start NAV, the current trading day, two latches) and returns the new
state with a ``ZoneVerdict``. The reconciler calls it whenever it learns the NAV and persists the
state; the risk role reads the verdict; ``tradehost backtest`` calls the same function per bar.

- **Daily loss limit.** A trading day runs from one 17:00 New York rollover to the next
  (``actors.core.markethours``). The day's P&L is NAV minus the NAV at the day's first observation (NAV
  is balance + unrealized P&L, so this is realized + unrealized P&L since the day began, as long
  as no money is paid in or out). Once the loss reaches ``risk.daily_loss_limit`` * day-start
  NAV (at the limit counts), no new entries until the next trading day: the latch clears itself
  at the first observation after the next rollover, never earlier.
- **Drawdown zones.** Drawdown = (peak NAV - NAV) / peak NAV. ``risk.drawdown_zones`` lists
  (drawdown, multiplier) pairs by rising drawdown: a drawdown below the first limit is zone 0
  with the first multiplier; at or above it and below the second, zone 1; ...; at or above the
  last limit, zone ``len(zones)``: no new trades, latched until an operator resumes
  (``resume_after_drawdown_stop``, which accepts the loss by moving the peak down to the NAV).

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
    """

    peak_nav: float
    day_start_nav: float
    day_start_ns: int
    day_end_ns: int
    daily_loss_hit: bool = False
    drawdown_stop: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for the reconciler's state file)."""
        return {
            "peak_nav": self.peak_nav,
            "day_start_nav": self.day_start_nav,
            "day_start_ns": self.day_start_ns,
            "day_end_ns": self.day_end_ns,
            "daily_loss_hit": self.daily_loss_hit,
            "drawdown_stop": self.drawdown_stop,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ZoneState:
        """The state saved by ``to_dict``.

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
    """

    zone: int
    multiplier: float
    drawdown: float
    daily_pnl: float
    daily_loss_hit: bool
    drawdown_stop: bool
    new_day: bool = False


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


def update_zones(
    state: ZoneState | None, *, nav: float, now_ns: int, config: RiskConfig
) -> tuple[ZoneState, ZoneVerdict]:
    """Fold one NAV observation into the state.

    Args:
        state: the previous state; None for the very first observation (the NAV becomes the
            peak and the day-start NAV).
        nav: the account's NAV now (home currency).
        now_ns: the time of the observation (UTC ns).
        config: the ``[risk]`` section (``daily_loss_limit``, ``drawdown_zones``).

    Returns:
        The new state and the verdict.

    Raises:
        ValueError: ``nav`` is not a finite number.
    """
    if not math.isfinite(nav):
        raise ValueError(f"NAV {nav!r} is not a finite number")
    new_day = False
    if state is None or now_ns >= state.day_end_ns:
        new_day = state is not None
        day_start_ns = markethours.trading_day_start(now_ns)
        state = ZoneState(
            peak_nav=nav if state is None else max(state.peak_nav, nav),
            day_start_nav=nav,
            day_start_ns=day_start_ns,
            day_end_ns=markethours.next_rollover(now_ns),
            daily_loss_hit=False,
            drawdown_stop=False if state is None else state.drawdown_stop,
        )
    daily_pnl = nav - state.day_start_nav
    daily_loss_hit = state.daily_loss_hit or -daily_pnl >= config.daily_loss_limit * state.day_start_nav
    peak = max(state.peak_nav, nav)
    drawdown = _drawdown(peak, nav)
    zone, multiplier = zone_of(drawdown, config.drawdown_zones)
    drawdown_stop = state.drawdown_stop or zone >= len(config.drawdown_zones)
    if (peak, daily_loss_hit, drawdown_stop) != (state.peak_nav, state.daily_loss_hit, state.drawdown_stop):
        state = replace(state, peak_nav=peak, daily_loss_hit=daily_loss_hit, drawdown_stop=drawdown_stop)
    verdict = ZoneVerdict(
        zone=len(config.drawdown_zones) if drawdown_stop else zone,
        multiplier=0.0 if drawdown_stop else multiplier,
        drawdown=drawdown,
        daily_pnl=daily_pnl,
        daily_loss_hit=daily_loss_hit,
        drawdown_stop=drawdown_stop,
        new_day=new_day,
    )
    return state, verdict


def resume_after_drawdown_stop(state: ZoneState, *, nav: float) -> ZoneState:
    """An operator's resume after the drawdown stop: clear the latch and accept the loss.

    The peak moves down to ``nav`` (the drawdown restarts from zero); without that the next
    observation would latch the stop again at once.

    Raises:
        ValueError: ``nav`` is not a finite number.
    """
    if not math.isfinite(nav):
        raise ValueError(f"NAV {nav!r} is not a finite number")
    return replace(state, peak_nav=nav, drawdown_stop=False)
