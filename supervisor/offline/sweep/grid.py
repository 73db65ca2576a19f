"""``GRID.toml``, the grid of ``tradehost sweep``: what varies, over which instruments and windows.

A grid file has these parts (every one optional but ``[parameters]``; README "Research on a
cluster" shows a whole file):

- ``[parameters]``: each key a parameter, each value the list of values to try; the cells are the
  cross product of the lists, in the file's order. A parameter is a configuration key of
  ``[risk]`` or ``[execution]`` (``"risk.min_probability" = [0.55, 0.6]``: checked like ``--set``,
  so a wrong key or value is refused before anything runs) or a training setting
  ``train.<name>`` (``seed``, ``horizon_bars``, ``iterations``, ``depth``, ``learning_rate``,
  ``holdout_fraction``).
- ``[train]``: the training settings every cell shares (the same names; default: ``tradehost
  train``'s, with ``thread_count = 1``: a worker is one core, and the model's bytes depend on it).
- ``[instruments]``: named instrument sets (``majors = ["EUR_USD", "GBP_USD"]``); default one set,
  ``all``, of every ``--data`` instrument.
- The walk-forward windows, either ``[walk_forward]`` (``train_days``, ``test_days``, optional
  ``start``, ``step_days`` (default ``test_days``), ``windows`` (default: as many as the data
  holds) and ``anchored``) or a list of ``[[windows]]`` tables (``train_from``, ``train_to``,
  ``test_to``). Each window trains a model on [train_from, train_to) and backtests
  [train_from, test_to): the metrics split at the end of the training window into in-sample and
  out-of-sample (the backtest's ``sample_split``). Default: one window, the first 75 % of the
  data for training.
- ``metric`` (default ``out_of_sample.sharpe``) and ``heatmap`` (two parameters; default the first
  two of ``[parameters]``): what ``heatmap.png`` shows.

Times are TOML dates (``2024-01-01``, midnight UTC), TOML datetimes with an offset, or the
strings ``--from`` takes. A problem is one ``GridError`` line naming the key.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.core.errors import TradehostError
from actors.core.timefmt import format_rfc3339

__all__ = [
    "CONFIG_SECTIONS",
    "METRIC_BLOCKS",
    "METRIC_NAMES",
    "TRAIN_SETTINGS",
    "Grid",
    "GridError",
    "Window",
    "parse_grid",
    "walk_forward_windows",
]

DAY_NS = 86_400 * 10**9
# Training settings a grid may set ([train]) or sweep (train.<name>), with their types and defaults.
TRAIN_SETTINGS: dict[str, tuple[type, Any]] = {
    "seed": (int, 0),
    "horizon_bars": (int, 4),
    "iterations": (int, 300),
    "depth": (int, 4),
    "learning_rate": (float, 0.05),
    "holdout_fraction": (float, 0.2),
    "thread_count": (int, 1),
}
# The configuration sections a parameter may name: the ones the backtest's rules read.
CONFIG_SECTIONS = ("risk", "execution")
# The metrics of a row, per block (the backtest's metrics.json in_sample / out_of_sample).
METRIC_BLOCKS = ("in_sample", "out_of_sample")
METRIC_NAMES = (
    "bars",
    "trades",
    "win_rate",
    "profit_factor",
    "sharpe",
    "sortino",
    "max_drawdown",
    "net_pnl",
    "return",
    "average_r",
    "exposure",
)
MODEL_METRICS = ("model.accuracy", "model.log_loss", "model.auc")
_TOP = {"metric", "heatmap", "parameters", "train", "instruments", "walk_forward", "windows"}
_WALK = {"start", "train_days", "test_days", "step_days", "windows", "anchored"}
_WINDOW = {"train_from", "train_to", "test_to"}
DEFAULT_TRAIN_SHARE = 0.75


class GridError(TradehostError):
    """The grid file cannot be used; the message is one line naming the key."""


@dataclass(frozen=True, slots=True)
class Window:
    """A walk-forward window: train on [train_from_ns, train_to_ns), backtest [train_from_ns, test_to_ns)
    (out-of-sample from train_to_ns)."""

    train_from_ns: int
    train_to_ns: int
    test_to_ns: int

    def as_row(self) -> dict[str, str]:
        """The window's columns of a results row."""
        return {
            "train_from": _when(self.train_from_ns),
            "train_to": _when(self.train_to_ns),
            "test_to": _when(self.test_to_ns),
        }


def _when(ts_ns: int) -> str:
    return format_rfc3339(ts_ns).replace(".000000000Z", "Z")  # window edges are whole seconds


@dataclass(frozen=True, slots=True)
class WalkForward:
    """``[walk_forward]``: windows laid over the data once its span is known."""

    train_days: float
    test_days: float
    step_days: float
    start_ns: int | None = None
    count: int | None = None
    anchored: bool = False


