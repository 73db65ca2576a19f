"""A full garbage collection at a fixed pace (``host.gc_interval_s``), in every process of the tree.

CPython collects its oldest generation only once the objects that reached it since the last full
collection exceed a quarter of the objects that survived that one (``long_lived_total``). A role
is forked from the forkserver, which collected (~95 000 objects survived) and then froze them
(``actors.runtime.forkfreeze``): the count stays at 95 000 while the objects are out of reach, so a
role would need ~24 000 new long-lived objects before its first full collection: in a 25-minute
soak none came (``gc.get_stats()``). The root's own heap (~40 000 objects after its imports) puts it off as long.
Only a full collection clears the interpreter's free lists (tuples: up to 2 000 of each length,
floats, lists, dicts) and the objects that reach the oldest generation; without one, every
process's pymalloc heap grew 0.8-3 MB a wall hour, linearly, in the soak (issue 19), and with one
every 2 minutes it stayed within 0.5 MB an hour. A role's collection scans only what it made after
the fork (~1 ms); the root's, everything it holds (~10 ms).
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)
SLOW_S = 0.1  # a collection this long is logged: the process's heap is larger than it should be


def full_collections() -> int:
    """Full collections this interpreter ran (a forked process counts its parent's too)."""
    return int(gc.get_stats()[2]["collections"])


def collect() -> None:
    """One full collection; one taking longer than ``SLOW_S`` is logged."""
    started = time.perf_counter()
    found = gc.collect()
    took = time.perf_counter() - started
    if took >= SLOW_S:
        log.warning("a full garbage collection took %.0f ms (%d unreachable objects)", took * 1000, found)
