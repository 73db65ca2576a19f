"""The watchdog's progress checks, pure: connections, a bar per instrument, a decision per bar,
account reads, free disk and clock skew.

Part of the watchdog's checks (``actors.roles.watchdog.checks`` holds the readings, verdicts and the judge):
the role passes what it heard on the bus and the time; nothing here reads a clock or a disk.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from actors.core import bartime, domain, markethours
from actors.roles.watchdog.checks import Reading, Verdict

__all__ = [
    "AccountCheck",
    "BarCheck",
    "ClockSkewCheck",
    "ConnectionCheck",
    "DecisionCheck",
    "disk_reading",
]

SKEW_WINDOW_S = 60.0  # clock skew: prices of the last minute ...
SKEW_MIN_SAMPLES = 5  # ... at least this many, else unknown
_NS = 1_000_000_000


@dataclass(slots=True)
class _Connection:
    connected: bool
    detail: str
    down_since_s: float | None


class ConnectionCheck:
    """The broker connections as their roles report them on the bus (``md.health``: the price
    stream, ``recon.health``: the REST API).

    The stream down for longer than ``down_alert_s`` is a breach of ``stream_silent`` (the
    supervisor already holds ``broker_unreachable:stream`` from the first second; this is the
    watchdog's word that the outage is long). The REST API is shown the same way, with no reason
    of its own (``broker_unreachable:rest`` is the supervisor's).

    Args:
        down_alert_s: how long a connection may be down before it is a breach.
    """

    SOURCES = ("stream", "rest")

    def __init__(self, *, down_alert_s: float) -> None:
        self.down_alert_s = down_alert_s
        self._conns: dict[str, _Connection] = {}

    def health(self, source: str, *, connected: bool, detail: str, now_s: float) -> None:
        """A health report of ``source`` (``stream`` or ``rest``)."""
        if source not in self.SOURCES:
            return
        previous = self._conns.get(source)
        down_since = None
        if not connected:
            down_since = previous.down_since_s if previous is not None and previous.down_since_s is not None else now_s
        self._conns[source] = _Connection(connected, detail, down_since)

    def readings(self, now_s: float) -> list[Reading]:
        """One reading per source."""
        out = []
        for source in self.SOURCES:
            what = "price stream" if source == "stream" else "REST API"
            code = "stream_silent" if source == "stream" else None
            conn = self._conns.get(source)
            limit = f"down {self.down_alert_s:g} s"
            if conn is None:
                detail = f"broker {what}: no report heard yet"
                out.append(
                    Reading(name=source, value="-", limit=limit, verdict=Verdict.UNKNOWN, detail=detail, code=code)
                )
                continue
            if conn.connected or conn.down_since_s is None:
                out.append(
                    Reading(name=source, value="up", limit=limit, verdict=Verdict.OK, detail=conn.detail, code=code)
                )
                continue
            down_s = max(0.0, now_s - conn.down_since_s)
            breach = down_s > self.down_alert_s
            detail = f"broker {what} down for {down_s:.0f} s: {conn.detail}"
            if breach:
                detail += f" (longer than watchdog.stream_down_alert_s, {self.down_alert_s:g} s)"
            out.append(
                Reading(
                    name=source,
                    value=f"down {down_s:.0f} s",
                    limit=limit,
                    verdict=Verdict.BREACH if breach else Verdict.OK,
                    detail=detail,
                    code=code,
                )
            )
        return out


@dataclass(slots=True)
class _Instrument:
    status: markethours.MarketStatus | None = None
    price: tuple[int, bool] | None = None  # the newest price not folded into the status yet
    bar_end_ns: int | None = None  # market time: the end of the newest published bar
    first_open_ns: int | None = None  # market time: when the check first saw the market open


class BarCheck:
    """Progress while the market is open: a bar of every instrument within its granularity plus a
    grace, on the market's clock.

    Every time here is market time, the clock the feed's ``BarClock`` closes bars on: the broker's
    price times, run on from the newest price at ``speed`` market seconds per wall second (1 for a
    real broker, the emulator's ``speed`` otherwise). Whether an instrument's market is open is
    decided as the feed decides it (``markethours.update_market_status``: the calendar, and the broker's
    ``tradeable`` flag for halts), so a weekend, a holiday or a halt is expected silence, never a
    breach. While open, the market time since the instrument's last bar ended (or since its market
    opened, since the check first saw it open, or since the last ``grace``) longer than the
    granularity plus the grace is a breach of ``bar_overdue:<instrument>``. Closures in between do
    not count: the wait starts again at the latest opening (``markethours.period_start``), also when
    market time jumped over a closure between two readings.

    The grace is ``grace_s`` market seconds, but at least ``speed`` x ``wall_floor_s``: the host's
    own work (the candle request, waiting up to ``feed.bar_wait_s`` for a candle the broker is still
    closing, the bus) takes wall time, which an accelerated emulator turns into many market seconds.
    Against a real broker (speed 1) the floor is below the grace and changes nothing.

    Args:
        instruments: the feed's instruments.
        granularity: the feed's granularity.
        speed: market seconds per wall second (1 for a real broker).
        grace_s: market seconds allowed on top of one bar.
        wall_floor_s: wall seconds the host may take to publish a closed bar.
    """

    def __init__(
        self, instruments: Sequence[str], *, granularity: str, speed: float, grace_s: float, wall_floor_s: float = 0.0
    ) -> None:
        self.granularity = granularity
        self.granularity_s = float(domain.granularity_seconds(granularity))
        self.speed = speed
        self.grace_s = grace_s
        self.market_grace_s = max(grace_s, speed * wall_floor_s)
        self.limit_s = self.granularity_s + self.market_grace_s
        self._instruments = {name: _Instrument() for name in instruments}
        self._anchor: tuple[int, float] | None = None  # (market ns of the newest price, when it came)
        self._grace_wall_s: float | None = None

    def price(self, instrument: str, ts_ns: int, tradeable: bool, now_s: float) -> None:
        """A price of ``instrument`` at market time ``ts_ns``, received at ``now_s``."""
        if self._anchor is None or ts_ns >= self._anchor[0]:
            self._anchor = (ts_ns, now_s)
        inst = self._instruments.get(instrument)
        if inst is not None and (inst.price is None or ts_ns >= inst.price[0]):
            inst.price = (ts_ns, tradeable)

    def bar(self, instrument: str, ts_ns: int, now_s: float) -> None:
        """A validated bar of ``instrument`` starting at market time ``ts_ns`` was published at ``now_s``."""
        inst = self._instruments.get(instrument)
        if inst is not None:
            end_ns = bartime.bar_end(ts_ns, self.granularity)
            inst.bar_end_ns = end_ns if inst.bar_end_ns is None else max(inst.bar_end_ns, end_ns)

    def grace(self, now_s: float) -> None:
        """Start every instrument's wait over at ``now_s`` (the bus or the watchdog did not run)."""
        self._grace_wall_s = now_s

    def market_now_ns(self, now_s: float) -> int | None:
        """Market time now, run on from the newest price; None before the first price."""
        if self._anchor is None:
            return None
        ts_ns, at_s = self._anchor
        return ts_ns + round(max(0.0, now_s - at_s) * self.speed * _NS)

    def _market_at(self, wall_s: float) -> int | None:
        # The market time at an earlier (or later) wall time, on the newest price's clock.
        if self._anchor is None:
            return None
        ts_ns, at_s = self._anchor
        return ts_ns + round((wall_s - at_s) * self.speed * _NS)

    def readings(self, now_s: float) -> list[Reading]:
        """One reading per instrument."""
        market_ns = self.market_now_ns(now_s)
        grace_ns = None if self._grace_wall_s is None else self._market_at(self._grace_wall_s)
        limit = f"{self.limit_s:g} s"
        return [self._reading(name, inst, market_ns, grace_ns, limit) for name, inst in self._instruments.items()]

    def _reading(
        self, name: str, inst: _Instrument, market_ns: int | None, grace_ns: int | None, limit: str
    ) -> Reading:
        code = f"bar_overdue:{name}"
        if market_ns is None:
            detail = "market time unknown: no price seen yet"
            return Reading(
                name=f"bar:{name}", value="-", limit=limit, verdict=Verdict.UNKNOWN, detail=detail, code=code
            )
        if inst.price is not None:
            ts_ns, tradeable = inst.price
            inst.status, _ = markethours.update_market_status(
                inst.status, instrument=name, ts_ns=ts_ns, tradeable=tradeable
            )
            inst.price = None
        inst.status, _ = markethours.update_market_status(inst.status, instrument=name, ts_ns=market_ns)
        if not inst.status.is_open:
            why = inst.status.why.value if inst.status.why else "closed"
            detail = f"{name}: market closed ({why}); no bar expected"
            return Reading(
                name=f"bar:{name}", value=f"closed ({why})", limit=limit, verdict=Verdict.OK, detail=detail, code=code
            )
        if inst.first_open_ns is None:
            inst.first_open_ns = market_ns
        # The latest of: the last bar's end, the market's opening (the broker's flag, or the
        # calendar's present period: a closure passed between two readings counts too), the
        # first reading that saw it open, the last grace.
        starts = (inst.bar_end_ns, inst.status.since_ns, markethours.period_start(market_ns), inst.first_open_ns)
        base_ns = max(s for s in (*starts, grace_ns) if s is not None)
        waited_s = max(0, market_ns - base_ns) / _NS
        breach = waited_s > self.limit_s
        by_bar = inst.bar_end_ns is not None and inst.bar_end_ns >= base_ns
        since = "its last bar" if by_bar else "its market opened"
        if breach:
            detail = (
                f"no {self.granularity} bar of {name} for {_duration(waited_s)} of market time while its market is "
                f"open (one is due every {self.granularity_s:g} s plus {self._grace_words()})"
            )
        else:
            detail = f"{name}: {_duration(waited_s)} of market time since {since}"
        return Reading(
            name=f"bar:{name}",
            value=f"{waited_s:.0f} s",
            limit=limit,
            verdict=Verdict.BREACH if breach else Verdict.OK,
            detail=detail,
            code=code,
        )

    def _grace_words(self) -> str:
        if self.market_grace_s == self.grace_s:
            return f"watchdog.bar_grace_s = {self.grace_s:g} s"
        wall_s = self.market_grace_s / self.speed
        return f"{self.market_grace_s:g} s, the host's {wall_s:g} s of wall time at {self.speed:g}x"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class DecisionCheck:
    """Progress down the trading loop: every published bar gets its outcome within ``deadline_s``.

    A close (``md.bars``) expects, for each bar it published, a decision of the risk role
    (``risk.intent`` or ``risk.skip``) or the model's word that it gives no signal for that bar
    (``model.skipped``). A bar still without one after ``deadline_s`` (wall seconds) is a breach
    of ``decision_overdue:<instrument>``: the model or the risk role takes bars but decides
    nothing. An outcome for that bar or a later one of the instrument clears it. A restart of the
    model or the risk role (``forget``) drops what was waiting: the bus does not replay messages a
    dead process missed, and its own reason (``role_down``) tells that story.

    Args:
        instruments: the feed's instruments.
        deadline_s: wall seconds from the close to the outcome.
    """

    def __init__(self, instruments: Sequence[str], *, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self._instruments = tuple(instruments)
        self._waiting: dict[str, tuple[int, float]] = {}  # instrument -> (oldest bar ts waiting, since)
        self._last: dict[str, float] = {}  # instrument -> when its last outcome came

    def closed(self, bar_ts: int, published: Iterable[str], now_s: float) -> None:
        """A close published bars of ``published`` at ``bar_ts``."""
        for name in published:
            if name in self._instruments and name not in self._waiting:
                self._waiting[name] = (bar_ts, now_s)

    def outcome(self, instrument: str, bar_ts: int, now_s: float) -> None:
        """A decision (or the model's skip) for ``instrument``'s bar at ``bar_ts``."""
        waiting = self._waiting.get(instrument)
        if waiting is not None and bar_ts >= waiting[0]:
            del self._waiting[instrument]
        self._last[instrument] = now_s

    def forget(self) -> None:
        """The model or the risk role restarted: what it was given before is lost."""
        self._waiting.clear()

    def grace(self, now_s: float) -> None:
        """Start every wait over at ``now_s`` (the bus or the watchdog did not run)."""
        self._waiting = {name: (ts, max(since, now_s)) for name, (ts, since) in self._waiting.items()}

    def readings(self, now_s: float) -> list[Reading]:
        """One reading per instrument."""
        limit = f"{self.deadline_s:g} s"
        out = []
        for name in self._instruments:
            code = f"decision_overdue:{name}"
            waiting = self._waiting.get(name)
            if waiting is None:
                last = self._last.get(name)
                detail = f"{name}: every bar decided" + (f", the last {now_s - last:.0f} s ago" if last else "")
                out.append(
                    Reading(
                        name=f"decision:{name}", value="0 s", limit=limit, verdict=Verdict.OK, detail=detail, code=code
                    )
                )
                continue
            waited_s = max(0.0, now_s - waiting[1])
            breach = waited_s > self.deadline_s
            if breach:
                detail = (
                    f"the {name} bar of {_utc(waiting[0])} has no decision after {waited_s:.0f} s "
                    f"(watchdog.decision_deadline_s = {self.deadline_s:g} s): the model or the risk role is stuck"
                )
            else:
                detail = f"{name}: the bar of {_utc(waiting[0])} waits for its decision"
            out.append(
                Reading(
                    name=f"decision:{name}",
                    value=f"{waited_s:.0f} s",
                    limit=limit,
                    verdict=Verdict.BREACH if breach else Verdict.OK,
                    detail=detail,
                    code=code,
                )
            )
        return out


class AccountCheck:
    """A broker round trip within ``max_age_s``: the reconciler's account read (``recon.state``).

    The reconciler reads the account, trades, orders and transactions every
    ``reconciler.poll_interval_s`` and publishes ``recon.state`` after each good read. None for
    longer than ``max_age_s`` (wall seconds) is a breach of ``account_stale``: whatever the
    connection reports say, the host has not read the broker for that long, so its limits look
    at an old account.

    Args:
        max_age_s: the longest wall time between two good reads.
        now_s: when the watchdog started (the first read is due ``max_age_s`` after it).
    """

    def __init__(self, *, max_age_s: float, now_s: float) -> None:
        self.max_age_s = max_age_s
        self._last_s = now_s
        self._seen = False
        self._grace_s: float | None = None

    def read(self, now_s: float) -> None:
        """A ``recon.state`` arrived."""
        self._last_s, self._seen = now_s, True

    def grace(self, now_s: float) -> None:
        """Start the wait over (the bus or the watchdog did not run)."""
        self._grace_s = now_s

    def reading(self, now_s: float) -> Reading:
        """The account's age against ``max_age_s``."""
        base = max(self._last_s, self._grace_s or self._last_s)
        age_s = max(0.0, now_s - base)
        breach = age_s > self.max_age_s
        since = "the last account read" if self._seen else "the watchdog started (no account read yet)"
        detail = f"{age_s:.0f} s since {since}"
        if breach:
            detail = (
                f"no account read from the broker for {age_s:.0f} s (watchdog.account_max_age_s = "
                f"{self.max_age_s:g} s): limits and status look at an old account"
            )
        return Reading(
            name="account",
            value=f"{age_s:.0f} s",
            limit=f"{self.max_age_s:g} s",
            verdict=Verdict.BREACH if breach else Verdict.OK,
            detail=detail,
            code="account_stale",
        )


def _utc(ts_ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts_ns / _NS))


def disk_reading(free_mb: float | None, *, min_free_mb: float, path: str) -> Reading:
    """Free disk space of the run directory against ``min_free_mb`` (``disk_low``).

    Args:
        free_mb: free space in MB; None when it could not be read.
        min_free_mb: the least free space that is still fine.
        path: the directory (for the detail).
    """
    limit = f"{min_free_mb:g} MB free"
    if free_mb is None or not math.isfinite(free_mb):
        return Reading(
            name="disk",
            value="-",
            limit=limit,
            verdict=Verdict.UNKNOWN,
            detail=f"{path}: free space unreadable",
            code="disk_low",
        )
    breach = free_mb < min_free_mb
    detail = f"{free_mb:.0f} MB free on the disk of {path}"
    if breach:
        detail += f", less than watchdog.min_free_disk_mb ({min_free_mb:g} MB): the journal may soon fail to write"
    return Reading(
        name="disk",
        value=f"{free_mb:.0f} MB free",
        limit=limit,
        verdict=Verdict.BREACH if breach else Verdict.OK,
        detail=detail,
        code="disk_low",
    )


class ClockSkewCheck:
    """The local wall clock against the broker's price times.

    Every fresh price gives ``local receipt time - broker time`` = skew + latency (latency >= 0);
    the smallest value over the last ``SKEW_WINDOW_S`` is the estimate (it has the least latency in
    it). An estimate beyond ``max_skew_s`` either way is a breach of ``clock_skew``. Only fresh
    prices count: tradeable ones whose time moved on from the instrument's previous price, and
    not the first of an instrument after a (re)connect (a stream starts with a snapshot of the
    last prices, which may be minutes old in a quiet or closed market). With fewer than
    ``SKEW_MIN_SAMPLES`` fresh prices in the window (a closed market) the verdict is unknown.

    Args:
        max_skew_s: the largest skew that is still fine.
        off: why the check is off (``max_clock_skew_s = 0``, or an emulator not in real time);
            empty when it is on.
    """

    def __init__(self, *, max_skew_s: float, off: str = "") -> None:
        self.max_skew_s = max_skew_s
        self.off = off
        self._samples: deque[tuple[float, float]] = deque(maxlen=100_000)  # (received mono s, local - broker s)
        self._last: dict[str, int] = {}  # instrument -> time of its last price since the (re)connect

    def reconnected(self) -> None:
        """The price stream (re)connected: its next price per instrument is a snapshot."""
        self._last.clear()

    def price(self, instrument: str, broker_ns: int, received_ns: int, *, tradeable: bool, now_s: float) -> None:
        """A price of ``instrument`` stamped ``broker_ns`` by the broker arrived at local wall time
        ``received_ns``."""
        previous = self._last.get(instrument)
        if previous is None or broker_ns > previous:
            self._last[instrument] = broker_ns
        fresh = previous is not None and broker_ns > previous and tradeable
        if fresh and not self.off:
            self._samples.append((now_s, (received_ns - broker_ns) / _NS))

    def reading(self, now_s: float) -> Reading:
        """The check's reading."""
        limit = f"{self.max_skew_s:g} s"
        if self.off:
            return Reading(
                name="clock_skew", value="-", limit=limit, verdict=Verdict.UNKNOWN, detail=f"off: {self.off}"
            )
        while self._samples and self._samples[0][0] < now_s - SKEW_WINDOW_S:
            self._samples.popleft()
        if len(self._samples) < SKEW_MIN_SAMPLES:
            detail = f"{len(self._samples)} prices in the last {SKEW_WINDOW_S:g} s: too few to judge"
            return Reading(
                name="clock_skew", value="-", limit=limit, verdict=Verdict.UNKNOWN, detail=detail, code="clock_skew"
            )
        skew_s = min(delta for _, delta in self._samples)
        breach = abs(skew_s) > self.max_skew_s
        direction = "ahead of" if skew_s >= 0 else "behind"
        detail = f"the local clock is {abs(skew_s):.2f} s {direction} the broker's price times"
        if breach:
            detail += f", more than watchdog.max_clock_skew_s ({self.max_skew_s:g} s): check NTP (timedatectl)"
        return Reading(
            name="clock_skew",
            value=f"{skew_s:+.2f} s",
            limit=limit,
            verdict=Verdict.BREACH if breach else Verdict.OK,
            detail=detail,
            code="clock_skew",
        )
