"""The results of ``tradehost sweep``: ``results.csv``, ``results.parquet`` and ``heatmap.png``.

One row per cell, in the grid's order: ``cell`` (its number in this grid), ``cell_id`` (the content
hash it is kept under in ``cells/``), ``status`` (``ok`` or ``failed``) and ``error`` (one line),
``instrument_set``, ``instruments``, ``window`` (its number) with ``train_from`` / ``train_to`` /
``test_to``, one column per parameter, ``model_version``, the model's held-out ``model.accuracy`` /
``model.log_loss`` / ``model.auc``, then ``in_sample.<metric>`` and ``out_of_sample.<metric>`` for each
metric of the backtest's blocks (``supervisor.offline.sweep.grid.METRIC_NAMES``). An empty cell (CSV)
or null (parquet) is a metric the backtest gives none for (no trades, no loss...). Nothing in a row
comes from a clock: the same grid and data give the same files.

The heatmap shows the grid's metric over its two heatmap parameters; where other parameters,
instrument sets or windows vary too, each square is the mean over its ``ok`` cells (the title says
over how many).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from actors.core.atomicfile import write_atomically
from supervisor.offline.sweep.grid import metric_columns

__all__ = ["HEATMAP_FILE", "PARQUET_FILE", "RESULTS_FILE", "columns", "plot_heatmap", "write_results"]

RESULTS_FILE = "results.csv"
PARQUET_FILE = "results.parquet"
HEATMAP_FILE = "heatmap.png"
LEADING = (
    "cell",
    "cell_id",
    "status",
    "error",
    "instrument_set",
    "instruments",
    "window",
    "train_from",
    "train_to",
    "test_to",
)


def columns(parameters: Sequence[str]) -> list[str]:
    """The columns of a results row, in order."""
    return [*LEADING, *parameters, "model_version", *metric_columns()]


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_results(out: Path, rows: Sequence[Mapping[str, Any]], parameters: Sequence[str]) -> None:
    """Write ``results.csv`` and ``results.parquet`` (each replaced whole, crash-safely)."""
    import pandas as pd  # noqa: PLC0415 - results are written once, at the end

    names = columns(parameters)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([_cell_text(row.get(c)) for c in names])
    write_atomically(out / RESULTS_FILE, text.getvalue().encode("utf-8"))
    frame = pd.DataFrame([{c: _parquet_value(row.get(c)) for c in names} for row in rows], columns=names)
    for name in metric_columns():
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    write_atomically(out / PARQUET_FILE, buffer.getvalue())


def _parquet_value(value: Any) -> Any:
    # A parameter may be a list (risk.drawdown_zones): parquet keeps it as its text.
    return _cell_text(value) if isinstance(value, list | tuple | dict) else value


def plot_heatmap(
    path: Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    metric: str,
    axes: tuple[str, str],
    values: Mapping[str, Sequence[Any]],
) -> int:
    """``heatmap.png``: the mean of ``metric`` over the ``ok`` cells of each pair of ``axes`` values.

    Args:
        path: where to write it.
        rows: the results rows.
        metric: the metric column.
        axes: the (x, y) parameters.
        values: parameter -> its values in the grid's order (the axes' ticks).

    Returns:
        The number of squares that have a value.
    """
    import matplotlib  # noqa: PLC0415 - plotting loads only when an image is written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    x_name, y_name = axes
    xs, ys = [_cell_text(v) for v in values[x_name]], [_cell_text(v) for v in values[y_name]]
    sums = np.zeros((len(ys), len(xs)))
    counts = np.zeros((len(ys), len(xs)), dtype=int)
    for row in rows:
        value = row.get(metric)
        if row.get("status") != "ok" or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        i, j = ys.index(_cell_text(row[y_name])), xs.index(_cell_text(row[x_name]))
        sums[i, j] += float(value)
        counts[i, j] += 1
    grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(xs) + 2), max(3.0, 0.8 * len(ys) + 2)), constrained_layout=True)
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto", origin="lower")
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    per = sorted({int(c) for c in counts.reshape(-1) if c})
    each = "" if per in ([], [1]) else f" (mean over {'/'.join(str(c) for c in per)} cells each)"
    ax.set_title(f"{metric}{each}")
    for i in range(len(ys)):
        for j in range(len(xs)):
            text = "n/a" if counts[i, j] == 0 else f"{grid[i, j]:.3g}"
            ax.text(j, i, text, ha="center", va="center", color="white" if counts[i, j] else "grey", fontsize=9)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return int((counts > 0).sum())
