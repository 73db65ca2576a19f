"""The entry decision (pure): ``decide_entry`` runs the gate (``actors.core.gate``), the daily loss
limit and drawdown zones, and the sizing (``actors.core.sizing``) for one signal, and returns an
``EntryIntent`` with its deterministic ``intent_id`` (strategy, instrument, bar, direction: it
becomes the order's client id) or an ``EntrySkip`` with the stable reason. The risk role and
``tradehost backtest`` call this one function. Every order of a host is tagged
``tradehost-<host id>`` (``host_tag``): the reconciler tells its own trades from a second host's by it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actors.core.domain import STRATEGY_RE, Direction, Position, Quote, Signal, SkipReason
from actors.core.gate import check_entry
from actors.core.money import currency_exposure
from actors.core.sizing import SizedEntry, size_entry

if TYPE_CHECKING:
    from actors.core.config import RiskConfig
    from actors.core.domain import Instrument
    from actors.core.zones import ZoneVerdict


_INSTRUMENT_RE = re.compile(r"[A-Za-z0-9]{1,16}_[A-Za-z0-9]{1,16}")


def intent_id(strategy: str, instrument: str, bar_ts_ns: int, direction: Direction) -> str:
    """The deterministic id of the intent to trade ``instrument`` at bar ``bar_ts_ns``.

    ``<strategy>.<instrument>.<bar time ns>.<L|S>``, e.g. ``main.EUR_USD.1700000000000000000.L``:
    readable in the journal and at the broker, at most 80 characters, made only of
    ``[A-Za-z0-9._-]`` (OANDA's ``clientExtensions.id``, usable as ``@id`` in a URL), and
    different for different inputs (no part can contain the separator ``.``).

    Raises:
        ValueError: the strategy or the instrument has characters outside that set, or the bar
            time is negative.
    """
    if not STRATEGY_RE.fullmatch(strategy):
        raise ValueError(f"strategy {strategy!r} must match {STRATEGY_RE.pattern}")
    if not _INSTRUMENT_RE.fullmatch(instrument):
        raise ValueError(f"instrument {instrument!r} must match {_INSTRUMENT_RE.pattern}")
    if bar_ts_ns < 0:
        raise ValueError(f"bar time {bar_ts_ns} is negative")
    return f"{strategy}.{instrument}.{bar_ts_ns}.{'L' if direction is Direction.LONG else 'S'}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryIntent:
    """A decision to enter: what the risk role publishes as ``risk.intent``.

    Attributes:
        intent_id: the deterministic id (``intent_id``): the order's client id.
        signal: the signal it came from.
        sized: units, SL, TP and the decision price.
        multiplier: the drawdown zone's size multiplier used.
    """

    intent_id: str
    signal: Signal
    sized: SizedEntry
    multiplier: float

    def position(self) -> Position:
        """The position the entry opens, as the next decisions count it while it is in flight."""
        sized = self.sized
        return Position(
            instrument=self.signal.instrument,
            direction=sized.direction,
            units=float(sized.units),
            entry_price=sized.entry_price,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EntrySkip:
    """A decision not to enter: what the risk role publishes as ``risk.skip``.

    Attributes:
        signal: the signal it came from.
        reason: the stable reason code.
        direction: the direction the signal pointed to, when it got that far.
        detail: a short human-readable detail (may be empty).
    """

    signal: Signal
    reason: SkipReason
    direction: Direction | None = None
    detail: str = ""


def decide_entry(
    signal: Signal,
    quote: Quote | None,
    atr: float | None,
    *,
    instrument: Instrument,
    book: Mapping[str, Position],
    mids: Mapping[str, float],
    nav: float,
    home_currency: str,
    now_ns: int,
    last_loss_close_ns: Mapping[str, int],
    zone: ZoneVerdict,
    margin_available: float,
    config: RiskConfig,
) -> EntryIntent | EntrySkip:
    """The whole entry decision for one signal, in the one order both the role and the backtest use.

    1. The gate (``actors.core.gate.check_entry``): probability, market hours, book, spread, exposure.
    2. The zones (``actors.core.zones``): ``drawdown_stop``, then ``daily_loss_limit``.
    3. Sizing (``size_entry``) with the zone's multiplier, cut to the margin available.
    4. The intent id from (``risk.strategy``, instrument, bar time, direction).

    The permit is not checked here: the role checks it before and the execution role again at
    send time.

    Args:
        signal: the model's signal.
        quote: the instrument's current quote (None before the first).
        atr: the instrument's ATR in price units.
        instrument: the instrument's metadata.
        book: open positions by instrument.
        mids: mid prices by instrument (exposure and conversion).
        nav: NAV in the home currency.
        home_currency: the account currency.
        now_ns: the decision time (UTC ns).
        last_loss_close_ns: per instrument, when its last losing trade closed.
        zone: the latest verdict of ``actors.core.zones.update_zones``.
        margin_available: the account's ``marginAvailable`` less what the entries in ``book`` it
            does not show yet took (the intents in flight: their ``SizedEntry.margin_home``), in
            the home currency; NaN when unknown (a ``margin`` skip).
        config: the ``[risk]`` section.
    """
    exposure = currency_exposure(book, mids, home_currency) if book else {}
    gate = check_entry(
        signal,
        quote,
        instrument=instrument,
        book=book,
        exposure=exposure,
        nav=nav,
        home_currency=home_currency,
        now_ns=now_ns,
        last_loss_close_ns=last_loss_close_ns,
        config=config,
    )
    direction = gate.direction
    if direction is None or quote is None:
        return EntrySkip(signal=signal, reason=gate.reason or SkipReason.NOT_TRADEABLE)
    if zone.drawdown_stop:
        return EntrySkip(signal=signal, reason=SkipReason.DRAWDOWN_STOP, direction=direction,
                         detail=f"drawdown={zone.drawdown:.4f}")  # fmt: skip
    if zone.daily_loss_hit:
        return EntrySkip(signal=signal, reason=SkipReason.DAILY_LOSS_LIMIT, direction=direction,
                         detail=f"daily_pnl={zone.daily_pnl:.2f}")  # fmt: skip
    sized = size_entry(
        direction,
        quote,
        atr,
        instrument=instrument,
        nav=nav,
        multiplier=zone.multiplier,
        mids=mids,
        home_currency=home_currency,
        exposure=exposure,
        margin_available=margin_available,
        config=config,
    )
    if isinstance(sized, tuple):
        return EntrySkip(signal=signal, reason=sized[0], direction=direction, detail=sized[1])
    return EntryIntent(
        intent_id=intent_id(config.strategy, signal.instrument, signal.bar_ts_ns, direction),
        signal=signal,
        sized=sized,
        multiplier=zone.multiplier,
    )


HOST_TAG_PREFIX = "tradehost-"


def host_tag(host_id: str) -> str:
    """The client-extensions tag every order of this host carries."""
    return f"{HOST_TAG_PREFIX}{host_id}"
