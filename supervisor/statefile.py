"""The supervisor's state that must survive a restart of the host (``<run_dir>/state.json``),
written crash-safely: the operator pause and the latched no-trade reasons.

The rest of what a restart recovers is kept by its owner: peak and day-start NAV, the last
transaction id and the known trades by the reconciler (``recon-state.json``,
``actors.roles.reconciler.state``), the execution role's memos of its trades
(``execution-state.json``), the shadow book (``actors.broker.shadow.state``). Every one is written
by ``actors.core.atomicfile.write_atomically`` (a temporary file, fsynced and renamed over the old
one, then the directory fsynced), so a crash leaves either the old or the new file, never half of
one. A file that cannot be read is refused at start with its path and reason: when unsure, do not
trade.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from actors.core.atomicfile import write_atomically
from actors.core.errors import ConfigError

VERSION = 1


@dataclass(frozen=True, slots=True)
class LatchedReason:
    """A latched reason as saved: its code and detail."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class SavedState:
    """What a restart of the host recovers."""

    paused: bool = False
    latched: tuple[LatchedReason, ...] = field(default_factory=tuple)


def load(path: Path) -> SavedState:
    """Read the saved state; a missing file is a fresh start.

    Raises:
        ConfigError: the file exists but is not a state file this version understands.
    """
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return SavedState()
    except (OSError, orjson.JSONDecodeError) as e:
        raise ConfigError(f"{path}: saved state is unreadable ({e}); inspect or remove it") from e
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        raise ConfigError(f"{path}: saved state has an unknown format; inspect or remove it")
    latched = raw.get("latched", [])
    if not isinstance(latched, list) or not all(
        isinstance(r, dict) and isinstance(r.get("code"), str) and isinstance(r.get("detail"), str) for r in latched
    ):
        raise ConfigError(f"{path}: saved state has malformed latched reasons; inspect or remove it")
    return SavedState(
        paused=bool(raw.get("paused", False)),
        latched=tuple(LatchedReason(r["code"], r["detail"]) for r in latched),
    )


def save(path: Path, state: SavedState) -> None:
    """Write the state atomically (tmp + fsync + rename + directory fsync)."""
    payload = orjson.dumps(
        {
            "version": VERSION,
            "paused": state.paused,
            "latched": [{"code": r.code, "detail": r.detail} for r in state.latched],
        },
        option=orjson.OPT_INDENT_2,
    )
    write_atomically(path, payload)
