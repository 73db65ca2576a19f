"""actors.core.candlespec: see the module docstring to write."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from actors.core.errors import TradehostError

# The columns of every candle frame this module returns (the same as ``actors.ml.features.FIELDS``).
CANDLE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "spread")


_INSTRUMENT = re.compile(r"^[A-Z0-9]+_[A-Z0-9]+$")


class CandleFileError(TradehostError):
    """A candle file or ``INSTRUMENT=PATH`` spec is unusable; the message names file and line."""


def parse_spec(item: str, *, known: Collection[str]) -> tuple[str, Path]:
    """Split ``INSTRUMENT=PATH``, or name a bare path by the instrument its file name starts with.

    Args:
        item: ``EUR_USD=data/eurusd.csv`` or ``data/EUR_USD_H1.csv``.
        known: instruments a bare path may name (the longest match wins).

    Returns:
        The instrument and the path.

    Raises:
        CandleFileError: the instrument is not ``BASE_QUOTE``-shaped, or a bare path names none
            of ``known``.
    """
    if "=" in item:
        name, raw = item.split("=", 1)
        name = name.strip()
        if not _INSTRUMENT.match(name):
            raise CandleFileError(f"{item}: {name!r} is not an instrument name like EUR_USD")
        if not raw:
            raise CandleFileError(f"{item}: no path after '='")
        return name, Path(raw)
    path = Path(item)
    upper = path.name.upper()
    for name in sorted(known, key=len, reverse=True):
        if upper.startswith(name.upper()):
            return name, path
    raise CandleFileError(f"{item}: name the instrument as INSTRUMENT=PATH or start the file name with it")
