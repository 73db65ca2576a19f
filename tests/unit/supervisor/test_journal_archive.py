"""``tradehost journal archive``: the rows before DATE move into an archive file, nothing else changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from actors.runtime.journal import Journal
from supervisor import cli
from supervisor.offline.report.checks import ReportLimits
from supervisor.offline.report.run import write_report
from tests.unit.supervisor.test_report import WED, _backtest_dir, _decision

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

DAY = 86_400 * 10**9
MAR_1 = 1_709_251_200 * 10**9  # 2024-03-01T00:00:00Z


def _rows(path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT seq, ts_ns, src, kind, corr, body FROM journal ORDER BY seq").fetchall()
    finally:
        db.close()


def _journal(run_dir: Path, days: int = 6, per_day: int = 50) -> Path:
    """A run directory's journal with ``per_day`` rows a day from 2024-03-01 on."""
    run_dir.mkdir(parents=True)
    path = run_dir / "journal.sqlite"
    journal = Journal(path, src="test")
    journal.write_many(
        [
            ("md.bar", {"day": d, "i": i, "instrument": "EUR_USD"}, f"c{d}.{i}", MAR_1 + d * DAY + i * 10**9)
            for d in range(days)
            for i in range(per_day)
        ]
    )
    journal.recent("EUR_USD")  # the word index of the rows, as the watchdog keeps it
    journal.close()
    return path


def _archive(run_dir: Path, before: str, out: Path) -> int:
    return cli.main(["journal", "archive", "--set", f"host.run_dir={run_dir}", "--before", before, "--out", str(out)])


def test_archive_moves_exactly_the_rows_before_the_date_and_a_second_run_appends(tmp_path: Path, capsys: Any) -> None:
    # Arrange: six days of rows
    run_dir = tmp_path / "run"
    journal = _journal(run_dir)
    before = _rows(journal)
    out = tmp_path / "archive.sqlite"

    # Act: the first two days out
    code = _archive(run_dir, "2024-03-03", out)

    # Assert: exactly those rows, with their seq, moved; the rest kept as they were
    err = capsys.readouterr().err
    assert code == 0, err
    assert "moved 100 rows (seq 1..100)" in err
    assert _rows(out) == [r for r in before if r[1] < MAR_1 + 2 * DAY]
    kept = _rows(journal)
    assert kept[:-1] == [r for r in before if r[1] >= MAR_1 + 2 * DAY]
    marker = kept[-1]
    assert marker[3] == "journal.archived" and marker[0] == before[-1][0] + 1
    body = __import__("json").loads(marker[5])
    assert (body["first_seq"], body["last_seq"], body["count"]) == (1, 100, 100)
    assert body["archive"] == str(out.resolve()) and len(body["sha256"]) == 64
    db = sqlite3.connect(journal, isolation_level=None)
    try:
        for statement in ("DELETE FROM journal WHERE seq = 101", "DELETE FROM journal_terms"):  # the triggers are back
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(statement)
    finally:
        db.close()
    assert not (run_dir / "tradehost.lock").exists()

    # Act: two more days into the same archive
    code = _archive(run_dir, "2024-03-05", out)

    # Assert: appended; both journal.archived rows stay in the journal
    assert code == 0, capsys.readouterr().err
    assert _rows(out) == [r for r in before if r[1] < MAR_1 + 4 * DAY]
    kept = _rows(journal)
    assert [r[3] for r in kept if r[3] == "journal.archived"] == ["journal.archived"] * 2
    assert [r for r in kept if r[3] != "journal.archived"] == [r for r in before if r[1] >= MAR_1 + 4 * DAY]
    j = Journal(journal, src="test")  # recent still answers over what stayed
    try:
        assert [e.body["day"] for e in j.recent("EUR_USD", limit=3)] == [5, 5, 5]
        assert j.write("after", {}) > marker[0]  # seq numbers never reused
    finally:
        j.close()


@pytest.mark.parametrize("date", ["yesterday", "2024-02-30", "2024-13-01"])
def test_a_garbage_date_is_a_one_line_error_and_exit_2(tmp_path: Path, capsys: Any, date: str) -> None:
    run_dir = tmp_path / "run"
    journal = _journal(run_dir, days=1, per_day=3)
    before = _rows(journal)

    code = _archive(run_dir, date, tmp_path / "a.sqlite")

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("tradehost journal archive: --before: ") and date in err
    assert _rows(journal) == before and not (tmp_path / "a.sqlite").exists()


