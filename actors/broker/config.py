"""Broker configuration, credentials and the live-trading guard.

This module owns ``BrokerConfig`` (which broker, which OANDA environment, timeouts, pacing) and
its nested ``EmulatorConfig``, the ``Credentials`` (from ``broker.token_file``, a systemd
credential or the environment, never shown in full), and ``check_live_guard``, the pure rule
(with ``actors.core.golive``'s go-live gate) that refuses a live account unless the operator asked
for it twice. The config loader in ``supervisor/config.py`` walks these
dataclasses; every field carries ``metadata={"doc": ...}`` for it.

``EmulatorConfig`` is the one definition of the emulator's operator-facing options: each field
carries its default, its ``doc``, its ``check`` (a function of the value and the whole config
returning a problem or None) and, where the flag differs from ``--<name>``, its ``flag``. The
``[broker.emulator]`` section, ``EmulatorOptions`` (which derives from it) and the
``tradehost emulator`` command line are all built from these fields, so an option, its default,
its help and its validation exist once. ``__post_init__`` runs every check and raises
``EmulatorOptionsError`` (a ``ConfigError``) naming each bad key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

from actors.core.errors import ConfigError
from actors.core.golive import GoLiveEvidence, missing_for_live
from actors.core.secretfile import read_secret
from actors.core.timefmt import parse_time

__all__ = [
    "DEV_ACCOUNT_ID",
    "DEV_TOKEN",
    "ENV_ACCOUNT_ID",
    "ENV_CONFIRM_LIVE",
    "ENV_TOKEN",
    "BrokerConfig",
    "Credentials",
    "EmulatorConfig",
    "EmulatorOptionsError",
    "check_live_guard",
    "data_item",
    "emulator_base_url",
    "is_loopback",
    "load_credentials",
    "option",
    "start_ns",
]

ENV_TOKEN = "OANDA_TOKEN"  # noqa: S105 - the variable name, not a secret
ENV_ACCOUNT_ID = "OANDA_ACCOUNT_ID"
ENV_CONFIRM_LIVE = "TRADEHOST_CONFIRM_LIVE"
# systemd credential names (LoadCredential=NAME:/path in ops/tradehost.service).
CREDENTIAL_TOKEN = "oanda_token"  # noqa: S105 - a credential's name, not a secret
CREDENTIAL_ACCOUNT_ID = "oanda_account_id"

# Fixed, non-secret values the emulator accepts when the environment does not name any.
DEV_TOKEN = "tradehost-emulator-dev-token"  # noqa: S105 - public dev value for the emulator
DEV_ACCOUNT_ID = "101-001-0000000-001"

KINDS = ("emulator", "oanda")
OANDA_HEARTBEAT_S = 5.0
ENVIRONMENTS = ("practice", "live")


EMULATOR_SECTION = "broker.emulator"
MAX_SPEED = 100_000.0
MAX_HEARTBEAT_S = 300.0
MAX_BALANCE = Decimal(10) ** 12
# Market start times the emulator accepts (its history reaches 320 days further back).
START_RANGE = ("1971-01-01T00:00:00Z", "2200-01-01T00:00:00Z")

Check = Callable[[Any, Any], str | None]


class EmulatorOptionsError(ConfigError):
    """Invalid emulator options, one problem per bad field.

    Args:
        by_field: ``(field name, problem)`` pairs.
        prefix: how the keys are named in ``problems`` (``broker.emulator`` for the config file).

    Attributes:
        by_field: the pairs, for callers that name the fields their own way (the CLI's flags).
    """

    def __init__(self, by_field: list[tuple[str, str]], *, prefix: str = EMULATOR_SECTION) -> None:
        self.by_field = list(by_field)
        super().__init__([f"{prefix}.{name}: {problem}" for name, problem in self.by_field])


def option(default: Any, doc: str, check: Check | None = None, **extra: Any) -> Any:
    """A dataclass field carrying everything about one emulator option.

    Args:
        default: the default (immutable).
        doc: one line for ``conf/default.toml``, ``--help`` and the docs.
        check: ``check(value, config)`` returns a problem (without the key) or None. A value of
            the wrong type is left to the config loader or the CLI parser, which name it.
        extra: more metadata: ``flag`` (the CLI flag when not ``--<name>``), ``metavar``,
            ``nargs="*"`` (a list flag taking several arguments; other lists are comma-separated),
            ``env`` (an environment variable holding the CLI default).
    """
    return field(default=default, metadata={"doc": doc, "check": check, **extra})


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``::1`` and any address of 127.0.0.0/8."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _known_instruments() -> Mapping[str, Any]:
    # The emulator's table; imported late because the emulator package imports this module.
    from actors.broker.emulator.instruments import SPECS  # noqa: PLC0415

    return SPECS


def _check_host(value: Any, config: Any) -> str | None:
    if not isinstance(value, str) or is_loopback(value):
        return None
    return (
        f"{value!r} is not a loopback address (127.0.0.0/8, localhost or ::1): "
        "the emulator's admin API has no authentication"
    )


def _check_port(value: Any, config: Any) -> str | None:
    if _is_int(value) and not 0 <= value <= 65535:
        return f"{value} is not a TCP port (0-65535)"
    return None


def _check_seed(value: Any, config: Any) -> str | None:
    if _is_int(value) and not -(2**63) <= value < 2**63:
        return f"{value} is not a 64-bit integer"
    return None


def _check_speed(value: Any, config: Any) -> str | None:
    if _is_number(value) and not (math.isfinite(value) and 0 < value <= MAX_SPEED):
        return f"{value!r} is not a speed (market seconds per wall second, > 0 and <= {MAX_SPEED:g})"
    return None


def _check_heartbeat(value: Any, config: Any) -> str | None:
    if _is_number(value) and not (math.isfinite(value) and 0 < value <= MAX_HEARTBEAT_S):
        return f"{value!r} is not a heartbeat interval (> 0 and <= {MAX_HEARTBEAT_S:g} seconds)"
    return None


def _check_instruments(value: Any, config: Any) -> str | None:
    if not isinstance(value, tuple) or not all(isinstance(name, str) for name in value):
        return None
    if not value:
        return "must name at least one instrument"
    problems = []
    duplicates = sorted({name for name in value if value.count(name) > 1})
    if duplicates:
        problems.append(f"{', '.join(duplicates)} listed more than once")
    known = _known_instruments()
    unknown = sorted({name for name in value if name not in known})
    if unknown:
        problems.append(f"unknown instruments {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return "; ".join(problems) or None


def start_ns(text: str) -> int:
    """The market start of ``text`` (RFC3339 or epoch seconds) in UTC ns.

    Raises:
        ValueError: not a time, or outside ``START_RANGE``.
    """
    text = text.strip()
    try:
        epoch = Decimal(text)
    except (InvalidOperation, ValueError):
        epoch = None
    if epoch is not None and epoch.is_finite() and epoch != 0 and epoch.adjusted() > 11:
        raise ValueError(f"{text!r} is out of range")  # before int() builds a huge number
    try:
        ts = parse_time(text)
    except (ValueError, ArithmeticError) as e:
        raise ValueError(f"{text!r} is not a time") from e
    low, high = (parse_time(t) for t in START_RANGE)
    if not low <= ts < high:
        raise ValueError(f"{text!r} is outside {START_RANGE[0][:10]}..{START_RANGE[1][:10]}")
    return ts


def _check_start(value: Any, config: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        start_ns(value)
    except ValueError as e:
        return f"{e}; expected empty (now), RFC3339 (2024-03-06T14:00:00Z) or epoch seconds"
    return None


def _check_balance(value: Any, config: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        amount = Decimal(value.strip())
    except (InvalidOperation, ValueError):
        return f"{value!r} is not a decimal number"
    if not amount.is_finite() or not 0 < amount <= MAX_BALANCE:
        return f"{value!r} is not a balance (a finite decimal > 0 and <= {MAX_BALANCE:,})"
    return None


def data_item(item: str) -> tuple[str, Path]:
    """The instrument and path of one replay item: ``INSTRUMENT=PATH``, or a path whose file name
    starts with a known instrument (``EUR_USD_M1.csv``); ``actors.core.candlespec.parse_spec`` is the
    one parser, this adds that the emulator must know the instrument.

    Raises:
        ValueError: neither form, or an unknown instrument.
    """
    from actors.core.candlespec import CandleFileError, parse_spec  # noqa: PLC0415 - pandas, only when used

    known = _known_instruments()
    try:
        name, path = parse_spec(item, known=list(known))
    except CandleFileError as e:
        raise ValueError(str(e)) from e
    if name not in known:
        raise ValueError(f"{item!r}: unknown instrument {name!r} (known: {', '.join(sorted(known))})")
    return name, path


def _check_data(value: Any, config: Any) -> str | None:
    if not isinstance(value, tuple) or not all(isinstance(item, str) for item in value):
        return None
    problems: list[str] = []
    seen: dict[str, str] = {}
    for item in value:
        try:
            name, path = data_item(item)
        except ValueError as e:
            problems.append(str(e))
            continue
        instruments = getattr(config, "instruments", ())
        if isinstance(instruments, tuple) and name not in instruments:
            problems.append(f"{item!r}: {name} is not one of the emulated instruments")
        if name in seen:
            problems.append(f"{item!r}: a second file for {name} (first: {seen[name]!r})")
        seen.setdefault(name, item)
        if not path.is_file():
            problems.append(f"{item!r}: {path} is not a file")
        elif not os.access(path, os.R_OK):
            problems.append(f"{item!r}: {path} is not readable")
    return "; ".join(problems) or None


@dataclass(frozen=True, slots=True, kw_only=True)
class EmulatorConfig:
    """Options of the embedded OANDA-compatible emulator (used when ``kind = "emulator"``).

    Raises:
        EmulatorOptionsError: at construction, one problem per invalid option.
    """

    PREFIX: ClassVar[str] = EMULATOR_SECTION

    host: str = option(
        "127.0.0.1",
        "interface the emulator binds to; loopback only (127.0.0.0/8, localhost, ::1): the admin API "
        "has no authentication",
        _check_host,
    )
    port: int = option(0, "TCP port of the emulator; 0 picks a free one", _check_port)
    seed: int = option(1, "seed of the synthetic market (same seed, same prices)", _check_seed, metavar="N")
    speed: float = option(
        1.0, f"market seconds per wall-clock second (1 = real time, at most {MAX_SPEED:g})", _check_speed, metavar="X"
    )
    instruments: tuple[str, ...] = option(
        ("EUR_USD", "GBP_USD", "USD_JPY"),
        "instruments the emulated account can trade",
        _check_instruments,
        metavar="A,B",
    )
    data: tuple[str, ...] = option(
        (),
        "candle CSV files to replay (time,open,high,low,close[,volume]), each INSTRUMENT=PATH or a "
        "path whose file name starts with the instrument; other instruments stay synthetic",
        _check_data,
        nargs="*",
        metavar="CANDLE_FILE",
    )
    start: str = option(
        "",
        "market start time, RFC3339 or epoch seconds; empty means now (replay: candle 5000 or the middle of the file)",
        _check_start,
        metavar="TIME",
        time=True,  # a TOML datetime is taken too (supervisor.config)
    )
    balance: str = option("100000", "opening balance in the home currency (USD)", _check_balance, metavar="N")
    heartbeat_s: float = option(
        5.0, "wall-clock seconds between stream heartbeats", _check_heartbeat, flag="--heartbeat", metavar="S"
    )

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            problem = check(getattr(self, f.name), self) if check is not None else None
            if problem:
                problems.append((f.name, problem))
        if problems:
            raise EmulatorOptionsError(problems, prefix=self.PREFIX)


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
    token_file: str = field(
        default="",
        metadata={
            "doc": "file holding the OANDA token (mode 0600, else refused); empty: the systemd credential "
            "oanda_token, else OANDA_TOKEN"
        },
    )

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
        raise TypeError("Credentials are not picklable; each process reads them with load_credentials")


def load_credentials(environ: Mapping[str, str], *, kind: str = "oanda", token_file: str = "") -> Credentials:
    """Read the OANDA token and account id (``actors.core.secretfile.read_secret``).

    The token comes from the first source set: ``broker.token_file``, the systemd credential
    ``oanda_token`` (``$CREDENTIALS_DIRECTORY/oanda_token``), ``OANDA_TOKEN``. The account id from
    the credential ``oanda_account_id``, else ``OANDA_ACCOUNT_ID``. A file readable by group or
    others is refused.

    Args:
        environ: usually ``os.environ``.
        kind: ``"emulator"`` falls back to ``DEV_TOKEN`` / ``DEV_ACCOUNT_ID`` when nothing is
            set; ``"oanda"`` requires both.
        token_file: ``broker.token_file`` (empty: not configured).

    Returns:
        The credentials.

    Raises:
        ConfigError: a secret file is refused, or a value is missing for a real OANDA broker.
    """
    token = read_secret(
        environ, key="broker.token_file", file=token_file, credential=CREDENTIAL_TOKEN, env_var=ENV_TOKEN
    ).strip()
    account_id = read_secret(environ, key="broker", credential=CREDENTIAL_ACCOUNT_ID, env_var=ENV_ACCOUNT_ID).strip()
    if kind == "emulator":
        return Credentials(token=token or DEV_TOKEN, account_id=account_id or DEV_ACCOUNT_ID)
    problems = []
    if not token:
        problems.append(
            f"broker: {ENV_TOKEN} is not set (export the OANDA personal access token, or set broker.token_file "
            f"or the systemd credential {CREDENTIAL_TOKEN})"
        )
    if not account_id:
        problems.append(
            f"broker: {ENV_ACCOUNT_ID} is not set (export the v20 account id, or the systemd credential "
            f"{CREDENTIAL_ACCOUNT_ID})"
        )
    if problems:
        raise ConfigError(problems)
    return Credentials(token=token, account_id=account_id)


def check_live_guard(
    broker: BrokerConfig, mode: str, environ: Mapping[str, str], evidence: GoLiveEvidence | None = None
) -> None:
    """Refuse a live OANDA environment unless the host mode, the go-live evidence and the operator
    all say so.

    The operator's ``TRADEHOST_CONFIRM_LIVE=yes`` is the last step: it is asked for only once
    everything else is in place. What the go-live gate finds missing (``actors.core.golive``: a
    passed, recent ``tradehost report`` verdict on the configured model, alert mail) is one line.

    Args:
        broker: the broker section.
        mode: ``host.mode`` (``"shadow"`` or ``"live"``).
        environ: usually ``os.environ``; must hold ``TRADEHOST_CONFIRM_LIVE=yes`` for live.
        evidence: what the go-live gate judges (None: nothing was read, which refuses live).

    Raises:
        ConfigError: ``broker.environment = "live"`` without all of it.
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
    missing = ["the go-live evidence (nothing was read)"] if evidence is None else missing_for_live(evidence)
    if missing:
        problems.append(f'broker.environment: "live" refused, missing: {"; ".join(missing)}')
    if not problems and environ.get(ENV_CONFIRM_LIVE, "") != "yes":
        problems.append(f'broker.environment: "live" needs {ENV_CONFIRM_LIVE}=yes in the environment (the last step)')
    if problems:
        raise ConfigError(problems)


def emulator_base_url(config: EmulatorConfig, port: int | None = None) -> str:
    """Return ``http://host:port`` of an emulator (``port`` overrides ``config.port``; an IPv6
    host is bracketed)."""
    actual = config.port if port is None else port
    if actual <= 0:
        raise ConfigError("broker.emulator.port: the emulator's port is not known yet (0)")
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"http://{host}:{actual}"
