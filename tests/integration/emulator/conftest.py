"""Fixtures: an in-process emulator on loopback, the raw oandapyV20 client and an OandaBroker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import oandapyV20
import oandapyV20.oandapyV20 as oanda_core  # noqa: N813 - the submodule shares the package name
import pytest

from actors.broker.config import DEV_ACCOUNT_ID, DEV_TOKEN, BrokerConfig, Credentials
from actors.broker.emulator import AdminClient, EmulatorOptions, running_emulator
from actors.broker.oanda.client import OandaBroker
from actors.broker.oanda.session import register_environment

# A Wednesday afternoon: the market is open whatever day the tests run.
START = "2024-03-06T14:00:00Z"
EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "oanda-examples"


def example(name: str) -> dict[str, Any]:
    """One of the copied OANDA example payloads."""
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def poll_until(predicate: Callable[[], Any], *, timeout_s: float = 10.0, interval_s: float = 0.02) -> Any:
    """Call ``predicate`` until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + timeout_s
    value = predicate()
    while not value:
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s; last value: {value!r}")
        time.sleep(interval_s)
        value = predicate()
    return value


class Emu:
    """A running emulator: base URL, admin client, options."""

    def __init__(self, url: str, admin: AdminClient, options: EmulatorOptions) -> None:
        self.url = url
        self.admin = admin
        self.options = options
        self.account = options.account_id


def _options(**overrides: Any) -> EmulatorOptions:
    base: dict[str, Any] = {"start": START, "heartbeat_s": 0.2, "seed": 7}
    base.update(overrides)
    return EmulatorOptions(**base)


@pytest.fixture
def emu_factory() -> Iterator[Callable[..., Emu]]:
    """Start emulators with option overrides; all are stopped at teardown."""
    stack: list[Any] = []

    def start(**overrides: Any) -> Emu:
        options = _options(**overrides)
        cm = running_emulator(options)
        url, admin = cm.__enter__()
        stack.append(cm)
        return Emu(url, admin, options)

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


@pytest.fixture
def emu(emu_factory: Callable[..., Emu]) -> Emu:
    """One emulator with default test options."""
    return emu_factory()


@pytest.fixture
def api(emu: Emu) -> Iterator[oandapyV20.API]:
    """The unmodified oandapyV20 client pointed at the emulator."""
    key = register_environment(emu.url)
    assert key not in ("practice", "live")
    assert oanda_core.TRADING_ENVIRONMENTS["practice"]["api"] == "https://api-fxpractice.oanda.com"
    client = oandapyV20.API(access_token=DEV_TOKEN, environment=key, request_params={"timeout": 10})
    yield client
    client.close()


def make_broker(emu: Emu, **config: Any) -> OandaBroker:
    """An OandaBroker against ``emu`` with fast look-ups and no real sleeping in retries."""
    cfg = BrokerConfig(kind="emulator", api_url=emu.url, **config)
    return OandaBroker(
        cfg,
        Credentials(token=DEV_TOKEN, account_id=DEV_ACCOUNT_ID),
        lookup_delays_s=(0.05, 0.1, 0.2),
    )


@pytest.fixture
def broker(emu: Emu) -> Iterator[OandaBroker]:
    """An OandaBroker against the emulator."""
    b = make_broker(emu)
    yield b
    b.close()
