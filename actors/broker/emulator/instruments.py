"""Instrument specifications the emulator knows, and their OANDA JSON form.

Each ``InstrumentSpec`` carries the metadata OANDA publishes (precisions, margin rate) plus the
parameters of its synthetic market (typical price, spread in pips, hourly volatility).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["SPECS", "InstrumentSpec", "instrument_json"]


@dataclass(frozen=True, slots=True, kw_only=True)
class InstrumentSpec:
    """Static facts about one instrument (metadata and synthetic-market parameters)."""

    name: str
    display_precision: int
    pip_location: int
    margin_rate: str
    base_price: float
    spread_pips: float
    hourly_vol: float
    trade_units_precision: int = 0
    type: str = "CURRENCY"

    @property
    def quote(self) -> str:
        """Quote currency, e.g. ``USD`` for ``EUR_USD``."""
        return self.name.split("_")[1]

    @property
    def pip(self) -> float:
        """Size of one pip in price units."""
        return 10.0**self.pip_location

    def quantum(self) -> Decimal:
        """Smallest price step as a Decimal (``0.00001`` for 5 decimals)."""
        return Decimal(1).scaleb(-self.display_precision)


def _spec(  # noqa: PLR0917 - compact table rows
    name: str, precision: int, pip: int, margin: str, price: float, spread: float, vol: float
) -> InstrumentSpec:
    return InstrumentSpec(
        name=name,
        display_precision=precision,
        pip_location=pip,
        margin_rate=margin,
        base_price=price,
        spread_pips=spread,
        hourly_vol=vol,
        type="METAL" if name.startswith("XAU") else "CURRENCY",
    )


SPECS: dict[str, InstrumentSpec] = {
    s.name: s
    for s in (
        _spec("EUR_USD", 5, -4, "0.0333", 1.0850, 1.4, 0.0011),
        _spec("GBP_USD", 5, -4, "0.05", 1.2650, 1.8, 0.0013),
        _spec("USD_JPY", 3, -2, "0.04", 150.00, 1.4, 0.0012),
        _spec("AUD_USD", 5, -4, "0.05", 0.6600, 1.4, 0.0014),
        _spec("USD_CHF", 5, -4, "0.05", 0.8800, 1.8, 0.0011),
        _spec("USD_CAD", 5, -4, "0.0333", 1.3500, 2.0, 0.0010),
        _spec("EUR_GBP", 5, -4, "0.05", 0.8570, 1.6, 0.0009),
        _spec("EUR_JPY", 3, -2, "0.05", 162.50, 2.0, 0.0013),
        _spec("XAU_USD", 3, -2, "0.05", 2300.0, 35.0, 0.0030),
        # Crosses and the other majors; prices consistent with the rows above (early 2024).
        _spec("NZD_USD", 5, -4, "0.05", 0.6100, 1.7, 0.0015),
        _spec("AUD_JPY", 3, -2, "0.05", 99.000, 1.8, 0.0016),
        _spec("CAD_JPY", 3, -2, "0.05", 111.10, 2.2, 0.0013),
        _spec("CHF_JPY", 3, -2, "0.05", 170.45, 2.6, 0.0013),
        _spec("GBP_JPY", 3, -2, "0.05", 189.75, 2.8, 0.0015),
        _spec("NZD_JPY", 3, -2, "0.05", 91.500, 2.2, 0.0016),
        _spec("EUR_AUD", 5, -4, "0.05", 1.6440, 2.0, 0.0012),
        _spec("EUR_CAD", 5, -4, "0.05", 1.4650, 2.2, 0.0010),
        _spec("EUR_CHF", 5, -4, "0.05", 0.9550, 1.8, 0.0008),
        _spec("EUR_NZD", 5, -4, "0.05", 1.7790, 3.0, 0.0013),
        _spec("GBP_AUD", 5, -4, "0.05", 1.9170, 2.8, 0.0013),
        _spec("GBP_CAD", 5, -4, "0.05", 1.7080, 3.0, 0.0011),
        _spec("GBP_CHF", 5, -4, "0.05", 1.1130, 2.8, 0.0010),
        _spec("GBP_NZD", 5, -4, "0.05", 2.0740, 4.5, 0.0014),
        _spec("AUD_CAD", 5, -4, "0.05", 0.8910, 2.0, 0.0011),
        _spec("AUD_CHF", 5, -4, "0.05", 0.5810, 2.0, 0.0012),
        _spec("AUD_NZD", 5, -4, "0.05", 1.0820, 2.5, 0.0008),
        _spec("CAD_CHF", 5, -4, "0.05", 0.6520, 2.4, 0.0010),
        _spec("NZD_CAD", 5, -4, "0.05", 0.8240, 2.8, 0.0012),
        _spec("NZD_CHF", 5, -4, "0.05", 0.5370, 2.6, 0.0012),
        _spec("USD_SGD", 5, -4, "0.05", 1.3450, 2.5, 0.0006),
        _spec("USD_HKD", 5, -4, "0.05", 7.8200, 4.0, 0.0001),
    )
}


def instrument_json(spec: InstrumentSpec) -> dict[str, Any]:
    """Render ``spec`` as an OANDA ``Instrument`` object."""
    q = spec.quantum()
    return {
        "name": spec.name,
        "type": spec.type,
        "displayName": spec.name.replace("_", "/"),
        "pipLocation": spec.pip_location,
        "displayPrecision": spec.display_precision,
        "tradeUnitsPrecision": spec.trade_units_precision,
        "minimumTradeSize": "1",
        "maximumTrailingStopDistance": str(Decimal(spec.pip * 10000).quantize(q)),
        "minimumTrailingStopDistance": str(Decimal(spec.pip * 5).quantize(q)),
        "maximumPositionSize": "0",
        "maximumOrderUnits": "100000000",
        "marginRate": spec.margin_rate,
        "tags": [{"type": "ASSET_CLASS", "name": spec.type}],
        "financing": {
            "longRate": "-0.0412",
            "shortRate": "0.0187",
            "financingDaysOfWeek": [
                {"dayOfWeek": day, "daysCharged": charged}
                for day, charged in (
                    ("MONDAY", 1),
                    ("TUESDAY", 1),
                    ("WEDNESDAY", 3),
                    ("THURSDAY", 1),
                    ("FRIDAY", 1),
                    ("SATURDAY", 0),
                    ("SUNDAY", 0),
                )
            ],
        },
    }
