"""Journal retention with a real host: ``tradehost journal archive`` is refused while the host runs
(and moves the rows once it is stopped); ``ctl status`` warns over ``host.journal_warn_mb``."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import FAST
from tests.helpers import REPO, poll_until, run_cli, running_host, short_tmp_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]


def _count(path: object) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(db.execute("SELECT COUNT(*) FROM journal").fetchone()[0])
    finally:
        db.close()


def test_archive_is_refused_while_a_host_runs_and_status_warns_over_journal_warn_mb() -> None:
    out = short_tmp_dir() / "archive.sqlite"
    with running_host([*FAST, "host.journal_warn_mb=0.001"]) as host:
        journal = host.run_dir / "journal.sqlite"
        # Act: archive everything while the host runs
        done = run_cli(
            "journal", "archive", "-c", str(REPO / "conf/default.toml"), *host.set_args,
            "--before", "2199-01-01", "--out", str(out),
        )  # fmt: skip

        # Assert: one line, exit 1, nothing moved, nothing written, the host untouched
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tradehost journal archive: refused: another host is running")
        assert "nothing was moved" in lines[0]
        assert not out.exists()
        assert host.journal("journal.archived") == []
        assert host.status()["state"] == "TRADING"

        # Assert: status warns (the journal is over a 1 kB threshold)
        status = host.status()["journal"]
        assert status["warn"] is True and status["mb"] > 0 and status["warn_mb"] == 0.001
        text = host.ctl("status")
        assert "WARNING: larger than host.journal_warn_mb" in text.stdout
        rows_before = _count(journal)
    # Once the host is stopped, the same command moves the rows
    poll_until(lambda: not (host.run_dir / "tradehost.lock").exists(), 30, what="lock released")
    total = _count(journal)
    assert total >= rows_before
    done = run_cli(
        "journal", "archive", "-c", str(REPO / "conf/default.toml"), *host.set_args,
        "--before", "2199-01-01", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _count(out) == total and _count(journal) == 1  # the journal.archived row
