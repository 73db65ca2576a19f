"""What the reconciler keeps across restarts (``ReconState``): the last transaction id it read, the
zone state with peak and day-start NAV, and the trades it knows, written crash-safely to
``<run_dir>/recon-state.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from actors.core.atomicfile import write_atomically
from actors.core.errors import ConfigError
from actors.core.truth import KnownTrade
from actors.core.zones import ZoneState


@dataclass(slots=True, kw_only=True)
class ReconState:
    """What the reconciler keeps across restarts."""

    last_transaction_id: str = ""
    zone: ZoneState | None = None
    known: dict[str, KnownTrade] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ReconState:
        """The saved state (a fresh one when there is no file).

        Raises:
            ConfigError: the file exists but cannot be read.
        """
        try:
            raw = orjson.loads(path.read_bytes())
            zone = ZoneState.from_dict(raw["zone"]) if raw.get("zone") else None
            known = {t["trade_id"]: KnownTrade(**t) for t in raw.get("known", [])}
            return cls(last_transaction_id=str(raw.get("last_transaction_id", "")), zone=zone, known=known)
        except FileNotFoundError:
            return cls()
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{path}: reconciler state is unreadable ({e}); inspect or remove it") from e

    def save(self, path: Path) -> None:
        """Write it crash-safely."""
        payload = {
            "version": 1,
            "last_transaction_id": self.last_transaction_id,
            "zone": self.zone.to_dict() if self.zone else None,
            "known": [asdict(t) for t in self.known.values()],
        }
        write_atomically(path, orjson.dumps(payload, option=orjson.OPT_INDENT_2))
