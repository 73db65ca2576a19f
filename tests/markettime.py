"""Test helpers for market time: readable UTC / New York times and the textbook weekly rule."""

from __future__ import annotations

from datetime import UTC, datetime

from actors.core import markethours

NS = 1_000_000_000


def utc(text: str) -> int:
    """``YYYY-MM-DDTHH:MM[:SS]`` in UTC -> ns."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS


def ny(text: str) -> int:
    """``YYYY-MM-DDTHH:MM[:SS]`` New York wall time -> ns."""
    return int(datetime.fromisoformat(text).replace(tzinfo=markethours.NEW_YORK).timestamp()) * NS


def near_rollover_oracle(ts_ns: int, *, window_s: float) -> bool:
    """Whether ``ts_ns`` lies within ``window_s`` seconds (either side) of a 17:00 New York
    rollover, from the calendar's trading day (the gate caches this per hour: this is the check)."""
    after_ns = ts_ns - markethours.trading_day_start(ts_ns)
    before_ns = markethours.next_rollover(ts_ns) - ts_ns
    return min(after_ns, before_ns) / NS <= window_s


def weekly_closed_oracle(ts_ns: int) -> bool:
    """The textbook rule, from New York wall time: closed Friday 17:00 to Sunday 17:00."""
    local = datetime.fromtimestamp(ts_ns // NS, tz=markethours.NEW_YORK)
    weekday, hour = local.weekday(), local.hour
    return (weekday == 4 and hour >= 17) or weekday == 5 or (weekday == 6 and hour < 17)
