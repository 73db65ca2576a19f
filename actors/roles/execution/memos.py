"""What the execution role remembers of each trade it opened (``TradeMemo``: the intent, the bar's
corr, the model version, the initial stop that defines R for the exits), persisted crash-safely in
``<run_dir>/execution-state.json``. A trade it has no memo of (adopted, or its own whose outcome it
never learned) gets one built from the broker's trade (``actors.core.exits.entry_from_broker``):
no intent, corr or model version; ``initial_stop_loss`` empty when R is unknown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from actors.core.atomicfile import write_atomically
from actors.core.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeMemo:
    """What execution remembers of a trade it opened."""

    trade_id: str
    intent_id: str
    instrument: str
    direction: str
    units: str
    initial_stop_loss: str
    corr: str | None
    model_version: str
    open_bar_ts: int


def load_memos(path: Path) -> dict[str, TradeMemo]:
    """The saved memos (empty when there is no file yet).

    Raises:
        ConfigError: the file exists but cannot be read.
    """
    try:
        raw = orjson.loads(path.read_bytes())
        return {m["trade_id"]: TradeMemo(**m) for m in raw["trades"]}
    except FileNotFoundError:
        return {}
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: execution state is unreadable ({e}); inspect or remove it") from e


def save_memos(path: Path, memos: dict[str, TradeMemo]) -> None:
    """Write the memos crash-safely."""
    payload: dict[str, Any] = {"version": 1, "trades": [asdict(m) for m in memos.values()]}
    write_atomically(path, orjson.dumps(payload, option=orjson.OPT_INDENT_2))
