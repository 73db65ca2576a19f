"""The run directory: one host per directory, and noticing at once when it is taken away.

``HostLock.acquire`` creates the run directory (0700) and takes two locks: ``flock`` on
``tradehost.lock`` (it names the holder's pid for people) and a Linux *abstract* unix socket
named after the directory's real path. The abstract name lives in the kernel, not in the
directory, so deleting or replacing the directory, its lock file or anything else in it can
never let a second host start there while the first one lives. ``RunDirWatch`` remembers the
identity (device and inode) of the directory, the lock file, the journal and every ipc socket
right after start, and ``check()`` reports the first one that is gone or replaced: the host then
stops trading and shuts down (see ``supervisor.host``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from actors.core.errors import ConfigError

__all__ = ["HostLock", "HostLockedError", "Loss", "RunDirWatch", "running_host_dir"]

LOCK_NAME = "tradehost.lock"


class HostLockedError(ConfigError):
    """Another host is running in the same run directory."""


def _abstract_name(run_dir: Path) -> str:
    digest = hashlib.sha256(os.fsencode(os.path.realpath(run_dir))).hexdigest()[:32]
    return f"\0tradehost-run-{digest}"


@dataclass
class HostLock:
    """The held locks of one run directory (release with ``release``)."""

    run_dir: Path
    lock_file: IO[str]
    guard: socket.socket
    created: list[Path] = field(default_factory=list)

    @classmethod
    def acquire(cls, run_dir: Path) -> HostLock:
        """Create the run directory (0700) and lock it for this process.

        Raises:
            HostLockedError: another host holds it.
            ConfigError: the directory cannot be created or written.
        """
        guard = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            guard.bind(_abstract_name(run_dir))
        except OSError as e:
            guard.close()
            holder = _read_holder(run_dir / LOCK_NAME)
            raise HostLockedError(f"host.run_dir: another host is running in {run_dir} (pid {holder})") from e
        try:
            run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            run_dir.chmod(0o700)
            lock = (run_dir / LOCK_NAME).open("a+")
        except OSError as e:
            guard.close()
            raise ConfigError(f"host.run_dir: cannot use {run_dir}: {e.strerror}") from e
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            # Held by a host of an older version (or another namespace): refuse as well.
            lock.close()
            guard.close()
            holder = _read_holder(run_dir / LOCK_NAME)
            raise HostLockedError(f"host.run_dir: another host is running in {run_dir} (pid {holder})") from e
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        return cls(run_dir=run_dir, lock_file=lock, guard=guard)

    def release(self, *, remove_lock_file: bool = True) -> None:
        """Unlock (idempotent); the lock file is removed when it is still ours."""
        if self.lock_file.closed:
            return
        if remove_lock_file:
            with contextlib.suppress(OSError):
                path = self.run_dir / LOCK_NAME
                if _same_file(path, os.fstat(self.lock_file.fileno())):
                    path.unlink()
        self.lock_file.close()
        self.guard.close()


def running_host_dir(path: Path) -> Path | None:
    """The run directory of a running host that ``path`` is in or under (``path`` itself or any
    ancestor, symbolic links resolved, the path need not exist yet), or None.

    Read without touching the locks: a directory is a running host's while its abstract name is
    bound (listed in ``/proc/net/unix``), which ``HostLock.acquire`` holds for the host's life.
    """
    try:
        with open("/proc/net/unix", encoding="ascii", errors="replace") as table:  # noqa: PTH123
            bound = {line.rsplit(None, 1)[-1] for line in table if "@tradehost-run-" in line}
    except OSError:
        return None
    directory = Path(os.path.realpath(path))
    for candidate in (directory, *directory.parents):
        if "@" + _abstract_name(candidate)[1:] in bound:
            return candidate
    return None


def _read_holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


def _identity(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _same_file(path: Path, st: os.stat_result) -> bool:
    try:
        return _identity(path.stat()) == _identity(st)
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Loss:
    """A watched file that is gone or replaced.

    Attributes:
        detail: one line, e.g. "socket /run/th/ctl.sock was deleted".
        still_ours: the run directory and the lock file are still the ones this host made, so
            writing into the directory (``state.json``) is safe; False when either changed.
    """

    detail: str
    still_ours: bool


@dataclass
class RunDirWatch:
    """Remembers what the host's files are and tells when one is gone or replaced."""

    watched: dict[Path, tuple[str, tuple[int, int], bool]] = field(default_factory=dict)

    def add(self, what: str, path: Path, *, ownership: bool = False) -> None:
        """Watch ``path`` as it is now (``what`` names it in the report; ``ownership``: losing it
        means the directory may belong to someone else now).

        Raises:
            OSError: the path does not exist now.
        """
        self.watched[path] = (what, _identity(path.stat()), ownership)

    def add_fd(self, what: str, path: Path, fd: int, *, ownership: bool = False) -> None:
        """Watch that ``path`` still names the file open as ``fd``."""
        self.watched[path] = (what, _identity(os.fstat(fd)), ownership)

    def check(self) -> Loss | None:
        """The first watched file that is gone or replaced; None while all hold."""
        first: tuple[str, bool] | None = None
        ours = True
        for path, (what, ident, ownership) in self.watched.items():
            problem = _problem(what, path, ident)
            if problem is None:
                continue
            ours = ours and not ownership
            first = first or (problem, ownership)
        return None if first is None else Loss(detail=first[0], still_ours=ours)


def _problem(what: str, path: Path, ident: tuple[int, int]) -> str | None:
    try:
        now = _identity(path.stat())
    except FileNotFoundError:
        return f"{what} {path} was deleted"
    except OSError as e:
        return f"{what} {path} cannot be checked: {e.strerror}"
    return None if now == ident else f"{what} {path} was replaced by another file"
