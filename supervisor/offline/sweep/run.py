"""``tradehost sweep``: a grid of walk-forward train + backtest cells on a Dask cluster.

The client (this process) reads the candles once (``tradehost backtest``'s inputs: the same checks),
lays out the cells (``plan``: parameter set x instrument set x window, each with its ``[risk]`` and
``[execution]`` sections loaded like ``--set``), scatters the candles to the cluster and submits one
``train`` task per distinct model and one ``cell`` task per cell that is not done yet
(``supervisor.offline.sweep.cell``). The cluster is Dask's: a ``LocalCluster`` of ``--workers``
processes (one thread each) on this machine, or the scheduler at ``--scheduler``. Dask's progress
bar shows on stdout while a collector thread writes each finished cell to ``--out``.

``--out`` keeps everything a rerun needs:

- ``cells/<cell_id>.json``: each finished cell's row, written crash-safely the moment it finishes.
  ``cell_id`` is a content hash of everything the result depends on (the candles, the instruments,
  the window, the training settings, the ``[risk]`` and ``[execution]`` sections), so a rerun with
  the same ``--out`` skips every cell that finished ``ok`` (failed cells run again) and a changed
  grid reuses the cells it still has.
- ``models/<key>/``: each model trained, keyed by the content hash of its candles and settings; a
  rerun reuses it instead of training again.
- ``grid.toml`` (the last grid run) and ``sweep.json`` (what the directory is).
- ``results.csv``, ``results.parquet`` and ``heatmap.png`` (``supervisor.offline.sweep.results``),
  rewritten at the end of every run, an interrupted one too, from the cells finished so far.

Ctrl-C (or SIGTERM) cancels what is queued, closes the client and the cluster it started and writes the
results of the finished cells; a second Ctrl-C during that is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actors.core.atomicfile import write_atomically
from actors.core.errors import TradehostError
from supervisor.offline.sweep.cell import (
    MODEL_FILES,
    STATUS_FAILED,
    STATUS_OK,
    CellJob,
    ModelJob,
    TrainedModel,
    error_line,
    run_cell,
    train_model,
)
from supervisor.offline.sweep.grid import Grid, GridError, Window, walk_forward_windows
from supervisor.offline.sweep.results import HEATMAP_FILE, plot_heatmap, write_results

if TYPE_CHECKING:
    from actors.core.config import ExecutionConfig, RiskConfig
    from supervisor.offline.backtest.inputs import Inputs
    from supervisor.offline.history import History

__all__ = ["MANIFEST_FILE", "Cell", "SweepError", "SweepOutcome", "plan", "prepare_out", "run_sweep"]

MANIFEST_FILE = "sweep.json"
GRID_FILE = "grid.toml"
CELLS_DIR = "cells"
MODELS_DIR = "models"
_KIND = "tradehost-sweep"
_HASH_LEN = 16


class SweepError(TradehostError):
    """The sweep cannot run (the cluster cannot be reached); one line."""


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell of the grid: its identity columns and the two jobs (model, backtest)."""

    index: int
    instrument_set: str
    window_index: int
    params: dict[str, Any]
    model: ModelJob
    job: CellJob

    @property
    def cell_id(self) -> str:
        """The content hash the cell is kept under."""
        return self.job.cell_id

    def identity(self) -> dict[str, Any]:
        """The identity columns of its row."""
        return {
            "cell": self.index,
            "cell_id": self.cell_id,
            "instrument_set": self.instrument_set,
            "instruments": ",".join(self.job.instruments),
            "window": self.window_index,
            **self.job.window.as_row(),
            **self.params,
        }


@dataclass(slots=True)
class SweepOutcome:
    """How a run went: rows of the grid's cells finished (in the grid's order), counts, and whether
    it was interrupted."""

    rows: list[dict[str, Any]]
    total: int
    reused: int
    ran: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    elapsed_s: float = 0.0


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:_HASH_LEN]


# The code a cell's row depends on: the trading rules and features (actors.core, actors.ml) and the
# train and backtest functions. A change to any of it retrains and reruns, however small.
_CODE_ROOTS = ("actors/core", "actors/ml", "supervisor/offline/train.py", "supervisor/offline/backtest")
_REPO = Path(__file__).resolve().parents[3]


def code_digest(repo: Path = _REPO, roots: Sequence[str] = _CODE_ROOTS) -> str:
    """A content hash of the Python sources a cell's model and row depend on (``_CODE_ROOTS``), so a
    resumed ``--out`` or a cached model never mixes rows of two versions of tradehost's own code."""
    h = hashlib.sha256()
    for root in roots:
        path = repo / root
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(file.relative_to(repo).as_posix().encode())
            h.update(file.read_bytes())
    return h.hexdigest()[:_HASH_LEN]


