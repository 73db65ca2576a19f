"""Benchmark of ``Journal.recent`` (the alert desk's look-up of the journal lines about a cause).

Run with ``make bench`` (or ``python -m tests.bench.bench_journal [--quick] [--rows N]``). A journal
of N rows shaped like a trading day's (bars, signals, decisions, fills, alerts; default 1,000,000,
``--quick`` 200,000) is built in a temporary directory, then each term the desk searches for is
timed (median of 5) after the word index has been built (its time printed: the watchdog's ticks
do it as rows come), next to the LIKE scan ``recent`` was before (the baseline, same run, same
answer) and the kind-index look-up of one kind. ``--rows 10000000`` for the issue's 10M-row figure
(the build and the index take minutes). Nothing here is a test: it prints, it does not assert.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time

import orjson

from actors.runtime.journal import Journal
from tests.helpers import short_tmp_dir

INSTRUMENTS = ("EUR_USD", "GBP_USD", "USD_JPY", "AUD_USD", "EUR_GBP")
# (term, what it stands for): the desk's catch-up terms, a cause's tail, its explained-by kind, absent
TERMS = (
    ("host.started", "catch-up: the host's start (one row, at the beginning)"),
    ("alert", "catch-up: the alert rows (a word inside kinds: every word holding it)"),
    ('"EUR_USD"', "a cause's tail (in most rows)"),
    ("restart_intensity:feed", "a cause code (a few rows)"),
    ("feed.stream", "explained-by kind of stream_silent (none)"),
)


def _rows(n: int) -> list[tuple[int, str, str, str | None, str]]:
    out = []
    for i in range(n):
        inst = INSTRUMENTS[i % len(INSTRUMENTS)]
        if i % 10 < 6:
            kind, src, body = "md.bar", "feed", {"instrument": inst, "ts": 1709733600 + i, "o": "1.08123",
                                                 "h": "1.08200", "l": "1.08000", "c": "1.08150", "v": 1234}  # fmt: skip
        elif i % 10 < 9:
            kind, src, body = "model.signal", "model", {"instrument": inst, "p_up": 0.53, "model_version": "32ff71fb"}
        else:
            kind, src, body = "risk.skip", "risk", {"instrument": inst, "reason": "below_threshold", "p": 0.53}
        out.append((1_709_733_600_000_000_000 + i, src, kind, None, orjson.dumps(body).decode()))
    return out


def _like_scan(journal: Journal, contains: str, limit: int) -> list[int]:
    # What recent() was before the word index (the baseline).
    pattern = "%" + contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with journal._lock:
        rows = journal._db.execute(
            "SELECT seq FROM journal WHERE kind LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\' "
            "ORDER BY seq DESC LIMIT ?",
            (pattern, pattern, limit),
        ).fetchall()
    return [r[0] for r in reversed(rows)]


def main(argv: list[str] | None = None) -> int:
    """Build the journal, time the look-ups, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="a 200,000-row journal (a smoke run)")
    parser.add_argument("--rows", type=int, default=0, help="rows in the journal (default 1,000,000)")
    args = parser.parse_args(argv)
    n = args.rows or (200_000 if args.quick else 1_000_000)
    work = short_tmp_dir("thjournal")
    try:
        journal = Journal(work / "journal.sqlite", src="bench")
        journal.write("host.started", {"pid": 1})
        t0 = time.perf_counter()
        block = 100_000
        for start in range(0, n, block):
            rows = _rows(min(block, n - start))
            with journal._lock:
                journal._db.execute("BEGIN")
                journal._db.executemany(
                    "INSERT INTO journal (ts_ns, src, kind, corr, body) VALUES (?, ?, ?, ?, ?)", rows
                )
                journal._db.execute("COMMIT")
            if start == n // 2:
                journal.write("alert", {"code": "restart_intensity:feed", "severity": "critical"})
        build_s = time.perf_counter() - t0
        size_mb = (work / "journal.sqlite").stat().st_size / 1e6
        t0 = time.perf_counter()
        journal.index_new_rows()
        index_s = time.perf_counter() - t0
        with_index_mb = (work / "journal.sqlite").stat().st_size / 1e6
        print(f"Journal.recent on a journal of {n:,} rows (built in {build_s:.1f} s in {work.parent}):")
        print(
            f"  word index of every row: {index_s:.1f} s ({index_s / n * 1e6:.0f} µs a row, in the watchdog's "
            f"ticks), file {size_mb:,.0f} MB -> {with_index_mb:,.0f} MB"
        )
        base = []
        for _ in range(5):
            t0 = time.perf_counter()
            with journal._lock:
                journal._db.execute(
                    "SELECT seq FROM journal WHERE kind = 'risk.skip' ORDER BY seq DESC LIMIT 20"
                ).fetchall()
            base.append((time.perf_counter() - t0) * 1000)
        print(f"  {'baseline: last 20 rows of one kind (kind index)':<58} {statistics.median(base):8.2f} ms")
        for term, what in TERMS:
            times, scans = [], []
            for _ in range(5):
                t0 = time.perf_counter()
                found = journal.recent(term, limit=12)
                times.append((time.perf_counter() - t0) * 1000)
            for _ in range(3 if n <= 1_000_000 else 1):
                t0 = time.perf_counter()
                scanned = _like_scan(journal, term, 12)
                scans.append((time.perf_counter() - t0) * 1000)
            assert [e.seq for e in found] == scanned  # a benchmark of the same answer
            label = f"recent({term!r}) {len(found)} rows"
            print(
                f"  {label:<44} {statistics.median(times):8.2f} ms  (baseline, the LIKE scan: "
                f"{statistics.median(scans):8.1f} ms)  {what}"
            )
        print("  target: < 5 ms at 10,000,000 rows")
        journal.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
