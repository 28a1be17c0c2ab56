"""What a side effect performed twice cost the business (issue 21, "duplicates priced").

The table (`duplicate_costs.json`, dated, each kind with its source) was committed before
the bench was measured with it. A duplicate costs its `amount` argument when it has one,
else its kind's minutes of a person's time at the price table's `human_per_minute`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any, Final

AMOUNT_ARGUMENT: Final = "amount"


@dataclass(frozen=True, slots=True)
class DuplicateCosts:
    date: str
    minutes_of: dict[str, Decimal]
    unlisted_minutes: Decimal
    human_per_minute: Decimal

    def cost(self, effect: str, args: dict[str, Any]) -> Decimal:
        """The cost of one extra performance of `effect` with these arguments."""
        amount = _money(args.get(AMOUNT_ARGUMENT))
        if amount is not None:
            return amount
        short = effect.rsplit(".", 1)[-1]
        return self.minutes_of.get(short, self.unlisted_minutes) * self.human_per_minute


@cache
def duplicate_costs(human_per_minute: Decimal) -> DuplicateCosts:
    table = json.loads(
        resources.files("mnlang.bench").joinpath("duplicate_costs.json").read_text("utf-8")
    )
    minutes = {
        effect: Decimal(str(kind["minutes"]))
        for kind in table["kinds"].values()
        for effect in kind["effects"]
    }
    return DuplicateCosts(
        table["date"], minutes, Decimal(str(table["unlisted_minutes"])), human_per_minute
    )


def _money(value: Any) -> Decimal | None:
    """An amount as the world recorded it (a number, `"89.00"`, `"$89.00"`, `"89.00 USD"`)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return _money(value.get("amount"))
    if isinstance(value, str):
        text = value.replace("$", "").replace(",", "").split()[0] if value.strip() else ""
        try:
            return Decimal(text)
        except InvalidOperation:
            return None
    return None
