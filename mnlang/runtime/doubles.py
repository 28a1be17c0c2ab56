"""Test doubles for tool and effect calls: how `mnc test` mocks results and injects faults;
recorded `now()` and `uuid()` values for a replay.

A run whose `RuntimeConfig.doubles` is set asks it, at every attempt of every tool and
effect call, for a stand-in: a function the call runs instead of the real tool (it
returns the mocked result, or raises the injected failure), or None to call the real
one. Everything else stays the same: the ledger, retries, the budget and the journal
see a stand-in's call as they would see the tool's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from mnlang.ir.model import ToolIR


class CallDoubles(Protocol):
    def stand_in(
        self, tool: ToolIR, args: dict[str, Any], attempt: int
    ) -> Callable[[], Any] | None:
        """The function to run instead of this attempt of `tool` (`args` as the tool would
        receive them), or None to run the real tool."""
        ...


class RecordedExternals(Protocol):
    """Where a replay takes `now()` and `uuid()` from instead of the clock and a random
    source (`mnc replay`)."""

    def external(self, workflow: str, name: str, branch: str) -> Any:
        """The recorded JSON value of the next `name` taken in `workflow` at `branch`, or
        None to take a fresh one."""
        ...
