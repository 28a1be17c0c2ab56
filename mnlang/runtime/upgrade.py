"""Moving waiting runs to a new version of their program: `mnc resume --upgrade` and
`mnc upgrade --check`.

A waiting run can move when the compatibility rule of `mnc diff` allows it at every
place the run stands (`mnlang.ir.diff.resume_problems`: the state and its enclosing
frames do the same thing, the live variables keep fitting types, the pending work is
unchanged), and so can each child run it waits for. The move is one commit under the
run's lease: the new program is stored, the run's `ir_hash` points at it, and an
`upgraded` event records both hashes. A refused move says why, per place.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field

from mnlang.ir.diff import resume_problems
from mnlang.ir.load import dump_ir
from mnlang.ir.model import IRProgram
from mnlang.runtime.run import RunBusy, RunError, load_program, tool_hashes
from mnlang.runtime.serving import run_needs
from mnlang.stores.base import (
    TERMINAL_STATUSES,
    Batch,
    Json,
    NewEvent,
    RunNotFound,
    RunRecord,
    RunUpdate,
    Store,
    StoreError,
)

_LEASE_TTL = 30.0


class UpgradeRefused(RunError):
    """The run cannot move to the new version; the message lists why."""


@dataclass
class Verdict:
    """Whether one run can move to the new version, and why not."""

    run_id: str
    workflow: str
    status: str
    from_hash: str
    to_hash: str
    problems: list[str] = field(default_factory=list)
    children: list[Verdict] = field(default_factory=list)

    @property
    def current(self) -> bool:
        """The run already runs on this version."""
        return self.from_hash == self.to_hash

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.children)

    def reasons(self) -> list[str]:
        """Every problem, the children's named by their run."""
        out = list(self.problems)
        for child in self.children:
            out += [f"child run `{child.run_id}`: {p}" for p in child.reasons()]
        return out

    def to_json(self) -> dict[str, Json]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "from": self.from_hash,
            "to": self.to_hash,
            "current": self.current,
            "ok": self.ok,
            "problems": self.reasons(),
        }


def verdict(store: Store, record: RunRecord, new: IRProgram) -> Verdict:
    """Whether `record`'s run can move to `new`."""
    result = Verdict(record.run_id, record.workflow, record.status, record.ir_hash, new.hash)
    if result.current:
        return result
    if record.status != "waiting":
        result.problems.append(
            f"the run is {record.status}; only a waiting run can move to another version"
        )
        return result
    if record.workflow not in new.workflows:
        result.problems.append(f"workflow `{record.workflow}` no longer exists")
        return result
    old = load_program(store, record)
    state = store.load_state(record.run_id)
    for branch, cursor in sorted(state.cursors.items()):
        where = f"branch `{branch}`: " if branch else ""
        at = cursor.get("at") if isinstance(cursor, dict) else None
        if at is None:
            result.problems.append(f"{where}the run is undoing its effects (compensating)")
            continue
        for problem in resume_problems(old, new, record.workflow, at):
            text = f"{where}at `{at}`: {problem}"
            if text not in result.problems:
                result.problems.append(text)
    for child in store.list_runs(parent_run_id=record.run_id, limit=10_000):
        if child.status not in TERMINAL_STATUSES:
            result.children.append(verdict(store, child, new))
    return result


def upgrade(store: Store, run_id: str, new: IRProgram) -> Verdict:
    """Move a waiting run (and the child runs it waits for) to `new`; `UpgradeRefused`
    says why when the rule does not allow it."""
    record = store.get_run(run_id)
    if record is None:
        raise RunNotFound(f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal")
    found = verdict(store, record, new)
    if not found.ok:
        raise UpgradeRefused(
            f"run `{run_id}` cannot move to program {new.hash[:12]}: " + "; ".join(found.reasons()),
            help="let it finish on its version (`mnc resume`), or change the new version so "
            "that `mnc diff` marks this state safe",
        )
    if found.current:
        return found
    store.put_program(new.hash, dump_ir(new))
    _move(store, found, new)
    return found


def _move(store: Store, found: Verdict, new: IRProgram) -> None:
    for child in found.children:
        _move(store, child, new)
    if found.current:
        return
    owner = f"upgrade:{uuid.uuid4().hex[:8]}"
    lease = store.acquire_lease(found.run_id, owner, _LEASE_TTL)
    if lease is None:
        raise RunBusy(
            f"run `{found.run_id}` is being executed; it is no longer waiting",
            help="try again once it waits",
        )
    try:
        record = store.get_run(found.run_id)
        if record is None or record.status != "waiting" or record.ir_hash != found.from_hash:
            raise UpgradeRefused(f"run `{found.run_id}` changed while it was being upgraded")
        event = NewEvent("upgraded", {"from": found.from_hash, "to": new.hash})
        meta = {**record.meta, "source_dir": new.source.dir, "tool_modules": tool_hashes(new)}
        store.commit(
            Batch(
                run_id=found.run_id,
                lease=lease,
                events=[event],
                run=RunUpdate(ir_hash=new.hash, meta=meta),
            )
        )
        # Its needs name the new program's modules now (a crash before this leaves the
        # old program's, which the workers that serve that program still serve).
        store.set_run_needs(found.run_id, run_needs(new, meta))
    finally:
        with contextlib.suppress(StoreError):
            store.release_lease(lease)


def waiting_verdicts(store: Store, new: IRProgram) -> list[Verdict]:
    """A verdict for every waiting top-level run of a workflow of `new`."""
    out: list[Verdict] = []
    for workflow in new.workflows:
        for record in store.list_runs(status="waiting", workflow=workflow, limit=100_000):
            if record.parent_run_id is None:
                out.append(verdict(store, record, new))
    return sorted(out, key=lambda v: v.run_id)
