"""``ctl flatten [--yes]``: close every open trade, then stay paused.

Request ``{"command": "flatten", "args": {"yes": bool}}``. Without ``--yes`` it is refused (exit
1) with the list of the open trades it would close; with it the host pauses first (no new
entries), then the execution role closes every open trade at the market; reply ``{"message",
"trades", "state"}``. ``ctl resume`` ends the pause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from supervisor.ctl.commands.base import Command, Controllable
from supervisor.ctl.commands.errors import BAD_ARGUMENTS, CommandError

if TYPE_CHECKING:
    import argparse


class Flatten(Command):
    """Close every open trade and pause (--yes to do it; without, list what would be closed)."""

    name: ClassVar[str] = "flatten"
    has_arguments: ClassVar[bool] = True

    def parse(self, argv: list[str]) -> dict[str, Any]:
        """``[--yes]``."""
        if argv in ([], ["--yes"]):
            return {"yes": argv == ["--yes"]}
        return super().parse(argv)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """--yes confirms."""
        parser.add_argument("--yes", action="store_true", help="close every open trade and pause")

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """``yes`` is a boolean, nothing else."""
        if set(args) - {"yes"} or not isinstance(args.get("yes", False), bool):
            raise CommandError(BAD_ARGUMENTS, "flatten takes only yes: true|false")
        return {"yes": bool(args.get("yes", False))}

    def execute(self, supervisor: Controllable, args: dict[str, Any]) -> dict[str, Any]:
        """Flatten, or refuse with the list."""
        return supervisor.flatten(bool(args["yes"]))
