"""What every ctl command is, and the supervisor surface commands may use.

A command has a ``name``, a docstring whose first line is its help, ``parse(argv)`` on the
client side, ``execute(supervisor, args)`` on the server side (in the supervisor's actor
thread) and ``render(result)`` for people; ``--json`` prints the result instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from supervisor.ctl.commands.errors import BAD_ARGUMENTS, CommandError

if TYPE_CHECKING:
    import argparse


class Controllable(Protocol):
    """The supervisor as commands see it (``FakeSupervisor`` in the tests implements it too)."""

    def status(self) -> dict[str, Any]:
        """The status document."""

    def pause(self) -> dict[str, Any]:
        """Set the operator pause."""

    def resume(self) -> dict[str, Any]:
        """Clear the pause and latched reasons (may raise CommandError)."""

    def shutdown(self, trigger: str) -> dict[str, Any]:
        """Begin graceful shutdown."""

    def restart_role(self, role: str) -> dict[str, Any]:
        """Restart one role (may raise CommandError)."""

    def reconcile(self) -> dict[str, Any]:
        """Reconcile with the broker now (may raise CommandError)."""

    def flatten(self, confirmed: bool) -> dict[str, Any]:
        """Close every open trade and pause; without ``confirmed`` refuse, listing them."""


class Command:
    """Base class of ctl commands."""

    name: ClassVar[str] = ""
    has_arguments: ClassVar[bool] = False

    def parse(self, argv: list[str]) -> dict[str, Any]:
        """Client side: turn argv (after the command name) into args."""
        if not argv and not self.has_arguments:
            return {}
        import argparse  # noqa: PLC0415 (only when there is something to parse: ctl start-up)

        parser = argparse.ArgumentParser(prog=f"tradehost ctl {self.name}", description=self.help())
        self.add_arguments(parser)
        return vars(parser.parse_args(argv))

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare client-side arguments (none by default)."""

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Server side: check args sent over the wire (they may be anything)."""
        if args:
            raise CommandError(BAD_ARGUMENTS, f"{self.name} takes no arguments")
        return args

    def execute(self, supervisor: Controllable, args: dict[str, Any]) -> dict[str, Any]:
        """Server side: carry the command out."""
        raise NotImplementedError

    def render(self, result: dict[str, Any]) -> str:
        """Human-readable reply."""
        return str(result.get("message", "ok"))

    @classmethod
    def help(cls) -> str:
        """The first line of the docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0]
