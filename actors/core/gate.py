"""The decision gate: may a signal become an entry, and in which direction? One pure function.

``check_entry`` turns a model signal into a direction (long when P(up) >= ``risk.min_probability``,
short when P(up) <= 1 - ``risk.min_probability``) or into a skip with a stable ``SkipReason`` code,
given the instrument's current quote, the open book, the per-currency exposure, the time and the
last losing-trade close per instrument. It also owns the vocabulary the other entry rules share
(``Direction``, ``SkipReason``) so that the risk role, ``tradehost backtest`` and the journal all
use the same words. The trading permit, the daily loss limit and the drawdown zones are not
checked here: the role checks the permit, ``actors.core.zones`` the limits, and ``actors.core.sizing``
composes the whole entry decision (``decide_entry``).

The checks run in a fixed order and the first failing one is the reason (so the shadow run and
the backtest journal the same reason for the same inputs): ``invalid_signal``,
``below_threshold``, ``market_closed``, ``not_tradeable``, ``weekly_close``, ``rollover``,
``position_open``, ``max_open_positions``, ``cooldown``, ``spread_too_wide``, ``max_exposure``.

Speed: the backtest calls this for every bar of every instrument, so it works on floats (a
quote's bid/ask are compared, never sent), allocates nothing (results are module constants) and
caches what it needs from ``actors.core.markethours`` per UTC hour: every calendar boundary (17:00 New
York, in EST or EDT) falls on a whole UTC hour, so all calendar facts are constant within one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actors.core import markethours
from actors.core.domain import Direction, Position, Quote, Signal, SkipReason

if TYPE_CHECKING:
    from actors.core.config import RiskConfig
    from actors.core.domain import Instrument

__all__ = [
    "GateDecision",
    "check_entry",
]

_NS = 1_000_000_000
_HOUR_NS = 3600 * _NS


@dataclass(frozen=True, slots=True)
class GateDecision:
    """What the gate decided: a direction (``reason`` None) or a skip (``direction`` None)."""

    direction: Direction | None
    reason: SkipReason | None

    @property
    def ok(self) -> bool:
        """True when the signal may become an entry."""
        return self.direction is not None


_ENTER = {d: GateDecision(d, None) for d in Direction}
_SKIP = {r: GateDecision(None, r) for r in SkipReason}


@functools.lru_cache(maxsize=8192)
def _hour_facts(hour: int) -> tuple[bool, int, int, int]:
    # Calendar facts for the UTC hour ``hour`` (hours since the epoch): open, the trading day's
    # start and end, and the next close. Valid for every instant of that hour (see the docstring).
    ts_ns = hour * _HOUR_NS
    is_open = markethours.is_open(ts_ns)
    return (
        is_open,
        markethours.trading_day_start(ts_ns),
        markethours.next_rollover(ts_ns),
        markethours.next_close(ts_ns) if is_open else 0,
    )


def check_entry(
    signal: Signal,
    quote: Quote | None,
    *,
    instrument: Instrument,
    book: Mapping[str, Position],
    exposure: Mapping[str, float],
    nav: float,
    home_currency: str,
    now_ns: int,
    last_loss_close_ns: Mapping[str, int],
    config: RiskConfig,
) -> GateDecision:
    """Decide whether ``signal`` may become an entry now (the checks in the module's order).

    Args:
        signal: the model's signal.
        quote: the instrument's latest quote; None before the first one (``not_tradeable``).
        instrument: the instrument's metadata (its ``pip_location`` sizes a pip).
        book: open positions by instrument.
        exposure: signed net exposure per currency in the home currency (positive: long the
            currency), as ``actors.core.money.currency_exposure`` computes it.
        nav: the account's NAV in the home currency (the exposure limit is a multiple of it).
        home_currency: the account currency; exposure to it is never limited.
        now_ns: the decision time (UTC ns): market time in a replay or backtest.
        last_loss_close_ns: per instrument, when its last losing trade closed (UTC ns).
        config: the ``[risk]`` section.

    Returns:
        The direction to enter, or the first reason to skip. ``weekly_close`` means within
        ``risk.no_entry_before_weekly_close_s`` of the calendar's next close (Friday 17:00 New
        York, or the close before an expected holiday); ``rollover`` within
        ``risk.rollover_window_s`` either side of a 17:00 New York rollover; ``cooldown`` less
        than ``risk.cooldown_after_loss_s`` after a losing trade on the same instrument closed;
        ``spread_too_wide`` above ``risk.max_spread_pips``; ``max_exposure`` when a currency of
        the instrument (other than the home currency) already has, in the trade's direction, an
        exposure of ``risk.max_exposure_per_currency`` * NAV or more (``actors.core.sizing`` then cuts
        the size to the headroom).
    """
    p = signal.p_up
    if not 0.0 <= p <= 1.0:  # also false for NaN
        return _SKIP[SkipReason.INVALID_SIGNAL]
    if p >= config.min_probability:
        direction = Direction.LONG
    elif p <= 1.0 - config.min_probability:
        direction = Direction.SHORT
    else:
        return _SKIP[SkipReason.BELOW_THRESHOLD]
    is_open, day_start_ns, day_end_ns, close_ns = _hour_facts(now_ns // _HOUR_NS)
    if not is_open:
        return _SKIP[SkipReason.MARKET_CLOSED]
    if quote is None or not quote.tradeable:
        return _SKIP[SkipReason.NOT_TRADEABLE]
    bid, ask = quote.bid, quote.ask
    if not (0.0 < bid <= ask and math.isfinite(ask)):
        return _SKIP[SkipReason.NOT_TRADEABLE]
    if (close_ns - now_ns) / _NS <= config.no_entry_before_weekly_close_s:
        return _SKIP[SkipReason.WEEKLY_CLOSE]
    if min(now_ns - day_start_ns, day_end_ns - now_ns) / _NS <= config.rollover_window_s:
        return _SKIP[SkipReason.ROLLOVER]
    name = signal.instrument
    if name in book:
        return _SKIP[SkipReason.POSITION_OPEN]
    if len(book) >= config.max_open_positions:
        return _SKIP[SkipReason.MAX_OPEN_POSITIONS]
    lost_ns = last_loss_close_ns.get(name)
    if lost_ns is not None and (now_ns - lost_ns) / _NS < config.cooldown_after_loss_s:
        return _SKIP[SkipReason.COOLDOWN]
    if (ask - bid) / 10.0**instrument.pip_location > config.max_spread_pips:
        return _SKIP[SkipReason.SPREAD_TOO_WIDE]
    limit = config.max_exposure_per_currency * nav
    base, _, quote_ccy = name.partition("_")
    sign = 1.0 if direction is Direction.LONG else -1.0
    # A long adds to the base currency and takes from the quote currency; a short the reverse.
    # "not below" rather than ">=": an exposure that could not be valued (NaN) refuses too.
    if (base != home_currency and not sign * exposure.get(base, 0.0) < limit) or (
        quote_ccy != home_currency and not -sign * exposure.get(quote_ccy, 0.0) < limit
    ):
        return _SKIP[SkipReason.MAX_EXPOSURE]
    return _ENTER[direction]
