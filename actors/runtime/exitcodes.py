"""Exit codes of a role process, and what each means (``describe`` turns one into words).

The runtime and the actor base class exit with these; the supervisor journals an exit with its
meaning (``role.exited``'s ``cause``), so an operator reads "could not reach the bus" rather
than "status 5".
"""

from __future__ import annotations

__all__ = ["EXIT_ACTOR_FAILED", "EXIT_DEADLINE", "EXIT_INJECTED_CRASH", "EXIT_NO_BUS", "MEANINGS"]

EXIT_INJECTED_CRASH = 3
EXIT_DEADLINE = 4
EXIT_NO_BUS = 5
EXIT_ACTOR_FAILED = 70

MEANINGS: dict[int, str] = {
    0: "clean exit",
    1: "the role's runtime failed",
    EXIT_INJECTED_CRASH: "injected crash (TRADEHOST_FAULT_INJECT)",
    EXIT_DEADLINE: "missed its shutdown deadline",
    EXIT_NO_BUS: "could not reach the bus or control socket",
    EXIT_ACTOR_FAILED: "the role failed (see role.crashed in the journal)",
}
