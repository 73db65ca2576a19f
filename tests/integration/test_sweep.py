"""``tradehost sweep`` as a command, against a real Dask ``LocalCluster`` of worker processes.

The candles are a week of synthetic M15 bars of EUR_USD (``tests.synthetic``, ~770 bars); the models
are small (30 iterations) so each cell takes a fraction of a second and a test's time is mostly the
cluster's start (a few seconds per run on a loaded 2-core machine).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import REPO, poll_until, run_cli, tradehost_cmd
from tests.synthetic import synthetic_candles, write_candle_files

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WINDOW = """
[[windows]]
train_from = 2024-01-01T22:00:00Z
train_to = 2024-01-06T22:00:00Z
test_to = 2024-01-09T22:00:00Z
"""
# Too short to train on: a day and a bit of bars, no more than the features' lookback.
SHORT_WINDOW = """
[[windows]]
train_from = 2024-01-03T22:00:00Z
train_to = 2024-01-05T00:00:00Z
test_to = 2024-01-09T22:00:00Z
"""


def _grid(tmp: Path, parameters: str, windows: str = WINDOW, name: str = "grid.toml") -> Path:
    path = tmp / name
    path.write_text(
        'metric = "out_of_sample.net_pnl"\n[parameters]\n'
        + parameters
        + "\n[train]\niterations = 30\nseed = 7\n"
        + windows
    )
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    frames = synthetic_candles(("EUR_USD",), "2024-01-01T22:00:00Z", "2024-01-10T00:00:00Z")
    return write_candle_files(frames, tmp_path_factory.mktemp("sweep-data"))


def _sweep(grid: Path, data: list[str], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*tradehost_cmd(), "sweep", "--grid", str(grid), "--data", *data, "--out", str(out), "--quiet", *extra],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=str(REPO),
        check=False,
    )


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_results_are_the_same_on_one_worker_and_on_two(tmp_path: Path, data: list[str]) -> None:
    # Arrange: 4 cells, 2 models (train.depth), 2 thresholds each
    grid = _grid(tmp_path, '"risk.min_probability" = [0.52, 0.55]\n"train.depth" = [3, 4]')

    # Act
    one = _sweep(grid, data, tmp_path / "one", "--workers", "1")
    two = _sweep(grid, data, tmp_path / "two", "--workers", "2")

    # Assert
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "LocalCluster of 2 worker" in two.stderr
    assert (tmp_path / "one/results.csv").read_bytes() == (tmp_path / "two/results.csv").read_bytes()
    rows = _rows(tmp_path / "one")
    assert [r["status"] for r in rows] == ["ok"] * 4
    assert len({r["model_version"] for r in rows}) == 2  # one model per depth, shared by the thresholds
    for r in rows:  # both samples were traded: the comparison is not between empty results
        assert int(r["in_sample.trades"]) > 0 and int(r["out_of_sample.trades"]) > 0, r
        assert r["train_to"] == "2024-01-06T22:00:00Z"
    assert len({r["out_of_sample.net_pnl"] for r in rows}) > 1  # the parameters made a difference
    frame_one = pd.read_parquet(tmp_path / "one/results.parquet")
    pd.testing.assert_frame_equal(frame_one, pd.read_parquet(tmp_path / "two/results.parquet"))
    assert list(frame_one["risk.min_probability"]) == [0.52, 0.52, 0.55, 0.55]
    assert frame_one["out_of_sample.sharpe"].dtype == "float64"
    assert (tmp_path / "one/heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failing_cell_is_reported_and_the_others_finish(tmp_path: Path, data: list[str]) -> None:
    grid = _grid(tmp_path, '"risk.min_probability" = [0.52, 0.55]', windows=WINDOW + SHORT_WINDOW)

    res = _sweep(grid, data, tmp_path / "out", "--workers", "2")

    assert res.returncode == 1, res.stderr
    rows = _rows(tmp_path / "out")
    assert [(r["window"], r["status"]) for r in rows] == [("0", "ok"), ("0", "ok"), ("1", "failed"), ("1", "failed")]
    for r in rows[2:]:
        assert r["error"].startswith("train: TrainError: EUR_USD: 104 bars in the window"), r["error"]
        assert r["out_of_sample.trades"] == ""
    assert (
        "cell 2 (all, window 1, risk.min_probability=0.52) failed: train: TrainError: EUR_USD: 104 bars" in res.stderr
    )
    assert "2 of 4 cells ok, 2 failed" in res.stderr


def test_a_rerun_with_the_same_out_skips_the_finished_cells(tmp_path: Path, data: list[str]) -> None:
    # Arrange: one cell done
    out = tmp_path / "out"
    first = _sweep(_grid(tmp_path, '"risk.min_probability" = [0.52]', name="a.toml"), data, out, "--workers", "1")
    assert first.returncode == 0, first.stderr
    (done,) = (out / "cells").iterdir()
    written = done.stat().st_mtime_ns
    before = _rows(out)[0]

    # Act: the grid grows by one value
    second = _sweep(
        _grid(tmp_path, '"risk.min_probability" = [0.52, 0.55]', name="b.toml"), data, out, "--workers", "1"
    )

    # Assert: the first cell is not run again, its model is not trained again
    assert second.returncode == 0, second.stderr
    assert "2 cells: 1 done before, 1 to run" in second.stderr
    assert "0 model(s) to train (1 from the cache)" in second.stderr
    assert done.stat().st_mtime_ns == written
    rows = _rows(out)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert rows[0] == before
    assert rows[0]["model_version"] == rows[1]["model_version"]

    # And a third run has nothing left to do: no cluster is started
    third = _sweep(_grid(tmp_path, '"risk.min_probability" = [0.52, 0.55]', name="b.toml"), data, out)
    assert third.returncode == 0, third.stderr
    assert "2 cells: 2 done before, 0 to run" in third.stderr
    assert "LocalCluster" not in third.stderr
    assert _rows(out) == rows


def test_ctrl_c_stops_cleanly_keeps_the_finished_cells_and_a_rerun_resumes(tmp_path: Path, data: list[str]) -> None:
    # Arrange: 12 cells on 1 worker, Ctrl-C (to the whole process group, as a terminal sends it)
    # once the first cell is written
    grid = _grid(tmp_path, '"risk.min_probability" = [0.52, 0.55, 0.58]\n"train.depth" = [3, 4, 5, 6]')
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*tradehost_cmd(), "sweep", "--grid", str(grid), "--data", *data, "--out", str(out), "--workers", "1"],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        poll_until(lambda: (out / "cells").is_dir() and any((out / "cells").iterdir()), timeout_s=60, what="a cell")

        # Act
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # Assert: exit 1, no traceback, no process of the group left running, the finished cells in results
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert "interrupted: rerun the same command to resume" in stderr
    left = poll_until(lambda: not _alive_in_group(proc.pid) or None, timeout_s=20, what="the workers gone")
    assert left
    kept = len(list((out / "cells").iterdir()))
    assert 1 <= kept < 12
    assert len(_rows(out)) == kept

    rerun = _sweep(grid, data, out, "--workers", "2")
    assert rerun.returncode == 0, rerun.stderr
    assert f"12 cells: {kept} done before, {12 - kept} to run" in rerun.stderr
    assert [r["status"] for r in _rows(out)] == ["ok"] * 12


def _alive_in_group(pgid: int) -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


@pytest.mark.parametrize(
    ("grid", "expected"),
    [
        ("[parameters]\n\"risk.min_probability\" = [0.55, 1.5]\n", "parameters: risk.min_probability"),
        ("[parameters]\n\"risk.no_such_key\" = [1]\n", "risk.no_such_key"),
        ("[parameters]\n\"train.depth\" = []\n", "parameters.train.depth: must be a non-empty list"),
        ('[parameters]\n"risk.min_probability" = [0.55]\n[instruments]\nx = ["USD_JPY"]\n', "no --data for USD_JPY"),
        ("[parameters\n", "not valid TOML"),
        ("[parameters]\n\"risk.min_probability\" = [0.55]\n[walk_forward]\ntrain_days = 30\ntest_days = 10\n",
         "do not fit in the data"),
    ],
)  # fmt: skip
def test_a_bad_grid_is_one_line_and_exit_2(tmp_path: Path, data: list[str], grid: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(grid)
    started = time.monotonic()

    res = run_cli("sweep", "--grid", str(path), "--data", *data, "--out", str(tmp_path / "out"))

    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"tradehost sweep: error: {path}: ") and expected in lines[0], lines[0]
    assert not (tmp_path / "out").exists()  # nothing written, no cluster started
    assert time.monotonic() - started < 60


def test_an_out_directory_that_is_not_a_sweep_is_refused(tmp_path: Path, data: list[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.json").write_text("{}")

    res = run_cli("sweep", "--grid", str(_grid(tmp_path, '"risk.min_probability" = [0.55]')), "--data", *data,
                  "--out", str(out))  # fmt: skip

    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"tradehost sweep: error: --out {out}: exists and is not empty; nothing was written (give a new directory "
        "or remove this one)"
    ]
    assert sorted(p.name for p in out.iterdir()) == ["model.json"]
