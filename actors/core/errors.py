"""The tradehost exception hierarchy, named by what the caller must do.

- ``ConfigError``: refuse to start; the message names the dotted key.
- ``MessageDecodeError``: count, log and drop the message; never crash an actor.
- ``BrokerTemporaryError``: retry with backoff and jitter (timeouts, 5xx, 429, connection loss).
- ``BrokerRejectedError``: journal and alert; never retry.
- ``BrokerAmbiguousError``: the request may have reached the broker; resolve by client-id
  lookup, never by sending it again.
- ``BrokerFatalError``: wrong token or account (401/403); refuse to trade.
- ``InvariantViolation``: latch NO_TRADE.
"""

from __future__ import annotations


class TradehostError(Exception):
    """Base of every error tradehost raises on purpose."""


class ConfigError(TradehostError):
    """The configuration is invalid; the host refuses to start.

    Args:
        problems: one line per problem, each starting with the dotted key.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class MessageDecodeError(TradehostError):
    """A message on the wire is malformed, unknown or of an unsupported version."""


class BrokerError(TradehostError):
    """Base of every broker failure."""


class BrokerTemporaryError(BrokerError):
    """Timeout, connection error, 5xx or 429: the caller may retry with backoff."""


class BrokerNotReadyError(BrokerTemporaryError):
    """The broker is not there yet by design (the shadow book before the execution role wrote it):
    wait, without counting it as an outage."""


class BrokerRejectedError(BrokerError):
    """The broker refused the request (400 reject, or an order cancelled at fill time).

    Never retried. ``reason`` is the broker's reject/cancel reason, e.g. ``MARKET_HALTED``.
    """

    def __init__(self, message: str, *, reason: str = "", transaction: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.transaction = transaction or {}


class BrokerAmbiguousError(BrokerError):
    """The request may or may not have reached the broker: look it up by client id."""


class BrokerFatalError(BrokerError):
    """Wrong token or account (401/403): trading must not go on."""


class InvariantViolation(TradehostError):
    """Something that must never happen did; latch NO_TRADE."""
