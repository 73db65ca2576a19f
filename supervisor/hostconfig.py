"""``HostConfig``: the core sections plus the roles' own, and the rules that span them.

The roles' config classes live beside their roles (``BrokerConfig`` in ``actors/broker``,
``FeedConfig`` in ``actors/feed.py``, ``ReconcilerConfig`` in ``actors/reconciler.py``); this
module gathers them. It imports the roles, so ``tradehost ctl``, which only needs the core
sections, never imports it (``supervisor.config.load_core_config``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from actors.broker.config import BrokerConfig, check_live_guard, load_credentials
from actors.errors import ConfigError
from actors.feed import FeedConfig
from actors.reconciler import ReconcilerConfig
from supervisor.config import ROLE_SECTIONS, CoreConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class HostConfig(CoreConfig):
    """The whole validated configuration of ``tradehost run``."""

    broker: BrokerConfig = field(default_factory=BrokerConfig)
    feed: FeedConfig = field(default_factory=FeedConfig)
    reconciler: ReconcilerConfig = field(default_factory=ReconcilerConfig)


if set(HostConfig.__dataclass_fields__) - set(CoreConfig.__dataclass_fields__) != set(ROLE_SECTIONS):
    raise TypeError("supervisor.config.ROLE_SECTIONS must name exactly the sections HostConfig adds")


def check_host_config(cfg: HostConfig, environ: Mapping[str, str]) -> None:
    """Rules across sections and the environment (secrets, live guard).

    Raises:
        ConfigError: one line per problem.
    """
    problems: list[str] = []
    for check in (
        lambda: check_live_guard(cfg.broker, cfg.host.mode, environ),
        lambda: load_credentials(environ, kind=cfg.broker.kind),
    ):
        try:
            check()
        except ConfigError as e:
            problems.extend(e.problems)
    if cfg.host.mode == "live" and cfg.broker.kind == "emulator":
        problems.append('host.mode: "live" needs broker.kind = "oanda" (the emulator is for shadow runs and tests)')
    unknown = sorted(set(cfg.feed.instruments) - set(cfg.broker.emulator.instruments))
    if cfg.broker.kind == "emulator" and unknown:
        problems.append(f"feed.instruments: {unknown} are not offered by broker.emulator.instruments")
    if problems:
        raise ConfigError(problems)
