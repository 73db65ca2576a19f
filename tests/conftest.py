"""Shared fixtures: a real host in a short temporary run directory; the run's shared directory."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import (
    SESSION_DIR_KEY,
    SESSION_DIR_STASH,
    Host,
    ensure_test_model,
    running_host,
    session_tables,
    short_tmp_dir,
)


def pytest_configure(config: pytest.Config) -> None:
    """The controller (or the only process) makes the run's shared directory; workers get its path."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        config.stash[SESSION_DIR_STASH] = short_tmp_dir("thsession")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: tell each worker where the run's shared directory is."""
    node.workerinput[SESSION_DIR_KEY] = str(node.config.stash[SESSION_DIR_STASH])


def pytest_unconfigure(config: pytest.Config) -> None:
    if getattr(config, "workerinput", None) is None and SESSION_DIR_STASH in config.stash:
        shutil.rmtree(config.stash[SESSION_DIR_STASH], ignore_errors=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Every test host runs with a real model; build it once (a few seconds) if it is missing."""
    ensure_test_model()


def pytest_collection_finish(session: pytest.Session) -> None:
    """hypothesis imports its regex strategies on first use, inside a test, where pytest compiles
    them (it rewrites the asserts of plugin modules) with ``ast.parse``, which CPython 3.11 does
    not guard against one in another thread ("SystemError: AST constructor recursion depth
    mismatch", seen in a full run while a unit test's role threads were winding down). Imported
    here, after hypothesis' own start-up and before any test has started a thread."""
    import hypothesis.strategies._internal.regex  # noqa: F401


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first: the tests marked ``slow``, then the other tests of a real tree or emulator,
    then the unit tests (a stable sort: file order within each group). pytest-xdist hands the
    first tests out in turn, so the long ones start at once on every worker and the short ones
    fill the gaps at the end, instead of one long test starting last."""

    def group(item: pytest.Item) -> int:
        if item.get_closest_marker("slow") is not None:
            return 0
        return 2 if item.get_closest_marker("unit") is not None else 1

    items.sort(key=group)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Write and print the tables tests handed to the run (``tests.helpers.session_table``),
    once every worker is done."""
    if getattr(config, "workerinput", None) is not None:
        return
    for path, (title, header, lines) in session_tables(config).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([*header, *lines]) + "\n")
        terminalreporter.write_line("")
        terminalreporter.write_line(f"{title}, also in {path}:")
        for line in (*header, *lines):
            terminalreporter.write_line(line)


# Timings that keep fault tests quick but leave a loaded 2-core machine plenty of slack.
FAST = [
    "supervisor.heartbeat_interval_s=0.2",
    "supervisor.heartbeat_timeout_s=2.0",
    "supervisor.cooldown_s=1.0",
    "supervisor.max_restarts=5",
    "supervisor.restart_period_s=30.0",
    "supervisor.backoff_initial_s=0.05",
    "supervisor.backoff_max_s=0.5",
]


@pytest.fixture
def host() -> Iterator[Host]:
    """A running host with fast timings, in TRADING."""
    with running_host(FAST) as h:
        yield h
