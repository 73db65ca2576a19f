"""Candles made for backtest tests and the benchmark: synthetic M15 bars and files derived from the emulator.

``synthetic_candles`` draws a random walk with a little momentum (something for a model to learn)
on the FX calendar's open bars; ``emulator_candles`` reads the embedded emulator's own synthetic
market through the real client and makes the bars continuous (each opens at the previous close,
so the emulator's replay of a file, which holds each candle's open for its first third, quotes a
bar's close until well after it ended); ``write_candle_files`` writes either as candle
CSVs (``actors.ml.candlefile``) for ``--data`` and ``broker.emulator.data``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from actors.broker.emulator.instruments import SPECS
from actors.core.bartime import expected_bars
from actors.core.timefmt import format_rfc3339, parse_time

GRANULARITY = "M15"


def open_bar_starts(first: str, last: str, granularity: str = GRANULARITY) -> np.ndarray:
    """Starts of the bars the FX calendar expects from ``first`` (open, aligned) up to ``last``."""
    start = parse_time(first)
    return np.array([start, *expected_bars(start, parse_time(last), granularity)], dtype=np.int64)


def synthetic_candles(
    instruments: tuple[str, ...], first: str, last: str, *, seed: int = 11, momentum: float = 0.2
) -> dict[str, pd.DataFrame]:
    """Candle frames (``actors.ml.candlefile`` columns) of a random walk per instrument at its emulator
    volatility and spread, four steps per bar, each bar drifting by ``momentum`` times the last move."""
    times = open_bar_starts(first, last)
    rng = np.random.default_rng(seed)
    frames = {}
    for name in instruments:
        spec = SPECS[name]
        steps = rng.standard_normal((len(times), 4)) * (spec.hourly_vol / 4)  # 4 bars an hour, 4 steps a bar
        moves = steps.sum(axis=1)
        drift = np.zeros(len(times))
        for k in range(1, len(times)):
            drift[k] = momentum * (moves[k - 1] + drift[k - 1])
        steps += drift[:, None] / 4
        path = spec.base_price * np.exp(np.cumsum(steps.reshape(-1))).reshape(len(times), 4)
        close = path[:, -1]
        open_ = np.r_[spec.base_price, close[:-1]]
        dp = spec.display_precision
        frames[name] = pd.DataFrame(
            {
                "open": np.round(open_, dp),
                "high": np.round(np.maximum(path.max(axis=1), open_), dp),
                "low": np.round(np.minimum(path.min(axis=1), open_), dp),
                "close": np.round(close, dp),
                "volume": rng.poisson(120, len(times)).astype(np.float64) + 1,
                "spread": np.full(len(times), round(spec.spread_pips * spec.pip, dp + 1)),
            },
            index=pd.Index(times, name="time"),
        )
    return frames


def emulator_candles(
    instruments: tuple[str, ...], first: str, last: str, *, seed: int = 1, granularity: str = GRANULARITY
) -> dict[str, pd.DataFrame]:
    """The embedded emulator's synthetic bars in [first, last), made continuous (see the module)."""
    from dataclasses import replace

    from actors.broker.config import BrokerConfig, EmulatorConfig
    from supervisor.offline import history

    config = BrokerConfig(emulator=replace(EmulatorConfig(), seed=seed, start=last, instruments=instruments))
    with history.open_history_broker(config) as broker:
        data = history.from_broker(
            broker, instruments, granularity, bars=0, from_ns=parse_time(first), to_ns=parse_time(last)
        )
    frames = {}
    for name in instruments:
        frame = data.frames[name].copy()
        dp = SPECS[name].display_precision
        close = frame["close"].to_numpy()
        opens = frame["open"].to_numpy().copy()
        opens[1:] = close[:-1]
        frame["open"] = opens
        frame["high"] = np.maximum(frame["high"].to_numpy(), opens)
        frame["low"] = np.minimum(frame["low"].to_numpy(), opens)
        frames[name] = frame[["open", "high", "low", "close", "volume"]].round(
            {"open": dp, "high": dp, "low": dp, "close": dp}
        )
    return frames


def write_candle_files(frames: dict[str, pd.DataFrame], directory: Path) -> list[str]:
    """The frames as candle CSV files; returns their ``INSTRUMENT=PATH`` items."""
    directory.mkdir(parents=True, exist_ok=True)
    items = []
    for name, frame in frames.items():
        dp = SPECS[name].display_precision
        path = directory / f"{name}.csv"
        columns = [c for c in ("open", "high", "low", "close", "volume", "spread") if c in frame.columns]
        with path.open("w", encoding="utf-8") as handle:
            handle.write("time," + ",".join(columns) + "\n")
            for ts, row in zip(frame.index, frame[columns].to_numpy(), strict=True):
                cells = [f"{v:.{dp}f}" for v in row[:4]]
                cells += [
                    f"{int(v)}" if c == "volume" else f"{v:.{dp + 1}f}"
                    for c, v in zip(columns[4:], row[4:], strict=True)
                ]
                handle.write(f"{format_rfc3339(int(ts))[:19]}Z," + ",".join(cells) + "\n")
        items.append(f"{name}={path}")
    return items
