"""The saved state: round trip, fresh start, refusal of files it cannot trust, atomic writes."""

from __future__ import annotations

import stat
from pathlib import Path

import orjson
import pytest

from actors.core.errors import ConfigError
from supervisor.statefile import VERSION, LatchedReason, SavedState, load, save

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


def test_a_saved_state_loads_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = SavedState(
        paused=True,
        latched=(
            LatchedReason("reconciliation_mismatch", "2 positions differ"),
            LatchedReason("intensity_exceeded:feed", "5 restarts in 60s"),
        ),
    )

    save(path, state)

    assert load(path) == state


def test_saving_again_replaces_the_previous_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save(path, SavedState(paused=True, latched=(LatchedReason("a", "b"),)))

    save(path, SavedState())

    assert load(path) == SavedState(paused=False, latched=())


def test_a_missing_file_is_a_fresh_start(tmp_path: Path) -> None:
    assert load(tmp_path / "state.json") == SavedState(paused=False, latched=())


def test_the_atomic_write_leaves_no_temporary_file_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state.json"

    save(path, SavedState(paused=True))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_stale_temporary_file_from_a_crash_is_overwritten_and_consumed(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    (tmp_path / "state.json.tmp").write_bytes(b"half a file that is much longer than the new one" * 10)

    save(path, SavedState(paused=True))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert load(path) == SavedState(paused=True)


def test_the_file_is_versioned_json(tmp_path: Path) -> None:
    path = tmp_path / "state.json"

    save(path, SavedState(latched=(LatchedReason("x", "y"),)))

    assert orjson.loads(path.read_bytes()) == {
        "version": VERSION,
        "paused": False,
        "latched": [{"code": "x", "detail": "y"}],
    }


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "unreadable"),
        (b'{"version": 1, "paused": tr', "unreadable"),
        (b"\xff\xfe\x00", "unreadable"),
        (b"[]", "unknown format"),
        (b"null", "unknown format"),
        (b"{}", "unknown format"),
        (b'{"version": 2, "paused": false, "latched": []}', "unknown format"),
        (b'{"version": "1"}', "unknown format"),
        (b'{"version": 1, "latched": {}}', "malformed latched"),
        (b'{"version": 1, "latched": ["x"]}', "malformed latched"),
        (b'{"version": 1, "latched": [{"code": "x"}]}', "malformed latched"),
        (b'{"version": 1, "latched": [{"code": 1, "detail": "y"}]}', "malformed latched"),
    ],
    ids=[
        "empty",
        "truncated",
        "binary",
        "array",
        "null",
        "no-version",
        "future-version",
        "string-version",
        "latched-object",
        "latched-string",
        "latched-no-detail",
        "latched-int-code",
    ],
)
def test_a_corrupt_or_unknown_file_is_refused_naming_its_path(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)

    with pytest.raises(ConfigError, match=match) as info:
        load(path)

    assert info.value.problems[0].startswith(f"{path}: ")


def test_a_directory_in_place_of_the_file_is_refused_naming_its_path(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.mkdir()

    with pytest.raises(ConfigError, match="unreadable") as info:
        load(path)

    assert str(path) in str(info.value)