def data_digest(history: History, name: str) -> str:
    """A content hash of one instrument's candles (and bid/ask quotes, pip size, fallback spread)."""
    h = hashlib.sha256()
    frame = history.frames[name]
    h.update(np.ascontiguousarray(frame.index.to_numpy(dtype=np.int64)).tobytes())
    for column in sorted(frame.columns):
        h.update(column.encode())
        h.update(np.ascontiguousarray(frame[column].to_numpy(dtype=np.float64)).tobytes())
    quotes = history.quotes.get(name)
    if quotes is not None:
        for column in sorted(quotes.columns):
            h.update(np.ascontiguousarray(quotes[column].to_numpy(dtype=np.float64)).tobytes())
    h.update(repr((history.pip_sizes.get(name), history.spread_fallback.get(name))).encode())
    return h.hexdigest()


def plan(
    grid: Grid,
    inputs: Inputs,
    *,
    granularity: str,
    sections: Callable[[list[str]], tuple[RiskConfig, ExecutionConfig]],
    configured: Sequence[str],
) -> list[Cell]:
    """The cells of ``grid`` over ``inputs``: for each window, each instrument set, each parameter set.

    Args:
        grid: the parsed grid.
        inputs: the candles and the account (``tradehost backtest``'s inputs).
        granularity: the bars' granularity.
        sections: ``--set`` strings -> the ``[risk]`` and ``[execution]`` sections (raises
            ``ConfigError`` for a wrong key or value).
        configured: ``feed.instruments`` (the order a cell's instruments are decided in).

    Raises:
        GridError: no window fits the data.
        ConfigError: a parameter's key or value is refused.
    """
    from actors.ml.features import FEATURES_VERSION  # noqa: PLC0415
    from supervisor.offline.backtest.run import ordered_instruments  # noqa: PLC0415

    history = inputs.history
    first = min(int(f.index[0]) for f in history.frames.values())
    end = max(int(f.index[-1]) for f in history.frames.values()) + 1
    windows = walk_forward_windows(grid, first, end)
    digests = {name: data_digest(history, name) for name in history.frames}
    code = code_digest()
    try:
        import catboost  # noqa: PLC0415

        catboost_version = str(catboost.__version__)
    except (ImportError, AttributeError):  # pragma: no cover - catboost is a dependency
        catboost_version = "?"
    resolved = {}
    for params in grid.parameter_sets():
        overrides = grid.config_overrides(params)
        resolved[json.dumps(overrides)] = sections(overrides)
    cells: list[Cell] = []
    for w_index, window in enumerate(windows):
        for set_name, names in grid.instrument_sets.items():
            instruments = ordered_instruments(names, configured)
            for params in grid.parameter_sets():
                settings = grid.train_settings(params)
                model_key = _digest(
                    {
                        "data": {n: digests[n] for n in sorted(instruments)},
                        "granularity": granularity,
                        "window": [window.train_from_ns, window.train_to_ns],
                        "settings": settings,
                        "features": FEATURES_VERSION,
                        "catboost": catboost_version,
                        "code": code,
                    }
                )
                risk, execution = resolved[json.dumps(grid.config_overrides(params))]
                cell_id = _digest(
                    {
                        "model": model_key,
                        "instruments": list(instruments),
                        "window": [window.train_from_ns, window.test_to_ns],
                        "risk": asdict(risk),
                        "execution": asdict(execution),
                        "account": [inputs.home_currency, inputs.opening_nav],
                        "code": code,
                    }
                )
                model = ModelJob(model_key, tuple(sorted(instruments)), granularity, window.train_from_ns,
                                 window.train_to_ns, settings)  # fmt: skip
                job = CellJob(
                    cell_id=cell_id,
                    instruments=instruments,
                    granularity=granularity,
                    window=window,
                    risk=risk,
                    execution=execution,
                    meta={n: inputs.meta[n] for n in instruments},
                    home_currency=inputs.home_currency,
                    opening_nav=inputs.opening_nav,
                )
                cells.append(Cell(len(cells), set_name, w_index, params, model, job))
    return cells


