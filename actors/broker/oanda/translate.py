"""Translating broker failures into the tradehost error hierarchy (pure, no HTTP client).

``error_from_status`` maps an HTTP error status and its body, as oandapyV20's ``V20Error``
carries them, to the class that tells the caller what to do; ``error_from_fill_response`` turns a
201 without an ``orderFillTransaction`` into a ``BrokerRejectedError``. The token is scrubbed
from every message by the caller's ``scrub`` function.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from actors.core.errors import (
    BrokerAmbiguousError,
    BrokerError,
    BrokerFatalError,
    BrokerRejectedError,
    BrokerTemporaryError,
)

__all__ = ["error_from_fill_response", "error_from_status", "parse_error_body"]

_MAX_BODY_CHARS = 300


def _identity(text: str) -> str:
    return text


def parse_error_body(body: str) -> dict[str, Any]:
    """The JSON error body as a dict (``{}`` when it is not JSON, e.g. a proxy's HTML)."""
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _reject_transaction(parsed: dict[str, Any]) -> dict[str, Any] | None:
    for key, value in parsed.items():
        if key.endswith("RejectTransaction") and isinstance(value, dict):
            return value
    return None


def error_from_status(
    status: int,
    body: str,
    *,
    op: str,
    order_post: bool = False,
    scrub: Callable[[str], str] = _identity,
) -> BrokerError:
    """The error for an HTTP error answer.

    Args:
        status: the HTTP status (>= 400).
        body: the raw response body.
        op: what was attempted, for the message (e.g. ``"submit order"``).
        order_post: the request was an order submission: a 5xx then means the order may exist.
        scrub: removes secrets from text.

    Returns:
        ``BrokerFatalError`` (401/403, 404 without an ``errorCode``), ``BrokerTemporaryError``
        (429, 5xx on reads), ``BrokerAmbiguousError`` (5xx on an order submission) or
        ``BrokerRejectedError`` (other 4xx, with ``reason`` and the reject transaction).
    """
    parsed = parse_error_body(body)
    message = " ".join(str(parsed.get("errorMessage") or body[:_MAX_BODY_CHARS]).split())[:_MAX_BODY_CHARS]
    text = scrub(f"{op}: HTTP {status}: {message}")
    if status in (401, 403):
        return BrokerFatalError(text)
    if status == 429:
        return BrokerTemporaryError(text)
    if status >= 500:
        return BrokerAmbiguousError(text) if order_post else BrokerTemporaryError(text)
    reject = _reject_transaction(parsed)
    reason = _reason_text(parsed.get("errorCode"), "") or _reason_text((reject or {}).get("rejectReason"), "")
    if status == 404 and not reason:
        return BrokerFatalError(text + " (unknown account or endpoint)")
    return BrokerRejectedError(text, reason=reason or f"HTTP_{status}", transaction=reject)


def _reason_text(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value else default


def error_from_fill_response(response: Any, *, op: str) -> BrokerRejectedError | BrokerAmbiguousError | None:
    """None for a fill; ``BrokerRejectedError`` when the order was created and then cancelled;
    ``BrokerAmbiguousError`` when the answer shows neither (only a cancel proves "not filled"),
    or cannot be read (not an object, a cancel that is not an object)."""
    if not isinstance(response, dict):
        return BrokerAmbiguousError(f"{op}: the answer is not an object")
    if "orderFillTransaction" in response:
        return None
    cancel = response.get("orderCancelTransaction")
    if not cancel:
        return BrokerAmbiguousError(f"{op}: the answer has neither a fill nor a cancel")
    if not isinstance(cancel, dict):
        return BrokerAmbiguousError(f"{op}: the answer's orderCancelTransaction is not an object")
    reason = _reason_text(cancel.get("reason"), "CANCELLED")
    return BrokerRejectedError(f"{op}: order not filled: {reason}", reason=reason, transaction=cancel)
