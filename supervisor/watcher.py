"""``ChildWatcher``: sees a child process die the moment it dies.

One thread blocks in ``multiprocessing.connection.wait`` on every child's sentinel plus a
wake-up pipe (no polling). When a sentinel fires it reaps the process and calls
``on_exit(role, pid, exitcode)``. Processes are added from the supervisor's thread through a
queue, so only this thread ever touches a sentinel after start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

log = logging.getLogger(__name__)

OnExit = Callable[[str, int, int], None]


class ChildWatcher:
    """Waits on child sentinels and reports exits."""

    def __init__(self, on_exit: OnExit) -> None:
        self._on_exit = on_exit
        self._new: queue.SimpleQueue[tuple[str, BaseProcess]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="child-watcher", daemon=True)

    def start(self) -> None:
        """Start the watching thread."""
        self._thread.start()

    def watch(self, role: str, process: BaseProcess) -> int:
        """Report ``process``'s exit from now on (call right after ``start()`` of the process).

        Returns:
            Its pid. From here on the process object is the watcher's: it closes it once the
            child exited, which may be at once (a child that crashes on start), so nothing else
            reads it afterwards.
        """
        pid = int(process.pid or 0)
        self._new.put((role, process))
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")
        return pid

    def stop(self) -> None:
        """Stop watching (processes still running are not touched)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")
        self._thread.join(2.0)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        watched: dict[int, tuple[str, BaseProcess]] = {}
        while not self._stop.is_set():
            while True:
                try:
                    role, proc = self._new.get_nowait()
                except queue.Empty:
                    break
                watched[proc.sentinel] = (role, proc)
            ready = wait([self._wake_r, *watched])
            for fd in ready:
                if fd == self._wake_r:
                    os.read(self._wake_r, 4096)
                    continue
                role, proc = watched.pop(fd)  # type: ignore[arg-type]
                proc.join(1.0)
                code = proc.exitcode if proc.exitcode is not None else -1
                pid = proc.pid or 0
                with contextlib.suppress(ValueError):
                    proc.close()
                try:
                    self._on_exit(role, pid, code)
                except Exception:  # the callback must not kill the watcher
                    log.exception("exit callback failed for %s", role)
