"""Real market data for tests: EURUSD hours of 2017-04 .. 2018-02 from the ``backtesting`` package.

backtesting.py (the test extra) ships ``backtesting/test/EURUSD.csv``: 5000 recorded hourly mid
candles (open, high, low, close, volume) with every weekend and both holiday closures of the
2017/18 turn of the year (Christmas and New Year, each a Monday). ``eurusd_h1_file`` writes them
as a candle CSV (``actors.ml.candlefile``) for ``--data`` and ``broker.emulator.data``.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def eurusd_h1_file(directory: Path) -> Path:
    """Write the recorded EURUSD hours to ``directory/EUR_USD_H1.csv`` (skips without the package)."""
    data = pytest.importorskip(
        "backtesting.test", reason="real EURUSD hours come from the `backtesting` package (test extra)"
    ).EURUSD
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "EUR_USD_H1.csv"
    lines = ["time,open,high,low,close,volume"]
    for stamp, o, h, low, c, volume in data[["Open", "High", "Low", "Close", "Volume"]].itertuples():
        lines.append(f"{stamp:%Y-%m-%dT%H:%M:%SZ},{o!r},{h!r},{low!r},{c!r},{int(volume)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
