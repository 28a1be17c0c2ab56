"""Group commit: the commits of runs executing at once in one process share a transaction,
and so one fsync (SQLite) or one flush of the server's WAL (PostgreSQL).

Leader and followers, as databases do it. A commit that finds no commit of this store in
flight (or fewer than `in_flight`) is the leader of its own group: it commits at once,
alone, exactly as without group commit (a lone run never waits for companions). A commit
that arrives while the store is busy queues; when a commit in flight returns, the first
queued commit leads a group of every commit queued by then (up to `max_group`), which the store writes in one
transaction (`Store.commit_group`) so that a member the store refuses (a stale lease, a
run that is gone, a batch that is not JSON) writes nothing and the others commit: on
SQLite each member is written in a SAVEPOINT of its own, rolled back alone when refused;
PostgreSQL's `mnc_commit` judges a batch before it writes anything. Every member's `commit` returns (or raises
its own refusal) only once the group's COMMIT has returned: nothing of a member, its
effect calls above all, goes on before its batch is durable.

Ordering: members are written in the order they queued, each as one whole batch, so two
runs racing on one `scope: global` ledger key inside a group meet exactly as two
separate commits in that order would. A failure of the group's transaction itself (the
disk is full, the connection to the server broke) is every member's failure.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence

import msgspec

from mnlang.stores.base import Batch, CommitResult

Outcome = CommitResult | Exception
"""What the store made of one member of a group: its result, or why it was refused."""
CommitOne = Callable[[Batch], CommitResult]
CommitGroup = Callable[[Sequence[Batch]], list[Outcome]]

MAX_GROUP = 64
"""Batches written in one transaction at most (PostgreSQL keeps up to 64 savepoints of a
transaction in shared memory before it spills them)."""


class GroupStats(msgspec.Struct):
    """What a committer did, for benchmarks and tests."""

    commits: int = 0
    """Batches committed (or refused) through it."""
    transactions: int = 0
    """Transactions those took: lone commits and groups."""
    grouped: int = 0
    """Batches that shared their transaction with others."""
    largest: int = 0
    """The largest group."""


class _Member:
    __slots__ = ("batch", "done", "lead", "outcome")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.done = False
        self.lead = False
        """Set by the leader before it, so that this member leads the next group."""
        self.outcome: Outcome | BaseException | None = None

    def result(self) -> CommitResult:
        outcome = self.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome


class GroupCommitter:
    """Sends a store's commits alone or in groups (see the module's text); safe to call
    from any number of threads."""

    def __init__(
        self,
        commit_one: CommitOne,
        commit_group: CommitGroup,
        *,
        in_flight: int = 1,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._commit_one = commit_one
        self._commit_group = commit_group
        self.in_flight = in_flight
        """Transactions in flight at once at most (SQLite: one, it has one writer; a
        PostgreSQL store: its connections, which the server commits in parallel)."""
        self.max_group = max_group
        self._cond = threading.Condition()
        self._queue: list[_Member] = []
        self._leaders = 0
        """Transactions in flight; a new commit queues once there are `in_flight`."""
        self.stats = GroupStats()

    def commit(self, batch: Batch) -> CommitResult:
        me = _Member(batch)
        with self._cond:
            if self._leaders < self.in_flight:
                self._leaders += 1
                group = [me]
            else:
                self._queue.append(me)
                while not (me.done or me.lead):
                    self._cond.wait()
                if me.done:
                    return me.result()
                group = self._queue[: self.max_group]
                del self._queue[: self.max_group]
        self._lead(group)
        return me.result()

    def _lead(self, group: list[_Member]) -> None:
        outcomes: Sequence[Outcome | BaseException]
        try:
            if len(group) == 1:
                outcomes = [self._commit_one(group[0].batch)]
            else:
                outcomes = self._commit_group([m.batch for m in group])
        except BaseException as e:  # the transaction's failure is every member's
            outcomes = [e, *(_copy(e) for _ in group[1:])]
        with self._cond:
            for member, outcome in zip(group, outcomes, strict=True):
                member.outcome = outcome
                member.done = True
            stats = self.stats
            stats.commits += len(group)
            stats.transactions += 1
            if len(group) > 1:
                stats.grouped += len(group)
            stats.largest = max(stats.largest, len(group))
            if self._queue:
                self._queue[0].lead = True  # it takes this transaction's place at once
            else:
                self._leaders -= 1
            self._cond.notify_all()


def _copy(error: BaseException) -> BaseException:
    """An exception for another member's thread to raise (each raise sets its own
    traceback)."""
    try:
        return copy.copy(error)
    except Exception:
        return error
