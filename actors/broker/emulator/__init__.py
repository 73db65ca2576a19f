"""An OANDA v20-compatible emulator: REST, both streams, a synthetic or replayed market, faults.

Start one in-process with ``running_emulator(EmulatorOptions(...))`` (tests), in a supervised
child with ``serve(options, ready=..., stop=...)``, or from the shell with
``python -m actors.broker.emulator --help``. The unmodified oandapyV20 client talks to it once
its base URL is registered in ``TRADING_ENVIRONMENTS`` (``actors.broker.oanda`` does that).
"""

from __future__ import annotations

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
