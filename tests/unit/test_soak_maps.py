"""Where the soak says a process's memory grew (tests/bench/soakmaps.py): copy-on-write of inherited
pages, new mappings and growth in place are told apart."""

from __future__ import annotations

import pytest

from tests.bench.soakmaps import MB, Region, _key, from_json, growth, kind_of, to_json

pytestmark = pytest.mark.unit


def test_kinds() -> None:
    assert [kind_of(p) for p in ("[heap]", "[anon]", "", "[stack]", "/usr/lib/libzmq.so.5", "[vdso]")] == [
        "heap", "anon", "anon", "stack", "file", "other",
    ]  # fmt: skip


def test_keys_follow_how_mappings_grow() -> None:
    # [heap] grows at its end; an anonymous mapping merged with a new one mapped below keeps its end.
    assert _key("5500-5600", "[heap]") == _key("5500-5900", "[heap]") == "5500 [heap]"
    assert _key("7f00-7f80", "[anon]") == _key("7e00-7f80", "[anon]") == "7f80 [anon]"


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
