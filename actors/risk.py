"""Risk role: the decision gate between signals and orders.

Today the role is the process shell only (heartbeat, permit, shutdown hook) and journals the
signals and reconciliation reports that reach it. The gate, sizing, daily loss limit and
drawdown zones arrive with the risk issue; they will open trades only while ``self.permit``
allows entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from actors.base import RoleActor
from actors.errors import ConfigError
from actors.messages import TOPIC_MODEL_SIGNAL, TOPIC_RECON_STATE
from actors.sizing import STRATEGY_RE  # the strategy name goes into every intent id


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskConfig:
    """The ``[risk]`` section: the entry gate, sizing, the daily loss limit and the drawdown zones.

    The pure rules (``actors.gate``, ``actors.sizing``, ``actors.zones``) read this object
    directly, in the risk role and in ``tradehost backtest`` alike: it is the one source of truth.
    """

    strategy: str = field(
        default="main",
        metadata={"doc": "Strategy name: the first part of every intent id ([A-Za-z0-9_-], at most 40 characters)."},
    )
    min_probability: float = field(
        default=0.6,
        metadata={
            "doc": "Enter long when P(up) >= this, short when P(up) <= 1 - this (must be above 0.5).",
            "min": 0.5,
            "max": 1.0,
        },
    )
    max_open_positions: int = field(
        default=3, metadata={"doc": "Most instruments with an open position at once.", "min": 1, "max": 100}
    )
    risk_per_trade: float = field(
        default=0.005,
        metadata={
            "doc": "Fraction of NAV lost when a trade's stop loss fills (before the zone multiplier).",
            "min": 0.0,
            "max": 0.05,
        },
    )
    max_exposure_per_currency: float = field(
        default=10.0,
        metadata={
            "doc": "Largest net exposure to one currency other than the home currency, as a multiple of NAV.",
            "min": 0.0,
            "max": 100.0,
        },
    )
    max_spread_pips: float = field(
        default=3.0,
        metadata={"doc": "No entry while the spread is wider than this, in pips.", "min": 0.0, "max": 1000.0},
    )
    atr_period: int = field(
        default=14, metadata={"doc": "Bars in the ATR that sets the stop-loss distance.", "min": 1, "max": 1000}
    )
    sl_atr_mult: float = field(
        default=1.5, metadata={"doc": "Stop-loss distance from the entry price, in ATRs.", "min": 0.01, "max": 100.0}
    )
    reward_ratio: float = field(
        default=1.5,
        metadata={"doc": "Take-profit distance as a multiple of the stop-loss distance.", "min": 0.01, "max": 100.0},
    )
    min_units: float = field(
        default=1.0,
        metadata={"doc": "Smallest order; a smaller size is skipped (never rounded up).", "min": 0.0, "max": 1e9},
    )
    max_units: float = field(
        default=1_000_000.0, metadata={"doc": "Largest order; a larger size is cut to this.", "min": 1.0, "max": 1e9}
    )
    no_entry_before_weekly_close_s: float = field(
        default=1800.0,
        metadata={
            "doc": "No entry this many seconds before the market closes (Friday 17:00 New York, or a holiday).",
            "min": 0.0,
            "max": 172_800.0,
        },
    )
    rollover_window_s: float = field(
        default=900.0,
        metadata={
            "doc": "No entry this many seconds either side of the 17:00 New York rollover.",
            "min": 0.0,
            "max": 21_600.0,
        },
    )
    cooldown_after_loss_s: float = field(
        default=3600.0,
        metadata={
            "doc": "No entry on an instrument this long after a losing trade on it closed.",
            "min": 0.0,
            "max": 604_800.0,
        },
    )
    daily_loss_limit: float = field(
        default=0.03,
        metadata={
            "doc": "Loss since the trading day began (17:00 New York), as a fraction of the day-start NAV, "
            "that stops new entries until the next trading day.",
            "min": 0.0,
            "max": 1.0,
        },
    )
    drawdown_zones: tuple[tuple[float, float], ...] = field(
        default=((0.05, 1.0), (0.10, 0.5), (0.15, 0.25)),
        metadata={
            "doc": "[[drawdown, size multiplier], ...] by rising drawdown from peak NAV: below the first "
            "drawdown the first multiplier applies, and so on; beyond the last, no new trades (latched).",
            "min": 0.0,
            "max": 1.0,
        },
    )

    def __post_init__(self) -> None:
        """Cross-value rules the loader's per-field checks cannot express.

        Raises:
            ConfigError: one line per problem, each starting with ``risk.<key>:``.
        """
        problems: list[str] = []
        if not STRATEGY_RE.fullmatch(self.strategy):
            problems.append(f"risk.strategy: {self.strategy!r} must match {STRATEGY_RE.pattern}")
        if not 0.5 < self.min_probability <= 1.0:
            problems.append(f"risk.min_probability: {self.min_probability!r} must be above 0.5 and at most 1")
        if not self.risk_per_trade > 0:
            problems.append(f"risk.risk_per_trade: {self.risk_per_trade!r} must be above 0")
        if not self.daily_loss_limit > 0:
            problems.append(f"risk.daily_loss_limit: {self.daily_loss_limit!r} must be above 0")
        if self.min_units > self.max_units:
            problems.append(f"risk.min_units: {self.min_units!r} is above risk.max_units ({self.max_units!r})")
        problems.extend(_zone_problems(self.drawdown_zones))
        if problems:
            raise ConfigError(problems)


def _zone_problems(zones: object) -> list[str]:
    key = "risk.drawdown_zones"
    if not isinstance(zones, tuple) or not zones:
        return [f"{key}: expected at least one [drawdown, multiplier] pair"]
    problems: list[str] = []
    previous: tuple[float, float] | None = None
    for i, pair in enumerate(zones):
        if (
            not isinstance(pair, tuple)
            or len(pair) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
        ):
            problems.append(f"{key}[{i}]: expected a [drawdown, multiplier] pair of numbers, got {pair!r}")
            previous = None
            continue
        limit, multiplier = float(pair[0]), float(pair[1])
        if not 0.0 < limit <= 1.0:
            problems.append(f"{key}[{i}]: drawdown {limit!r} must be above 0 and at most 1")
        if not 0.0 < multiplier <= 1.0:
            problems.append(f"{key}[{i}]: multiplier {multiplier!r} must be above 0 and at most 1")
        if previous is not None and limit <= previous[0]:
            problems.append(f"{key}[{i}]: drawdowns must rise ({limit!r} after {previous[0]!r})")
        if previous is not None and multiplier > previous[1]:
            problems.append(
                f"{key}[{i}]: a deeper zone cannot have a larger multiplier ({multiplier!r} after {previous[1]!r})"
            )
        previous = (limit, multiplier)
    return problems


class RiskActor(RoleActor[RiskConfig]):
    """The risk gate's actor."""

    ROLE: ClassVar[str] = "risk"
    CONFIG: ClassVar[type[RiskConfig]] = RiskConfig
    TOPICS: ClassVar[tuple[str, ...]] = (TOPIC_MODEL_SIGNAL, TOPIC_RECON_STATE)


ACTOR = RiskActor
