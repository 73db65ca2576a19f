"""A diagnostic hook for memory growth (off by default): ``TRADEHOST_TRACEMALLOC=<directory>``.

When set, every process of the tree (the root and each role) starts ``tracemalloc``
(``TRADEHOST_TRACEMALLOC_FRAMES`` frames, 8 by default) and a daemon thread that, every
``TRADEHOST_TRACEMALLOC_EVERY_S`` seconds (60), writes ``<directory>/<src>-<pid>.txt``: the traced
total; the top allocation sites by traceback (the allocating line first) compared with the first
snapshot (taken one interval after start, past the imports) and with the previous one; and the
objects the collector tracks, counted by type, compared with the first count; and pymalloc's own
account (``sys._debugmallocstats``: arenas held, bytes in allocated and in available blocks), which
tells live small objects that grow (allocated blocks grow) from arenas kept by fragmentation
(arenas grow, allocated blocks do not). ``TRADEHOST_TRACEMALLOC_FRAMES=0`` writes the counts and
pymalloc's account without tracing: the process's USS is then a figure again. Each dump also
appends one line to ``<src>-<pid>.pymalloc.jsonl`` (the collector's counts by generation and
pymalloc's totals), to follow a long run; ``TRADEHOST_TRACEMALLOC_COLLECT=1`` runs a full collection
after each dump and adds what it found unreachable and pymalloc's totals after it (the experiment
behind ``host.gc_interval_s``: ``actors.runtime.gcpace``).
``TRADEHOST_TRACEMALLOC_ONLY`` (``root,reconciler``) limits it to those processes: tracing slows a
role down, and the model role's start under it can miss the heartbeat deadline of a tight
configuration.

A Python-object leak shows there as a site whose size keeps growing and a type whose count keeps
growing; growth of the RSS that does not show there is outside the Python heap (sqlite's page
cache, pymalloc arenas not given back, C libraries, pages inherited from the forkserver that a role
writes to). It costs memory and time (each traced block carries its traceback), so it is for a
soak or a diagnosis, never for a host that trades: nothing reads the files it writes.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path

ENV = "TRADEHOST_TRACEMALLOC"
log = logging.getLogger(__name__)
TOP = 25
_IGNORE = (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"))


def _lines(stats: list[tracemalloc.StatisticDiff], top: int) -> list[str]:
    out = []
    for s in stats[:top]:
        frames = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(s.traceback))
        diff = f"{s.size_diff / 1024:+9.1f} KiB {s.count_diff:+7d} blocks"
        out.append(f"  {diff} (now {s.size / 1024:9.1f} KiB)  {frames}")
    return out


def _types() -> Counter[str]:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def pymalloc_stats() -> dict[str, int]:
    """pymalloc's arena and block totals by their names (``# arenas allocated current`` ...), from
    ``sys._debugmallocstats``, which prints to the C stderr: fd 2 is pointed at a temporary file
    for the call, so another thread's stderr in that instant lands there too (diagnostic only)."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    out = {}
    for line in text.splitlines():
        name, eq, value = line.partition("=")
        if eq and name.startswith(("# arenas", "# bytes in")):
            with contextlib.suppress(ValueError):
                out[name.strip("# ").strip()] = int(value.strip().replace(",", ""))
    return out


def _dump(path: Path, every_s: float) -> None:
    first: tracemalloc.Snapshot | None = None
    prev: tracemalloc.Snapshot | None = None
    first_types: Counter[str] | None = None
    started = time.monotonic()
    while True:
        time.sleep(every_s)
        try:
            first, prev, first_types = _dump_once(path, started, first, prev, first_types)
        except Exception:  # a diagnostic: say so and try again next time, never end the thread
            log.exception("memtrace: the dump to %s failed", path)


def _dump_once(
    path: Path,
    started: float,
    first: tracemalloc.Snapshot | None,
    prev: tracemalloc.Snapshot | None,
    first_types: Counter[str] | None,
) -> tuple[tracemalloc.Snapshot | None, tracemalloc.Snapshot | None, Counter[str]]:
    types = _types()
    first_types = first_types or types
    grown = sorted(((n - first_types[t], t) for t, n in types.items()), reverse=True)[: TOP // 2]
    text = [f"# {os.getpid()} at {time.monotonic() - started:.0f} s"]
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot().filter_traces(_IGNORE)
        first = first or snap
        prev = prev or snap
        current, peak = tracemalloc.get_traced_memory()
        text += [
            f"traced {current / 1024 / 1024:.2f} MiB (peak {peak / 1024 / 1024:.2f})",
            "## since the first snapshot (by traceback)",
            *_lines(snap.compare_to(first, "traceback"), TOP),
            "## since the previous snapshot (by traceback)",
            *_lines(snap.compare_to(prev, "traceback"), TOP // 2),
        ]
        prev = snap
    text += [
        "## objects the collector tracks, by type: since the first snapshot",
        *(f"  {d:+7d} {t} (now {types[t]})" for d, t in grown),
    ]
    stats: dict[str, int] = {f"gc{n} collections": g["collections"] for n, g in enumerate(gc.get_stats())}
    stats.update(zip(("gc count0", "gc count1", "gc count2"), gc.get_count(), strict=True))
    stats["gc frozen"] = gc.get_freeze_count()
    stats.update(pymalloc_stats())
    if os.environ.get(ENV + "_COLLECT"):  # the experiment: what a full collection frees
        stats["full collection freed"] = gc.collect()
        stats.update({f"{k} after": v for k, v in pymalloc_stats().items() if k.startswith("bytes in")})
    text += ["## collector and pymalloc", *(f"  {k}: {v:,}" for k, v in stats.items())]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(text) + "\n")
    tmp.replace(path)
    # One line a snapshot beside it, to follow pymalloc over a long run.
    row = {"s": round(time.monotonic() - started), **stats}
    with contextlib.suppress(OSError), path.with_suffix(".pymalloc.jsonl").open("a") as out:
        out.write(json.dumps(row) + "\n")
    return first, prev, first_types


def start(src: str) -> bool:
    """Start tracing this process when ``TRADEHOST_TRACEMALLOC`` names a directory; True if started."""
    directory = os.environ.get(ENV, "")
    only = os.environ.get(ENV + "_ONLY", "")
    if not directory or (only and src not in only.split(",")):
        return False
    Path(directory).mkdir(parents=True, exist_ok=True)
    if (frames := int(os.environ.get(ENV + "_FRAMES", "8"))) > 0:
        tracemalloc.start(frames)
    every_s = float(os.environ.get(ENV + "_EVERY_S", "60"))
    path = Path(directory) / f"{src}-{os.getpid()}.txt"
    threading.Thread(target=_dump, args=(path, every_s), name="memtrace", daemon=True).start()
    return True
