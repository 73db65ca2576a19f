"""What the supervisor writes down: journal entries and the state that survives a restart.

``Records.journal`` appends to the SQLite journal; when a write fails it latches the
``journal_unwritable`` reason (not through the health policy: that journals, which is what just
failed), counts what was lost, and journals the outage itself (since when, how many entries,
the first error) as soon as the journal takes writes again. ``Records.save_state`` writes the
latched reasons and the pause to ``state.json`` crash-safely, and refuses to write at all once
the run directory is lost (it may be another host's by then).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.core.clock import Clock
from actors.runtime.journal import Journal
from supervisor import statefile
from supervisor.state import PAUSE_CODE, StateMachine

__all__ = ["Records"]

log = logging.getLogger(__name__)


class Records:
    """The supervisor's journal and saved state (see the module docstring).

    Args:
        journal: the open journal.
        state_path: where ``state.json`` lives.
        sm: the state machine (its latched reasons and pause are what is saved).
        clock: the clock.
        on_unsaved: called with a reason when ``state.json`` cannot be written.
    """

    def __init__(
        self,
        journal: Journal,
        state_path: Path,
        sm: StateMachine,
        clock: Clock,
        on_unsaved: Callable[[str], object],
    ) -> None:
        self.db = journal
        self.state_path = state_path
        self.sm = sm
        self.clock = clock
        self.on_unsaved = on_unsaved
        self.failed: tuple[int, int, str] | None = None  # since_ns, entries lost, first error
        self.frozen: str | None = None  # why nothing may be written into the run directory

    def journal(self, kind: str, body: dict[str, Any]) -> None:
        """Append one entry; a failure latches NO_TRADE (never raises)."""
        try:
            if self.failed is not None:
                since_ns, lost, error = self.failed
                self.db.write("journal.outage", {"since_ns": since_ns, "entries_lost": lost, "error": error})
                self.failed = None
            self.db.write(kind, body)
        except sqlite3.Error as e:
            log.error("journal write failed (%s): %s", kind, e)
            now, now_ns = self.clock.monotonic(), self.clock.time_ns()
            since_ns, lost, first = self.failed or (now_ns, 0, str(e))
            self.failed = (since_ns, lost + 1, first)
            self.sm.raise_reason(
                "journal_unwritable", f"journal write failed: {e}", latched=True, now_s=now, now_ns=now_ns
            )

    def save_state(self) -> None:
        """Write the latched reasons and the pause to ``state.json`` (crash-safe)."""
        if self.frozen is not None:
            log.error("state.json not written: %s", self.frozen)
            return
        latched = tuple(
            statefile.LatchedReason(r.code, r.detail)
            for r in self.sm.reasons(self.clock.time_ns())
            if r.latched and r.code != PAUSE_CODE
        )
        try:
            statefile.save(self.state_path, statefile.SavedState(paused=self.sm.paused, latched=latched))
        except OSError as e:
            log.error("could not save state: %s", e)
            self.on_unsaved(f"could not save {self.state_path}: {e}")
