"""The market-data vocabulary the feed publishes: stream prices, validated bars, and the end of a close."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from actors.core.domain import InstrumentId
from actors.runtime.messages.body import Body


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceTick(Body):
    """Best bid/ask of one instrument from the pricing stream (prices as OANDA decimal strings)."""

    TYPE: ClassVar[str] = "PriceTick"
    instrument: str
    ts: int
    bid: str
    ask: str
    tradeable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Prices(Body):
    """Open, high, low, close as OANDA decimal strings."""

    TYPE: ClassVar[str] = "Prices"
    o: str
    h: str
    l: str  # noqa: E741 - OANDA's field name
    c: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar(Body):
    """A closed, validated bar of one instrument (``md.bar.<INSTR>``; the envelope's ``corr`` is its
    ``bar_id``, carried by every later message about it)."""

    TYPE: ClassVar[str] = "Bar"
    instrument: InstrumentId
    granularity: str
    ts: int  # the bar's start, UTC ns
    bid: Prices
    ask: Prices
    mid: Prices
    volume: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BarsClosed(Body):
    """All instruments of one close are through the feed (``md.bars``): which bars went out, which
    were rejected (journaled as ``feed.bar_rejected``) and which had no candle."""

    TYPE: ClassVar[str] = "BarsClosed"
    granularity: str
    ts: int
    published: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
