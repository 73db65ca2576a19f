"""The offline commands' inputs: times named by their flag, and an --out that never holds anything
of the operator's and is left empty-handed when the work fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.offline.inputs import InputError, check_out_dir, creating, parse_cli_time

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

NS = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "expected_s"),
    [
        ("2024-01-01", 1_704_067_200),
        ("2024-01-01T00:00:00Z", 1_704_067_200),
        ("2024-01-01T02:00:00+02:00", 1_704_067_200),
        ("2024-01-01T00:00:00.000000000Z", 1_704_067_200),
        ("1704067200", 1_704_067_200),
    ],
)
def test_a_time_is_rfc3339_a_date_or_epoch_seconds(text: str, expected_s: int) -> None:
    assert parse_cli_time(text, "--from") == expected_s * NS


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("yesterday", "--to: not an RFC3339 time"),
        ("2024-02-30", "--to: '2024-02-30' is not a valid time"),
        ("2024-03-10T00:00:00+99:00", "is not a valid time"),
        ("2024-02-30 00:00:00Z", "is not a valid time"),
        ("2024-03-06 99:99:99Z", "is not a valid time"),
        ("1e30", "--to: '1e30' is out of range"),
        ("-5", "out of range"),
        ("nan", "not an RFC3339 time"),
    ],
)
def test_a_wrong_time_is_one_line_naming_its_flag(text: str, words: str) -> None:
    with pytest.raises(InputError) as e:
        parse_cli_time(text, "--to")

    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_new_or_empty_out_directory_is_taken(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    assert check_out_dir(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    assert check_out_dir(str(tmp_path / "empty")) == tmp_path / "empty"


def test_an_out_that_holds_anything_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "journal.sqlite").write_bytes(b"a shadow run's journal")
    a_file = tmp_path / "afile"
    a_file.write_text("x")

    problems = {}
    for text in ("", "  ", str(used), str(a_file), str(a_file / "sub")):
        with pytest.raises(InputError) as e:
            check_out_dir(text)
        problems[text] = str(e.value)

    assert "must not be empty" in problems[""] and "must not be empty" in problems["  "]
    assert "exists and is not empty; nothing was written" in problems[str(used)]
    assert "exists and is not a directory" in problems[str(a_file)]
    assert "is not a directory" in problems[str(a_file / "sub")]
    assert (used / "journal.sqlite").read_bytes() == b"a shadow run's journal"


def test_work_that_fails_leaves_no_out_directory_behind_nor_the_parents_it_made(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "out"

    with pytest.raises(RuntimeError), creating(out) as work:
        (work / "journal.sqlite").write_text("half a run")
        raise RuntimeError("the window is empty")

    assert list(tmp_path.iterdir()) == []


def test_work_that_fails_leaves_an_empty_directory_empty(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(RuntimeError), creating(out) as work:
        (work / "trades.csv").write_text("half")
        (work / "plots").mkdir()
        raise RuntimeError("boom")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert list(out.iterdir()) == []


def test_work_that_succeeds_becomes_the_out_directory(tmp_path: Path) -> None:
    for out in (tmp_path / "new", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        with creating(out) as work:
            (work / "report.md").write_text("ok")

        assert (out / "report.md").read_text() == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "new"]


def test_an_out_directory_filled_while_the_work_ran_is_never_written_over(tmp_path: Path) -> None:
    # Arrange: checked while absent; another run fills it before this one ends
    out = check_out_dir(str(tmp_path / "out"))

    # Act
    with pytest.raises(InputError) as e, creating(out) as work:
        (work / "trades.csv").write_text("this run")
        out.mkdir()
        (out / "trades.csv").write_text("the other run")

    # Assert
    assert "was filled meanwhile; nothing was written over it" in str(e.value)
    assert (out / "trades.csv").read_text() == "the other run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_out_name_the_system_refuses_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        check_out_dir(str(tmp_path / ("a" * 300)))

    assert "name too long" in str(e.value).lower()
