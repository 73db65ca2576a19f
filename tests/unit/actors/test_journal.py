"""The append-only SQLite journal: round trips, refusal of UPDATE/DELETE, two writers."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.runtime.journal import Journal, JournalEntry

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite", src="supervisor")
    yield j
    j.close()


def test_entries_come_back_in_order_with_every_field(journal: Journal) -> None:
    # Arrange
    first = journal.write("host.started", {"pid": 1, "nested": {"xs": [1, 2.5, None]}})
    second = journal.write("role.restarted", {"role": "feed"}, corr="c-1", src="feed")

    # Act
    entries = journal.entries()

    # Assert
    assert [e.seq for e in entries] == [first, second]
    assert second > first
    assert entries[0] == JournalEntry(
        first, entries[0].ts_ns, "supervisor", "host.started", None, {"pid": 1, "nested": {"xs": [1, 2.5, None]}}
    )
    assert entries[1] == JournalEntry(second, entries[1].ts_ns, "feed", "role.restarted", "c-1", {"role": "feed"})
    assert 0 < entries[0].ts_ns <= entries[1].ts_ns


def test_a_missing_body_is_stored_as_an_empty_object(journal: Journal) -> None:
    journal.write("tick")

    assert journal.entries()[0].body == {}


def test_entries_filter_by_kind_and_by_source(journal: Journal) -> None:
    journal.write("a", {"n": 1})
    journal.write("b", {"n": 2}, src="feed")
    journal.write("a", {"n": 3}, src="feed")

    assert [e.body["n"] for e in journal.entries("a")] == [1, 3]
    assert [e.body["n"] for e in journal.entries(src="feed")] == [2, 3]
    assert [e.body["n"] for e in journal.entries("a", src="feed")] == [3]
    assert journal.entries("nothing") == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE journal SET kind = 'forged'",
        "UPDATE journal SET body = '{}' WHERE seq = 1",
        "DELETE FROM journal",
        "DELETE FROM journal WHERE seq = 1",
    ],
)
def test_update_and_delete_are_refused_so_the_journal_only_grows(tmp_path: Path, statement: str) -> None:
    # Arrange
    path = tmp_path / "journal.sqlite"
    journal = Journal(path, src="supervisor")
    journal.write("order.sent", {"id": 1})
    journal.close()
    db = sqlite3.connect(path)

    # Act / Assert
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(statement)
        rows = db.execute("SELECT kind, body FROM journal").fetchall()
    finally:
        db.close()
    assert rows == [("order.sent", '{"id":1}')]


def test_reopening_the_journal_keeps_earlier_entries(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    first = Journal(path, src="supervisor")
    first.write("one")
    first.close()

    second = Journal(path, src="feed")
    try:
        second.write("two")
        kinds = [(e.kind, e.src) for e in second.entries()]
    finally:
        second.close()

    assert kinds == [("one", "supervisor"), ("two", "feed")]


def test_two_connections_writing_interleaved_entries_all_land(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "journal.sqlite"
    writers = [Journal(path, src="feed"), Journal(path, src="risk")]
    per_writer = 200
    errors: list[BaseException] = []

    def write_all(journal: Journal) -> None:
        try:
            for i in range(per_writer):
                journal.write("tick", {"i": i})
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=write_all, args=(w,)) for w in writers]

    # Act
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)

    # Assert
    try:
        entries = writers[0].entries("tick")
    finally:
        for w in writers:
            w.close()
    assert errors == []
    assert len(entries) == 2 * per_writer
    for src in ("feed", "risk"):
        assert [e.body["i"] for e in entries if e.src == src] == list(range(per_writer))
    assert len({e.seq for e in entries}) == 2 * per_writer


def test_entries_alternating_between_two_connections_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    a, b = Journal(path, src="a"), Journal(path, src="b")
    try:
        for i in range(10):
            (a if i % 2 == 0 else b).write("step", {"i": i})
        seen_by_b = [(e.src, e.body["i"]) for e in b.entries()]
    finally:
        a.close()
        b.close()

    assert seen_by_b == [("a" if i % 2 == 0 else "b", i) for i in range(10)]


def test_close_is_idempotent(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite", src="x")
    journal.close()
    journal.close()

    with pytest.raises(sqlite3.ProgrammingError):
        journal.write("after-close")


# --- recent(): the word index gives exactly what the LIKE scan gave ---------------------------------

RECENT_TERMS = [
    "host.started", "alert", '"EUR_USD"', "eur_usd", "restart_intensity:feed", "feed.stream", "journal",
    "stalled", "intensity:fe", "_silent", "M15", "1.08", "%", "_", "a", "", "EUR", 'instrument":"GBP',
    "disk_low", "ünïcode", "x" * 40,
]  # fmt: skip


def _scan(db_path: Path, contains: str, limit: int) -> list[int]:
    # The LIKE scan recent() was before the index: the reference.
    pattern = "%" + contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute(
            "SELECT seq FROM journal WHERE kind LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\' "
            "ORDER BY seq DESC LIMIT ?",
            (pattern, pattern, limit),
        ).fetchall()
    finally:
        db.close()
    return [r[0] for r in reversed(rows)]


def _fill(journal: Journal, n: int, seed: int) -> None:
    import random

    rnd = random.Random(seed)
    kinds = ["md.bar", "model.signal", "alert", "alert.queued", "host.stalled", "feed.stream_silent", "journal.outage"]
    values = ["EUR_USD", "GBP_USD", "restart_intensity:feed", "stream_silent:EUR_USD", "disk_low", "M15",
              "feed2", "FEED", "ünïcode", "1.08123", "a_b", "host.started late"]  # fmt: skip
    for _ in range(n):
        body = {rnd.choice(["instrument", "code", "detail", "x"]): rnd.choice(values) for _ in range(rnd.randint(0, 3))}
        journal.write(rnd.choice(kinds), body)


@pytest.mark.parametrize("term", RECENT_TERMS)
def test_recent_finds_exactly_what_the_like_scan_finds(tmp_path: Path, term: str) -> None:
    # Arrange: rows indexed, rows written after the last index pass, a limit the matches pass
    journal = Journal(tmp_path / "journal.sqlite", src="t")
    _fill(journal, 400, seed=1)
    journal.index_new_rows()
    _fill(journal, 50, seed=2)
    # Act / Assert
    for limit in (1, 12, 500):
        got = [e.seq for e in journal.recent(term, limit=limit)]
        assert got == _scan(tmp_path / "journal.sqlite", term, limit), (term, limit)
    journal.close()


def test_a_journal_of_an_earlier_version_gets_the_index_at_open_and_its_old_rows_are_still_found(
    tmp_path: Path,
) -> None:
    # Arrange: a journal as an earlier version wrote it (no index tables)
    path = tmp_path / "journal.sqlite"
    journal = Journal(path, src="t")
    _fill(journal, 300, seed=3)
    journal.close()
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE journal_terms; DROP TABLE journal_words; DROP TABLE journal_index;")
    db.close()
    # Act: opened by this version, more rows written
    journal = Journal(path, src="t")
    _fill(journal, 100, seed=4)
    # Assert: the index starts after the old rows; every term finds what the scan finds
    first_seq = sqlite3.connect(path).execute("SELECT first_seq FROM journal_index").fetchone()[0]
    assert first_seq == 301
    for term in RECENT_TERMS:
        assert [e.seq for e in journal.recent(term, limit=30)] == _scan(path, term, 30), term
    journal.close()


def test_the_word_index_only_grows(journal: Journal) -> None:
    journal.write("alert", {"code": "disk_low"})
    journal.index_new_rows()
    for statement in ("UPDATE journal_terms SET seq = 0", "DELETE FROM journal_terms"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            journal._db.execute(statement)
