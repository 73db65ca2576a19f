"""Execution role: intents in, broker orders with server-side SL/TP out.

Today the role is the process shell only (heartbeat, permit, shutdown hook) and journals the
intents that reach it; it sends nothing to any broker. Order submission, ambiguity resolution
and exit management arrive with the execution issue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from actors.base import RoleActor
from actors.messages import TOPIC_RISK_INTENT


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionConfig:
    """The ``[execution]`` section: ambiguity resolution, shadow fills and exit management.

    The pure rules (``actors.exits``, the shadow fills of ``actors.fills``) read this object
    directly, in the execution role and in ``tradehost backtest`` alike. A zero turns a rule off.
    """

    resolve_timeout_s: float = field(
        default=30.0,
        metadata={
            "doc": "An ambiguous order still unresolved by its client id after this long latches NO_TRADE.",
            "min": 1.0,
            "max": 3600.0,
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
        metadata={"doc": "The trailing stop starts once the trade is this many R in profit.", "min": 0.0, "max": 100.0},
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


class ExecutionActor(RoleActor[ExecutionConfig]):
    """The execution's actor."""

    ROLE: ClassVar[str] = "execution"
    CONFIG: ClassVar[type[ExecutionConfig]] = ExecutionConfig
    TOPICS: ClassVar[tuple[str, ...]] = (TOPIC_RISK_INTENT,)


ACTOR = ExecutionActor