def prepare_out(out: Path, grid_text: str) -> bool:
    """Make ``out`` a sweep directory: a new one, or the one an earlier run left (to resume).

    Returns:
        True when it holds an earlier run.

    Raises:
        GridError: ``out`` holds something that is not a sweep (nothing is written into it).
    """
    manifest = out / MANIFEST_FILE
    earlier = out.is_dir() and any(out.iterdir())
    if earlier:
        try:
            kind = json.loads(manifest.read_text(encoding="utf-8")).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind != _KIND:
            raise GridError(
                f"--out {out}: exists, is not empty and is not a sweep directory (no {MANIFEST_FILE}); "
                "nothing was written (give a new directory, or an earlier sweep's to resume it)"
            )
    (out / CELLS_DIR).mkdir(parents=True, exist_ok=True)
    (out / MODELS_DIR).mkdir(exist_ok=True)
    write_atomically(out / GRID_FILE, grid_text.encode("utf-8"))
    write_atomically(manifest, (json.dumps({"kind": _KIND, "version": 1}, indent=2) + "\n").encode())
    return earlier


def _load_done(out: Path, cells: Sequence[Cell]) -> dict[str, dict[str, Any]]:
    done = {}
    for cell in cells:
        path = out / CELLS_DIR / f"{cell.cell_id}.json"
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(row, dict) and row.get("status") == STATUS_OK:
            done[cell.cell_id] = row
    return done


def _cached_model(out: Path, key: str) -> TrainedModel | None:
    directory = out / MODELS_DIR / key
    try:
        return TrainedModel(key, {name: (directory / name).read_bytes() for name in MODEL_FILES})
    except OSError:
        return None


def _keep_model(out: Path, model: TrainedModel) -> None:
    if model.error:
        return
    directory = out / MODELS_DIR / model.key
    directory.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:  # model.cbm first: a model.json without its model is never left
        write_atomically(directory / name, model.files[name])


