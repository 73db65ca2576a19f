"""Feed role: market data in (OANDA pricing stream and candles), validated bars out.

Today the role is the process shell only: it runs the shared runtime (heartbeat, permit,
shutdown hook) and journals what reaches its topics. The pricing stream, bar validation and
reconnect logic arrive with the feed issue.
"""

from __future__ import annotations

from typing import ClassVar

from actors.base import RoleActor


class FeedActor(RoleActor):
    """The feed's actor."""

    ROLE: ClassVar[str] = "feed"
    TOPICS: ClassVar[tuple[str, ...]] = ()


ACTOR = FeedActor
