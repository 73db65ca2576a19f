"""The watchdog's memory check, pure: RSS against a limit and the USS growth slope per process.

Part of the watchdog's checks (``actors.roles.watchdog.checks`` holds the readings, verdicts and the judge):
the role passes the samples it took with psutil and the time; nothing here reads a process table.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from actors.roles.watchdog.checks import ROOT, Reading, Verdict

__all__ = ["MemoryCheck", "growth_mb_per_h"]


def growth_mb_per_h(samples: Sequence[tuple[float, float]]) -> float | None:
    """The least-squares slope of ``(seconds, MB)`` samples, in MB per hour.

    Returns:
        The slope, or None with fewer than two distinct times.
    """
    n = len(samples)
    if n < 2:
        return None
    mean_t = sum(t for t, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var <= 0.0:
        return None
    cov = sum((t - mean_t) * (y - mean_y) for t, y in samples)
    return cov / var * 3600.0


@dataclass(slots=True)
class _Process:
    pid: int
    rss_mb: float | None = None
    first_uss_s: float | None = None
    uss: deque[tuple[float, float]] = field(default_factory=deque)


class MemoryCheck:
    """Memory per process: RSS against a limit, and the growth of USS (least squares, MB/h).

    RSS over ``rss_limit_mb`` is a breach of ``memory_limit:<name>`` and the role is restarted
    (the root, named ``ROOT``, is never restarted: it would take the tree down). USS (what the
    process alone holds: forked children share pages, so their RSS overstates them) is sampled
    over ``growth_window_s``; its slope above ``max_growth_mb_per_h`` is a breach of
    ``memory_growth:<name>``. The slope is judged only once the samples of one process cover the
    whole window, so a role's warm-up after a (re)start is never taken for a leak. A new pid
    starts the samples over.

    Args:
        rss_limit_mb: the RSS limit of every process.
        max_growth_mb_per_h: the largest USS slope that is still fine.
        growth_window_s: the window of the slope.
        growth_by_design: processes whose USS grows by design: their slope is shown, never a breach
            (the embedded emulator, the test broker, keeps every transaction and its recent requests:
            it grows with the market's pace, ~170 MB/h at 3600x; its RSS limit still holds).
    """

    def __init__(
        self,
        *,
        rss_limit_mb: float,
        max_growth_mb_per_h: float,
        growth_window_s: float,
        growth_by_design: frozenset[str] = frozenset(),
    ) -> None:
        self.rss_limit_mb = rss_limit_mb
        self.max_growth_mb_per_h = max_growth_mb_per_h
        self.growth_window_s = growth_window_s
        self.growth_by_design = growth_by_design
        self._procs: dict[str, _Process] = {}
        self._gone: set[str] = set()

    def _process(self, name: str, pid: int) -> _Process:
        proc = self._procs.get(name)
        if proc is None or proc.pid != pid:
            proc = self._procs[name] = _Process(pid)
        self._gone.discard(name)
        return proc

    def rss(self, name: str, pid: int, rss_mb: float) -> None:
        """The RSS of process ``name`` (pid ``pid``) now."""
        self._process(name, pid).rss_mb = rss_mb

    def uss(self, name: str, pid: int, uss_mb: float, now_s: float) -> None:
        """A USS sample of process ``name`` (pid ``pid``) at ``now_s``."""
        proc = self._process(name, pid)
        if proc.first_uss_s is None:
            proc.first_uss_s = now_s
        proc.uss.append((now_s, uss_mb))
        while proc.uss and proc.uss[0][0] < now_s - self.growth_window_s:
            proc.uss.popleft()

    def gone(self, name: str) -> None:
        """Process ``name`` is gone (or cannot be read): its readings are unknown until a new pid."""
        self._gone.add(name)

    def readings(self, now_s: float) -> list[Reading]:
        """Two readings per process: RSS and USS growth."""
        out: list[Reading] = []
        for name, proc in self._procs.items():
            out.append(self._rss_reading(name, proc))
            out.append(self._growth_reading(name, proc, now_s))
        return out

    def _rss_reading(self, name: str, proc: _Process) -> Reading:
        def reading(value: str, verdict: Verdict, detail: str) -> Reading:
            return Reading(
                name=f"memory_rss:{name}",
                value=value,
                limit=f"{self.rss_limit_mb:g} MB",
                verdict=verdict,
                detail=detail,
                code=f"memory_limit:{name}",
                restart=None if name == ROOT else name,
            )

        if name in self._gone or proc.rss_mb is None:
            return reading("-", Verdict.UNKNOWN, f"{name} (pid {proc.pid}) cannot be read")
        if proc.rss_mb <= self.rss_limit_mb:
            return reading(f"{proc.rss_mb:.0f} MB", Verdict.OK, f"{name} (pid {proc.pid}) uses {proc.rss_mb:.0f} MB")
        over = f"uses {proc.rss_mb:.0f} MB, over watchdog.rss_limit_mb ({self.rss_limit_mb:g} MB)"
        if name == ROOT:
            detail = f"the root process (pid {proc.pid}) {over}; it is not restarted (that would stop the whole tree)"
        else:
            detail = f"{name} (pid {proc.pid}) {over}; the watchdog asked the supervisor to restart it"
        return reading(f"{proc.rss_mb:.0f} MB", Verdict.BREACH, detail)

    def _growth_reading(self, name: str, proc: _Process, now_s: float) -> Reading:
        def reading(value: str, verdict: Verdict, detail: str) -> Reading:
            return Reading(
                name=f"memory_growth:{name}",
                value=value,
                limit=f"{self.max_growth_mb_per_h:g} MB/h",
                verdict=verdict,
                detail=detail,
                code=f"memory_growth:{name}",
            )

        if name in self._gone:
            return reading("-", Verdict.UNKNOWN, f"{name} (pid {proc.pid}) cannot be read")
        watched_s = 0.0 if proc.first_uss_s is None else now_s - proc.first_uss_s
        slope = growth_mb_per_h(list(proc.uss))
        if slope is None or watched_s < self.growth_window_s or len(proc.uss) < 3:
            detail = (
                f"{name} (pid {proc.pid}): judged once its samples cover watchdog.growth_window_s "
                f"({self.growth_window_s:g} s; {watched_s:.0f} s so far)"
            )
            return reading("-", Verdict.UNKNOWN, detail)
        first, last = proc.uss[0][1], proc.uss[-1][1]
        detail = (
            f"the private memory (USS) of {name} (pid {proc.pid}) grows by {slope:.1f} MB/h over the last "
            f"{self.growth_window_s:g} s ({first:.0f} -> {last:.0f} MB)"
        )
        if slope <= self.max_growth_mb_per_h:
            return reading(f"{slope:.1f} MB/h", Verdict.OK, detail)
        if name in self.growth_by_design:
            detail += " (by design: it keeps what it served; not judged, its RSS limit holds)"
            return reading(f"{slope:.1f} MB/h", Verdict.OK, detail)
        detail += f", faster than watchdog.max_growth_mb_per_h ({self.max_growth_mb_per_h:g} MB/h): a leak"
        return reading(f"{slope:.1f} MB/h", Verdict.BREACH, detail)
