"""Deliberate crashes at commit boundaries, for crash-enumeration tests.

`MNC_CRASH_AT_COMMIT=N` makes the process exit at once with status 137 (what a SIGKILL
gives) at the N-th `commit` this process makes; commits are counted per process from 1.
`MNC_CRASH_WHEN` picks the moment:

- `before`: nothing of the batch was written;
- `written`: the batch was written inside the transaction, COMMIT not yet sent, so the
  crash must lose all of it (the server rolls back the transaction of a closed session);
- `during`: on PostgreSQL, COMMIT was sent but its reply not read, so the process dies
  not knowing the outcome and whoever resumes must find whichever happened. SQLite's
  COMMIT is one local call that Python cannot stop half-way, so there `during` is the
  moment of `written`;
- `after` (the default): the commit is durable.

`os._exit` skips every cleanup handler, as a real crash would.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Final, Literal, cast

from mnlang.stores.base import StoreError

CRASH_EXIT_STATUS: Final = 137
Moment = Literal["before", "written", "during", "after"]
_MOMENTS: Final = ("before", "written", "during", "after")

_commit_numbers = itertools.count(1)


def next_commit_number() -> int:
    """Number the commit this process is about to make."""
    return next(_commit_numbers)


@dataclass(frozen=True, slots=True)
class CrashPlan:
    """Where, if anywhere, the current commit must crash; read once per commit."""

    moment: Moment | None

    @classmethod
    def from_env(cls, commit_number: int) -> CrashPlan:
        at = os.environ.get("MNC_CRASH_AT_COMMIT")
        if not at:
            return cls(None)
        when = os.environ.get("MNC_CRASH_WHEN") or "after"
        if when not in _MOMENTS or not at.isdigit():
            raise StoreError(
                f"bad crash hook setting: MNC_CRASH_AT_COMMIT={at!r}, MNC_CRASH_WHEN={when!r}",
                help="MNC_CRASH_AT_COMMIT takes a commit number from 1; "
                "MNC_CRASH_WHEN takes `before`, `written`, `during` or `after`",
            )
        return cls(cast(Moment, when) if int(at) == commit_number else None)

    def point(self, moment: Moment) -> None:
        """Exit the process here if this is the planned moment."""
        if moment == self.moment:
            os._exit(CRASH_EXIT_STATUS)