def test_an_out_file_that_is_not_an_archive_is_refused_and_left_alone(tmp_path: Path, capsys: Any) -> None:
    run_dir = tmp_path / "run"
    journal = _journal(run_dir, days=2, per_day=3)
    before = _rows(journal)
    other = tmp_path / "other.sqlite"
    other.write_bytes(b"not a database, an operator's file")

    code = _archive(run_dir, "2024-03-02", other)

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        f"tradehost journal archive: --out {other}: exists and is not a tradehost journal archive; nothing was moved"
    )
    assert other.read_bytes() == b"not a database, an operator's file" and _rows(journal) == before


def test_a_report_over_journal_and_archive_equals_the_report_over_the_unarchived_journal(
    tmp_path: Path, capsys: Any
) -> None:
    # Arrange: a shadow run over three days, two of them archived
    rows = [("role.started", {}, None, WED - 3 * DAY)]
    for d in range(3):
        bar = WED + d * DAY
        rows += _decision("EUR_USD", bar, p_up=0.9, entered="long", trade=str(d), pnl="5.0", t=bar + 900 * 10**9)
    whole = tmp_path / "whole" / "journal.sqlite"
    whole.parent.mkdir()
    j = Journal(whole, src="test")
    j.write_many(rows)
    j.close()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "journal.sqlite").write_bytes(whole.read_bytes())
    backtest = _backtest_dir(tmp_path, rows[1:])
    out = tmp_path / "archive.sqlite"
    assert _archive(run_dir, "2024-03-08", out) == 0, capsys.readouterr().err
    assert len(_rows(run_dir / "journal.sqlite")) < len(rows)
    limits = ReportLimits(min_days=0.01, min_trades=1, allow_unobserved=frozenset({"memory", "weekends"}))

    # Act
    expected = write_report(whole, backtest, tmp_path / "r1", limits=limits)
    got = write_report(run_dir / "journal.sqlite", backtest, tmp_path / "r2", limits=limits, archives=[out])

    # Assert
    assert [(x.key, x.passed, x.figures) for x in got.lines] == [(x.key, x.passed, x.figures) for x in expected.lines]
    assert got.window == expected.window
    # without the archive the report refuses, naming the file
    shadow = str(run_dir / "journal.sqlite")
    code = cli.main(["report", "--journal", shadow, "--backtest", str(backtest), "--out", str(tmp_path / "r3")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and str(out.resolve()) in err and "give it with --archive" in err
    code = cli.main(
        [
            "report", "--journal", str(run_dir / "journal.sqlite"), "--archive", str(out),
            "--backtest", str(backtest), "--out", str(tmp_path / "r4"),
        ]
    )  # fmt: skip
    assert code in (0, 1) and (tmp_path / "r4" / "report.md").is_file()


def test_ctl_status_warns_when_the_journal_is_over_journal_warn_mb(tmp_path: Path) -> None:
    from supervisor.ctl.commands.status import Status
    from supervisor.ctl.operations import journal_size

    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"\0" * 3_000_000)
    (tmp_path / "journal.sqlite-wal").write_bytes(b"\0" * 1_000_000)

    over, under, off = journal_size(path, 3.5), journal_size(path, 5.0), journal_size(path, 0.0)

    assert over == {"mb": 4.0, "warn_mb": 3.5, "warn": True}
    assert under["warn"] is False and off["warn"] is False
    text = Status().render({"journal": over})
    assert "journal: 4.0 MB  WARNING: larger than host.journal_warn_mb (3.5 MB)" in text
    assert "tradehost journal archive" in text
    assert Status().render({"journal": under}).splitlines()[-1] == "journal: 4.0 MB"


def test_backtest_window_of_reads_the_archive_and_refuses_without_it(tmp_path: Path, capsys: Any) -> None:
    from supervisor.offline.backtest.inputs import window_of
    from supervisor.offline.backtest.run import BacktestError

    rows: list[tuple[str, dict[str, Any], str | None, int]] = []
    for d in range(3):
        bar = WED + d * DAY
        rows += _decision("EUR_USD", bar, p_up=0.9, entered="long", trade=str(d), pnl="5.0", t=bar + 900 * 10**9)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    j = Journal(run_dir / "journal.sqlite", src="test")
    j.write_many(rows)
    j.close()
    expected = window_of(run_dir / "journal.sqlite", "M15")
    out = tmp_path / "archive.sqlite"
    assert _archive(run_dir, "2024-03-08", out) == 0, capsys.readouterr().err

    assert window_of(run_dir / "journal.sqlite", "M15", [out]) == expected
    with pytest.raises(BacktestError, match="give it with --archive"):
        window_of(run_dir / "journal.sqlite", "M15")
