"""The memory-growth diagnostic's account of pymalloc (actors/runtime/memtrace.py)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from actors.runtime.memtrace import _dump_once, pymalloc_stats

pytestmark = pytest.mark.unit


def test_pymalloc_stats_see_small_objects_and_leave_stderr_alone(capfd: pytest.CaptureFixture[str]) -> None:
    before = pymalloc_stats()
    held = [(i, str(i)) for i in range(100_000)]  # ~100k tuples and strings, each under 512 bytes
    after = pymalloc_stats()
    assert set(before) >= {"arenas allocated current", "bytes in allocated blocks", "bytes in available blocks"}
    grown = after["bytes in allocated blocks"] - before["bytes in allocated blocks"]
    assert grown >= 100_000 * (56 + 50), grown  # a 2-tuple 56 bytes, a short str ~50
    assert after["arenas allocated current"] > before["arenas allocated current"]
    del held
    print("still here", file=sys.stderr, flush=True)
    os.write(2, b"and here\n")
    assert capfd.readouterr().err == "still here\nand here\n"  # fd 2 is back, nothing of the stats on it


def test_a_dump_without_tracing_writes_the_collector_and_pymalloc_line(tmp_path: Path) -> None:
    path = tmp_path / "reconciler-1.txt"
    first, prev, types = _dump_once(path, time.monotonic() - 60, None, None, None)
    assert first is None and prev is None and types  # not tracing: no snapshots, the type counts
    _dump_once(path, time.monotonic() - 120, first, prev, types)
    rows = [json.loads(line) for line in path.with_suffix(".pymalloc.jsonl").read_text().splitlines()]
    assert [r["s"] for r in rows] == [60, 120]
    assert rows[1]["gc2 collections"] >= 0 and rows[1]["bytes in allocated blocks"] > 1_000_000
    assert "## collector and pymalloc" in path.read_text()
