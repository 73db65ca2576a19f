"""An OANDA v20-compatible emulator: REST, both streams, a synthetic or replayed market, faults.

Start one in-process with ``running_emulator(EmulatorOptions(...))`` (tests), in a supervised
child with ``serve(options, ready=..., stop=...)``, or from the shell with
``python -m actors.broker.emulator --help``. The unmodified oandapyV20 client talks to it once
its base URL is registered in ``TRADING_ENVIRONMENTS`` (``actors.broker.oanda`` does that).

The names below load on first use: validating ``[broker.emulator]`` needs only the instrument
table (``actors.broker.emulator.instruments``), not numpy and the HTTP server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.broker.emulator.admin import AdminClient
    from actors.broker.emulator.app import Emulator, EmulatorOptions, options_from_config
    from actors.broker.emulator.server import EmulatorServer, running_emulator, serve

__all__ = [
    "AdminClient",
    "Emulator",
    "EmulatorOptions",
    "EmulatorServer",
    "options_from_config",
    "running_emulator",
    "serve",
]

_HOMES = {
    "AdminClient": "admin",
    "Emulator": "app",
    "EmulatorOptions": "app",
    "options_from_config": "app",
    "EmulatorServer": "server",
    "running_emulator": "server",
    "serve": "server",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
