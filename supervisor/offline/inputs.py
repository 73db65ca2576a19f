"""What the offline commands (``tradehost train``, ``backtest``, ``report``) take from their command
line beyond argparse's types: times and the output directory.

- **Times** (``--from``, ``--to``): RFC3339 (``2024-03-06T14:00:00Z``, any fraction, an offset), a
  date (``2024-03-06``: midnight UTC) or epoch seconds, between 1970 and 2199; a wrong one is named
  by its flag.
- **The output directory** (``--out``) never holds anything of the operator's before the command
  writes into it: it must be new or empty, checked before any work (a model's fit, a backtest's
  candle reads). The work writes into a private directory beside it (``creating``) that becomes
  ``--out`` in one rename at the end, which the kernel refuses if ``--out`` was filled meanwhile;
  a failed run removes only its private directory. So a failed run leaves nothing behind and an
  earlier run's output (or a shadow run's journal) is never replaced.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from actors.core.errors import TradehostError
from actors.core.timefmt import parse_time

__all__ = ["InputError", "check_out_dir", "creating", "parse_cli_time"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")
_FRACTION = re.compile(r"\.\d+")
_LOW_NS = 0
_HIGH_NS = 7_258_118_400 * 1_000_000_000  # 2200-01-01T00:00:00Z


class InputError(TradehostError):
    """A command-line input is wrong; the message names the flag."""


def parse_cli_time(text: str, flag: str) -> int:
    """``--from``/``--to`` in UTC nanoseconds.

    Raises:
        InputError: not a time of the forms above, an impossible date or offset, or out of range.
    """
    value = text.strip()
    if _DATE.fullmatch(value):
        value += "T00:00:00Z"
    wrong = f"{flag}: not an RFC3339 time, a date (YYYY-MM-DD) or epoch seconds: {text!r}"
    try:
        ns = parse_time(value)
    except ValueError as e:
        raise InputError(wrong) from e
    if _DATE_TIME.match(value):
        try:  # parse_time reads the fields; this refuses impossible ones (Feb 30, +99:00)
            datetime.fromisoformat(_FRACTION.sub("", value).replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as e:
            raise InputError(f"{flag}: {text!r} is not a valid time ({e})") from e
    if not _LOW_NS <= ns < _HIGH_NS:
        raise InputError(f"{flag}: {text!r} is out of range (1970 to 2199)")
    return ns


def check_out_dir(text: str) -> Path:
    """The ``--out`` directory, refused unless it is new (its parent writable) or an empty directory.

    Raises:
        InputError: one line naming it and why; nothing has been written.
    """
    if not text.strip():
        raise InputError("--out: must not be empty (it would write into the current directory)")
    path = Path(text)
    try:
        return _checked(text, path)
    except OSError as e:  # a name too long, a directory that cannot be searched ...
        raise InputError(f"--out {text}: {e.strerror or e}") from e


def _checked(text: str, path: Path) -> Path:
    if path.is_symlink() or path.exists():
        if not path.is_dir():
            raise InputError(f"--out {text}: exists and is not a directory")
        if any(path.iterdir()):
            raise InputError(
                f"--out {text}: exists and is not empty; nothing was written (give a new directory or remove this one)"
            )
        if not os.access(path.absolute().parent, os.W_OK | os.X_OK):
            raise InputError(f"--out {text}: its parent is not writable")
        return path
    missing = _missing_ancestors(path)
    parent = missing[-1].parent if missing else path.absolute().parent
    if not parent.is_dir():
        raise InputError(f"--out {text}: cannot be created ({parent} is not a directory)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--out {text}: cannot be created ({parent} is not writable)")
    return path


@contextlib.contextmanager
def creating(path: Path) -> Iterator[Path]:
    """A private directory beside ``path`` for the work to write into. When the work ends well it
    becomes ``path`` in one rename, which succeeds only while ``path`` is absent or an empty
    directory: whatever appeared there meanwhile (another run's output) is never written over.
    When the work fails, the private directory goes, with the parent directories this made.

    Raises:
        InputError: the directory cannot be made, or ``path`` was filled meanwhile.
    """
    parent = path.absolute().parent
    made = _missing_ancestors(path)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        work = parent / f".{path.name}.{secrets.token_hex(4)}.partial"
        work.mkdir()  # the umask's mode, as the final directory should have
    except OSError as e:
        _remove_empty(made)
        raise InputError(f"--out {path}: cannot be created ({e.strerror or e})") from e
    try:
        yield work
        try:
            work.rename(path)
        except OSError as e:
            raise InputError(f"--out {path}: was filled meanwhile; nothing was written over it ({e.strerror})") from e
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        _remove_empty(made)
        raise


def _missing_ancestors(path: Path) -> list[Path]:
    """The directories above ``path`` that do not exist yet, innermost first."""
    missing: list[Path] = []
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        missing.append(ancestor)
        ancestor = ancestor.parent
    return missing


def _remove_empty(directories: list[Path]) -> None:
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return
