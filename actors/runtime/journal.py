"""The append-only SQLite journal (WAL mode) that every process of the tree writes to.

One row per event: when (UTC ns), who (``src``: a role or ``supervisor``), what (``kind``), the
``corr`` chain it belongs to and a JSON body. Triggers refuse UPDATE and DELETE, so the journal
can only grow. Each process opens its own connection; WAL lets them write side by side, with a
busy timeout instead of errors under contention. A failed write raises: the caller decides
whether that ends the process (a role) or latches NO_TRADE (the supervisor).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ns INTEGER NOT NULL,
    src   TEXT    NOT NULL,
    kind  TEXT    NOT NULL,
    corr  TEXT,
    body  TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_kind ON journal(kind);
CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal
    BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
    BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
"""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One row of the journal."""

    seq: int
    ts_ns: int
    src: str
    kind: str
    corr: str | None
    body: dict[str, Any]


class Journal:
    """A connection to the journal file; safe to share between threads of one process.

    Args:
        path: the SQLite file (created with its schema if missing).
        src: the default ``src`` of the entries this process writes.
    """

    def __init__(self, path: str | Path, src: str) -> None:
        self.path = Path(path)
        self.src = src
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=10.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        with self._lock:
            self._db.executescript(_SCHEMA)

    def write(
        self, kind: str, body: dict[str, Any] | None = None, *, corr: str | None = None, src: str | None = None
    ) -> int:
        """Append one entry and return its sequence number.

        Raises:
            sqlite3.Error: the entry could not be written.
        """
        payload = orjson.dumps(body or {}, option=orjson.OPT_NON_STR_KEYS).decode()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO journal (ts_ns, src, kind, corr, body) VALUES (?, ?, ?, ?, ?)",
                (time.time_ns(), src or self.src, kind, corr, payload),
            )
            return int(cur.lastrowid or 0)

    def write_many(self, rows: list[tuple[str, dict[str, Any], str | None, int]]) -> None:
        """Append several entries (kind, body, corr, ts_ns) in one transaction: one commit instead
        of one per row (a close's bars or signals); each row keeps the time it happened at.

        Raises:
            sqlite3.Error: nothing was written.
        """
        values = [
            (ts_ns, self.src, kind, corr, orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS).decode())
            for kind, body, corr, ts_ns in rows
        ]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO journal (ts_ns, src, kind, corr, body) VALUES (?, ?, ?, ?, ?)", values
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def check_writable(self) -> None:
        """Prove an entry could be appended now (written inside a transaction, then rolled back).

        Raises:
            sqlite3.Error: the journal cannot be written (read-only file or directory, disk full).
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO journal (ts_ns, src, kind, corr, body) VALUES (?, ?, ?, NULL, '{}')",
                    (time.time_ns(), self.src, "journal.write_check"),
                )
            finally:
                self._db.execute("ROLLBACK")

    def entries(self, kind: str | None = None, *, src: str | None = None) -> list[JournalEntry]:
        """Read entries back, oldest first (for tests, status and reports)."""
        query = "SELECT seq, ts_ns, src, kind, corr, body FROM journal"
        clauses, params = [], []
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        if src is not None:
            clauses.append("src = ?")
            params.append(src)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY seq"
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5])) for r in rows]

    def recent(self, contains: str, *, limit: int = 20) -> list[JournalEntry]:
        """The last ``limit`` entries whose kind or body contains ``contains``, oldest first (the
        journal lines an alert mail quotes about its cause)."""
        pattern = "%" + contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, ts_ns, src, kind, corr, body FROM journal "
                "WHERE kind LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\' ORDER BY seq DESC LIMIT ?",
                (pattern, pattern, limit),
            ).fetchall()
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5])) for r in reversed(rows)]

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._db.close()
