"""What the ``tradehost`` commands share: the configuration options and how they are read.

``-c/--config`` and ``--set KEY=VALUE`` (``add_config_args``), the configuration path they name
(``conf_path``: ``conf/default.toml`` when it exists and none is given), a configuration error
printed one problem a line with exit 2 (``config_error``), the ctl help text, and the defaults the
parser and a command both read. Imported on the ``tradehost ctl`` path: stdlib only.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from supervisor.ctl.client import EXIT_USAGE

if TYPE_CHECKING:
    import argparse

    from actors.core.errors import ConfigError


DEFAULT_CONF = "conf/default.toml"
BACKTEST_BARS = 2000  # tradehost backtest --bars default


CTL_HELP = """\
commands:
  status [--json]   state, no-trade reasons, per-role pid/status/restarts/heartbeat age/rss
  pause             stop opening new trades (an operator latch; exits go on)
  resume            clear the pause and latched reasons (refused while a role is down for good)
  shutdown          graceful shutdown: permit revoked, roles stopped in reverse order, exit 0
  restart ROLE      stop one role gracefully and start it again (ROLE: emulator, watchdog,
                    reconciler, feed, model, risk, execution)
  reconcile         reconcile with the broker now (no new entries until it is through)
  flatten [--yes]   close every open trade, then pause (without --yes: list them, exit 1)

exit codes: 0 ok, 1 refused or failed, 2 usage, 3 host not running
"""


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Add ``-c/--config`` and ``--set KEY=VALUE`` to a command's parser."""
    parser.add_argument(
        "-c",
        "--config",
        metavar="CONF",
        default=None,
        help=f"TOML configuration (default: {DEFAULT_CONF} if it exists, else built-in defaults)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one key, e.g. --set supervisor.max_restarts=3 (VALUE is read as TOML, "
        "else as a plain string); may be repeated",
    )


def conf_path(args: argparse.Namespace) -> str | None:
    """The configuration file to read: ``--config``, else ``conf/default.toml`` if it exists, else
    None (the built-in defaults)."""
    if args.config is None and os.path.exists(DEFAULT_CONF):  # noqa: PTH110 (no pathlib: ctl start-up)
        return DEFAULT_CONF
    path: str | None = args.config
    return path


def config_error(e: ConfigError) -> int:
    """Print each problem of ``e`` on its own line; returns the usage exit code (2)."""
    for problem in e.problems:
        print(f"tradehost: config error: {problem}", file=sys.stderr)
    return EXIT_USAGE
