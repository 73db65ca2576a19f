"""Broker configuration, credentials and the live-trading guard.

This module owns ``BrokerConfig`` (which broker, which OANDA environment, timeouts, pacing) and
its nested ``EmulatorConfig``, the ``Credentials`` read from the environment (never from files,
never shown in full), and ``check_live_guard``, the pure rule that refuses a live account unless
the operator asked for it twice. The config loader in ``supervisor/config.py`` walks these
dataclasses; every field carries ``metadata={"doc": ...}`` for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from actors.errors import ConfigError

__all__ = [
    "DEV_ACCOUNT_ID",
    "DEV_TOKEN",
    "ENV_ACCOUNT_ID",
    "ENV_CONFIRM_LIVE",
    "ENV_TOKEN",
    "BrokerConfig",
    "Credentials",
    "EmulatorConfig",
    "check_live_guard",
    "emulator_base_url",
    "load_credentials",
]

ENV_TOKEN = "OANDA_TOKEN"  # noqa: S105 - the variable name, not a secret
ENV_ACCOUNT_ID = "OANDA_ACCOUNT_ID"
ENV_CONFIRM_LIVE = "TRADEHOST_CONFIRM_LIVE"

# Fixed, non-secret values the emulator accepts when the environment does not name any.
DEV_TOKEN = "tradehost-emulator-dev-token"  # noqa: S105 - public dev value for the emulator
DEV_ACCOUNT_ID = "101-001-0000000-001"

KINDS = ("emulator", "oanda")
OANDA_HEARTBEAT_S = 5.0
ENVIRONMENTS = ("practice", "live")


@dataclass(frozen=True, slots=True, kw_only=True)
class EmulatorConfig:
    """Options of the embedded OANDA-compatible emulator (used when ``kind = "emulator"``)."""

    host: str = field(default="127.0.0.1", metadata={"doc": "interface the emulator binds to"})
    port: int = field(default=0, metadata={"doc": "TCP port of the emulator; 0 picks a free one"})
    seed: int = field(default=1, metadata={"doc": "seed of the synthetic market (same seed, same prices)"})
    speed: float = field(default=1.0, metadata={"doc": "market seconds per wall-clock second (1 = real time)"})
    instruments: tuple[str, ...] = field(
        default=("EUR_USD", "GBP_USD", "USD_JPY"),
        metadata={"doc": "instruments the emulated account can trade"},
    )
    start: str = field(default="", metadata={"doc": "RFC3339 market start time; empty means the current time"})
    balance: str = field(default="100000", metadata={"doc": "opening balance in the home currency"})
    heartbeat_s: float = field(default=5.0, metadata={"doc": "wall-clock seconds between stream heartbeats"})


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerConfig:
    """Which broker the host talks to and how politely."""

    kind: str = field(default="emulator", metadata={"doc": '"emulator" or "oanda"'})
    environment: str = field(default="practice", metadata={"doc": '"practice" or "live" OANDA environment'})
    api_url: str = field(default="", metadata={"doc": "REST base URL override (proxy, emulator); empty = OANDA's"})
    stream_url: str = field(default="", metadata={"doc": "stream base URL override; empty = api_url or OANDA's"})
    timeout_s: float = field(default=10.0, metadata={"doc": "timeout of each REST request"})
    stream_timeout_s: float = field(
        default=20.0, metadata={"doc": "stream read timeout; must exceed the 5 s heartbeat"}
    )
    max_requests_per_s: float = field(
        default=100.0, metadata={"doc": "pacing limit for REST requests (OANDA allows 120)"}
    )
    max_new_connections_per_s: float = field(
        default=2.0, metadata={"doc": "pacing limit for new connections (OANDA allows 2)"}
    )
    emulator: EmulatorConfig = field(default_factory=EmulatorConfig, metadata={"doc": "emulator options"})

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.kind not in KINDS:
            problems.append(f"broker.kind: expected one of {KINDS}, got {self.kind!r}")
        if self.environment not in ENVIRONMENTS:
            problems.append(f"broker.environment: expected one of {ENVIRONMENTS}, got {self.environment!r}")
        for name in ("timeout_s", "stream_timeout_s", "max_requests_per_s"):
            if getattr(self, name) <= 0:
                problems.append(f"broker.{name}: must be > 0")
        # The read timeout must outlast the stream's heartbeat: OANDA's 5 s, or the embedded
        # emulator's (an emulator given by api_url is the tester's business).
        heartbeat_s = OANDA_HEARTBEAT_S if self.kind == "oanda" else None
        if self.kind == "emulator" and not self.api_url:
            heartbeat_s = self.emulator.heartbeat_s
        if heartbeat_s is not None and self.stream_timeout_s <= heartbeat_s:
            problems.append(
                f"broker.stream_timeout_s: must exceed the {heartbeat_s:g} s stream heartbeat "
                f"(got {self.stream_timeout_s:g})"
            )
        if self.max_new_connections_per_s <= 0:
            problems.append("broker.max_new_connections_per_s: must be > 0")
        for name in ("api_url", "stream_url"):
            url = getattr(self, name)
            if url and (url.endswith("/") or not url.startswith(("http://", "https://"))):
                problems.append(f"broker.{name}: must be http(s)://host[:port][/prefix] without a trailing slash")
        if problems:
            raise ConfigError(problems)


class Credentials:
    """The OANDA token and account id; the token never appears in ``repr`` or ``str``.

    Args:
        token: the personal access token (secret).
        account_id: the v20 account id, e.g. ``101-004-1234567-001``.
    """

    __slots__ = ("_token", "account_id")

    def __init__(self, *, token: str, account_id: str) -> None:
        self._token = token
        self.account_id = account_id

    @property
    def token(self) -> str:
        """The secret token; pass it only to the HTTP client."""
        return self._token

    def scrub(self, text: str) -> str:
        """Return ``text`` with every occurrence of the token replaced by ``***``."""
        return text.replace(self._token, "***") if self._token else text

    def __repr__(self) -> str:
        return f"Credentials(token='***', account_id={self.account_id!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self._token, self.account_id) == (other._token, other.account_id)

    def __hash__(self) -> int:
        return hash((self._token, self.account_id))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Credentials are not picklable; read them from the environment instead")


def load_credentials(environ: Mapping[str, str], *, kind: str = "oanda") -> Credentials:
    """Read ``OANDA_TOKEN`` and ``OANDA_ACCOUNT_ID`` from ``environ``.

    Args:
        environ: usually ``os.environ``.
        kind: ``"emulator"`` falls back to ``DEV_TOKEN`` / ``DEV_ACCOUNT_ID`` when a variable is
            absent; ``"oanda"`` requires both.

    Returns:
        The credentials.

    Raises:
        ConfigError: a variable is missing or empty for a real OANDA broker.
    """
    token = environ.get(ENV_TOKEN, "").strip()
    account_id = environ.get(ENV_ACCOUNT_ID, "").strip()
    if kind == "emulator":
        return Credentials(token=token or DEV_TOKEN, account_id=account_id or DEV_ACCOUNT_ID)
    problems = []
    if not token:
        problems.append(f"broker: {ENV_TOKEN} is not set (export the OANDA personal access token)")
    if not account_id:
        problems.append(f"broker: {ENV_ACCOUNT_ID} is not set (export the v20 account id)")
    if problems:
        raise ConfigError(problems)
    return Credentials(token=token, account_id=account_id)


def check_live_guard(broker: BrokerConfig, mode: str, environ: Mapping[str, str]) -> None:
    """Refuse a live OANDA environment unless the host mode and the operator both say so.

    Args:
        broker: the broker section.
        mode: ``host.mode`` (``"shadow"`` or ``"live"``).
        environ: usually ``os.environ``; must hold ``TRADEHOST_CONFIRM_LIVE=yes`` for live.

    Raises:
        ConfigError: ``broker.environment = "live"`` without both confirmations.
    """
    live_url = any("fxtrade" in url for url in (broker.api_url, broker.stream_url))
    if broker.environment != "live" and not live_url:
        return
    problems = []
    if live_url and broker.environment != "live":
        problems.append('broker.api_url: points at OANDA\'s live hosts; say broker.environment = "live"')
    if broker.kind != "oanda":
        problems.append('broker.environment: "live" needs broker.kind = "oanda"')
    if mode != "live":
        problems.append(f'broker.environment: "live" needs host.mode = "live" (got {mode!r})')
    if environ.get(ENV_CONFIRM_LIVE, "") != "yes":
        problems.append(f'broker.environment: "live" needs {ENV_CONFIRM_LIVE}=yes in the environment')
    if problems:
        raise ConfigError(problems)


def emulator_base_url(config: EmulatorConfig, port: int | None = None) -> str:
    """Return ``http://host:port`` of an emulator (``port`` overrides ``config.port``)."""
    actual = config.port if port is None else port
    if actual <= 0:
        raise ConfigError("broker.emulator.port: the emulator's port is not known yet (0)")
    return f"http://{config.host}:{actual}"
