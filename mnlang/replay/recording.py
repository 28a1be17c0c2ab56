"""A recorded run tree: the runs' records, journals and programs, from a store or archive."""

from __future__ import annotations

from dataclasses import dataclass, field

from mnlang.ir.model import IRProgram
from mnlang.stores.base import Event, RunRecord, Store


@dataclass
class RecordedRun:
    record: RunRecord
    events: list[Event]
    children: list[RecordedRun] = field(default_factory=list)

    def walk(self) -> list[RecordedRun]:
        """This run and its descendants, parents first."""
        out = [self]
        for child in self.children:
            out += child.walk()
        return out


@dataclass
class Recording:
    """A run tree and the programs (IR JSON by hash) its runs executed."""

    root: RecordedRun
    programs: dict[str, str]


def recording_from_store(store: Store, run_id: str) -> Recording:
    """The run `run_id`, its descendants and their programs, as the journal holds them."""
    from mnlang.stores.base import RunNotFound

    record = store.get_run(run_id)
    if record is None:
        raise RunNotFound(f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal")
    programs: dict[str, str] = {}

    def load(rec: RunRecord) -> RecordedRun:
        if rec.ir_hash not in programs:  # a tree's runs mostly share one program
            text = store.get_program(rec.ir_hash)
            if text is not None:
                programs[rec.ir_hash] = text
        run = RecordedRun(rec, store.read_journal(rec.run_id))
        for child in store.list_runs(parent_run_id=rec.run_id, limit=100_000):
            full = store.get_run(child.run_id)
            if full is not None:
                run.children.append(load(full))
        run.children.sort(key=lambda c: c.record.created_at)
        return run

    return Recording(load(record), programs)


def checkpoint_name(program: IRProgram, workflow: str, state: str | None) -> str:
    """The declared name of the checkpoint at `state` (journal events carry its state id,
    which an edit can renumber; the name stays)."""
    wf = program.workflows.get(workflow)
    found = wf.states.get(state) if wf is not None and state is not None else None
    return str(getattr(found, "name", "") or state or "")


def decided_name(program: IRProgram, workflow: str, event: Event) -> str:
    """The name a `decided` event's checkpoint is decided by: a select's checkpoint names
    itself, an agent's approval is named after its effect (`mnc approve RUN book_hotel`),
    any other checkpoint is the one declared at the event's state."""
    data = event.data if isinstance(event.data, dict) else {}
    if "approval" in data:
        return str(data.get("effect", "")).rsplit(".", 1)[-1]
    return str(data.get("checkpoint") or "") or checkpoint_name(program, workflow, event.state)


def raced_quorum(recording: Recording) -> str | None:
    """The id of a run of the recording whose quorum join was decided, if any: the losers'
    calls have no recorded answers, and answering the winners at once would not keep
    their order, so such a run is not re-executed."""
    for run in recording.root.walk():
        if any(e.kind == "quorum" for e in run.events):
            return run.record.run_id
    return None
