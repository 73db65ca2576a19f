"""FX market hours: the weekly session, the 17:00 New York rollover, expected holidays, market status.

Spot FX trades from Sunday 17:00 to Friday 17:00 New York time; New York's daylight saving moves
these to 21:00 UTC in summer (EDT) and 22:00 UTC in winter (EST). Every day's rollover is at
17:00 New York too, so the calendar is built from *trading days*: the 24 hours from one 17:00 New
York to the next, labelled with the date on which they end, as OANDA labels its daily candles (the
day that starts Monday 17:00 is Tuesday's). A trading day is closed as a whole or open as a whole:
Saturday's and Sunday's (Friday 17:00 → Sunday 17:00) are the weekend, and the days in
``EXPECTED_HOLIDAYS`` (25 December and 1 January) are expected holiday closures. The holiday list
only explains silence: the broker's ``tradeable`` flag is the authority, so a broker that trades on
a listed day is open (``update_market_status``), and a closure that is not listed (an early close, a
halt) shows up as ``halted`` when the broker says not tradeable. The list is deliberately small: the
replayed EURUSD hours of 2017-2018 show exactly these two days closed (the market reopened at 17:00
New York on 25 December and 1 January) and no other holiday gap. Everything here is pure: times
are integer UTC nanoseconds passed in, never read from a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "EXPECTED_HOLIDAYS",
    "NEW_YORK",
    "ROLLOVER_HOUR",
    "ClosedReason",
    "MarketStatus",
    "closure_reason",
    "in_weekly_session",
    "is_open",
    "next_close",
    "next_open",
    "next_rollover",
    "period_start",
    "trading_date",
    "trading_day_start",
    "update_market_status",
]

NEW_YORK = ZoneInfo("America/New_York")
ROLLOVER_HOUR = 17
# Trading days (by the date they end on) on which the market is expected to be closed all day.
EXPECTED_HOLIDAYS: frozenset[tuple[int, int]] = frozenset({(12, 25), (1, 1)})

_NS = 1_000_000_000
_SATURDAY = 5
# The furthest a search for the next opening or closing looks ahead, in trading days.
_SEARCH_DAYS = 60


class ClosedReason(enum.StrEnum):
    """Why a market is closed (wire vocabulary: ``ctl status`` and the ``feed.market`` journal rows)."""

    WEEKEND = "weekend"
    HOLIDAY = "holiday"
    HALTED = "halted"


def _rollover_ns(day: date) -> int:
    # 17:00 New York on ``day``; never in a DST gap or fold (those are at 02:00 on a Sunday).
    local = datetime(day.year, day.month, day.day, ROLLOVER_HOUR, tzinfo=NEW_YORK)
    return int(local.timestamp()) * _NS


def _day_start_ns(label: date) -> int:
    return _rollover_ns(label - timedelta(days=1))


def trading_date(ts_ns: int) -> date:
    """The trading day that contains ``ts_ns``, labelled with the date on which it ends.

    Args:
        ts_ns: a UTC time in nanoseconds.

    Returns:
        The New York date of the 17:00 rollover that ends the trading day (Monday 17:00 to
        Tuesday 17:00 New York is Tuesday).
    """
    local = datetime.fromtimestamp(ts_ns // _NS, tz=NEW_YORK)
    # Wall-clock arithmetic: 17:00 New York plus 7 hours is midnight, whatever the UTC offset.
    return (local + timedelta(hours=24 - ROLLOVER_HOUR)).date()


def trading_day_start(ts_ns: int) -> int:
    """The 17:00 New York rollover that started the trading day of ``ts_ns`` (at or before it).

    This is where a daily loss limit resets.

    Args:
        ts_ns: a UTC time in nanoseconds.

    Returns:
        The rollover time in UTC nanoseconds.
    """
    return _day_start_ns(trading_date(ts_ns))


def next_rollover(ts_ns: int) -> int:
    """The first 17:00 New York rollover strictly after ``ts_ns`` (the end of its trading day)."""
    return _rollover_ns(trading_date(ts_ns))


def _label_closure(label: date) -> ClosedReason | None:
    if label.weekday() >= _SATURDAY:
        return ClosedReason.WEEKEND
    if (label.month, label.day) in EXPECTED_HOLIDAYS:
        return ClosedReason.HOLIDAY
    return None


def closure_reason(ts_ns: int) -> ClosedReason | None:
    """Why the calendar expects the market to be closed at ``ts_ns``, or ``None`` when it is open.

    Returns:
        ``WEEKEND`` from Friday 17:00 to Sunday 17:00 New York, ``HOLIDAY`` on the trading days of
        ``EXPECTED_HOLIDAYS``, else ``None``. Never ``HALTED``: only the broker knows that.
    """
    return _label_closure(trading_date(ts_ns))


def is_open(ts_ns: int) -> bool:
    """Whether the calendar expects the market to be open at ``ts_ns`` (no weekend, no listed holiday)."""
    return closure_reason(ts_ns) is None


def in_weekly_session(ts_ns: int) -> bool:
    """Whether ``ts_ns`` lies between Sunday 17:00 and Friday 17:00 New York (holidays ignored)."""
    return trading_date(ts_ns).weekday() < _SATURDAY


def _next_transition(ts_ns: int, *, opening: bool) -> int:
    label = trading_date(ts_ns)
    was_open = _label_closure(label) is None
    for _ in range(_SEARCH_DAYS):
        label += timedelta(days=1)
        now_open = _label_closure(label) is None
        if now_open != was_open and now_open == opening:
            return _day_start_ns(label)
        was_open = now_open
    raise ValueError(f"no market {'opening' if opening else 'closing'} within {_SEARCH_DAYS} days of {ts_ns}")


def next_open(ts_ns: int) -> int:
    """The next time strictly after ``ts_ns`` at which the calendar's market opens.

    While the market is closed this is the end of the closure (Sunday 17:00 New York, or 17:00 on
    the day a holiday ends); while it is open, the opening after the next closure.

    Args:
        ts_ns: a UTC time in nanoseconds.

    Returns:
        The opening time in UTC nanoseconds (always a 17:00 New York rollover).
    """
    return _next_transition(ts_ns, opening=True)


def next_close(ts_ns: int) -> int:
    """The next time strictly after ``ts_ns`` at which the calendar's market closes.

    Usually Friday 17:00 New York; 17:00 before an expected holiday when one comes first. While
    the market is closed, the close at the end of the next open session.

    Args:
        ts_ns: a UTC time in nanoseconds.

    Returns:
        The closing time in UTC nanoseconds (always a 17:00 New York rollover).
    """
    return _next_transition(ts_ns, opening=False)


def period_start(ts_ns: int) -> int:
    """When the calendar's present state began: the start of the run of trading days around
    ``ts_ns`` that share its closure reason.

    While open, the latest opening at or before ``ts_ns`` (Sunday 17:00 New York, or 17:00 on the
    day a holiday ended); while closed, the start of that closure (a weekend and a holiday next to
    it are two closures: on a Monday holiday, Sunday 17:00 New York).

    Args:
        ts_ns: a UTC time in nanoseconds.

    Returns:
        A 17:00 New York rollover at or before ``ts_ns``, in UTC nanoseconds.
    """
    label = trading_date(ts_ns)
    reason = _label_closure(label)
    for _ in range(_SEARCH_DAYS):
        earlier = label - timedelta(days=1)
        if _label_closure(earlier) != reason:
            break
        label = earlier
    return _day_start_ns(label)


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketStatus:
    """Whether one instrument's market is open, since when, why not, and when it should open.

    Attributes:
        instrument: the instrument.
        is_open: whether the market is open.
        since_ns: when the market entered this state (a 17:00 rollover for calendar changes, the
            time of the broker's price for changes its ``tradeable`` flag caused).
        why: why the market is closed; ``None`` while it is open.
        next_open_ns: the calendar's next opening while closed for the weekend or a holiday;
            ``None`` while open or halted (only the broker knows when a halt ends).
        next_close_ns: the calendar's next closing while open; ``None`` while closed.
        tradeable: the last ``tradeable`` flag the broker sent, ``None`` before the first price.
        tradeable_ns: the time of the price that carried ``tradeable``.
    """

    instrument: str
    is_open: bool
    since_ns: int
    why: ClosedReason | None = None
    next_open_ns: int | None = None
    next_close_ns: int | None = None
    tradeable: bool | None = None
    tradeable_ns: int | None = None


def update_market_status(
    prev: MarketStatus | None, *, instrument: str, ts_ns: int, tradeable: bool | None = None
) -> tuple[MarketStatus, bool]:
    """Fold one observation of the market into an instrument's status.

    Call it for every price (``tradeable`` = its flag) and every heartbeat (``tradeable=None``:
    time passes, no news from the broker). The rules, in order:

    1. Weekend (calendar) → closed, ``weekend``; the broker never trades then, whatever flag it
       last sent.
    2. A *current* flag decides otherwise: ``False`` → closed, ``holiday`` on a listed holiday
       else ``halted``; ``True`` → open (even on a listed holiday: the broker is the authority).
       A flag is current when the broker sent it after the present calendar period began (the
       last 17:00 at which the calendar's state changed), so Friday's last flag says nothing
       about Sunday evening.
    3. No current flag → the calendar: open, or closed for a ``holiday``.

    A flag older than the one already held (prices arriving out of order) is ignored.

    Args:
        prev: the previous status of ``instrument``; ``None`` for the first observation.
        instrument: the instrument.
        ts_ns: the market time of the observation (the price's or heartbeat's ``time``).
        tradeable: the price's ``tradeable`` flag; ``None`` for a heartbeat.

    Returns:
        The new status and whether it differs from ``prev`` in ``is_open`` or ``why`` (the
        change the feed journals as ``feed.market``; always true for the first observation).

    Raises:
        ValueError: ``prev`` belongs to another instrument.
    """
    if prev is not None and prev.instrument != instrument:
        raise ValueError(f"status of {prev.instrument} updated with an observation of {instrument}")
    flag, flag_ns = (None, None) if prev is None else (prev.tradeable, prev.tradeable_ns)
    if tradeable is not None and (flag_ns is None or ts_ns >= flag_ns):
        flag, flag_ns = tradeable, ts_ns
    period_ns = period_start(ts_ns)
    current = flag if flag_ns is not None and flag_ns >= period_ns else None
    calendar_why = closure_reason(ts_ns)
    now_open: bool
    why: ClosedReason | None
    by_flag = False
    if calendar_why is ClosedReason.WEEKEND:
        now_open, why = False, calendar_why
    elif current is False:
        now_open, why, by_flag = False, calendar_why or ClosedReason.HALTED, True
    elif current is True:
        now_open, why, by_flag = True, None, True
    else:
        now_open, why = calendar_why is None, calendar_why
    changed = prev is None or (prev.is_open, prev.why) != (now_open, why)
    if prev is not None and not changed:
        since_ns = prev.since_ns
    elif by_flag and flag_ns is not None:
        since_ns = flag_ns
    else:
        since_ns = period_ns
    status = MarketStatus(
        instrument=instrument,
        is_open=now_open,
        since_ns=since_ns,
        why=why,
        next_open_ns=next_open(ts_ns) if why in (ClosedReason.WEEKEND, ClosedReason.HOLIDAY) else None,
        next_close_ns=next_close(ts_ns) if now_open else None,
        tradeable=flag,
        tradeable_ns=flag_ns,
    )
    return status, changed
