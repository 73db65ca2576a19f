"""``GRID.toml`` (``supervisor.offline.sweep.grid``): the cells it lays out, its walk-forward windows and
its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.core.timefmt import parse_time
from supervisor.offline.sweep.cell import ModelJob
from supervisor.offline.sweep.grid import DAY_NS, GridError, parse_grid, walk_forward_windows
from supervisor.offline.sweep.run import _CELL_PRIORITY, _CODE_ROOTS, _REPO, _train_cost, code_digest

pytestmark = pytest.mark.unit

DATA = ("EUR_USD", "GBP_USD")
JAN_1 = parse_time("2024-01-01T00:00:00Z")


def test_the_cells_are_the_cross_product_in_the_files_order() -> None:
    grid = parse_grid(
        '[parameters]\n"risk.min_probability" = [0.55, 0.6]\n"train.depth" = [4, 6]\n'
        '"execution.time_exit_bars" = [0]\n',
        instruments=DATA,
    )

    sets = grid.parameter_sets()

    assert sets == [
        {"risk.min_probability": 0.55, "train.depth": 4, "execution.time_exit_bars": 0},
        {"risk.min_probability": 0.55, "train.depth": 6, "execution.time_exit_bars": 0},
        {"risk.min_probability": 0.6, "train.depth": 4, "execution.time_exit_bars": 0},
        {"risk.min_probability": 0.6, "train.depth": 6, "execution.time_exit_bars": 0},
    ]
    assert grid.config_overrides(sets[1]) == ["risk.min_probability=0.55", "execution.time_exit_bars=0"]
    assert grid.train_settings(sets[1])["depth"] == 6
    assert grid.train_settings(sets[1])["thread_count"] == 1  # a worker is one core
    assert grid.instrument_sets == {"all": DATA}
    assert grid.heatmap == ("risk.min_probability", "train.depth")
    assert grid.metric == "out_of_sample.sharpe"


def test_a_list_value_is_passed_as_toml() -> None:
    grid = parse_grid('[parameters]\n"risk.drawdown_zones" = [[[0.05, 1], [0.1, 0.5]]]\n', instruments=DATA)

    assert grid.config_overrides(grid.parameter_sets()[0]) == ["risk.drawdown_zones=[[0.05, 1], [0.1, 0.5]]"]


def test_rolling_walk_forward_windows_step_by_the_test_span() -> None:
    grid = parse_grid(
        '[parameters]\n"train.depth" = [4]\n[walk_forward]\nstart = 2024-01-01\ntrain_days = 30\ntest_days = 10\n',
        instruments=DATA,
    )

    windows = walk_forward_windows(grid, JAN_1, JAN_1 + 61 * DAY_NS)

    assert [(w.train_from_ns - JAN_1, w.train_to_ns - JAN_1, w.test_to_ns - JAN_1) for w in windows] == [
        (0, 30 * DAY_NS, 40 * DAY_NS),
        (10 * DAY_NS, 40 * DAY_NS, 50 * DAY_NS),
        (20 * DAY_NS, 50 * DAY_NS, 60 * DAY_NS),
    ]


def test_anchored_windows_always_train_from_the_start() -> None:
    grid = parse_grid(
        '[parameters]\n"train.depth" = [4]\n[walk_forward]\ntrain_days = 30\ntest_days = 10\nwindows = 2\n'
        "anchored = true\n",
        instruments=DATA,
    )

    windows = walk_forward_windows(grid, JAN_1, JAN_1 + 100 * DAY_NS)

    assert [(w.train_from_ns, w.train_to_ns) for w in windows] == [
        (JAN_1, JAN_1 + 30 * DAY_NS),
        (JAN_1, JAN_1 + 40 * DAY_NS),
    ]


def test_without_windows_the_first_three_quarters_train() -> None:
    grid = parse_grid('[parameters]\n"train.depth" = [4]\n', instruments=DATA)

    (window,) = walk_forward_windows(grid, JAN_1, JAN_1 + 40 * DAY_NS)

    assert (window.train_from_ns, window.train_to_ns, window.test_to_ns) == (
        JAN_1,
        JAN_1 + 30 * DAY_NS,
        JAN_1 + 40 * DAY_NS,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "parameters: missing"),
        ('[parameters]\n"risk.min_probability" = 0.55\n', "parameters.risk.min_probability: must be a non-empty list"),
        ("[parameters]\nrisk.min_probability = [0.55]\n", "parameters.risk: quote a dotted parameter name"),
        ('[parameters]\n"feed.granularity" = ["H1"]\n', "parameters.feed.granularity: a parameter is risk."),
        ('[parameters]\n"train.colour" = [1]\n', "parameters.train.colour: unknown training setting"),
        ('[parameters]\n"train.depth" = [4.5]\n', "parameters.train.depth: 4.5 is not an integer"),
        ('[parameters]\n"train.holdout_fraction" = [1.0]\n', "parameters.train.holdout_fraction: 1.0 must be below 1"),
        ('[parameters]\n"train.depth" = [4, 4]\n', "parameters.train.depth: a value is listed twice"),
        ('speed = 3\n[parameters]\n"train.depth" = [4]\n', "speed: unknown key"),
        ('[parameters]\n"train.depth" = [4]\n[train]\ndepth = 0\n', "train.depth: 0 must be above 0"),
        ('[parameters]\n"train.depth" = [4]\n[instruments]\nx = ["USD_JPY"]\n', "instruments.x: no --data for USD_JPY"),
        ('metric = "profit"\n[parameters]\n"train.depth" = [4]\n', "metric: 'profit' is not a metric"),
        ('heatmap = ["train.depth", "risk.x"]\n[parameters]\n"train.depth" = [4]\n', "heatmap: risk.x is not one of"),
        ('[parameters]\n"train.depth" = [4]\n[walk_forward]\ntrain_days = 30\n', "walk_forward.test_days: missing"),
        ('[parameters]\n"train.depth" = [4]\n[walk_forward]\ntrain_days = 3\ntest_days = 1\n'
         'start = 2024-01-01T00:00:00\n',
         "walk_forward.start: 2024-01-01 00:00:00 has no offset"),
        ('[parameters]\n"train.depth" = [4]\n[[windows]]\ntrain_from = 2024-02-01\ntrain_to = 2024-01-01\n'
         "test_to = 2024-03-01\n", "windows[0]: needs train_from < train_to < test_to"),
        ('[parameters]\n"train.depth" = [4]\n[[windows]]\ntrain_from = 2024-01-01\n', "windows[0]: needs exactly"),
    ],
)  # fmt: skip
def test_a_bad_grid_is_one_line_naming_the_key(text: str, expected: str) -> None:
    with pytest.raises(GridError) as caught:
        parse_grid(text, instruments=DATA)

    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_windows_that_do_not_fit_the_data_are_refused() -> None:
    grid = parse_grid(
        '[parameters]\n"train.depth" = [4]\n[walk_forward]\ntrain_days = 30\ntest_days = 10\nwindows = 3\n',
        instruments=DATA,
    )

    with pytest.raises(GridError, match=r"walk_forward: 3 window\(s\) of 30 \+ 10 days"):
        walk_forward_windows(grid, JAN_1, JAN_1 + 55 * DAY_NS)


def test_the_longest_training_is_scheduled_first() -> None:
    def job(depth: int, iterations: int, days: int, instruments: int) -> ModelJob:
        names = ("EUR_USD", "GBP_USD", "USD_JPY")[:instruments]
        settings = {"depth": depth, "iterations": iterations}
        return ModelJob("k", names, "M15", 0, days * DAY_NS, settings)

    base = _train_cost(job(4, 400, 60, 3))
    assert _train_cost(job(5, 400, 60, 3)) > base  # deeper
    assert _train_cost(job(4, 800, 60, 3)) > base  # more rounds
    assert _train_cost(job(4, 400, 120, 3)) > base  # longer window
    assert _train_cost(job(4, 400, 60, 1)) < base  # fewer instruments
    assert _train_cost(job(10, 10_000, 3650, 30)) < _CELL_PRIORITY  # a ready backtest goes before any training


def test_the_code_digest_changes_with_any_covered_source(tmp_path: Path) -> None:
    (tmp_path / "actors/core").mkdir(parents=True)
    (tmp_path / "actors/core/gate.py").write_text("LIMIT = 1\n")
    (tmp_path / "train.py").write_text("def train(): ...\n")
    (tmp_path / "notes.txt").write_text("not code\n")
    roots = ("actors/core", "train.py")
    before = code_digest(tmp_path, roots)

    (tmp_path / "notes.txt").write_text("changed, not covered\n")
    assert code_digest(tmp_path, roots) == before
    (tmp_path / "actors/core/gate.py").write_text("LIMIT = 2\n")
    assert code_digest(tmp_path, roots) != before
    (tmp_path / "actors/core/gate.py").write_text("LIMIT = 1\n")
    assert code_digest(tmp_path, roots) == before
    (tmp_path / "train.py").write_text("def train(): return 1\n")
    assert code_digest(tmp_path, roots) != before


def test_the_code_digest_of_this_checkout_covers_the_rules_and_the_backtest() -> None:
    assert all((_REPO / root).exists() for root in _CODE_ROOTS)
    assert code_digest() == code_digest()
