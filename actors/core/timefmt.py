"""OANDA DateTime conversions: RFC3339 with nanoseconds, UNIX epoch strings, integer ns.

Everything inside tradehost holds time as integer UTC nanoseconds (``ts``); these functions are
the only place that converts at the wire, in both directions, for the broker layer and the
emulator.
"""

from __future__ import annotations

import calendar
import functools
import re
import time
from decimal import Decimal, InvalidOperation

__all__ = ["NS", "format_rfc3339", "format_time", "format_unix", "parse_time"]

NS = 1_000_000_000

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|[+-]\d{2}:\d{2})?$"
)


def format_rfc3339(ts_ns: int) -> str:
    """Format integer UTC nanoseconds as ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ``."""
    seconds, frac = divmod(ts_ns, NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def format_unix(ts_ns: int) -> str:
    """Format integer UTC nanoseconds as OANDA's UNIX form, e.g. ``"1709649000.412803517"``."""
    seconds, frac = divmod(ts_ns, NS)
    return f"{seconds}.{frac:09d}"


def format_time(ts_ns: int, *, unix: bool = False) -> str:
    """Format ``ts_ns`` as RFC3339 or, when ``unix`` is true, as epoch seconds."""
    return format_unix(ts_ns) if unix else format_rfc3339(ts_ns)


@functools.lru_cache(maxsize=4096)
def _date_seconds(year: int, month: int, day: int) -> int:
    return calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0))


def parse_time(text: str) -> int:
    """Parse an RFC3339 time (any fraction, ``Z`` or offset) or epoch seconds into UTC ns.

    Args:
        text: e.g. ``2024-03-05T14:30:00.412803517Z``, ``2019-06-20T00:00:00Z`` or
            ``1546293600.0``.

    Returns:
        Integer nanoseconds since the epoch.

    Raises:
        ValueError: the text is neither form.
    """
    text = text.strip()
    match = _RFC3339.match(text)
    if match:
        year, month, day, hour, minute, second, frac, zone = match.groups()
        # calendar.timegm's own sum (days * 86400 + ...), with the days of a date looked up once.
        seconds = _date_seconds(int(year), int(month), int(day)) + int(hour) * 3600 + int(minute) * 60 + int(second)
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
        return seconds * NS + int((frac or "0").ljust(9, "0"))
    try:
        value = Decimal(text)
    except InvalidOperation as e:
        raise ValueError(f"not an RFC3339 or epoch time: {text!r}") from e
    if not value.is_finite():
        raise ValueError(f"not an RFC3339 or epoch time: {text!r}")
    return int(value * NS)
