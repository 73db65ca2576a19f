"""The child watcher reports a child's exit and owns the process object from ``watch`` on: the pid
it returns is all the caller keeps (reading the object afterwards raced the watcher closing it,
and failed the supervisor when a role crashed on start)."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from supervisor.watcher import ChildWatcher

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def _exit_at_once() -> None:
    raise SystemExit(3)


def test_a_child_that_dies_at_once_is_reported_with_the_pid_watch_returned() -> None:
    # Arrange
    exits: list[tuple[str, int, int]] = []
    reported = threading.Event()

    def on_exit(role: str, pid: int, code: int) -> None:
        exits.append((role, pid, code))
        reported.set()

    watcher = ChildWatcher(on_exit)
    watcher.start()
    proc = multiprocessing.get_context("fork").Process(target=_exit_at_once)
    proc.start()
    proc.join()  # dead before the watcher even sees it

    # Act
    pid = watcher.watch("execution", proc)

    # Assert
    assert reported.wait(10)
    watcher.stop()
    assert exits == [("execution", pid, 3)]
    assert pid > 0
    with pytest.raises(ValueError, match="closed"):
        _ = proc.pid  # the watcher closed it: the returned pid is what the caller keeps
