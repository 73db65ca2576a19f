"""JSON encoding of emulator responses: times in the requested format, decimals as strings.

Handlers build plain dicts whose DateTime values are ``Ts`` objects; ``dumps`` renders them as
RFC3339 with nanoseconds or, for ``Accept-Datetime-Format: UNIX``, epoch strings.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from actors.core.timefmt import format_time

__all__ = [
    "ApiError",
    "Ts",
    "decimal_places",
    "dumps",
    "fmt_decimal",
    "fmt_money",
    "fmt_price",
    "parse_decimal",
]


class Ts:
    """A DateTime field (UTC ns), rendered per request (deliberately not a dataclass: orjson
    would serialize a dataclass itself instead of calling ``default``)."""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ts) and other.ns == self.ns

    def __hash__(self) -> int:
        return hash(self.ns)

    def __repr__(self) -> str:
        return f"Ts({self.ns})"


def dumps(obj: Any, *, unix: bool = False) -> bytes:
    """Serialize ``obj`` to compact JSON bytes."""

    def default(value: Any) -> Any:
        if isinstance(value, Ts):
            return format_time(value.ns, unix=unix)
        if isinstance(value, Decimal):
            return format(value, "f")
        raise TypeError(f"cannot encode {type(value).__name__}")

    return orjson.dumps(obj, default=default)


def fmt_price(value: float | Decimal, precision: int) -> str:
    """Format a price with exactly ``precision`` decimals."""
    if isinstance(value, Decimal):
        return format(value.quantize(Decimal(1).scaleb(-precision)), "f")
    return f"{value:.{precision}f}"


def fmt_money(value: Decimal) -> str:
    """Format a home-currency amount with 4 decimals, as OANDA does."""
    return format(value.quantize(Decimal("0.0001")), "f")


def fmt_decimal(value: Decimal) -> str:
    """Format units or other decimals without exponent notation."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class ApiError(Exception):
    """An HTTP error answer: status code and JSON body.

    Args:
        status: the HTTP status.
        body: the JSON body (``errorMessage`` at least).
    """

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("errorMessage", ""))
        self.status = status
        self.body = body


def parse_decimal(value: Any) -> Decimal | None:
    """A JSON string or number as a Decimal (floats via ``repr``), or None if invalid."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        value = repr(value)
    try:
        result = Decimal(str(value).strip())
    except ArithmeticError:
        return None
    return result if result.is_finite() else None


def decimal_places(value: Decimal) -> int:
    """Number of significant decimal places of ``value`` (``1.50`` has 1)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0
