"""Benchmark of ``tradehost sweep``: the same 16 cells on a LocalCluster of 1 worker and of 2.

Run with ``make bench`` (or ``python -m tests.bench.bench_sweep [--quick]``). Nothing here is a test:
it prints, it does not assert.

The grid: 16 cells, each with a model of its own (``train.seed`` x ``train.depth`` x two rolling
walk-forward windows) and a backtest of its training and test windows, over three instruments of
synthetic M15 candles (``tests.synthetic``). Each run is the whole ``tradehost sweep`` command into
a new ``--out`` (interpreter start, candle files read, the cluster started and closed), timed from
outside; the time the cells took on the cluster (submit to last result, the command's own line) is
printed beside it. The speed-up is 1 worker's time over 2 workers'; the target is >= 1.8x on the
2-core machine. The two runs' results.csv must be identical (printed).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.synthetic import synthetic_candles, write_candle_files

REPO = Path(__file__).resolve().parents[2]
INSTRUMENTS = ("EUR_USD", "GBP_USD", "USD_JPY")
GRID = """\
metric = "out_of_sample.sharpe"
heatmap = ["train.seed", "train.depth"]

[parameters]
"train.seed" = [1, 2, 3, 4]
"train.depth" = [4, 5]

[train]
iterations = {iterations}

[walk_forward]
train_days = {train_days}
test_days = {test_days}
windows = 2
"""


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sweep(grid: Path, data: list[str], out: Path, workers: int) -> tuple[float, float, float]:
    """The whole command's wall seconds, the cells' seconds on the cluster, and the CPU seconds the
    command's processes got (so a run on a machine others load can be read: cores used = CPU / wall)."""
    cpu = _children_cpu_s()
    started = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "supervisor", "sweep", "--grid", str(grid), "--data", *data, "--out", str(out),
         "--workers", str(workers), "--quiet"],
        capture_output=True, text=True, cwd=str(REPO), check=False,
    )  # fmt: skip
    whole = time.perf_counter() - started
    if res.returncode != 0:
        raise SystemExit(f"tradehost sweep --workers {workers} failed ({res.returncode}):\n{res.stderr}")
    found = re.search(r"(\d+) cell\(s\) ran in ([0-9.]+)s on the cluster", res.stderr)
    return whole, float(found.group(2)) if found else float("nan"), _children_cpu_s() - cpu


def main() -> None:
    """Print both timings and the speed-up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer bars and iterations (a smoke run)")
    args = parser.parse_args()
    last = "2024-02-15T00:00:00Z" if args.quick else "2024-05-01T00:00:00Z"
    train_days, test_days, iterations = (21, 7, 60) if args.quick else (60, 14, 400)
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        work = Path(tmp)
        frames = synthetic_candles(INSTRUMENTS, "2024-01-01T22:00:00Z", last)
        data = write_candle_files(frames, work / "data")
        grid = work / "grid.toml"
        grid.write_text(GRID.format(iterations=iterations, train_days=train_days, test_days=test_days))
        bars = len(next(iter(frames.values())))
        print(
            f"tradehost sweep: 16 cells (16 models: train.seed x train.depth x 2 windows of {train_days}+{test_days} "
            f"days, {iterations} iterations), {len(INSTRUMENTS)} instruments x {bars} M15 bars"
        )
        print(f"  load average before: {os.getloadavg()[0]:.2f} (other work on the machine slows both runs)")
        one = _sweep(grid, data, work / "one", 1)
        print(f"  1 worker : {one[0]:6.1f} s the whole command, {one[1]:6.1f} s the cells on the cluster, "
              f"{one[2]:.1f} CPU s ({one[2] / one[0]:.2f} cores)")  # fmt: skip
        two = _sweep(grid, data, work / "two", 2)
        print(f"  2 workers: {two[0]:6.1f} s the whole command, {two[1]:6.1f} s the cells on the cluster, "
              f"{two[2]:.1f} CPU s ({two[2] / two[0]:.2f} cores)")  # fmt: skip
        print(
            f"  speed-up : x{one[0] / two[0]:.2f} the whole command, x{one[1] / two[1]:.2f} the cells "
            "(target >= 1.8 on 2 cores)"
        )
        same = (work / "one/results.csv").read_bytes() == (work / "two/results.csv").read_bytes()
        print(f"  results.csv identical on 1 and 2 workers: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
