"""Where the soak says a process's memory grew (tests/bench/soakmaps.py): copy-on-write of inherited
pages, new mappings and growth in place are told apart."""

from __future__ import annotations

import pytest

from tests.bench.soakmaps import MB, Region, from_json, growth, kind_of, to_json

pytestmark = pytest.mark.unit


def test_kinds() -> None:
    assert [kind_of(p) for p in ("[heap]", "[anon]", "", "[stack]", "/usr/lib/libzmq.so.5", "[vdso]")] == [
        "heap", "anon", "anon", "stack", "file", "other",
    ]  # fmt: skip


def test_copy_on_write_growth_in_place_and_new_mappings() -> None:
    first = [
        Region("7f00 [anon]", "anon", 8 * MB, 1 * MB, 6 * MB),  # inherited from the forkserver
        Region("5500 [heap]", "heap", 4 * MB, 2 * MB, 0),
        Region("7e00 [anon]", "anon", 1 * MB, 1 * MB, 0),  # an arena given back before the last snapshot
    ]
    last = [
        Region("7f00 [anon]", "anon", 8 * MB, 3 * MB, 4 * MB),  # 2 MB written to: copy-on-write
        Region("5500 [heap]", "heap", 6 * MB, 3 * MB, 0),  # brk grew by 1 MB of private pages
        Region("7d00 [anon]", "anon", 1 * MB, MB // 2, 0),  # a new arena
    ]
    line = growth(first, last)
    assert line.startswith("private +2.50 MB (anon +1.50, heap +1.00)")
    assert "copy-on-write of shared pages +2.00" in line
    assert "new mappings 1 holding 0.50 MB, 1 gone (1.00 MB)" in line


def test_json_round_trip() -> None:
    regions = [Region("7f00 [anon]", "anon", 4096, 4096, 0), Region("5500 /lib/x.so", "file", 8192, 0, 8192)]
    assert from_json(to_json(regions)) == regions
