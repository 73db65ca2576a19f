"""The append-only SQLite journal (WAL mode) that every process of the tree writes to.

One row per event: when (UTC ns), who (``src``: a role or ``supervisor``), what (``kind``), the
``corr`` chain it belongs to and a JSON body. Triggers refuse UPDATE and DELETE, so the journal
can only grow. Each process opens its own connection; WAL lets them write side by side, with a
busy timeout instead of errors under contention. A failed write raises: the caller decides
whether that ends the process (a role) or latches NO_TRADE (the supervisor).

``recent(contains)`` (the alert desk's journal lines about a cause: kind or body contains a string,
as SQL ``LIKE`` matches it) uses a word index beside the table (issue 18: a ``LIKE`` scan took
150-200 ms at 1M rows): ``journal_terms`` holds, for every row from ``journal_index.first_seq`` on,
each run of ASCII letters and ``_`` of its kind and body (lower-cased) with the row's ``seq``, and
``journal_words`` every such word once. Writers do not pay for it: ``index_new_rows`` (called by
``recent`` and by the watchdog's tick) adds the rows written since the last call. A look-up picks
the best-anchored letter run of the searched string (one with other characters on both sides
must be a whole word of a matching row; one with a character before it, a word's beginning ...),
finds the words it can be, reads their rows newest first and keeps those the ``LIKE`` itself
matches, so the answer is exactly the scan's. Rows older than the index (a journal written by an
earlier version: ``first_seq`` is set past them when the index is created, so opening an old
journal costs nothing) and strings with no usable letter run are searched by the scan as before.
The index tables only grow, like the journal.
"""

from __future__ import annotations

import heapq
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
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

# The word index of ``recent`` (see the module docstring); created by the first open of a journal
# that lacks it, in one transaction, ``first_seq`` past the rows already there.
_INDEX_STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS journal_terms (word TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (word, seq))"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS journal_words (word TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS journal_index (one INTEGER PRIMARY KEY CHECK (one = 1), first_seq INTEGER NOT NULL,"
    " next_seq INTEGER NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS journal_terms_no_update BEFORE UPDATE ON journal_terms"
    " BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS journal_terms_no_delete BEFORE DELETE ON journal_terms"
    " BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END",
)

_WORD = re.compile(r"[A-Za-z_]+")
INDEX_BATCH = 2000  # rows indexed per transaction (each holds the journal's write lock ~20-40 ms)
_MAX_WORDS = 64  # a look-up whose word could be more words than this scans instead
_LIKE_ROW = "(kind LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\')"


