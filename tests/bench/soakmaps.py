"""Where a process's memory grows, from its memory maps (``/proc/PID/smaps`` through psutil).

USS alone cannot tell a leak from its look-alikes. The maps split it: ``[heap]`` is the main
thread's C ``malloc`` (Python objects over 512 bytes, sqlite), anonymous mappings are pymalloc's
arenas (1 MiB each since Python 3.10) and other threads' malloc arenas (libzmq's I/O thread, the
role's own threads), file mappings are libraries, and a page that was shared with the forkserver
and became private when the role wrote to it (a refcount on an inherited object is a write) shows
as private growth with the same shared shrinking in a mapping that existed at the first snapshot:
copy-on-write, bounded by what the role inherited, not a leak.

The soak (tests/bench/bench_soak.py ``--maps-every-s``) writes one snapshot a process every so
often and prints :func:`growth` for each role's last incarnation; ``python -m tests.bench.soakmaps
soak.maps.jsonl`` prints every snapshot (:func:`series`).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import psutil

MB = 1024 * 1024


@dataclass(frozen=True)
class Region:
    """One mapping at one time (bytes)."""

    key: str  # what the mapping keeps while it grows: [heap] grows at its end (key: its start); an
    # anonymous mapping the kernel merged with a new one mapped below it keeps its end (key: its end)
    kind: str  # heap, anon, stack, file, other
    size: int
    private: int
    shared: int


def kind_of(path: str) -> str:
    if path == "[heap]":
        return "heap"
    if path in ("[anon]", ""):
        return "anon"
    if path.startswith("[stack"):
        return "stack"
    if path.startswith("/"):
        return "file"
    return "other"


def _key(addr: str, path: str) -> str:
    start, end = addr.split("-")
    return f"{end if kind_of(path) == 'anon' else start} {path}"


def snapshot(pid: int) -> list[Region] | None:
    """Every mapping of ``pid`` with resident pages; None when the process is gone or not ours."""
    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        maps = psutil.Process(pid).memory_maps(grouped=False)
        return [
            Region(
                _key(m.addr, m.path),
                kind_of(m.path),
                m.size,
                m.private_clean + m.private_dirty,
                m.shared_clean + m.shared_dirty,
            )
            for m in maps
            if m.rss
        ]
    return None


def to_json(regions: list[Region]) -> list[list[object]]:
    return [[r.key, r.kind, r.size, r.private, r.shared] for r in regions]


def from_json(rows: list[list[object]]) -> list[Region]:
    return [Region(str(k), str(kind), int(str(s)), int(str(p)), int(str(sh))) for k, kind, s, p, sh in rows]


def growth(first: list[Region], last: list[Region]) -> str:
    """One line: private growth by kind, how much of it is copy-on-write of pages the first
    snapshot shared, and how much sits in mappings that are new (pymalloc arenas, malloc arenas)."""
    before = {r.key: r for r in first}
    private: dict[str, int] = defaultdict(int)
    cow = new = new_count = 0
    for r in last:
        old = before.pop(r.key, None)
        if old is None:
            new += r.private
            new_count += 1
            private[r.kind] += r.private
            continue
        private[r.kind] += r.private - old.private
        if r.shared < old.shared:
            cow += min(old.shared - r.shared, max(r.private - old.private, 0))
    gone = sum(r.private for r in before.values())
    for r in before.values():
        private[r.kind] -= r.private
    total = sum(private.values())
    kinds = ", ".join(f"{k} {v / MB:+.2f}" for k, v in sorted(private.items()) if abs(v) >= 0.01 * MB)
    return (
        f"private {total / MB:+.2f} MB ({kinds or 'nothing'}); of it copy-on-write of shared pages "
        f"{cow / MB:+.2f}; new mappings {new_count} holding {new / MB:.2f} MB, {len(before)} gone "
        f"({gone / MB:.2f} MB)"
    )


def series(path: str) -> list[str]:
    """Per process (each pid), private MB by kind at every snapshot of a ``soak.maps.jsonl``: does
    the growth level off, and where."""
    import orjson

    rows: dict[tuple[str, int], list[tuple[float, list[Region]]]] = defaultdict(list)
    with Path(path).open("rb") as f:
        for line in f:
            row = orjson.loads(line)
            rows[(row["name"], row["pid"])].append((row["wall_s"], from_json(row["maps"])))
    out = []
    for (name, pid), snaps in sorted(rows.items(), key=lambda kv: (kv[0][0] != "root", kv[0])):
        out.append(f"{name} (pid {pid}): minute  private MB [heap anon file]  shared MB")
        for wall_s, regions in snaps:
            by: dict[str, int] = defaultdict(int)
            for r in regions:
                by[r.kind] += r.private
            shared = sum(r.shared for r in regions)
            out.append(
                f"  {wall_s / 60:6.1f}  {sum(by.values()) / MB:7.2f} [{by['heap'] / MB:6.2f} {by['anon'] / MB:6.2f} "
                f"{by['file'] / MB:5.2f}]  {shared / MB:7.2f}"
            )
    return out


if __name__ == "__main__":
    import sys

    print("\n".join(series(sys.argv[1])))
