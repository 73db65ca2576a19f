"""Memory of a long run (issue 19's soak): what a role inherits from the forkserver stays shared."""

from __future__ import annotations

import gc
import multiprocessing
import time
from typing import Any

import psutil
import pytest

from actors.runtime.registry import role_names
from supervisor.host import forkserver_context
from tests.conftest import FAST
from tests.helpers import poll_until, running_host

pytestmark = pytest.mark.integration

MB = 1024 * 1024


def _full_collection(out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    # In a role process, forked from the tree's forkserver: what a full collection costs.
    proc = psutil.Process()
    before = proc.memory_full_info().uss
    gc.collect()
    out.put((gc.get_freeze_count(), proc.memory_full_info().uss - before))


def test_a_full_collection_in_a_role_does_not_copy_the_heap_it_inherited_from_the_forkserver() -> None:
    # The forkserver preloads the roles, pandas and CatBoost (~94 000 tracked objects); a full
    # collection in a forked role writes to every one it scans, so each page holding one is copied:
    # ~29 MB of a role's USS that grew by steps over a soak. Frozen before the fork, they are not scanned.
    ctx = forkserver_context()
    out = ctx.Queue()
    proc = ctx.Process(target=_full_collection, args=(out,))
    proc.start()
    frozen, grown = out.get(timeout=120)
    proc.join(timeout=30)
    what = f"the forkserver froze {frozen} objects; a full collection made {grown / MB:.1f} MB of the role's own"
    assert frozen > 50_000, what
    assert grown < 5 * MB, what


def test_every_process_runs_a_full_collection_at_host_gc_interval_s_and_none_without() -> None:
    # The premise: CPython's own full collection does not come in a role (its long-lived count is
    # the forkserver's 95 000 frozen objects), so with host.gc_interval_s = 0 none runs ...
    roles = role_names(with_emulator=True)
    with running_host([*FAST, "host.gc_interval_s=0"]) as host:
        time.sleep(10)  # ~50 heartbeats at FAST's 0.2 s
        actors = host.status()["actors"]
        assert {r: actors[r]["gc_full"] for r in roles} == dict.fromkeys(roles, 0)
    # ... and host.gc_interval_s runs one in every process, counted in each heartbeat (gc_full,
    # gc_max_ms) and in the root's own status.
    with running_host([*FAST, "host.gc_interval_s=0.5"]) as host:

        def counts() -> dict[str, Any] | None:
            status = host.status()
            full = {r: status["actors"][r].get("gc_full") or 0 for r in roles}
            return status if all(n >= 3 for n in full.values()) and status["gc_full"] >= 3 else None

        status = poll_until(counts, timeout_s=30, what="every process's gc_full >= 3")
        took = {r: status["actors"][r]["gc_max_ms"] for r in roles} | {"root": status["gc_max_ms"]}
        assert all(0 < ms < 1000 for ms in took.values()), took
