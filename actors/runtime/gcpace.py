"""A full garbage collection at a fixed pace (``host.gc_interval_s``), in every process of the tree.

CPython collects its oldest generation only once the objects that reached it since the last full
collection exceed a quarter of those that survived that one (``long_lived_total``). A role is
forked from the forkserver, which collected (~95 000 survivors) and then froze them
(``actors.runtime.forkfreeze``): the count stays at 95 000 while those objects are out of reach,
so a role would need ~24 000 new long-lived objects first. In the soak none came (``gc.get_stats()``:
no full collection in any role in 25 minutes; ``tests/integration/test_memory.py`` watches 30 s).

What that cost, measured in the soak (issue 19, README "The soak"): each process's pymalloc heap
(bytes in allocated blocks) grew linearly for ~35 minutes, the root by 0.8 MB a wall hour, the
reconciler by up to 3, then levelled off. A full collection every 2 minutes found nothing
unreachable (0 objects each time: no garbage cycles) yet gave back 50-140 KB of blocks each time,
and the heaps stayed flat from the start (root 14 660 → 14 682 KB over 22 minutes). What a full
collection releases besides garbage is the interpreter's free lists (tuples, up to 2 000 of each
length; floats, lists, dicts), bounded at a few MB; and without one, garbage cycles that reached
the oldest generation (none today) would never be freed. A role's collection scans only what it
made after the fork (0.3-2.3 ms in the soak); the root's, everything it holds (up to 25 ms at a
load average of 3.5). ``gc_full`` and ``gc_max_ms`` in ``ctl status --json`` (the root's and each role's) show
that they run and what they cost. Not chosen: one ``gc.collect()`` at a role's start, which resets
the count so that CPython's own pace applies: that pace follows the role's promotions, unknown.
"""

from __future__ import annotations

import gc
import logging
import random
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.runtime.transport import SocketThread

log = logging.getLogger(__name__)
SLOW_S = 0.1  # a collection this long is logged: the process's heap is larger than it should be


_longest_s = 0.0


def full_collections() -> int:
    """Full collections this interpreter ran (a forked process counts its parent's too)."""
    return int(gc.get_stats()[2]["collections"])


def longest_ms() -> float:
    """The longest collection :func:`collect` ran in this process (ms)."""
    return round(_longest_s * 1000, 1)


def first_in_s(interval_s: float) -> float:
    """When the first collection of a process runs: between half an interval and one, so the
    processes of a tree started together do not all pause at the same moment."""
    return interval_s * random.uniform(0.5, 1.0)


def schedule(io: SocketThread, interval_s: float) -> None:
    """Run :func:`collect` on ``io`` every ``interval_s`` (0: never), the first at :func:`first_in_s`."""
    if interval_s > 0:
        io.every(interval_s, collect, first_in_s=first_in_s(interval_s))


def collect() -> None:
    """One full collection; the longest is kept, one over ``SLOW_S`` logged."""
    global _longest_s
    started = time.perf_counter()
    found = gc.collect()
    took = time.perf_counter() - started
    _longest_s = max(_longest_s, took)
    if took >= SLOW_S:
        log.warning("a full garbage collection took %.0f ms (%d unreachable objects)", took * 1000, found)