def words_of(text: str) -> set[str]:
    """The indexed words of ``text``: its runs of ASCII letters and ``_``, lower-cased."""
    return {w.lower() for w in _WORD.findall(text)}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def best_anchor(contains: str) -> tuple[str, bool, bool] | None:
    """The letter run of ``contains`` that narrows a search most: (word, starts, ends), where
    ``starts`` says a matching row has a word beginning with it (a character other than a letter or
    ``_`` precedes it in ``contains``) and ``ends`` a word ending with it; None when there is none."""
    best: tuple[int, int, str, bool, bool] | None = None
    for m in _WORD.finditer(contains):
        starts, ends = m.start() > 0, m.end() < len(contains)
        rank = (2 if starts and ends else 1 if starts or ends else 0, len(m.group()))
        if best is None or rank > best[:2]:
            best = (*rank, m.group().lower(), starts, ends)
    return None if best is None else best[2:]


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
        self._known_words: set[str] = set()  # in journal_words already (written by this connection)
        with self._lock:
            self._db.executescript(_SCHEMA)
            if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'journal_index'").fetchone() is None:
                self._create_index()

    def _create_index(self) -> None:
        # Lock held. One transaction: another process opening the journal at the same moment
        # finds either no index or all of it (CREATE ... IF NOT EXISTS, INSERT OR IGNORE).
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _INDEX_STATEMENTS:
                self._db.execute(statement)
            self._db.execute(
                "INSERT OR IGNORE INTO journal_index (one, first_seq, next_seq) "
                "SELECT 1, IFNULL(MAX(seq), 0) + 1, IFNULL(MAX(seq), 0) + 1 FROM journal"
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def index_new_rows(self, *, max_rows: int | None = None) -> int:
        """Add the rows written since the last call to the word index of ``recent`` (at most
        ``max_rows``; None: all of them, ``INDEX_BATCH`` rows a transaction). Returns how many.

        Raises:
            sqlite3.Error: the index could not be written (nothing of the failed batch was).
        """
        done = 0
        while max_rows is None or done < max_rows:
            batch = INDEX_BATCH if max_rows is None else min(INDEX_BATCH, max_rows - done)
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    (next_seq,) = self._db.execute("SELECT next_seq FROM journal_index").fetchone()
                    rows = self._db.execute(
                        "SELECT seq, kind, body FROM journal WHERE seq >= ? ORDER BY seq LIMIT ?", (next_seq, batch)
                    ).fetchall()
                    if rows:
                        terms = [(w, seq) for seq, kind, body in rows for w in words_of(kind) | words_of(body)]
                        self._db.executemany("INSERT OR IGNORE INTO journal_terms (word, seq) VALUES (?, ?)", terms)
                        fresh = {w for w, _ in terms} - self._known_words
                        self._db.executemany(
                            "INSERT OR IGNORE INTO journal_words (word) VALUES (?)", [(w,) for w in fresh]
                        )
                        self._db.execute("UPDATE journal_index SET next_seq = ?", (rows[-1][0] + 1,))
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                self._known_words |= fresh if rows else set()
            done += len(rows)
            if len(rows) < batch:
                break
        return done

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
        """The last ``limit`` entries whose kind or body contains ``contains`` (as SQL ``LIKE``,
        ASCII case-insensitive), oldest first (the journal lines an alert mail quotes about its
        cause); through the word index where it can (the module docstring)."""
        pattern = "%" + _like_escape(contains) + "%"
        self.index_new_rows()
        found: list[tuple[Any, ...]] = []
        with self._lock:
            first_seq, next_seq = self._db.execute("SELECT first_seq, next_seq FROM journal_index").fetchone()
            seqs = self._indexed_candidates(contains)
            scan_below = None if seqs is None else first_seq
            if seqs is not None:
                batch: list[int] = []
                for seq in seqs:
                    batch.append(seq)
                    if len(batch) >= 4 * limit:
                        found += self._matching(batch, pattern, limit - len(found))
                        batch = []
                        if len(found) >= limit:
                            break
                if batch and len(found) < limit:
                    found += self._matching(batch, pattern, limit - len(found))
                # rows written after the index was brought up to date (a moment ago)
                newer = self._db.execute(
                    f"SELECT seq, ts_ns, src, kind, corr, body FROM journal WHERE seq >= ? AND {_LIKE_ROW} "  # noqa: S608
                    "ORDER BY seq DESC LIMIT ?",
                    (next_seq, pattern, pattern, limit),
                ).fetchall()
                found = sorted([*newer, *found], key=lambda r: -r[0])[:limit]
            if len(found) < limit:
                where = "" if scan_below is None else "seq < ? AND "
                params: tuple[Any, ...] = () if scan_below is None else (scan_below,)
                found += self._db.execute(
                    f"SELECT seq, ts_ns, src, kind, corr, body FROM journal WHERE {where}{_LIKE_ROW} "  # noqa: S608
                    "ORDER BY seq DESC LIMIT ?",
                    (*params, pattern, pattern, limit - len(found)),
                ).fetchall()
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5])) for r in reversed(found)]

    def _indexed_candidates(self, contains: str) -> Iterator[int] | None:
        # Lock held. The seqs of indexed rows that may contain ``contains``, newest first; None
        # when the index cannot narrow the search (the caller scans).
        anchor = best_anchor(contains)
        if anchor is None:
            return None
        word, starts, ends = anchor
        if starts and ends:
            words = [word]
        elif starts:  # a word beginning with it: a range of the sorted words
            words = [
                w for (w,) in self._db.execute(
                    "SELECT word FROM journal_words WHERE word >= ? AND word < ? LIMIT ?",
                    (word, word + "\x7f", _MAX_WORDS + 1),
                )
            ]  # fmt: skip
        else:
            like = ("%" if ends or not starts else "") + _like_escape(word) + ("" if ends else "%")
            words = [
                w for (w,) in self._db.execute(
                    "SELECT word FROM journal_words WHERE word LIKE ? ESCAPE '\\' LIMIT ?", (like, _MAX_WORDS + 1)
                )
            ]  # fmt: skip
        if len(words) > _MAX_WORDS or (len(word) < 3 and not (starts and ends)):
            return None
        return self._merged(words)

    def _merged(self, words: list[str]) -> Iterator[int]:
        # Each word's rows newest first, read a page at a time, merged (a row once).
        def rows_of(w: str) -> Iterator[int]:
            below = 1 << 62
            while True:
                page = [
                    seq for (seq,) in self._db.execute(
                        "SELECT seq FROM journal_terms WHERE word = ? AND seq < ? ORDER BY seq DESC LIMIT 256",
                        (w, below),
                    )
                ]  # fmt: skip
                yield from page
                if len(page) < 256:
                    return
                below = page[-1]

        last = None
        for seq in heapq.merge(*(rows_of(w) for w in words), reverse=True):
            if seq != last:
                yield seq
                last = seq

    def _matching(self, seqs: list[int], pattern: str, limit: int) -> list[tuple[Any, ...]]:
        marks = ",".join("?" * len(seqs))
        return self._db.execute(
            f"SELECT seq, ts_ns, src, kind, corr, body FROM journal WHERE seq IN ({marks}) AND {_LIKE_ROW} "  # noqa: S608
            "ORDER BY seq DESC LIMIT ?",
            (*seqs, pattern, pattern, limit),
        ).fetchall()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._db.close()
