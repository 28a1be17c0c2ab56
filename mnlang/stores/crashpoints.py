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

A group commit (`mnlang.stores.group_commit`) is one commit, whatever its members.
`MNC_CRASH_MEMBER=K` (from 1) makes its `written` the moment its K-th member is written,
before the next one's savepoint; a commit with fewer members (a lone commit has one)
does not crash. Unset, `written` is after the last member.

`os._exit` skips every cleanup handler, as a real crash would.
"""

from __future__ import annotations

import itertools
import os
from typing import Final, Literal, cast

import msgspec

from mnlang.stores.base import StoreError

CRASH_EXIT_STATUS: Final = 137
Moment = Literal["before", "written", "during", "after"]
_MOMENTS: Final = ("before", "written", "during", "after")

_commit_numbers = itertools.count(1)


def next_commit_number() -> int:
    """Number the commit this process is about to make."""
    return next(_commit_numbers)


class CrashPlan(msgspec.Struct, frozen=True):
    """Where, if anywhere, the current commit must crash; read once per commit."""

    moment: Moment | None
    member: int | None = None
    """In a group commit, the member after whose writes `written` falls (None: the last)."""

    @classmethod
    def from_env(cls, commit_number: int) -> CrashPlan:
        at = os.environ.get("MNC_CRASH_AT_COMMIT")
        if not at:
            return _NO_CRASH
        when = os.environ.get("MNC_CRASH_WHEN") or "after"
        member = os.environ.get("MNC_CRASH_MEMBER") or None
        if (
            when not in _MOMENTS
            or not at.isdigit()
            or (member is not None and (not member.isdigit() or int(member) < 1))
        ):
            raise StoreError(
                f"bad crash hook setting: MNC_CRASH_AT_COMMIT={at!r}, MNC_CRASH_WHEN={when!r}"
                + (f", MNC_CRASH_MEMBER={member!r}" if member is not None else ""),
                help="MNC_CRASH_AT_COMMIT takes a commit number from 1; "
                "MNC_CRASH_WHEN takes `before`, `written`, `during` or `after`; "
                "MNC_CRASH_MEMBER takes a member number from 1",
            )
        if int(at) != commit_number:
            return _NO_CRASH
        return cls(cast(Moment, when), None if member is None else int(member))

    def point(self, moment: Moment) -> None:
        """Exit the process here if this is the planned moment (a lone commit's `written`
        is its only member's)."""
        if moment == "written":
            self.written(1, 1)
        elif moment == self.moment:
            os._exit(CRASH_EXIT_STATUS)

    def written(self, member: int, members: int) -> None:
        """Exit the process if the plan is `written` at this member of a group commit of
        `members` (from 1)."""
        if self.moment == "written" and member == (self.member or members):
            os._exit(CRASH_EXIT_STATUS)

    def writes_at(self, member: int, members: int) -> bool:
        """Whether `written` falls after this member (PostgreSQL then syncs what it sent)."""
        return self.moment == "written" and member == (self.member or members)


_NO_CRASH: Final = CrashPlan(None)
"""The plan of every commit when no crash is asked for (one object, not one a commit)."""
