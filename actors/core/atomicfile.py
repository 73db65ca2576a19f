"""Crash-safe file writes: the one implementation (state files, the shadow book, execution state).

``write_atomically`` writes to a temporary file beside the target, fsyncs it, renames it over the
target and fsyncs the directory, so a crash leaves either the old file or the new one, never a
half-written one. Files are created 0600 (they live in the 0700 run directory).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: Path, payload: bytes) -> None:
    """Replace ``path`` with ``payload`` crash-safely (tmp + fsync + rename + directory fsync).

    Raises:
        OSError: the file or its directory cannot be written.
    """
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
