"""Every role's configuration: one frozen class per TOML section (``[feed]``, ``[model]``,
``[risk]``, ``[execution]``, ``[reconciler]``, ``[watchdog]``) with the bar and tick checks the feed's
section is made of. The pure rules read these objects directly (the gate and sizing read
``RiskConfig``, the exits ``ExecutionConfig``), in the live roles and in ``tradehost backtest``
alike, so a rule never imports a role to read its settings. Each field's ``metadata`` has its
``doc`` (``conf/default.toml`` documents every key; a test keeps them equal) and ``min``/``max``;
``supervisor.config`` walks the fields to validate a TOML section and reports every problem with its
dotted key. Cross-field rules of one section raise ``ConfigError`` from ``__post_init__``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from actors.core.domain import GRANULARITIES, STRATEGY_RE
from actors.core.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class BarValidationConfig:
    """Thresholds of the bar checks (the ``[feed]`` keys of the same names).

    The defaults let real data through: ``max_spread_pips`` is a sanity bound, not the risk
    gate's cost limit (spreads widen several-fold around the 17:00 rollover and the weekend
    open), and the largest range in the 2017-2018 EURUSD hours (the FOMC hour of 2017-09-20)
    is 12.6 x its 14-bar ATR.
    """

    max_spread_pips: float = field(
        default=50.0, metadata={"doc": "Reject a bar whose closing ask - bid exceeds this (pips).", "min": 0.0}
    )
    max_range_atr: float = field(
        default=20.0,
        metadata={"doc": "Reject a bar whose high - low exceeds this many recent ATRs (spike).", "min": 1.0},
    )
    atr_bars: int = field(
        default=14, metadata={"doc": "Bars in the ATR of the spike check; skipped until there are this many.", "min": 1}
    )
    bar_wait_s: float = field(
        default=10.0, metadata={"doc": "How long to wait for a closed bar's candle to become complete.", "min": 0.0}
    )
    max_tick_jump_atr: float = field(
        default=5.0,
        metadata={
            "doc": "Refuse a price whose mid is more than this many ATRs (of the validated bars) from the "
            "instrument's last accepted mid (a spike); the same bound refuses a bar that opens this far from "
            "the last accepted bar's close (a jump).",
            "min": 0.5,
            "max": 1000.0,
        },
    )
    max_tick_jump_fraction: float = field(
        default=0.01,
        metadata={
            "doc": "Until an ATR exists, refuse a price whose mid moved more than this fraction of the "
            "reference mid (0.01: 1 %).",
            "min": 0.0001,
            "max": 1.0,
        },
    )
    bar_reanchor_bars: int = field(
        default=2,
        metadata={
            "doc": "A bar that jumps from the last accepted bar within a session is refused until this many "
            "bars in a row hold the new level; the last of them is accepted (a gap over a closure at once).",
            "min": 2,
            "max": 100,
        },
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TickValidationConfig(BarValidationConfig):
    """Thresholds of the tick checks (the ``[feed]`` keys of the same names), beside the bar checks'.

    The defaults let real prices through: a tick-to-tick move of 5 M15 ATRs (about 40-50 pips of
    EUR_USD on an ordinary day) is extreme even in a news release, and a real level shift is
    accepted after ``tick_reanchor_ticks`` agreeing prices.
    """

    tick_reanchor_ticks: int = field(
        default=5,
        metadata={
            "doc": "This many refused prices in a row that agree with each other become the new reference "
            "(the last of them is published) once a closed bar shows the new level or a new session began.",
            "min": 2,
            "max": 1000,
        },
    )
    max_tick_ahead_s: float = field(
        default=86400.0,
        metadata={
            "doc": "Refuse a price dated more than this many seconds of market time after the newest time the "
            "stream has shown (heartbeats, accepted prices).",
            "min": 1.0,
        },
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedConfig(TickValidationConfig):
    """The ``[feed]`` section (the thresholds of the bar and tick checks come from
    ``BarValidationConfig`` and ``TickValidationConfig``)."""

    instruments: tuple[str, ...] = field(
        default=("EUR_USD", "GBP_USD", "USD_JPY"), metadata={"doc": "Instruments to stream prices for."}
    )
    granularity: str = field(
        default="M15", metadata={"doc": "Bar granularity, as OANDA names it: S5 ... M15 ... H1 ... D."}
    )
    reconnect_initial_s: float = field(
        default=0.5, metadata={"doc": "First delay before reconnecting a broken stream.", "min": 0.01}
    )
    stale_after_s: float = field(
        default=10.0,
        metadata={
            "doc": "A stream silent this long (no price, no heartbeat: OANDA sends one every 5 s) is stale.",
            "min": 1.0,
            "max": 300.0,
        },
    )
    reconnect_max_s: float = field(
        default=30.0, metadata={"doc": "Upper bound of the reconnect delay (doubles, with jitter).", "min": 0.01}
    )

    def __post_init__(self) -> None:
        problems = []
        if self.granularity not in GRANULARITIES:
            problems.append(f"feed.granularity: {self.granularity!r} is not one of {', '.join(GRANULARITIES)}")
        if not self.instruments or len(set(self.instruments)) != len(self.instruments):
            problems.append("feed.instruments: name each instrument once, at least one")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """The ``[model]`` section."""

    dir: str = field(
        default="models/default",
        metadata={"doc": "Model directory (model.cbm + model.json), built by `tradehost train`."},
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskConfig:
    """The ``[risk]`` section: the entry gate, sizing, the daily loss limit and the drawdown zones.

    The pure rules (``actors.core.gate``, ``actors.core.sizing``, ``actors.core.zones`` and
    ``actors.core.entry``, which composes them) read this object directly, in the risk role and in
    ``tradehost backtest`` alike: it is the one source of truth.
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
    margin_reserve: float = field(
        default=0.05,
        metadata={
            "doc": "Part of the NAV a new entry leaves free of margin: the margin cut sizes to the margin "
            "available less this * NAV, so an order still fits when open trades moved between the "
            "reconciler's read and the fill (0.05: a 0.17 % move of open trades using all the margin at 30:1).",
            "min": 0.0,
            "max": 0.9,
        },
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
    exits_wait_s: float = field(
        default=5.0,
        metadata={
            "doc": "A close's signals wait at most this long for the execution role's exit check of that close "
            "(trades closed by then count); later they are skipped (exits_unchecked).",
            "min": 0.1,
            "max": 3600.0,
        },
    )
    intent_expiry_s: float = field(
        default=120.0,
        metadata={
            "doc": "An intent the execution role never reported on (it was down when the intent went out) stops "
            "counting as an open position after this long (risk.intent_expired); must be longer than "
            "execution.max_intent_age_s + broker.timeout_s + reconciler.poll_interval_s (checked at start).",
            "min": 1.0,
            "max": 86400.0,
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


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionConfig:
    """The ``[execution]`` section: ambiguity resolution, stale intents, shadow fills and exit
    management.

    The exit rules (``actors.core.exits``) read this object directly, in the execution role and in
    ``tradehost backtest`` alike; a zero turns one off, whichever key it is (``time_exit_bars``,
    ``breakeven_after_r``, ``trailing_after_r``; ``trailing_atr_mult`` and
    ``trailing_distance_pips`` each turn off one way of trailing, both 0 no trailing at all);
    ``breakeven_offset_pips`` is a distance, 0 the entry itself. The fill model (``actors.core.fills``) takes
    only ``slippage_pips``, in price units: the execution role hands it to the shadow book through
    the broker factory (``open_broker(slippage_pips=...)``), the backtest to its own fills.
    """

    resolve_timeout_s: float = field(
        default=30.0,
        metadata={
            "doc": "An ambiguous order still unresolved by its client id after this long latches NO_TRADE.",
            "min": 1.0,
            "max": 3600.0,
        },
    )
    trade_view_stale_s: float = field(
        default=12.0,
        metadata={
            "doc": "The send-time check answers from the transaction stream's view of open trades only while "
            "the stream has been heard within this long (OANDA sends a heartbeat every 5 s); otherwise it "
            "reads the broker's open trades.",
            "min": 1.0,
            "max": 300.0,
        },
    )
    slippage_pips: float = field(
        default=0.2,
        metadata={
            "doc": "Shadow and backtest fills: market fills and stop losses fill this much worse, in pips.",
            "min": 0.0,
            "max": 100.0,
        },
    )
    breakeven_after_r: float = field(
        default=1.0,
        metadata={
            "doc": "Move the stop loss to the entry once the trade is this many R in profit (0: never).",
            "min": 0.0,
            "max": 100.0,
        },
    )
    breakeven_offset_pips: float = field(
        default=0.5,
        metadata={
            "doc": "The breakeven stop sits this far beyond the entry, on the profit side, in pips.",
            "min": 0.0,
            "max": 100.0,
        },
    )
    trailing_after_r: float = field(
        default=1.5,
        metadata={
            "doc": "The trailing stop starts once the trade is this many R in profit (0: never).",
            "min": 0.0,
            "max": 100.0,
        },
    )
    trailing_atr_mult: float = field(
        default=2.0,
        metadata={
            "doc": "Trail the stop loss this many ATRs behind the price (0: use trailing_distance_pips).",
            "min": 0.0,
            "max": 100.0,
        },
    )
    trailing_distance_pips: float = field(
        default=0.0,
        metadata={
            "doc": "Trail by this fixed distance in pips when trailing_atr_mult is 0 (both 0: no trailing).",
            "min": 0.0,
            "max": 10_000.0,
        },
    )
    time_exit_bars: int = field(
        default=96, metadata={"doc": "Close a trade after this many bars (0: never).", "min": 0, "max": 1_000_000}
    )
    max_intent_age_s: float = field(
        default=30.0,
        metadata={"doc": "An intent older than this when its turn to be sent comes is refused (stale).", "min": 1.0},
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcilerConfig:
    """The ``[reconciler]`` section."""

    poll_interval_s: float = field(
        default=5.0, metadata={"doc": "How often the account is read and reconciled with the broker.", "min": 0.1}
    )
    retry_initial_s: float = field(
        default=0.5, metadata={"doc": "First delay before retrying a failed reconciliation.", "min": 0.01}
    )
    retry_max_s: float = field(
        default=15.0, metadata={"doc": "Upper bound of the retry delay (doubles, with jitter).", "min": 0.01}
    )
    unprotected: Literal["repair", "close"] = field(
        default="repair",
        metadata={"doc": 'An open trade without SL or TP: "repair" (set them) or "close" it.'},
    )
    repair_deadline_s: float = field(
        default=30.0,
        metadata={
            "doc": "An open trade still without SL or TP this long after it was first seen is closed, whatever "
            "`unprotected` says (a close that fails latches NO_TRADE).",
            "min": 1.0,
            "max": 3600.0,
        },
    )
    repair_retry_s: float = field(
        default=2.0,
        metadata={
            "doc": "First delay between attempts to protect an unprotected trade (doubles, with jitter, up to a "
            "quarter of repair_deadline_s); the account is read every second meanwhile.",
            "min": 0.1,
            "max": 600.0,
        },
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchdogConfig:
    """The ``[watchdog]`` section: the limits of the watchdog's checks (README "The watchdog")."""

    heartbeat_silence_s: float = field(
        default=10.0,
        metadata={
            "doc": "A role not heard on the bus this long: heartbeat_missing:<role> (transient).",
            "min": 1.0,
            "max": 600.0,
        },
    )
    supervisor_silence_s: float = field(
        default=10.0,
        metadata={
            "doc": "No sys.state from the supervisor this long: the watchdog mails supervisor_silent itself.",
            "min": 1.0,
            "max": 600.0,
        },
    )
    rss_limit_mb: float = field(
        default=1024.0,
        metadata={
            "doc": "RSS limit of every process: memory_limit:<name> (latched) and the role is restarted.",
            "min": 16.0,
            "max": 1_048_576.0,
        },
    )
    max_growth_mb_per_h: float = field(
        default=50.0,
        metadata={
            "doc": "USS growth (least squares over growth_window_s) above this: memory_growth:<name> (latched).",
            "min": 0.1,
            "max": 1_000_000.0,
        },
    )
    growth_window_s: float = field(
        default=1800.0,
        metadata={
            "doc": "Window of the growth slope; a process is judged once its samples cover it.",
            "min": 10.0,
            "max": 604_800.0,
        },
    )
    memory_sample_s: float = field(
        default=10.0,
        metadata={"doc": "How often USS is sampled (RSS is read every heartbeat).", "min": 0.1, "max": 3600.0},
    )
    stream_down_alert_s: float = field(
        default=60.0,
        metadata={"doc": "The price stream down this long: stream_silent (transient).", "min": 1.0, "max": 86400.0},
    )
    bar_grace_s: float = field(
        default=60.0,
        metadata={
            "doc": (
                "While a market is open, a bar is due every granularity plus this, in market seconds (at least "
                "speed x (feed.bar_wait_s + 10) against an accelerated emulator): bar_overdue:<instrument>."
            ),
            "min": 0.0,
            "max": 86400.0,
        },
    )
    min_free_disk_mb: float = field(
        default=500.0,
        metadata={"doc": "Less free disk in the run directory: disk_low (transient).", "min": 0.0, "max": 1e9},
    )
    decision_deadline_s: float = field(
        default=30.0,
        metadata={
            "doc": "A published bar without a decision (or the model's skip) this long: decision_overdue:<instrument>.",
            "min": 1.0,
            "max": 86400.0,
        },
    )
    account_max_age_s: float = field(
        default=60.0,
        metadata={
            "doc": "No account read from the broker (recon.state) this long: account_stale (transient).",
            "min": 1.0,
            "max": 86400.0,
        },
    )
    max_clock_skew_s: float = field(
        default=5.0,
        metadata={
            "doc": "Local clock vs the broker's price times beyond this: clock_skew (transient); 0 turns it off.",
            "min": 0.0,
            "max": 3600.0,
        },
    )

    def __post_init__(self) -> None:
        if self.memory_sample_s * 3 > self.growth_window_s:
            raise ConfigError(
                "watchdog.memory_sample_s: at most a third of watchdog.growth_window_s (the slope needs samples)"
            )
