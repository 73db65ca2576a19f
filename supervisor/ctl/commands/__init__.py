"""The ctl commands, in an explicit registry (name -> command)."""

from __future__ import annotations

from supervisor.ctl.commands.base import Command
from supervisor.ctl.commands.flatten import Flatten
from supervisor.ctl.commands.pause import Pause
from supervisor.ctl.commands.reconcile import Reconcile
from supervisor.ctl.commands.restart import Restart
from supervisor.ctl.commands.resume import Resume
from supervisor.ctl.commands.shutdown import Shutdown
from supervisor.ctl.commands.status import Status

COMMANDS: dict[str, Command] = {
    c.name: c for c in (Status(), Pause(), Resume(), Shutdown(), Restart(), Reconcile(), Flatten())
}

__all__ = ["COMMANDS", "Command"]