@dataclass(frozen=True, slots=True)
class Grid:
    """A parsed grid file (the module docstring)."""

    parameters: dict[str, tuple[Any, ...]]
    train: dict[str, Any]
    instrument_sets: dict[str, tuple[str, ...]]
    windows: tuple[Window, ...] = ()
    walk_forward: WalkForward | None = None
    metric: str = "out_of_sample.sharpe"
    heatmap: tuple[str, ...] = field(default_factory=tuple)

    def parameter_sets(self) -> list[dict[str, Any]]:
        """The cross product of ``parameters``, in the file's order (one empty set without any)."""
        names = list(self.parameters)
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*self.parameters.values())]

    def config_overrides(self, params: Mapping[str, Any]) -> list[str]:
        """``--set`` strings of the configuration parameters of one set (values as TOML)."""
        return [f"{k}={_toml_value(v)}" for k, v in params.items() if k.split(".", 1)[0] in CONFIG_SECTIONS]

    def train_settings(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The training settings of one set: ``[train]`` with the swept ``train.*`` over it."""
        out = dict(self.train)
        out.update({k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("train.")})
        return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def parse_grid(text: str, *, instruments: Sequence[str]) -> Grid:
    """Read a grid file's text.

    Args:
        text: the TOML.
        instruments: the instruments of the data (``--data``): the sets must name only these.

    Raises:
        GridError: one line naming the key and the problem.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise GridError(f"not valid TOML: {e}") from e
    unknown = sorted(set(doc) - _TOP)
    if unknown:
        raise GridError(f"{unknown[0]}: unknown key (a grid has {', '.join(sorted(_TOP))})")
    parameters = _parameters(doc.get("parameters"))
    train = _train(doc.get("train", {}))
    sets = _instrument_sets(doc.get("instruments"), instruments)
    if "walk_forward" in doc and "windows" in doc:
        raise GridError("windows: give either [walk_forward] or [[windows]], not both")
    windows = _windows(doc["windows"]) if "windows" in doc else ()
    walk = _walk_forward(doc["walk_forward"]) if "walk_forward" in doc else None
    metric = doc.get("metric", "out_of_sample.sharpe")
    if not isinstance(metric, str) or metric not in metric_columns():
        raise GridError(f"metric: {metric!r} is not a metric of the results (e.g. out_of_sample.sharpe)")
    heatmap = _heatmap(doc.get("heatmap"), parameters)
    return Grid(parameters, train, sets, windows, walk, metric, heatmap)


def metric_columns() -> list[str]:
    """The metric columns of a results row."""
    return [*MODEL_METRICS, *(f"{b}.{m}" for b in METRIC_BLOCKS for m in METRIC_NAMES)]


def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GridError(f"{key}: must be a table ([{key}])")
    return value


def _parameters(value: Any) -> dict[str, tuple[Any, ...]]:
    if value is None:
        raise GridError("parameters: missing (a [parameters] table of name = [values]; see README)")
    table = _table(value, "parameters")
    out: dict[str, tuple[Any, ...]] = {}
    for name, values in table.items():
        key = f"parameters.{name}"
        if isinstance(values, dict):
            raise GridError(f'{key}: quote a dotted parameter name ("{name}.…" = [...])')
        section, _, rest = name.partition(".")
        if section == "train":
            if rest not in TRAIN_SETTINGS or rest == "thread_count":
                settings = ", ".join(n for n in TRAIN_SETTINGS if n != "thread_count")
                raise GridError(f"{key}: unknown training setting (train.<{settings}>)")
        elif section not in CONFIG_SECTIONS or not rest:
            raise GridError(f"{key}: a parameter is risk.<key>, execution.<key> or train.<setting>")
        if not isinstance(values, list) or not values:
            raise GridError(f"{key}: must be a non-empty list of values")
        checked = [_train_value(rest, v, key) for v in values] if section == "train" else values
        if len({_toml_value(v) for v in checked}) != len(checked):
            raise GridError(f"{key}: a value is listed twice")
        out[name] = tuple(checked)
    return out


def _train_value(name: str, value: Any, key: str) -> Any:
    kind = TRAIN_SETTINGS[name][0]
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise GridError(f"{key}: {value!r} is not {'an integer' if kind is int else 'a number'}")
    if not math.isfinite(value) or (value < 0 if name == "seed" else value <= 0):
        raise GridError(f"{key}: {value!r} must be {'0 or more' if name == 'seed' else 'above 0'}")
    if name == "holdout_fraction" and not value < 1:
        raise GridError(f"{key}: {value!r} must be below 1")
    return kind(value)


def _train(value: Any) -> dict[str, Any]:
    table = _table(value, "train")
    out = {name: default for name, (_, default) in TRAIN_SETTINGS.items()}
    for name, v in table.items():
        if name not in TRAIN_SETTINGS:
            raise GridError(f"train.{name}: unknown training setting ({', '.join(TRAIN_SETTINGS)})")
        out[name] = _train_value(name, v, f"train.{name}")
    return out


def _instrument_sets(value: Any, instruments: Sequence[str]) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {"all": tuple(instruments)}
    table = _table(value, "instruments")
    if not table:
        raise GridError('instruments: name at least one set (majors = ["EUR_USD", ...])')
    out: dict[str, tuple[str, ...]] = {}
    for name, names in table.items():
        key = f"instruments.{name}"
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise GridError(f"{key}: must be a non-empty list of instrument names")
        missing = [n for n in names if n not in instruments]
        if missing:
            raise GridError(f"{key}: no --data for {', '.join(missing)} (given: {', '.join(instruments)})")
        if len(set(names)) != len(names):
            raise GridError(f"{key}: an instrument is listed twice")
        out[name] = tuple(names)
    return out


def _time(value: Any, key: str) -> int:
    from supervisor.offline.inputs import InputError, parse_cli_time  # noqa: PLC0415 - one parser of times

    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise GridError(f"{key}: {value} has no offset (write it with Z or +hh:mm)")
        return int(value.timestamp()) * 10**9 + value.microsecond * 1000
    if isinstance(value, dt.date):
        value = value.isoformat()
    if not isinstance(value, str):
        raise GridError(f"{key}: {value!r} is not a time (a date, a datetime with an offset, or RFC3339)")
    try:
        return parse_cli_time(value, key)
    except InputError as e:
        raise GridError(str(e)) from e


def _days(table: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = table.get(name)
    if value is None:
        if required:
            raise GridError(f"walk_forward.{name}: missing (a number of days)")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise GridError(f"walk_forward.{name}: {value!r} is not a number of days above 0")
    return float(value)


def _walk_forward(value: Any) -> WalkForward:
    table = _table(value, "walk_forward")
    unknown = sorted(set(table) - _WALK)
    if unknown:
        raise GridError(f"walk_forward.{unknown[0]}: unknown key ({', '.join(sorted(_WALK))})")
    train_days = _days(table, "train_days", required=True) or 0.0
    test_days = _days(table, "test_days", required=True) or 0.0
    step = _days(table, "step_days", required=False) or test_days
    count = table.get("windows")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise GridError(f"walk_forward.windows: {count!r} is not a number of windows (>= 1)")
    anchored = table.get("anchored", False)
    if not isinstance(anchored, bool):
        raise GridError(f"walk_forward.anchored: {anchored!r} is not true or false")
    start = _time(table["start"], "walk_forward.start") if "start" in table else None
    return WalkForward(train_days, test_days, step, start, count, anchored)


def _windows(value: Any) -> tuple[Window, ...]:
    if not isinstance(value, list) or not value:
        raise GridError("windows: must be a list of [[windows]] tables")
    out = []
    for i, item in enumerate(value):
        key = f"windows[{i}]"
        table = _table(item, key)
        unknown = sorted(set(table) - _WINDOW)
        missing = sorted(_WINDOW - set(table))
        if unknown or missing:
            which = f"unknown {unknown[0]}" if unknown else f"missing {missing[0]}"
            raise GridError(f"{key}: needs exactly {', '.join(sorted(_WINDOW))} ({which})")
        window = Window(*(_time(table[k], f"{key}.{k}") for k in ("train_from", "train_to", "test_to")))
        if not window.train_from_ns < window.train_to_ns < window.test_to_ns:
            raise GridError(f"{key}: needs train_from < train_to < test_to")
        out.append(window)
    return tuple(out)


def _heatmap(value: Any, parameters: Mapping[str, Any]) -> tuple[str, ...]:
    if value is None:
        return tuple(list(parameters)[:2])
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise GridError('heatmap: must be two parameter names (["risk.min_probability", "train.depth"])')
    for name in value:
        if name not in parameters:
            raise GridError(f"heatmap: {name} is not one of [parameters]")
    if value[0] == value[1]:
        raise GridError("heatmap: needs two different parameters")
    return tuple(value)


def walk_forward_windows(grid: Grid, first_ns: int, end_ns: int) -> tuple[Window, ...]:
    """The grid's windows over data whose bars start at ``first_ns`` and end by ``end_ns``.

    Raises:
        GridError: no window fits in the data, or an explicit window lies outside it.
    """
    span = f"{format_rfc3339(first_ns)[:16]}Z .. {format_rfc3339(end_ns)[:16]}Z"
    if grid.windows:
        for i, w in enumerate(grid.windows):
            if w.train_to_ns <= first_ns or w.train_from_ns >= end_ns:
                raise GridError(f"windows[{i}]: its training window holds none of the data ({span})")
        return grid.windows
    walk = grid.walk_forward
    if walk is None:
        cut = first_ns + int((end_ns - first_ns) * DEFAULT_TRAIN_SHARE)
        return (Window(first_ns, cut, end_ns),)
    start = walk.start_ns if walk.start_ns is not None else first_ns
    out: list[Window] = []
    k = 0
    while walk.count is None or k < walk.count:
        offset = int(k * walk.step_days * DAY_NS)
        train_from = start if walk.anchored else start + offset
        train_to = start + offset + int(walk.train_days * DAY_NS)
        test_to = train_to + int(walk.test_days * DAY_NS)
        if test_to > end_ns:
            break
        out.append(Window(train_from, train_to, test_to))
        k += 1
    if not out or (walk.count is not None and len(out) < walk.count):
        raise GridError(
            f"walk_forward: {walk.count or 1} window(s) of {walk.train_days:g} + {walk.test_days:g} days "
            f"(step {walk.step_days:g}) do not fit in the data ({span})"
        )
    return tuple(out)
