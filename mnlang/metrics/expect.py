"""What a run was expected to do, and how its journal is compared with that.

A run started for a scenario (by `mnc bench`, or any harness) carries its expectation in
its `meta` under `EXPECT_META`:

    {"scenario": "refund_small_order",
     "status": "completed",                  # or "failed"
     "result": {...},                        # optional: the expected output
     "error": "never paid",                  # optional: a piece of the expected failure
     "calls": [{"name": "fetch_order", "args": {"order_id": "o-1"}}, ...]}

`calls` is the expected tool trajectory: the tools and effects the run calls, in order,
the calls its agents make included, each with its arguments (`args` left out: any).
Values compare as JSON, with numbers and money compared as exact decimals (`"42.50"`
equals `42.5`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """A run's trajectory against its expected one."""

    selected: int
    """Calls matched by tool, in order (the longest common subsequence of names)."""
    parameters: int
    """Of those, calls whose arguments are the expected ones."""
    compared: int
    """The longer of the two trajectories: every expected call and every call made counts."""
    exact: bool
    pairs: list[tuple[int, int]] = field(default_factory=list)
    """(expected index, actual index) of the matched calls."""


def score_calls(expected: tuple[ExpectedCall, ...], actual: list[ActualCall]) -> CallScore:
    pairs = _align([c.name for c in expected], [c.name for c in actual])
    parameters = sum(
        1
        for i, j in pairs
        if expected[i].args is None or same_value(actual[j].args, expected[i].args)
    )
    exact = (
        len(expected) == len(actual)
        and len(pairs) == len(expected)
        and parameters == len(expected)
        and not any(c.refused for c in actual)
    )
    return CallScore(len(pairs), parameters, max(len(expected), len(actual)), exact, pairs)


def _align(a: list[str], b: list[str]) -> list[tuple[int, int]]:
    """Index pairs of a longest common subsequence of `a` and `b`."""
    rows, cols = len(a), len(b)
    best = [[0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(rows - 1, -1, -1):
        for j in range(cols - 1, -1, -1):
            if a[i] == b[j]:
                best[i][j] = best[i + 1][j + 1] + 1
            else:
                best[i][j] = max(best[i + 1][j], best[i][j + 1])
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < rows and j < cols:
        if a[i] == b[j]:
            pairs.append((i, j))
            i += 1
            j += 1
        elif best[i + 1][j] >= best[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


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
