"""Watchdog role: heartbeats, memory, connection health and disk, alerts out.

Today the role is the process shell only (heartbeat, permit, shutdown hook) and journals the
health topics that reach it; the supervisor itself already detects dead and hung roles. Memory
limits, connection health and alert mail arrive with the watchdog issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from actors.base import RoleActor
from actors.messages import TOPIC_ALERT, TOPIC_EXEC_HEALTH, TOPIC_MD_HEALTH


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchdogConfig:
    """The ``[watchdog]`` section."""


class WatchdogActor(RoleActor[WatchdogConfig]):
    """The watchdog's actor."""

    ROLE: ClassVar[str] = "watchdog"
    TOPICS: ClassVar[tuple[str, ...]] = (TOPIC_MD_HEALTH, TOPIC_EXEC_HEALTH, TOPIC_ALERT)
    CONFIG: ClassVar[type[WatchdogConfig]] = WatchdogConfig


ACTOR = WatchdogActor
