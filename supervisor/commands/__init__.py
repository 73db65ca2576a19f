"""The ctl commands, in an explicit registry (name -> command)."""

from __future__ import annotations

from supervisor.commands.base import Command
from supervisor.commands.flatten import Flatten
from supervisor.commands.pause import Pause
from supervisor.commands.reconcile import Reconcile
from supervisor.commands.restart import Restart
from supervisor.commands.resume import Resume
from supervisor.commands.shutdown import Shutdown
from supervisor.commands.status import Status

COMMANDS: dict[str, Command] = {
    c.name: c for c in (Status(), Pause(), Resume(), Shutdown(), Restart(), Reconcile(), Flatten())
}

__all__ = ["COMMANDS", "Command"]
