"""``open_broker``: the one way a role gets a broker client.

Credentials are read from the environment of the role's own process (they are never pickled or
passed through messages); a missing secret raises ``ConfigError`` with a one-line reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from actors.broker.config import BrokerConfig, load_credentials
from actors.broker.oanda import OandaBroker


def open_broker(config: BrokerConfig, environ: Mapping[str, str] | None = None) -> OandaBroker:
    """A new ``OandaBroker`` for ``config`` (one per thread: clients are not shared)."""
    credentials = load_credentials(os.environ if environ is None else environ, kind=config.kind)
    return OandaBroker(config, credentials)
