"""What a run was expected to do, and how its journal is compared with that.

A run started for a scenario (by `mnc bench`, or any harness) carries its expectation in
its `meta` under `EXPECT_META`:

    {"scenario": "refund_small_order",
     "status": "completed",                  # or "failed"
     "result": {...},                        # optional: the expected output
     "error": "never paid",                  # optional: a piece of the expected failure
     "calls": [{"name": "fetch_order", "args": {"order_id": "o-1"}}, ...]}

`calls` is the expected tool trajectory: the tools and effects the run calls, the calls
its agents make included, each with its arguments (`args` left out: any); as in `mnc
test`, their order is not compared.
Values compare as JSON, with numbers and money compared as exact decimals (`"42.50"`
equals `42.5`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from mnlang.stores.base import Json

EXPECT_META: Final = "expect"


@dataclass(frozen=True, slots=True)
class ExpectedCall:
    name: str
    """The tool's or effect's short name."""
    args: dict[str, Json] | None = None

    def to_json(self) -> dict[str, Json]:
        out: dict[str, Json] = {"name": self.name}
        if self.args is not None:
            out["args"] = self.args
        return out


@dataclass(frozen=True, slots=True)
class Expectation:
    status: str = "completed"
    result: Json = None
    has_result: bool = False
    """Whether `result` was given (a `null` result can be expected too)."""
    error: str | None = None
    calls: tuple[ExpectedCall, ...] | None = None
    scenario: str | None = None

    def to_json(self) -> dict[str, Json]:
        out: dict[str, Json] = {"status": self.status}
        if self.scenario is not None:
            out["scenario"] = self.scenario
        if self.has_result:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        if self.calls is not None:
            out["calls"] = [c.to_json() for c in self.calls]
        return out

    @classmethod
    def from_json(cls, data: Any) -> Expectation | None:
        if not isinstance(data, dict):
            return None
        calls = data.get("calls")
        return cls(
            status=str(data.get("status") or "completed"),
            result=data.get("result"),
            has_result="result" in data,
            error=data.get("error") if isinstance(data.get("error"), str) else None,
            calls=None
            if not isinstance(calls, list)
            else tuple(
                ExpectedCall(str(c.get("name")), c.get("args"))
                for c in calls
                if isinstance(c, dict)
            ),
            scenario=data.get("scenario") if isinstance(data.get("scenario"), str) else None,
        )

    def met_by(self, status: str, result: Json, error: Json) -> bool:
        """Whether a run that ended so did what was expected."""
        if status != self.status:
            return False
        if status == "completed":
            return not self.has_result or same_value(result, self.result)
        if self.error is None:
            return True
        message = error.get("message") if isinstance(error, dict) else error
        return isinstance(message, str) and self.error in message


@dataclass(frozen=True, slots=True)
class ActualCall:
    name: str
    args: Json
    refused: bool = False
    """An agent's pick that did not run (not one of its tools, or invalid arguments)."""


@dataclass(frozen=True, slots=True)
class CallScore:
    """A run's trajectory against its expected one. Order is not compared (parallel
    branches end in any order, as `mnc test` has it); each call counts as often as made."""

    selected: int
    """Calls of an expected tool, as often as expected."""
    parameters: int
    """Expected calls matched by a call of that tool with the expected arguments."""
    compared: int
    """The longer of the two trajectories: every expected call and every call made counts."""
    exact: bool


def score_calls(expected: tuple[ExpectedCall, ...], actual: list[ActualCall]) -> CallScore:
    wanted = Counter(c.name for c in expected)
    made = Counter(c.name for c in actual)
    selected = sum(min(n, made[name]) for name, n in wanted.items())
    unused = list(actual)
    parameters = 0
    # Calls with expected arguments claim their match first; "any arguments" take the rest.
    for call in sorted(expected, key=lambda c: c.args is None):
        match = next(
            (
                a
                for a in unused
                if a.name == call.name
                and not a.refused
                and (call.args is None or same_value(a.args, call.args))
            ),
            None,
        )
        if match is not None:
            unused.remove(match)
            parameters += 1
    exact = (
        len(expected) == len(actual)
        and parameters == len(expected)
        and not any(c.refused for c in actual)
    )
    return CallScore(selected, parameters, max(len(expected), len(actual)), exact)


def same_value(actual: Json, expected: Json) -> bool:
    """JSON equality, with numbers and decimal strings compared exactly as decimals; an
    expected object's keys must all be there, with equal values (extra keys are fine)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and same_value(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same_value(x, y) for x, y in zip(actual, expected, strict=True))
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    left, right = _decimal(actual), _decimal(expected)
    if left is not None and right is not None:
        return left == right
    return bool(actual == expected)


def _decimal(value: Json) -> Decimal | None:
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, str):
        text = value.strip().lstrip("$")
        if text and (text[0].isdigit() or text[0] in "-."):
            try:
                return Decimal(text)
            except InvalidOperation:
                return None
    return None
