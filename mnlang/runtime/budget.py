"""A run's budget: cost is reserved before each call, so concurrent branches cannot
together spend more than the workflow's `budget:`.

A call reserves its worst-case cost before it starts (a tool's declared `cost`; for an
agent, what its model and `max_tokens` could cost once the model providers price
calls) and settles the actual cost when it ends. A reservation that would take spent
plus reserved over the budget fails the call with `budget_exceeded`.
"""

from __future__ import annotations

from decimal import Decimal

from mnlang.errors import BUDGET_EXCEEDED
from mnlang.runtime.failures import StepFailure
from mnlang.runtime.values import money_text

ZERO = Decimal(0)


class Budget:
    def __init__(self, limit: Decimal | None, spent: Decimal = ZERO) -> None:
        self.limit = limit
        self.spent = spent
        self.reserved = ZERO

    def reserve(self, amount: Decimal, what: str) -> Decimal:
        """Hold `amount` for a call; `StepFailure(budget_exceeded)` if it does not fit."""
        if amount and self.limit is not None and self.spent + self.reserved + amount > self.limit:
            raise StepFailure(
                BUDGET_EXCEEDED,
                f"{what} may cost {money_text(amount)}; {money_text(self.spent)} spent and "
                f"{money_text(self.reserved)} reserved of the {money_text(self.limit)} budget",
            )
        self.reserved += amount
        return amount

    def settle(self, reserved: Decimal, actual: Decimal) -> None:
        """Release a reservation and count what the call really cost."""
        self.reserved -= reserved
        self.spent += actual
