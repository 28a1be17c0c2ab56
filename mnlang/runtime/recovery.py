"""Retrying a failed run in place (`mnc retry`, `POST /api/v1/runs/{id}/retry`).

A run that failed cleanly kept the state it had at the failed step
(`mnlang.runtime.failure_point`). A retry sets it `running` again with a `retried`
event saying who asked, and whoever executes it next (this process, a worker, the
server) resumes from that state: the failed step runs again, with the code, the
configuration and the keys as they are now. The run keeps its id, its journal and its
ledger, so an effect that had committed its result is not called again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mnlang.runtime.failure_point import FAILURE_POINT_META, NOT_RETRYABLE_META
from mnlang.runtime.run_error import RunError
from mnlang.stores.base import Json, NewEvent, RunNotFound, RunRecord, Store

if TYPE_CHECKING:
    from mnlang.runtime.run import RunOutcome

RETRIES_META = "retries"
"""The run's `meta` key counting its retries."""


class RetryRefused(RunError):
    """The run cannot be retried in place; `reason` is a stable code for the API."""

    def __init__(self, message: str, *, reason: str, help: str | None = None) -> None:
        super().__init__(message, help=help)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Retried:
    run_id: str
    step: str
    """The state the run goes on from: its failed step."""
    retries: int
    """How many times the run was retried, this one included."""


def retry_refusal(record: RunRecord) -> RetryRefused | None:
    """Why `record` cannot be retried in place; None when it can."""
    run_id = record.run_id
    if record.status != "failed":
        return RetryRefused(
            f"run `{run_id}` is {record.status}: only a failed run is retried",
            reason="not_failed",
        )
    if isinstance(record.meta.get(FAILURE_POINT_META), dict):
        return None
    why = record.meta.get(NOT_RETRYABLE_META)
    if not isinstance(why, str):
        why = "it kept no failure point (it failed before mnlang kept them)"
    return RetryRefused(
        f"run `{run_id}` cannot be retried in place: {why}",
        reason="not_retryable",
        help=f"`mnc fork {run_id} --from STEP` starts a new run from a step of it, "
        "re-executed from its journal",
    )


def retry(store: Store, run_id: str, *, by: str) -> Retried:
    """Set failed run `run_id` running again from its failure point (`RetryRefused`
    says why not). Executing it is the caller's: `resume_run`, a worker, the server."""
    record = store.get_run(run_id, args=False)
    if record is None:
        raise RunNotFound(f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal")
    refusal = retry_refusal(record)
    if refusal is not None:
        raise refusal
    point = record.meta[FAILURE_POINT_META]
    assert isinstance(point, dict)
    retries = _count(record.meta.get(RETRIES_META)) + 1
    meta: dict[str, Json] = {
        k: v for k, v in record.meta.items() if k not in (FAILURE_POINT_META, NOT_RETRYABLE_META)
    }
    meta[RETRIES_META] = retries
    event = NewEvent(
        "retried",
        {"by": by, "error": record.error, "step": point.get("step"), "retry": retries},
        state=point.get("step") if isinstance(point.get("step"), str) else None,
    )
    if not store.reopen_failed(run_id, event, meta):
        current = store.get_run(run_id, args=False)
        raise RetryRefused(
            f"run `{run_id}` is {current.status if current else 'gone'} now: "
            "someone else retried it first",
            reason="not_failed",
        )
    return Retried(run_id, str(point.get("step") or ""), retries)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_FILTER_KEYS = {"workflow": "workflow", "class": "workflow_class", "q": "q"}


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a bulk retry takes: failed ones, of a workflow, a class, created in a
    time range, with text in the id or input."""

    workflow: str | None = None
    workflow_class: str | None = None
    since: float | None = None
    until: float | None = None
    q: str | None = None

    @classmethod
    def parse(cls, pairs: Iterable[str]) -> RunFilter:
        """From `KEY=VALUE` texts (`mnc retry --filter`); ValueError says what is wrong."""
        from datetime import datetime

        given: dict[str, object] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not value:
                raise ValueError(f"--filter takes KEY=VALUE, not `{pair}`")
            if key in ("since", "until"):
                try:
                    given[key] = float(value)
                except ValueError:
                    try:
                        given[key] = datetime.fromisoformat(value).timestamp()
                    except ValueError:
                        raise ValueError(
                            f"`{key}` takes Unix seconds or an ISO 8601 time, not `{value}`"
                        ) from None
            elif key in _FILTER_KEYS:
                given[_FILTER_KEYS[key]] = value
            else:
                raise ValueError(f"no filter `{key}`: use workflow=, class=, since=, until= or q=")
        return cls(**given)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Json]:
        out: dict[str, Json] = {
            "workflow": self.workflow,
            "workflow_class": self.workflow_class,
            "since": self.since,
            "until": self.until,
            "q": self.q,
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class BulkRetried:
    retried: list[RunOutcome] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    """Runs that matched and were not retried, with why."""
    more: bool = False
    """More runs matched than the limit."""

    def to_json(self) -> dict[str, Json]:
        return {
            "retried": [o.to_json() for o in self.retried],
            "refused": [{"run_id": r, "reason": why} for r, why in self.refused],
            "more": self.more,
        }
