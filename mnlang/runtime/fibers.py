"""Fibers: the workflow's main line, each `parallel` branch and each `parallel for` item.

A fiber has a cursor (the state it runs next), the dynamic data of the frames it is
inside (a loop's position, a `try`'s phase, a join's bookkeeping), and, while a call
or a pause is in progress, `pending` notes that must survive a crash (an effect's
committed intent, an open checkpoint). `cursor()` is what a commit stores for it and
`Fiber.restore` rebuilds it on resume.

Branch ids nest with `/` so that dropping a branch drops what was nested in it; a
child's segment is its spawning state's id with `/` written `~`, then `:` and its
index (`notes:3`, `if~then~parallel:0/reports:2`), which no state id can contain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mnlang.runtime.failures import StepFailure
from mnlang.runtime.scope import Scope
from mnlang.runtime.values import Value, from_stored, to_stored
from mnlang.stores.base import Json

FiberStatus = Literal["ready", "call", "join", "paused", "done"]
"""ready: can run now; call: a call is in flight; join: waiting for its children;
paused: waiting for a person, a timer, an event or a repair; done: ended."""


@dataclass(slots=True)
class Return:
    """The outcome of a `return`: it ends the run, running `finally` bodies on the way."""

    value: Value


Outcome = StepFailure | Return


def outcome_to_json(outcome: Outcome) -> Json:
    if isinstance(outcome, Return):
        return {"return": to_stored(outcome.value)}
    return {"fail": outcome.to_json()}


def outcome_from_json(data: Json) -> Outcome:
    if "return" in data:
        return Return(from_stored(data["return"]))
    return StepFailure.from_json(data["fail"])


def child_branch(parent: str, spawn: str, index: int) -> str:
    segment = f"{spawn.replace('/', '~')}:{index}"
    return f"{parent}/{segment}" if parent else segment


class Fiber:
    __slots__ = (
        "at",
        "branch",
        "children",
        "dirty",
        "frames",
        "index",
        "job",
        "losing",
        "parent",
        "pending",
        "scope",
        "spawn",
        "status",
    )

    def __init__(
        self,
        branch: str,
        scope: Scope,
        at: str | None,
        *,
        parent: Fiber | None = None,
        spawn: str | None = None,
        index: int = 0,
    ) -> None:
        self.branch = branch
        self.scope = scope
        self.at = at
        self.parent = parent
        self.spawn = spawn
        self.index = index
        self.frames: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, Any] | None = None
        self.status: FiberStatus = "ready"
        self.children: dict[int, Fiber] = {}
        self.job: Any = None
        self.losing: StepFailure | None = None
        """A quorum's loser waiting for its effect's outcome, then stopped with this."""
        self.dirty = True

    def __repr__(self) -> str:
        return f"Fiber({self.branch!r} at {self.at!r}, {self.status})"

    @property
    def label(self) -> str:
        """The branch as people read it: `main` for the workflow's main line."""
        return self.branch or "main"

    def cursor(self) -> Json:
        return {
            "at": self.at,
            "frames": self.frames,
            "pending": self.pending,
            "scope": self.scope.branch,
            "spawn": self.spawn,
            "index": self.index,
        }

    @classmethod
    def restore(cls, branch: str, cursor: Json, scope: Scope, parent: Fiber | None) -> Fiber:
        fiber = cls(
            branch,
            scope,
            cursor["at"],
            parent=parent,
            spawn=cursor.get("spawn"),
            index=int(cursor.get("index", 0)),
        )
        fiber.frames = dict(cursor.get("frames") or {})
        fiber.pending = cursor.get("pending")
        fiber.dirty = False
        return fiber
