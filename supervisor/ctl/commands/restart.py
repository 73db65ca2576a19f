"""``ctl restart ROLE``: stop one role gracefully and start it again.

Request ``{"command": "restart", "args": {"role": "feed"}}``; reply ``{"message", "pid"}``.
Also brings back a role that exceeded its restart intensity (its restart count starts over);
latched reasons stay until ``ctl resume``. Refused while shutting down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from actors.runtime.registry import role_names
from supervisor.ctl.commands.base import Command, Controllable
from supervisor.ctl.commands.errors import BAD_ARGUMENTS, CommandError

if TYPE_CHECKING:
    import argparse

ALL_CHILDREN = role_names(with_emulator=True)


class Restart(Command):
    """Restart one role: tradehost ctl restart ROLE."""

    name: ClassVar[str] = "restart"
    has_arguments: ClassVar[bool] = True

    def parse(self, argv: list[str]) -> dict[str, Any]:
        """``ROLE``; anything else goes to argparse for a proper usage error."""
        if len(argv) == 1 and argv[0] in ALL_CHILDREN:
            return {"role": argv[0]}
        return super().parse(argv)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """ROLE is one of the tree's children (the emulator included)."""
        parser.add_argument("role", choices=ALL_CHILDREN, help="the role to restart")

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Exactly one known role."""
        role = args.get("role")
        if set(args) != {"role"} or role not in ALL_CHILDREN:
            raise CommandError(BAD_ARGUMENTS, f"restart needs role, one of {', '.join(ALL_CHILDREN)}")
        return args

    def execute(self, supervisor: Controllable, args: dict[str, Any]) -> dict[str, Any]:
        """Restart the role."""
        return supervisor.restart_role(str(args["role"]))