def _distributed() -> Any:
    """Dask's ``distributed`` (the sweep extra), untyped: imported when a sweep runs."""
    import distributed  # noqa: PLC0415

    return distributed


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A Dask client: of a ``LocalCluster`` of ``workers`` processes, or of the scheduler at ``scheduler``."""
    dask = _distributed()
    if scheduler:
        try:
            client = dask.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as e:
            raise SweepError(f"--scheduler {scheduler}: cannot connect ({error_line(e)})") from e
        try:
            yield client
        finally:
            client.close()
        return
    # Ctrl-C in a terminal reaches the whole process group: the workers start with SIGINT ignored
    # (inherited through their exec), so only this process hears it and closes them in order.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        cluster = dask.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # Errors are the cells' rows; the scheduler's log at close (a progress feed cancelled) is noise.
            silence_logs=logging.CRITICAL,
        )
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    try:
        client = dask.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def run_sweep(
    cells: Sequence[Cell],
    history: History,
    *,
    out: Path,
    grid: Grid,
    scheduler: str | None,
    workers: int,
    say: Callable[[str], None],
    show_progress: bool = True,
) -> SweepOutcome:
    """Run the cells not done yet on the cluster and write the results (the module docstring)."""
    started = time.perf_counter()
    done = _load_done(out, cells)
    outcome = SweepOutcome(rows=[], total=len(cells), reused=len(done))
    todo = [c for c in cells if c.cell_id not in done]
    say(f"{len(cells)} cells: {len(done)} done before, {len(todo)} to run")
    rows: dict[str, dict[str, Any]] = {cid: row for cid, row in done.items()}
    if todo:
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminated) if main else None  # SIGTERM: as Ctrl-C
        try:
            _run_on_cluster(todo, history, out=out, scheduler=scheduler, workers=workers, say=say,
                            show_progress=show_progress, rows=rows, outcome=outcome)  # fmt: skip
        except KeyboardInterrupt:
            outcome.interrupted = True
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
    outcome.rows = [rows[c.cell_id] for c in cells if c.cell_id in rows]
    outcome.failed = [r for r in outcome.rows if r.get("status") != STATUS_OK]
    _write_all(out, outcome.rows, grid, say)
    outcome.elapsed_s = time.perf_counter() - started
    return outcome


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run_on_cluster(
    todo: Sequence[Cell],
    history: History,
    *,
    out: Path,
    scheduler: str | None,
    workers: int,
    say: Callable[[str], None],
    show_progress: bool,
    rows: dict[str, dict[str, Any]],
    outcome: SweepOutcome,
) -> None:
    dask = _distributed()

    say(
        f"connecting to the Dask scheduler at {scheduler}"
        if scheduler
        else f"starting a LocalCluster of {workers} worker process(es)"
    )
    stop = threading.Event()
    with _client(scheduler, workers) as client:
        try:
            say(f"{len(client.scheduler_info()['workers'])} worker(s) ready")
            submitted = time.perf_counter()
            candles = client.scatter(history, hash=False)
            models: dict[str, Any] = {}
            to_train = 0
            for cell in todo:
                key = cell.model.key
                if key in models:
                    continue
                cached = _cached_model(out, key)
                if cached is not None:
                    models[key] = client.scatter(cached, hash=False)
                else:
                    cost = _train_cost(cell.model)
                    models[key] = client.submit(
                        train_model, candles, cell.model, key=f"train-{key}", pure=False, priority=cost
                    )
                    to_train += 1
            # The longest trainings first (Dask runs the highest priority first), so no long one is left
            # for the end while the other workers idle; a cell's backtest before any training not yet
            # started, so the models' cells finish as they become ready.
            futures = {
                client.submit(
                    run_cell, candles, models[c.model.key], c.job, key=f"cell-{c.cell_id}", pure=False,
                    priority=_CELL_PRIORITY,
                ): c
                for c in todo
            }  # fmt: skip
            reused = len(models) - to_train
            say(f"{to_train} model(s) to train ({reused} from the cache), {len(todo)} cell(s) to backtest")
            trains = [f for f in models.values() if getattr(f, "key", "").startswith("train-")]
            collector = threading.Thread(
                target=lambda: _collect(futures, trains, out=out, rows=rows, outcome=outcome, stop=stop, say=say),
                name="sweep-collector",
                daemon=True,
            )
            collector.start()
            if show_progress:
                dask.progress(list(futures), multi=False, interval="0.5s" if sys.stdout.isatty() else "5s")
            dask.wait(list(futures))
            collector.join()
            say(f"{len(todo)} cell(s) ran in {time.perf_counter() - submitted:.1f}s on the cluster")
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
            stop.set()
            say("interrupted: cancelling the queued cells, closing the cluster")
            with contextlib.suppress(Exception):
                client.cancel(list(futures) + trains)
            raise


_CELL_PRIORITY = 2**62


def _train_cost(job: ModelJob) -> int:
    """A training's relative cost for the ordering: rounds x depth x bars x instruments."""
    settings = job.settings
    rounds, depth = int(settings.get("iterations", 1)), int(settings.get("depth", 1))
    span = max(1, (job.train_to_ns - job.train_from_ns) // 60_000_000_000)  # minutes of candles
    return rounds * depth * span * len(job.instruments)


def _collect(
    futures: Mapping[Any, Cell],
    trains: Sequence[Any],
    *,
    out: Path,
    rows: dict[str, dict[str, Any]],
    outcome: SweepOutcome,
    stop: threading.Event,
    say: Callable[[str], None],
) -> None:
    """Write each finished cell (and each trained model) to ``out`` as it completes."""
    for future in _distributed().as_completed([*futures, *trains]):
        if stop.is_set():
            return
        if future.status == "cancelled":
            continue
        cell = futures.get(future)
        if cell is None:  # a model: keep it for a rerun
            if future.status == "finished":
                with contextlib.suppress(OSError):
                    _keep_model(out, future.result())
            continue
        if future.status == "finished":
            result = future.result()
        else:  # the task itself erred (a worker died under it again and again)
            result = {"status": STATUS_FAILED, "error": f"dask: {error_line(future.exception())}"}
        row = {**cell.identity(), **result}
        try:
            write_atomically(
                out / CELLS_DIR / f"{cell.cell_id}.json", (json.dumps(row, sort_keys=True) + "\n").encode()
            )
        except OSError as e:  # the row still reaches results.csv; only a rerun would run the cell again
            say(f"cell {cell.index}: cannot be kept in {out / CELLS_DIR} ({e.strerror or e})")
        rows[cell.cell_id] = row
        outcome.ran += 1
        if row["status"] != STATUS_OK:
            say(f"cell {cell.index} ({_described(cell)}) failed: {row['error']}")


def _described(cell: Cell) -> str:
    params = ", ".join(f"{k}={v}" for k, v in cell.params.items())
    return f"{cell.instrument_set}, window {cell.window_index}" + (f", {params}" if params else "")


def _write_all(out: Path, rows: Sequence[dict[str, Any]], grid: Grid, say: Callable[[str], None]) -> None:
    write_results(out, rows, list(grid.parameters))
    (out / HEATMAP_FILE).unlink(missing_ok=True)
    if len(grid.heatmap) == 2:
        x, y = grid.heatmap
        plot_heatmap(out / HEATMAP_FILE, rows, metric=grid.metric, axes=(x, y), values=grid.parameters)
    else:
        say("no heatmap: it needs two parameters in [parameters]")


def describe_window(window: Window) -> str:
    """``train a .. b, test .. c`` for a line of output."""
    row = window.as_row()
    return f"train {row['train_from'][:16]}Z .. {row['train_to'][:16]}Z, test .. {row['test_to'][:16]}Z"
