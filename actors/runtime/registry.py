"""The one role registry: every child of the tree, its module, its config section, its order.

Everything that needs the list of roles derives it from ``ROLES``: the supervisor's child specs
and start order (stop order is the reverse), the config loader's sections (``[feed]`` builds
the ``CONFIG`` class of the feed's actor), the sections ``tradehost ctl`` skips, the modules the
forkserver preloads and the runtime's actor lookup. Adding a role is one line here plus its
module (which defines ``ACTOR``, a ``RoleActor`` subclass, and sets ``CONFIG`` on it when the
role has a section). This module imports nothing of the roles, so ``tradehost ctl`` can read it
without loading pandas, CatBoost or oandapyV20.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.runtime.actor import RoleActor

__all__ = [
    "EMULATOR",
    "ROLES",
    "SHARED_SECTIONS",
    "RoleSpec",
    "actor_class",
    "config_class",
    "role_names",
    "role_sections",
    "spec",
]

EMULATOR = "emulator"


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleSpec:
    """One child of the tree.

    Attributes:
        name: the role's name (process title, ctl, journal ``src``).
        module: the module that defines ``ACTOR``.
        section: where the role's config lives in the TOML: a top-level section the role owns
            (``"feed"``), a dotted path into a shared section (``"broker.emulator"``), or None
            for a role without configuration. The class is the actor's ``CONFIG``.
        with_emulator_only: started only when ``broker.kind = "emulator"``.
        others_wait: the roles after this one are started only once it has heartbeated (the
            emulator: its server accepts connections by then, so no first connect is refused).
        book: the role's part in the shadow book in shadow mode (``actors.broker.connect``):
            ``"writer"`` (the execution role: the only one that places virtual orders),
            ``"reader"`` (the reconciler: the virtual account is its broker) or ``""``.
        reads: other sections this role reads too: other roles' (the model reads ``feed``: the
            bars it gets are the feed's instruments and granularity) or shared ones (``broker``,
            ``alerts``); ``RoleActor.shared`` hands them out.
        config: the name of the role's config class in ``actors.core.config`` (its actor's ``CONFIG``
            is the same class; a test keeps them equal), so loading the configuration never imports
            a role's module (nor pandas or CatBoost with it).
        verifies_protection: at shutdown this role checks SL/TP of every open trade at the broker
            (the execution role): its shutdown deadline grows by ``supervisor.shutdown_protection_s``
            and its ``ProtectionReport`` decides the host's exit code.
    """

    name: str
    module: str
    section: str | None = None
    with_emulator_only: bool = False
    others_wait: bool = False
    book: str = ""
    reads: tuple[str, ...] = ()
    config: str = ""
    verifies_protection: bool = False

    @property
    def owns_section(self) -> bool:
        """True when ``section`` is a top-level TOML section of this role's own."""
        return self.section is not None and "." not in self.section


# Start order; the supervisor stops them in reverse. The emulator is first up and last down.
ROLES: tuple[RoleSpec, ...] = (
    RoleSpec(
        name=EMULATOR,
        module="actors.roles.emulator",
        section="broker.emulator",
        reads=("broker",),
        with_emulator_only=True,
        others_wait=True,
    ),
    RoleSpec(
        name="watchdog",
        module="actors.roles.watchdog.actor",
        section="watchdog",
        config="WatchdogConfig",
        reads=("broker", "feed", "alerts"),
    ),
    RoleSpec(
        name="reconciler",
        module="actors.roles.reconciler.actor",
        section="reconciler",
        config="ReconcilerConfig",
        book="reader",
        reads=("risk", "feed"),
    ),
    RoleSpec(name="feed", module="actors.roles.feed", section="feed", config="FeedConfig"),
    RoleSpec(name="model", module="actors.roles.model", section="model", config="ModelConfig", reads=("feed",)),
    RoleSpec(
        name="risk", module="actors.roles.risk.actor", section="risk", config="RiskConfig", reads=("feed", "execution")
    ),
    RoleSpec(
        name="execution",
        module="actors.roles.execution.actor",
        section="execution",
        config="ExecutionConfig",
        book="writer",
        reads=("feed", "risk"),
        verifies_protection=True,
    ),
)

# Sections several roles read (their classes are named in supervisor/hostconfig.py).
SHARED_SECTIONS: tuple[str, ...] = ("broker", "alerts")

_BY_NAME = {s.name: s for s in ROLES}


def spec(name: str) -> RoleSpec:
    """The spec of role ``name``.

    Raises:
        KeyError: no such role.
    """
    return _BY_NAME[name]


def role_names(*, with_emulator: bool) -> tuple[str, ...]:
    """The children of a tree in start order."""
    return tuple(s.name for s in ROLES if with_emulator or not s.with_emulator_only)


def role_sections() -> tuple[str, ...]:
    """The top-level TOML sections the roles own, in start order."""
    return tuple(s.section for s in ROLES if s.owns_section and s.section is not None)


def config_class(name: str) -> type[object] | None:
    """The config class of role ``name`` (from ``actors.core.config``), or None without a section
    of its own."""
    role = spec(name)
    if not role.config:
        return None
    from actors.core import config  # noqa: PLC0415 - the registry itself stays import-free for ctl

    cls: type[object] = getattr(config, role.config)
    return cls


def actor_class(name: str) -> type[RoleActor[object, Any]]:
    """The actor class of role ``name`` (imports its module; preloaded in the forkserver)."""
    module = importlib.import_module(spec(name).module)
    cls: type[RoleActor[object, Any]] = module.ACTOR
    return cls
