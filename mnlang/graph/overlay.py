"""A run drawn over its workflow graph: per state id, what happened there.

The runtime builds a `RunOverlay` from its journal (`mnc graph --run`); the
renderer takes it as an optional input and never reads a journal itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

StateStatus = Literal["done", "failed", "waiting", "running", "cancelled"]


class StateRun(BaseModel):
    status: StateStatus
    attempts: int = 0


class RunOverlay(BaseModel):
    run_id: str
    workflow: str
    states: dict[str, StateRun] = {}
