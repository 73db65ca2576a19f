"""``tradehost journal archive --before DATE --out FILE``: move the journal's old rows into an
archive file (``supervisor.offline.archive``), refused while a host runs in the run directory.

Exit 0 moved (or nothing to move), 1 refused (a host runs; the copy did not verify), 2 usage:
a bad DATE, an ``--out`` that is not a tradehost archive, no journal.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from actors.core.errors import ConfigError
from supervisor.cli.options import conf_path, config_error
from supervisor.ctl.client import EXIT_OK, EXIT_REFUSED, EXIT_USAGE

if TYPE_CHECKING:
    import argparse


def cmd_journal(args: argparse.Namespace) -> int:
    """``tradehost journal archive``."""
    from actors.core.timefmt import format_rfc3339
    from supervisor.config import load_core_config
    from supervisor.host import JOURNAL_NAME
    from supervisor.offline.archive import ArchiveError, archive_before
    from supervisor.offline.inputs import InputError, parse_cli_time
    from supervisor.rundir import HostLock, HostLockedError

    def say(line: str) -> None:
        print(f"tradehost journal archive: {line}", file=sys.stderr)

    try:
        before_ns = parse_cli_time(args.before, "--before")
    except InputError as e:
        say(str(e))
        return EXIT_USAGE
    try:
        cfg = load_core_config(conf_path(args), args.overrides)
    except ConfigError as e:
        return config_error(e)
    journal = cfg.run_dir / JOURNAL_NAME
    if not journal.is_file():
        say(f"{journal}: no such journal; nothing was moved")
        return EXIT_USAGE
    try:
        lock = HostLock.acquire(cfg.run_dir)
    except HostLockedError as e:
        say(f"refused: {e.args[0].removeprefix('host.run_dir: ')}; stop it first (nothing was moved)")
        return EXIT_REFUSED
    except ConfigError as e:
        say(str(e))
        return EXIT_USAGE
    try:
        result = archive_before(journal, before_ns, Path(args.out), now_ns=time.time_ns())
    except ArchiveError as e:
        say(str(e))
        return EXIT_USAGE
    except (sqlite3.Error, OSError) as e:
        say(f"failed: {e}; the journal is as it was")
        return EXIT_REFUSED
    finally:
        lock.release()
    if result.count == 0:
        say(f"no row of {journal} before {format_rfc3339(before_ns)}; nothing was moved")
    else:
        say(
            f"moved {result.count} rows (seq {result.first_seq}..{result.last_seq}) before "
            f"{format_rfc3339(before_ns)} from {journal} to {result.archive} (sha256 {result.sha256[:16]}...)"
        )
    return EXIT_OK
