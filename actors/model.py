"""Model role: rolling feature windows and CatBoost predictions, signals out.

Today the role is the process shell only (heartbeat, permit, shutdown hook) and journals the
bars that reach it. pandas and CatBoost are imported here because this role's work needs them;
the forkserver preloads this module, so a restarted model process starts with them in memory.
"""

from __future__ import annotations

from typing import ClassVar

import catboost  # noqa: F401  (preloaded into the forkserver: see module docstring)
import pandas  # noqa: F401

from actors.base import RoleActor
from actors.messages import TOPIC_MD_BAR


class ModelActor(RoleActor[None]):
    """The model's actor."""

    ROLE: ClassVar[str] = "model"
    TOPICS: ClassVar[tuple[str, ...]] = (TOPIC_MD_BAR,)


ACTOR = ModelActor
