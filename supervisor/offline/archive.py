"""``tradehost journal archive``: move a journal's old rows into an archive SQLite file, and read
a journal together with its archives.

The journal is append-only (triggers refuse UPDATE and DELETE); retention keeps that promise by
moving rows, never dropping them silently. A move (``archive_before``):

1. is refused while a host runs in the run directory: it takes the run directory's lock
   (``supervisor.rundir.HostLock``) for its whole length, so no host can start during it either;
2. copies every row written before ``before_ns`` (``ts_ns < before_ns``) except the
   ``journal.archived`` rows (they stay: the journal's own index of what left it) into the archive
   file, in one transaction with ``synchronous=FULL`` and a rollback journal (one self-contained
   file, no ``-wal`` beside it), then fsyncs the file and its directory;
3. verifies the archive: a read-only connection reads the copied rows back and their digest must
   equal the journal's (SHA-256 over every column of every row, by seq);
4. only then, in one transaction of the journal: lifts the delete triggers of ``journal`` and
   ``journal_terms`` (the word index of ``Journal.recent``), deletes exactly those rows (and their
   index terms), puts the triggers back and appends one ``journal.archived`` row (``first_seq``,
   ``last_seq``, ``count``, ``before_ns``, ``archive``: the file's absolute path, ``sha256``: the
   file's digest after the copy, ``rows_sha256``: the rows' digest); a count that differs rolls it
   all back. ``VACUUM`` then gives the space back to the disk.

Seq numbers never change: the archive holds the rows with their seq, and the journal's
AUTOINCREMENT never reuses one. An archive that already exists is appended to only when it is a
tradehost archive (its ``archive_meta`` says so) and holds none of the seqs moved now.

Readers (``tradehost report``, ``tradehost backtest --window-of``) take the archives with
``--archive FILE`` (repeatable): ``read_with_archives`` merges them by seq and refuses a journal
whose ``journal.archived`` rows name moves the given archives do not hold (a report over part of a
run would be wrong without saying so).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from actors.runtime.journal import Journal, JournalEntry

__all__ = ["ARCHIVE_FORMAT", "ArchiveError", "ArchiveResult", "archive_before", "read_entries", "read_with_archives"]

ARCHIVE_FORMAT = "tradehost-journal-archive"
ARCHIVED_KIND = "journal.archived"
_BATCH = 5000

_ARCHIVE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS archive_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, src TEXT NOT NULL,"
    " kind TEXT NOT NULL, corr TEXT, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS archive_moves (moved_at_ns INTEGER NOT NULL, source TEXT NOT NULL,"
    " before_ns INTEGER NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, count INTEGER NOT NULL,"
    " rows_sha256 TEXT NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS archive_no_update BEFORE UPDATE ON journal"
    " BEGIN SELECT RAISE(ABORT, 'archive is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS archive_no_delete BEFORE DELETE ON journal"
    " BEGIN SELECT RAISE(ABORT, 'archive is append-only'); END",
)
# The journal's delete triggers (actors.runtime.journal), lifted and put back inside the move.
_DELETE_TRIGGERS = {
    "journal_no_delete": "CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal"
    " BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END",
    "journal_terms_no_delete": "CREATE TRIGGER journal_terms_no_delete BEFORE DELETE ON journal_terms"
    " BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END",
}
_COLUMNS = "seq, ts_ns, src, kind, corr, body"
_MOVED = "seq <= ? AND ts_ns < ? AND kind != 'journal.archived'"


class ArchiveError(Exception):
    """The move or the read was refused; nothing was moved (one line, naming the file)."""


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    """What one move did."""

    count: int
    first_seq: int | None
    last_seq: int | None
    archive: Path
    sha256: str


def _digest_rows(rows: Iterable[tuple[Any, ...]], h: Any) -> int:
    n = 0
    for row in rows:
        h.update(orjson.dumps(list(row)))
        h.update(b"\n")
        n += 1
    return n


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_archive(path: Path) -> sqlite3.Connection:
    existed = path.exists()
    if existed and not _is_archive(path):
        raise ArchiveError(f"--out {path}: exists and is not a tradehost journal archive; nothing was moved")
    db = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("PRAGMA synchronous=FULL")
    return db


def _is_archive(path: Path) -> bool:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
        try:
            row = db.execute("SELECT value FROM archive_meta WHERE key = 'format'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == ARCHIVE_FORMAT


def _rows_in(db: sqlite3.Connection, last_seq: int, before_ns: int) -> Iterator[tuple[Any, ...]]:
    yield from db.execute(f"SELECT {_COLUMNS} FROM journal WHERE {_MOVED} ORDER BY seq", (last_seq, before_ns))  # noqa: S608


def archive_before(journal_path: Path, before_ns: int, out: Path, *, now_ns: int) -> ArchiveResult:
    """Move the rows of ``journal_path`` written before ``before_ns`` into ``out`` (the module
    docstring). The caller holds the run directory's lock.

    Raises:
        ArchiveError: refused (no journal, ``out`` not an archive, seqs already there, the copy did
            not verify); the journal is as it was.
        sqlite3.Error, OSError: the journal or the archive could not be read or written (the journal
            is as it was).
    """
    if not journal_path.is_file():
        raise ArchiveError(f"{journal_path}: no such journal")
    if out.resolve() == journal_path.resolve():
        raise ArchiveError(f"--out {out}: is the journal itself")
    Journal(journal_path, src="archive").close()  # the schema and word index, as a host would make them
    src = sqlite3.connect(str(journal_path), timeout=10.0, isolation_level=None)
    try:
        (last_seq,) = src.execute("SELECT IFNULL(MAX(seq), 0) FROM journal").fetchone()
        first, last, count = src.execute(
            f"SELECT MIN(seq), MAX(seq), COUNT(*) FROM journal WHERE {_MOVED}",  # noqa: S608
            (last_seq, before_ns),
        ).fetchone()
        if count == 0:
            return ArchiveResult(0, None, None, out, _file_sha256(out) if out.exists() else "")
        rows_digest = hashlib.sha256()
        arc = _open_archive(out)
        try:
            arc.execute("BEGIN IMMEDIATE")
            try:
                for statement in _ARCHIVE_SCHEMA:
                    arc.execute(statement)
                arc.execute("INSERT OR IGNORE INTO archive_meta (key, value) VALUES ('format', ?)", (ARCHIVE_FORMAT,))
                arc.execute("INSERT OR IGNORE INTO archive_meta (key, value) VALUES ('version', '1')")
                clash = arc.execute("SELECT COUNT(*) FROM journal WHERE seq BETWEEN ? AND ?", (first, last)).fetchone()[
                    0
                ]
                if clash:
                    raise ArchiveError(
                        f"--out {out}: already holds {clash} rows with seq {first}..{last} (an archive of another "
                        "journal?); nothing was moved"
                    )
                cursor = _rows_in(src, last_seq, before_ns)
                while batch := [row for _, row in zip(range(_BATCH), cursor, strict=False)]:
                    _digest_rows(batch, rows_digest)
                    arc.executemany(f"INSERT INTO journal ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", batch)  # noqa: S608
                arc.execute(
                    "INSERT INTO archive_moves VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (now_ns, str(journal_path.resolve()), before_ns, first, last, count, rows_digest.hexdigest()),
                )
            except BaseException:
                arc.execute("ROLLBACK")
                raise
            arc.execute("COMMIT")
        finally:
            arc.close()
        _fsync(out)
        _fsync(out.resolve().parent)
        _verify(out, first, last, count, rows_digest.hexdigest())
        sha = _file_sha256(out)
        _delete_moved(src, last_seq, before_ns, count)
        body = {
            "first_seq": first,
            "last_seq": last,
            "count": count,
            "before_ns": before_ns,
            "archive": str(out.resolve()),
            "sha256": sha,
            "rows_sha256": rows_digest.hexdigest(),
        }
        src.execute(
            "INSERT INTO journal (ts_ns, src, kind, corr, body) VALUES (?, 'archive', ?, NULL, ?)",
            (now_ns, ARCHIVED_KIND, orjson.dumps(body).decode()),
        )
        src.execute("VACUUM")
    finally:
        src.close()
    return ArchiveResult(count, first, last, out, sha)


def _verify(out: Path, first: int, last: int, count: int, digest: str) -> None:
    db = sqlite3.connect(f"file:{out}?mode=ro", uri=True, timeout=10.0)
    try:
        h = hashlib.sha256()
        # the rows of this move: the archive held none in [first, last] before it
        n = _digest_rows(
            db.execute(f"SELECT {_COLUMNS} FROM journal WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last)),  # noqa: S608
            h,
        )
    finally:
        db.close()
    if n != count or h.hexdigest() != digest:
        raise ArchiveError(
            f"--out {out}: the archive read back does not match the journal ({n} of {count} rows); nothing was "
            "removed from the journal"
        )


def _delete_moved(db: sqlite3.Connection, last_seq: int, before_ns: int, count: int) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        for name in _DELETE_TRIGGERS:
            db.execute(f"DROP TRIGGER IF EXISTS {name}")
        db.execute(
            f"DELETE FROM journal_terms WHERE seq IN (SELECT seq FROM journal WHERE {_MOVED})",  # noqa: S608
            (last_seq, before_ns),
        )
        deleted = db.execute(f"DELETE FROM journal WHERE {_MOVED}", (last_seq, before_ns)).rowcount  # noqa: S608
        if deleted != count:
            raise ArchiveError(f"the journal changed during the move ({deleted} rows to delete, {count} archived)")
        for sql in _DELETE_TRIGGERS.values():
            db.execute(sql)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def read_entries(path: Path, *, what: str = "journal") -> list[JournalEntry]:
    """Every row of a journal or an archive, oldest first, through a read-only connection.

    Raises:
        ArchiveError: no such file, or not a tradehost journal (archive).
    """
    if not path.is_file():
        raise ArchiveError(f"{path}: no such {what}")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute(f"SELECT {_COLUMNS} FROM journal ORDER BY seq").fetchall()  # noqa: S608
        finally:
            db.close()
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5])) for r in rows]
    except (sqlite3.Error, orjson.JSONDecodeError) as e:
        raise ArchiveError(f"{path}: not a tradehost {what} ({e})") from e


def read_with_archives(journal: Path, archives: Iterable[Path] = ()) -> list[JournalEntry]:
    """The rows of ``journal`` and of its ``archives``, merged by seq (a row once).

    Raises:
        ArchiveError: a file is missing or not a journal / archive, or the journal's
            ``journal.archived`` rows name rows none of the archives holds (which file to give).
    """
    rows = {e.seq: e for e in read_entries(journal)}
    archived: set[int] = set()
    for path in archives:
        if not _is_archive(path):
            raise ArchiveError(f"--archive {path}: not a tradehost journal archive")
        for e in read_entries(path, what="journal archive"):
            rows.setdefault(e.seq, e)
            archived.add(e.seq)
    seqs = sorted(archived)
    for e in rows.values():
        if e.kind != ARCHIVED_KIND:
            continue
        first, last, count = e.body.get("first_seq"), e.body.get("last_seq"), e.body.get("count")
        if not isinstance(first, int) or not isinstance(last, int) or not isinstance(count, int):
            continue
        if bisect.bisect_right(seqs, last) - bisect.bisect_left(seqs, first) < count:
            raise ArchiveError(
                f"{journal}: {count} rows (seq {first}..{last}) were archived to {e.body.get('archive')}; "
                "give it with --archive"
            )
    return [rows[seq] for seq in sorted(rows)]
