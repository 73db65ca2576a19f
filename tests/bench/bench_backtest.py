"""Benchmark of ``tradehost backtest`` next to backtesting.py, and of a replayed shadow run's pace.

Run with ``make bench`` (or ``python -m tests.bench.bench_backtest [--quick]``). Nothing here is a
test: it prints, it does not assert.

1. ``tradehost backtest`` over a year of M15 bars of ten instruments (about 250k bars; synthetic
   candles on the FX calendar, made here; training excluded), timed by phase in one process
   (candles in memory -> trades.csv, journal.sqlite, metrics.json and equity.png written), for each
   journal level, and as the command (interpreter start, imports and CSV parsing included). Next
   to it, measured in the same run on the same bars: backtesting.py (the ``backtesting`` package)
   running an SL/TP strategy over the same probabilities (long when P(up) >= the threshold, short
   when <= 1 - it; SL/TP from the same ATR multiples), one ``Backtest`` per instrument; the floor of
   any backtest of these bars in one process (features + predict + a plain loop over every bar and
   instrument); a bare ``python -c pass`` and an interpreter importing what the command imports.
2. The shadow replay: the real tree in shadow mode on the embedded emulator replaying candle files
   (``--replay-only`` runs only this part), with 3 instruments at rising speeds (the baseline) and
   with 30 (issue 18's target: 30 instruments at 10,800x), all predicted by one model trained here
   on the 30 instruments' files. For each run: bars per wall second, the close (the bar's end on the
   emulator's clock, read through its admin API) -> every instrument decided (the risk role's last
   row of the close) p50/p99/max, the feed's first ``md.bar`` -> decisions, and whether it kept up
   (every measured close decided within the bar's wall duration); then how the feed fetched the
   closed bars (``candles/latest`` requests against per-instrument ones, from the emulator's log).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actors.broker.emulator.instruments import SPECS
from actors.core.domain import granularity_seconds
from tests.synthetic import synthetic_candles
from tests.synthetic import write_candle_files as write_csvs

REPO = Path(__file__).resolve().parents[2]
INSTRUMENTS = (
    "EUR_USD",
    "GBP_USD",
    "USD_JPY",
    "AUD_USD",
    "USD_CHF",
    "USD_CAD",
    "EUR_GBP",
    "EUR_JPY",
    "NZD_USD",
    "AUD_JPY",
)
GRANULARITY = "M15"


def _train(frames: dict[str, pd.DataFrame], out: Path) -> Any:
    from supervisor.offline.train import TrainSpec, train

    pips = {n: SPECS[n].pip for n in frames}
    spec = TrainSpec(granularity=GRANULARITY, out_dir=out, seed=1, iterations=60, depth=4)
    return train(frames, pip_sizes=pips, spec=spec)


# --- tradehost backtest -------------------------------------------------------------------------


def bench_tradehost(
    frames: dict[str, pd.DataFrame], model_dir: Path, level: str, out: Path, min_probability: float
) -> dict[str, float]:
    """One in-process backtest: candles in memory -> every output file written; seconds by phase."""
    from actors.core.config import ExecutionConfig, RiskConfig
    from actors.ml import modelstore
    from actors.ml.features import FEATURE_NAMES, FEATURES_VERSION
    from supervisor.offline.backtest import run as backtest
    from supervisor.offline.backtest.inputs import _emulator_metadata
    from supervisor.offline.history import History

    t0 = time.perf_counter()
    model = modelstore.load(
        model_dir,
        features_version=FEATURES_VERSION,
        feature_names=FEATURE_NAMES,
        granularity=GRANULARITY,
        instruments=tuple(frames),
    )
    loaded = time.perf_counter() - t0
    history = History(dict(frames), {n: SPECS[n].pip for n in frames}, {})
    spec = backtest.BacktestSpec(instruments=tuple(frames), granularity=GRANULARITY, journal_level=level)
    t0 = time.perf_counter()
    journal = backtest.fresh_journal(out)
    result = backtest.run_backtest(
        history,
        model=model,
        meta=_emulator_metadata(tuple(frames)),
        risk=RiskConfig(min_probability=min_probability),
        execution=ExecutionConfig(),
        spec=spec,
        journal=journal,
    )
    journal.close()
    ran = time.perf_counter() - t0
    t0 = time.perf_counter()
    backtest.write_outputs(result, out)
    written = time.perf_counter() - t0
    return {
        **result.timings_s,
        "model load": loaded,
        "outputs": written,
        "total": ran + written,
        "trades": float(result.metrics["trades"]),
        "bars": float(len(result.equity) * len(frames)),
    }


def bench_cli(items: list[str], model_dir: Path, out: Path, min_probability: float, level: str = "decisions") -> float:
    """``tradehost backtest --data ...`` as a command: wall seconds."""
    t0 = time.perf_counter()
    names = json.dumps(list(INSTRUMENTS))
    command = [sys.executable, "-m", "supervisor", "backtest", "--data", *items, "--model", str(model_dir)]
    command += ["--out", str(out), "--quiet", "--journal", level, "--set", f"risk.min_probability={min_probability}"]
    command += ["--set", f"feed.instruments={names}", "--set", f"broker.emulator.instruments={names}"]
    res = subprocess.run(command, capture_output=True, text=True, cwd=str(REPO), check=False)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        print(f"  (the command failed: {res.stderr.strip()[-300:]})")
    return wall


def bench_python(code: str) -> float:
    """A bare interpreter running ``code`` (``pass``; the command's imports): wall seconds."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=str(REPO), check=True)
    return time.perf_counter() - t0


def bench_floor(frames: dict[str, pd.DataFrame], model_dir: Path, min_probability: float) -> dict[str, float]:
    """What no backtest of these bars can go below in one process: the features and the predictions
    (the same calls as ``tradehost backtest``), then a plain Python loop over every (bar,
    instrument) that only compares P(up) with the threshold; seconds of each."""
    from actors.ml import modelstore
    from actors.ml.features import FEATURE_NAMES, FEATURES_VERSION, compute_features, wide_bars

    model = modelstore.load(
        model_dir,
        features_version=FEATURES_VERSION,
        feature_names=FEATURE_NAMES,
        granularity=GRANULARITY,
        instruments=tuple(frames),
    )
    t0 = time.perf_counter()
    bars = wide_bars(frames)
    features = compute_features(bars, {n: SPECS[n].pip for n in frames})
    t1 = time.perf_counter()
    p = model.predict(features.to_numpy()).p_up.reshape(len(bars.close), len(frames))
    t2 = time.perf_counter()
    signals = 0
    for row in p.tolist():
        for value in row:
            if value >= min_probability or value <= 1 - min_probability:
                signals += 1
    t3 = time.perf_counter()
    return {"features": t1 - t0, "predict": t2 - t1, "loop": t3 - t2, "total": t3 - t0, "signals": float(signals)}


# --- the peer: backtesting.py -------------------------------------------------------------------


def bench_peer(
    frames: dict[str, pd.DataFrame], p_up: dict[str, np.ndarray], min_probability: float
) -> tuple[float, int]:
    """backtesting.py over the same bars and probabilities: seconds, trades."""
    from backtesting import Backtest, Strategy  # type: ignore[import-untyped]

    from actors.core.config import RiskConfig

    risk = RiskConfig(min_probability=min_probability)

    class Probabilities(Strategy):
        def init(self) -> None:
            self.p = self.I(lambda: self.data.P, name="p")
            high, low, close = self.data.High, self.data.Low, self.data.Close
            prev = np.r_[close[0], close[:-1]]
            tr = np.maximum(high, prev) - np.minimum(low, prev)
            self.atr = self.I(lambda: pd.Series(tr).rolling(risk.atr_period).mean().to_numpy(), name="atr")

        def next(self) -> None:
            p, atr, price = self.p[-1], self.atr[-1], self.data.Close[-1]
            if self.position or not math.isfinite(p) or not math.isfinite(atr) or atr <= 0:
                return
            sl = risk.sl_atr_mult * atr
            if p >= risk.min_probability:
                self.buy(sl=price - sl, tp=price + sl * risk.reward_ratio, size=0.1)
            elif p <= 1 - risk.min_probability:
                self.sell(sl=price + sl, tp=price - sl * risk.reward_ratio, size=0.1)

    total, trades = 0.0, 0
    for name, frame in frames.items():
        spec = SPECS[name]
        data = pd.DataFrame(
            {
                "Open": frame["open"].to_numpy(),
                "High": frame["high"].to_numpy(),
                "Low": frame["low"].to_numpy(),
                "Close": frame["close"].to_numpy(),
                "Volume": frame["volume"].to_numpy(),
                "P": p_up[name],
            },
            index=pd.to_datetime(frame.index.to_numpy(), utc=True).tz_localize(None),
        )
        spread = spec.spread_pips * spec.pip / float(frame["close"].iloc[0])
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = Backtest(data, Probabilities, cash=1_000_000_000, spread=spread, finalize_trades=True).run()
        total += time.perf_counter() - t0
        trades += int(stats["# Trades"])
    return total, trades


def _probabilities(frames: dict[str, pd.DataFrame], model_dir: Path) -> dict[str, np.ndarray]:
    from actors.ml import modelstore
    from actors.ml.features import FEATURE_NAMES, FEATURES_VERSION, compute_features, wide_bars

    model = modelstore.load(
        model_dir,
        features_version=FEATURES_VERSION,
        feature_names=FEATURE_NAMES,
        granularity=GRANULARITY,
        instruments=tuple(frames),
    )
    bars = wide_bars(frames)
    features = compute_features(bars, {n: SPECS[n].pip for n in frames})
    p = model.predict(features.to_numpy()).p_up.reshape(len(bars.close), len(frames))
    return {name: p[:, j] for j, name in enumerate(frames)}


# --- the shadow replay --------------------------------------------------------------------------

REPLAY_START = "2023-02-01T08:00:00Z"  # a Wednesday morning: the market is open for days after it
REPLAY_FIRST = "2023-01-02T00:00:00Z"  # the replay files (and the 30-instrument model) begin here
REPLAY_LAST = "2023-03-01T00:00:00Z"
REPLAY_TARGET = (30, 10800.0)  # issue 18: 30 instruments at 10,800x


def replay_instruments(count: int) -> tuple[str, ...]:
    """The first ``count`` currency pairs of the emulator's table (exits if it has fewer)."""
    pairs = tuple(name for name, spec in SPECS.items() if spec.type == "CURRENCY")
    if len(pairs) < count:
        raise SystemExit(f"bench_backtest: the emulator knows {len(pairs)} currency pairs, the replay needs {count}")
    return pairs[:count]


def _pct(values: list[float], q: float) -> float:
    # Nearest rank: with n values the p99 is the largest unless n > 100.
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def _market_to_wall(api_url: str) -> tuple[int, int, float]:
    """One reading of the emulator's clock: (wall ns, market ns, speed), the wall time taken at the
    middle of the admin round trip (the shortest of five, so the reading is within ~1 ms)."""
    from actors.broker.emulator import AdminClient

    admin = AdminClient(api_url)
    best: tuple[int, int, int, float] | None = None
    for _ in range(5):
        t0 = time.time_ns()
        state = admin.state()
        t1 = time.time_ns()
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, (t0 + t1) // 2, int(state["time_ns"]), float(state["speed"]))
    assert best is not None
    return best[1], best[2], best[3]


def _candle_requests(api_url: str, since_ns: int) -> str:
    """The feed's way of fetching closed bars during the measuring window, from the emulator's request
    log: ``candles/latest`` requests (every instrument at once) and per-instrument candle requests
    (the start-up load, the model's, and a fetch late by more than a bar asks each instrument alone)."""
    from actors.broker.emulator import AdminClient

    latest = single = 0
    for request in AdminClient(api_url).requests():
        if request["ts_ns"] < since_ns or "/candles" not in request["path"]:
            continue
        if "/candles/latest" in request["path"]:
            latest += 1
        else:
            single += 1
    return f"candle requests: {latest} candles/latest, {single} per instrument"


def _replay_figures(host: Any, speed: float, instruments: int, clock: tuple[int, int, float] | None) -> str:
    """Per close: the wall moment the emulator's clock passed the bar's end (from ``clock``, a
    reading of the emulator's clock), the feed's first ``md.bar`` row and the risk role's last row
    (every instrument decided); kept up = every measured close decided within the bar's wall time."""
    import sqlite3

    db = sqlite3.connect(f"file:{host.run_dir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT ts_ns, kind, body FROM journal WHERE kind IN ('md.bar', 'risk.skip', 'risk.intent') ORDER BY seq"
        ).fetchall()
    finally:
        db.close()
    first: dict[int, int] = {}
    decided: dict[int, tuple[int, int]] = {}
    for ts, kind, body in rows:
        bar = json.loads(body)["bar_ts"]
        if kind == "md.bar":
            first.setdefault(bar, ts)
        else:
            count, _ = decided.get(bar, (0, 0))
            decided[bar] = (count + 1, ts)
    closes = sorted(first)[1:-1]  # the first may have started before the measurement, the last may be running
    if len(closes) < 2:
        return f"  {instruments:>2} instruments x{speed:<6g} too few closes ({len(closes)})"
    bar_ns = granularity_seconds(GRANULARITY) * 10**9
    done = [c for c in closes if decided.get(c, (0, 0))[0] >= instruments]
    undecided = len(closes) - len(done)
    spans = [(decided[c][1] - first[c]) / 1e6 for c in done]  # first md.bar -> last decision
    lags: list[float] = []  # the bar's close on the emulator's clock -> last decision
    if clock is not None:
        wall0, market0, clock_speed = clock
        for c in done:
            close_wall = wall0 + (c + bar_ns - market0) / clock_speed
            lags.append((decided[c][1] - close_wall) / 1e6)
    wall_s = (first[closes[-1]] - first[closes[0]]) / 1e9
    rate = (len(closes) - 1) * instruments / wall_s if wall_s > 0 else 0.0
    budget_ms = bar_ns / 1e6 / speed
    measured = lags or spans
    kept = undecided == 0 and bool(measured) and max(measured) < budget_ms
    late = sum(1 for x in measured if x >= budget_ms)  # a start-up blip or falling behind for good
    close = (
        f"close -> decisions p50 {statistics.median(lags):.0f} / p99 {_pct(lags, 0.99):.0f} / max {max(lags):.0f} ms"
        if lags
        else "close -> decisions n/a (no clock reading)"
    )
    span = "first md.bar -> decisions n/a"
    if spans:
        span = f"first md.bar -> decisions p50 {statistics.median(spans):.0f} / p99 {_pct(spans, 0.99):.0f} ms"
    return (
        f"  {instruments:>2} instruments x{speed:<6g} {rate:7.1f} bars/s ({len(closes)} closes, "
        f"a {budget_ms:.0f} ms bar): {close}; {span}; undecided {undecided}; "
        f"{late} decided after their bar; {'kept up' if kept else 'FELL BEHIND'}"
    )


def bench_replay(items: list[str], model_dir: Path, start: str, speeds: list[float], seconds: float) -> list[str]:
    """The real tree replaying the files at each speed: bars per wall second, and whether it kept up."""
    from tests.helpers import Host, short_tmp_dir

    lines = []
    instruments = [item.split("=", 1)[0] for item in items]
    for speed in speeds:
        run_dir = short_tmp_dir("thr") / "run"
        overrides = [
            f"model.dir={json.dumps(str(model_dir))}",
            f"broker.emulator.data={json.dumps(items)}",
            f"broker.emulator.start={json.dumps(start)}",
            f"broker.emulator.speed={speed}",
            f"broker.emulator.instruments={json.dumps(instruments)}",
            f"feed.instruments={json.dumps(instruments)}",
            "reconciler.poll_interval_s=0.1",
            "feed.bar_wait_s=2",
        ]
        host = Host(run_dir=run_dir, overrides=overrides).start()
        try:
            host.wait_state("TRADING", timeout_s=90)
            api_url = host.status()["broker"]["api_url"]
            clock = None
            with contextlib.suppress(Exception):
                clock = _market_to_wall(api_url)
            since_ns = time.time_ns()
            time.sleep(seconds)  # bench only: a fixed measuring window
            lines.append(_replay_figures(host, speed, len(instruments), clock))
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            with contextlib.suppress(Exception):
                lines.append(f"      {_candle_requests(api_url, since_ns)}; load average {load}")
        except Exception as e:  # the bench reports, it does not fail
            lines.append(f"  {len(instruments):>2} instruments x{speed:<6g} failed: {type(e).__name__}: {str(e)[:200]}")
        finally:
            host.ctl("shutdown")
            with contextlib.suppress(Exception):
                host.wait_exit(timeout_s=30)
            host.kill_tree()
            shutil.rmtree(run_dir.parent, ignore_errors=True)
    return lines


def run_replays(work: Path, quick: bool) -> None:
    """The shadow replay of 3 instruments (the baseline) and of 30 (the target), in one run, from one
    model trained here on the 30 instruments' replay files (so both runs predict with the same model)."""
    count, target_speed = REPLAY_TARGET
    names = replay_instruments(count)
    t0 = time.perf_counter()
    frames = synthetic_candles(names, REPLAY_FIRST, REPLAY_LAST)
    _train(frames, work / "replay-model")
    print(
        f"shadow replay through the tree (embedded emulator replaying candle files from {REPLAY_START}; "
        f"a {count}-instrument model trained on them in {time.perf_counter() - t0:.1f}s, excluded):"
    )
    runs = [
        (3, [900.0] if quick else [3600.0, 10800.0, 21600.0]),
        (count, [900.0] if quick else [900.0, 3600.0, target_speed]),
    ]
    for n, speeds in runs:
        items = write_csvs({name: frames[name] for name in names[:n]}, work / f"replay-{n}")
        for line in bench_replay(items, work / "replay-model", REPLAY_START, speeds, 10.0 if quick else 20.0):
            print(line, flush=True)
    if not quick:
        print(f"  target: {count} instruments at x{target_speed:g}, every close decided within its bar")


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the bars, one replay speed")
    parser.add_argument("--replay-only", action="store_true", help="only the shadow replays (3 and 30 instruments)")
    args = parser.parse_args()
    if args.replay_only:
        work = Path(tempfile.mkdtemp(prefix="thbt"))
        try:
            run_replays(work, args.quick)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    last = "2023-04-03T00:00:00Z" if args.quick else "2024-01-01T00:00:00Z"
    work = Path(tempfile.mkdtemp(prefix="thbt"))
    try:
        t0 = time.perf_counter()
        frames = synthetic_candles(INSTRUMENTS, "2023-01-02T00:00:00Z", last)
        bars = sum(len(f) for f in frames.values())
        print(
            f"backtest: {bars} M15 bars ({len(frames)} instruments x {len(next(iter(frames.values())))}), "
            f"made in {time.perf_counter() - t0:.1f}s"
        )
        t0 = time.perf_counter()
        _train(frames, work / "model")
        print(f"  (model trained in {time.perf_counter() - t0:.1f}s, excluded)")
        p_up = _probabilities(frames, work / "model")
        # A random walk gives a model near 0.5: the threshold lets the 20 % most confident signals through.
        every = np.concatenate(list(p_up.values()))
        threshold = 0.5 + float(np.quantile(np.abs(every[np.isfinite(every)] - 0.5), 0.8))
        print(f"  risk.min_probability = {threshold:.4f} (20 % of the signals pass it), other keys at their defaults")
        runs: dict[str, list[dict[str, float]]] = {}
        for level in ("trades", "decisions", "all"):
            for _ in range(1 if args.quick else 3):
                runs.setdefault(level, []).append(
                    bench_tradehost(frames, work / "model", level, work / f"out-{level}", threshold)
                )
        target = "" if args.quick else "; target < 1 s"
        for level, figures in runs.items():
            med = {k: statistics.median(f[k] for f in figures) for k in figures[0]}
            phases = ", ".join(
                f"{k} {med[k]:.2f}" for k in ("features", "predict", "simulate", "journal", "outputs") if k in med
            )
            print(
                f"  in-process, --journal {level:<9} {med['total']:6.2f} s   ({phases}; "
                f"{med['trades']:.0f} trades{target})"
            )
        floors = [bench_floor(frames, work / "model", threshold) for _ in range(1 if args.quick else 3)]
        floor = {k: statistics.median(f[k] for f in floors) for k in floors[0]}
        print(
            f"  floor: features + predict + a plain loop over every (bar, instrument) {floor['total']:6.2f} s   "
            f"(features {floor['features']:.2f}, predict {floor['predict']:.2f}, loop {floor['loop']:.2f})"
        )
        items = write_csvs(frames, work / "csv")
        target = "" if args.quick else "; target < 1.5 s"
        for level in ("trades", "decisions", "all"):
            walls = [bench_cli(items, work / "model", work / f"out-cli-{level}", threshold, level)]
            print(
                f"  as the command, --journal {level:<9} {statistics.median(walls):6.2f} s   "
                f"(start, imports, reading and checking {len(items)} CSV files{target})"
            )
        bare = statistics.median(bench_python("pass") for _ in range(3))
        imports = statistics.median(bench_python("import pandas, catboost, matplotlib.pyplot") for _ in range(3))
        print(
            f"  baseline: python -c pass {bare:6.2f} s; python importing pandas, catboost, matplotlib {imports:.2f} s"
        )
        peer_s, peer_trades = bench_peer(frames, p_up, threshold)
        print(f"  backtesting.py, SL/TP over the same P(up)  {peer_s:6.2f} s   ({peer_trades} trades, same bars)")

        run_replays(work, args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
