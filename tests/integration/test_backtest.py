"""``tradehost backtest`` and ``tradehost report`` as commands, and a replayed shadow run against a backtest.

The big test replays ten hours of candle files through the real tree in shadow mode (the embedded
emulator at 1600x: an M15 bar every 0.56 s) and backtests the same window from the same emulator's
candles; the report must find at least 95 % of the entries on both sides and explain every
difference with journal rows. Its settings, and why:

- the candle files are the emulator's own synthetic market, made continuous (each bar opens at
  the previous close, and the emulator's replay path holds a candle's open for its first third,
  then walks to the extremes and the close in steps of a sixth of a leg): the live risk role's
  quote is the first price after a bar's close, the backtest's the bar's closing price, the same
  price;
- ``risk.daily_loss_limit=0.5`` (50 %, far from the default 3 %): the test compares entries, and a
  day's loss limit reached on one side only (the shadow book's P&L is marked on streamed prices,
  the backtest's on bars) would turn a P&L difference into entry differences;
- the speed: each poll of the emulator's price stream reads the market clock once and sends every
  instrument's prices up to then in time order, so however far the market moves during a poll, a
  bar never closes before every instrument's closing tick was sent (the go-live test replays at
  14400x, ``tests/integration/test_golive.py``).

Time exits are on (``execution.time_exit_bars=4``): the execution role closes a time-exited trade
at the close and the risk role decides that close's signals after it, and the backtest follows the
same sequence (``actors.core.closing.at_close``), so a signal at that close enters on both sides.
The cool-down after a loss is at its default (an hour): the shadow book fills a stop at its level
when the previous price had not reached it, as the bar rule does (``actors.core.fills.tick_exit``),
so a trade that loses in one run loses in the other and both start the same cool-down.
The reconciler's poll interval stays at its default: the risk role
decides a close's signals only after the execution role has checked that close's exits
(``ExitsChecked``), counts a loss at the close it was reported at and drops a trade reported
closed from its book at once, so it sees the closed trades a backtest sees.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from actors.core.timefmt import format_rfc3339, parse_time
from tests.conftest import FAST
from tests.helpers import poll_until, run_cli, running_host, short_tmp_dir
from tests.synthetic import emulator_candles, synthetic_candles, write_candle_files

pytestmark = [pytest.mark.integration]

INSTRUMENTS = ("EUR_USD", "GBP_USD", "USD_JPY")
M15 = 900 * 10**9
TRADES = ["--set", "risk.min_probability=0.52"]


def _rows(path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT ts_ns, src, kind, corr, body FROM journal ORDER BY seq").fetchall()
    finally:
        db.close()


@pytest.fixture(scope="module")
def files() -> tuple[list[str], Path]:
    """Three weeks of synthetic M15 candles of the default instruments, and a model trained on them."""
    work = short_tmp_dir("thbt")
    items = write_candle_files(synthetic_candles(INSTRUMENTS, "2024-01-08T00:00:00Z", "2024-01-27T00:00:00Z"), work)
    res = run_cli(
        "train", "--data", *items, "--to", "2024-01-22T00:00:00Z", "--out", str(work / "model"), "--seed", "2"
    )
    assert res.returncode == 0, res.stderr
    return items, work / "model"


@pytest.mark.timeout(120)
def test_two_backtests_of_the_same_inputs_are_byte_identical(files: tuple[list[str], Path]) -> None:
    # Arrange
    items, model = files
    out = short_tmp_dir("thbt")
    args = ["backtest", "--data", *items, "--model", str(model), "--from", "2024-01-22T00:00:00Z", *TRADES]

    # Act
    first = run_cli(*args, "--out", str(out / "a"))
    second = run_cli(*args, "--out", str(out / "b"), "--quiet")

    # Assert
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    for name in ("trades.csv", "metrics.json"):
        assert (out / "a" / name).read_bytes() == (out / "b" / name).read_bytes(), name
    assert _rows(out / "a" / "journal.sqlite") == _rows(out / "b" / "journal.sqlite")
    metrics = json.loads((out / "a" / "metrics.json").read_text())["metrics"]
    assert metrics["trades"] > 10
    assert metrics["quotes"] == dict.fromkeys(INSTRUMENTS, "mid_spread")  # files: mid and the closing spread
    assert "fills and stops read from mid -/+ half the closing spread (EUR_USD, GBP_USD, USD_JPY)" in first.stderr
    assert set(metrics) >= {"win_rate", "profit_factor", "sharpe", "sortino", "max_drawdown", "exposure", "average_r"}
    assert (out / "a" / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "100% " in first.stderr and second.stderr == ""  # the progress bar, unless --quiet
    kinds = {r[2] for r in _rows(out / "a" / "journal.sqlite")}
    assert kinds >= {"model.signal", "risk.intent", "risk.skip", "exec.filled", "exec.closed", "backtest.completed"}


@pytest.mark.timeout(180)
def test_a_backtest_splits_its_results_at_the_models_training_window_end(files: tuple[list[str], Path]) -> None:
    # Arrange: the model was trained on bars up to 2024-01-22T00:00Z (its model.json's window)
    items, model = files
    out = short_tmp_dir("thbt")
    args = ["backtest", "--data", *items, "--model", str(model), *TRADES]
    trained_to = json.loads((model / "model.json").read_text())["window_to_ns"]

    # Act: a window across the training window's end, and one entirely inside it
    across = run_cli(*args, "--from", "2024-01-18T00:00:00Z", "--out", str(out / "across"))
    inside = run_cli(*args, "--from", "2024-01-15T00:00:00Z", "--to", "2024-01-19T00:00:00Z", "--out", str(out / "in"))

    # Assert: both blocks in metrics.json and on the console, split by the signal bar
    assert across.returncode == 0 and inside.returncode == 0, across.stderr + inside.stderr
    metrics = json.loads((out / "across" / "metrics.json").read_text())["metrics"]
    in_sample, out_of_sample = metrics["in_sample"], metrics["out_of_sample"]
    with (out / "across" / "trades.csv").open(encoding="utf-8") as handle:
        signals = [parse_time(row["signal_bar"]) for row in csv.DictReader(handle)]
    assert in_sample["trades"] == sum(t <= trained_to for t in signals) > 0
    assert out_of_sample["trades"] == sum(t > trained_to for t in signals) > 0
    assert in_sample["trades"] + out_of_sample["trades"] == metrics["trades"]
    assert in_sample["net_pnl"] + out_of_sample["net_pnl"] == pytest.approx(metrics["net_pnl"], abs=1e-3)
    assert metrics["training_window_end"] == format_rfc3339(trained_to)
    assert "in-sample" in across.stderr and "out-of-sample" in across.stderr
    assert "warning" not in across.stderr
    warnings = [line for line in inside.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "entirely in-sample" in warnings[0], inside.stderr
    assert json.loads((out / "in" / "metrics.json").read_text())["metrics"]["out_of_sample"]["trades"] == 0


@pytest.mark.timeout(240)
def test_a_backtest_takes_the_granularity_of_its_model_and_a_toml_datetime_start() -> None:
    # Arrange: a model trained on H1 bars of the embedded emulator's market
    work = short_tmp_dir("thgr")
    market = ["--set", "broker.emulator.start=2024-03-06T12:00:00Z"]  # a TOML datetime, as typed
    trained = run_cli("train", *market, "--granularity", "H1", "--bars", "1500", "--out", str(work / "h1"))
    assert trained.returncode == 0, trained.stderr

    # Act: no --set feed.granularity=H1; then a --granularity the model was not trained on
    ran = run_cli(
        "backtest", *market, "--model", str(work / "h1"), "--bars", "200", "--quiet", "--out", str(work / "a")
    )
    wrong = run_cli("backtest", *market, "--model", str(work / "h1"), "--granularity", "M15", "--out", str(work / "b"))

    # Assert
    assert ran.returncode == 0, ran.stderr
    summary = json.loads((work / "a" / "metrics.json").read_text())
    assert summary["granularity"] == "H1" and summary["metrics"]["bars"] == 200
    # the broker's candles come with bid and ask (price=BA): fills and stops read them, and it says so
    assert summary["metrics"]["quotes"] == dict.fromkeys(INSTRUMENTS, "bid_ask")
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1, wrong.stderr
    assert "trained on H1 bars" in wrong.stderr and not (work / "b").exists()


@pytest.mark.timeout(120)
def test_an_output_inside_a_running_hosts_run_directory_is_refused(files: tuple[list[str], Path]) -> None:
    # Arrange: a run directory whose lock is held (as a running host holds it)
    from supervisor.rundir import HostLock

    items, model = files
    run_dir = short_tmp_dir("thrd") / "run"
    lock = HostLock.acquire(run_dir)
    try:
        # Act: --out in it, and deeper in it
        results = {
            out: run_cli("backtest", "--data", *items, "--model", str(model), "--quiet", "--out", str(out))
            for out in (run_dir / "bt", run_dir / "a" / "b")
        }
        written = [p.name for p in run_dir.iterdir()]
    finally:
        lock.release()
    after = run_cli("backtest", "--data", *items, "--model", str(model), "--quiet", "--out", str(run_dir / "bt"))

    # Assert: refused while the lock is held, one line, nothing written; accepted once released
    for res in results.values():
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert "run directory of a running host" in res.stderr
    assert written == ["tradehost.lock"]
    assert after.returncode == 0, after.stderr


@pytest.mark.timeout(120)
def test_bad_input_is_a_one_line_error_and_exit_2(files: tuple[list[str], Path]) -> None:
    items, model = files
    work = short_tmp_dir("thbt")
    broken = work / "EUR_USD.csv"
    lines = Path(items[0].split("=", 1)[1]).read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[2], "0.5", 1)  # a high below the low
    broken.write_text("\n".join(lines) + "\n")
    cases = {
        "model missing": ["--data", *items, "--model", str(work / "none")],
        f"{broken}:6: ": ["--data", f"EUR_USD={broken}", "--model", str(model)],
        "empty window": ["--data", *items, "--model", str(model), "--from", "2025-01-01T00:00:00Z"],
        "is not before --to": [
            "--data",
            *items,
            "--model",
            str(model),
            "--from",
            "2024-01-23T00:00:00Z",
            "--to",
            "2024-01-22T00:00:00Z",
        ],
    }
    off_grid = work / "GBP_USD.csv"  # every bar 7 s after its M15 boundary
    gbp = Path(items[1].split("=", 1)[1]).read_text().splitlines()
    off_grid.write_text("\n".join([gbp[0], *(line.replace(":00Z,", ":07Z,", 1) for line in gbp[1:])]) + "\n")
    last_year = work / "USD_JPY.csv"
    last_year.write_text(Path(items[2].split("=", 1)[1]).read_text().replace("2024-01-", "2023-01-"))
    cases |= {
        "--from: '1e30' is out of range": ["--data", *items, "--model", str(model), "--from", "1e30"],
        "do not overlap in time": ["--data", items[0], items[1], f"USD_JPY={last_year}", "--model", str(model)],
        "GBP_USD: the bar at 2024-01-08T00:00:07": [
            "--data", items[0], f"GBP_USD={off_grid}", items[2], "--model", str(model)
        ],
    }  # fmt: skip
    for expected, args in cases.items():
        res = run_cli("backtest", *args, "--out", str(work / "out"))
        assert res.returncode == 2, (expected, res.stderr)
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("tradehost backtest: "), res.stderr
        assert expected in res.stderr
        assert not (work / "out").exists(), expected  # a failed run leaves nothing behind


@pytest.mark.timeout(120)
def test_a_window_without_the_models_history_before_it_runs_with_a_warning(files: tuple[list[str], Path]) -> None:
    items, model = files
    out = short_tmp_dir("thbt") / "out"

    res = run_cli(
        "backtest", "--data", *items, "--model", str(model), "--from", "2024-01-08T02:00:00Z", "--quiet",
        "--out", str(out),
    )  # fmt: skip

    assert res.returncode == 0, res.stderr
    warnings = [line for line in res.stderr.splitlines() if line.startswith("tradehost backtest: warning: ")]
    assert len(warnings) == len(items) and all("bars before --from, the model needs" in w for w in warnings)
    assert (out / "trades.csv").is_file()


@pytest.mark.timeout(120)
def test_a_backtest_never_writes_over_an_earlier_run_or_a_shadow_journal(files: tuple[list[str], Path]) -> None:
    # Arrange: a directory that holds a shadow run's journal
    items, model = files
    run = short_tmp_dir("thbt") / "shadow"
    run.mkdir()
    (run / "journal.sqlite").write_bytes(b"the shadow run's journal")

    # Act
    res = run_cli("backtest", "--data", *items, "--model", str(model), "--quiet", "--out", str(run))

    # Assert
    assert res.returncode == 2
    assert "exists and is not empty; nothing was written" in res.stderr and res.stderr.count("\n") == 1
    assert [p.name for p in run.iterdir()] == ["journal.sqlite"]
    assert (run / "journal.sqlite").read_bytes() == b"the shadow run's journal"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_replayed_shadow_run_and_a_backtest_of_the_same_window_make_the_same_entries() -> None:
    # Arrange: candle files from the emulator's market, a model trained before the window
    work = short_tmp_dir("thsh")
    start, end = "2024-03-06T03:30:00Z", "2024-03-07T00:00:00Z"  # a Wednesday, before the 17:00 rollover
    items = write_candle_files(emulator_candles(INSTRUMENTS, "2024-02-12T00:00:00Z", end), work / "data")
    trained = run_cli("train", "--data", *items, "--to", start, "--out", str(work / "model"), "--seed", "1")
    assert trained.returncode == 0, trained.stderr
    rules = [
        "risk.min_probability=0.52",
        "risk.daily_loss_limit=0.5",
        "execution.time_exit_bars=4",  # time exits on: both sides close at the close, then decide
    ]
    data = f"broker.emulator.data={json.dumps(items)}"
    shadow = [
        *FAST,
        *rules,
        data,
        f"broker.emulator.start={json.dumps(start)}",
        "broker.emulator.speed=1600",
        f"model.dir={json.dumps(str(work / 'model'))}",
        "feed.bar_wait_s=2",
    ]

    # Act: the shadow run, until 40 bars were decided
    with running_host(shadow, run_dir=work / "run") as host:

        def decided_bars() -> set[int]:
            return {e["body"]["bar_ts"] for e in host.journal("risk.skip") + host.journal("risk.intent")}

        poll_until(lambda: len(decided_bars()) >= 40, timeout_s=120, what="40 decided bars")
        decided = decided_bars()
        skips = host.journal("risk.skip")
        closed = host.journal("exec.closed")
    permitted = min(
        {e["body"]["bar_ts"] for e in skips if e["body"]["reason"] not in ("no_permit", "not_ready")}
        | {e["body"]["bar_ts"] for e in host.journal("risk.intent")}
    )
    last = max(decided)
    backtest = run_cli(
        "backtest",
        "--set",
        data,
        "--set",
        f"broker.emulator.start={json.dumps(end)}",
        *[arg for rule in rules for arg in ("--set", rule)],
        "--from",
        format_rfc3339(permitted),
        "--to",
        format_rfc3339(last + M15),
        "--model",
        str(work / "model"),
        "--journal",
        "all",
        "--out",
        str(work / "backtest"),
    )
    assert backtest.returncode == 0, backtest.stderr
    report = run_cli(
        "report",
        "--journal",
        str(work / "run" / "journal.sqlite"),
        "--backtest",
        str(work / "backtest"),
        "--out",
        str(work / "report"),
    )

    # Assert
    assert report.returncode in (0, 1), report.stderr
    lines = {line.split(":", 1)[0]: line for line in report.stdout.splitlines()}
    match = next(line for key, line in lines.items() if "trade-by-trade match" in key)
    rate = float(match.split(": ", 1)[1].split("%", 1)[0]) / 100
    with (work / "report" / "differences.csv").open(encoding="utf-8") as handle:
        differences = list(csv.DictReader(handle))
    print(report.stdout, *[f"{d['instrument']} {d['bar']}: {d['why']}" for d in differences], sep="\n")
    assert rate >= 0.95, report.stdout
    assert all(d["shadow"] and d["backtest"] and d["why"] for d in differences)
    entries = int(match.rsplit("(", 1)[1].split(" shadow entries")[0])
    assert entries >= 10  # enough entries for the rate to mean something
    assert lines.get("PASS  no crashes", "").startswith("PASS")
    assert parse_time(start) <= permitted < last
    exits = json.loads((work / "backtest" / "metrics.json").read_text())["metrics"]["exits"]
    assert exits.get("time_exit", 0) >= 3, exits  # the time exits were exercised on both sides
    assert any(e["body"]["reason"] == "time_exit" for e in closed)
    report_md = (work / "report" / "report.md").read_text()
    assert report_md.startswith("# Shadow run vs backtest")
    # the model was trained before the window: every bar out-of-sample, and report.md says both
    assert "- Backtest in-sample: no bar of the window" in report_md and "- Backtest out-of-sample (" in report_md
