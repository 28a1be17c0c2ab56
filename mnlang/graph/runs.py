"""The graph of one run (`mnc graph --run`): its workflow, with the run drawn over it.

The program comes from the `.mn` or IR file given, or else from the journal, which keeps
every program a run executed (by its hash). A file that compiles to another program than
the run's is drawn all the same, with a warning: states that changed may be marked
wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mnlang.graph.overlay import RunOverlay, run_overlay
from mnlang.graph.render import GraphError
from mnlang.ir.model import IRProgram

if TYPE_CHECKING:
    from mnlang.stores.base import RunRecord, Store


@dataclass
class RunGraph:
    program: IRProgram
    workflow: str
    overlay: RunOverlay
    warnings: list[str] = field(default_factory=list)


def run_graph(
    store: Store, run_id: str, program: IRProgram | None = None, workflow: str | None = None
) -> RunGraph:
    """What to draw for run `run_id`: over `program` when given, else over the program the
    journal kept for the run; `GraphError` when the run or its program cannot be found."""
    run = store.get_run(run_id)
    if run is None:
        raise GraphError(
            f"no run `{run_id}` in the journal",
            help="`mnc runs` lists the runs of this journal; `--db` names another journal",
        )
    warnings: list[str] = []
    if program is None:
        program = _stored_program(store, run)
    elif run.ir_hash and program.hash != run.ir_hash:
        warnings.append(
            f"run `{run_id}` executed program {run.ir_hash[:12]}, but `{program.source.file}` "
            f"compiles to {program.hash[:12]}: states that changed since may be marked wrongly"
        )
    if workflow is not None and workflow != run.workflow:
        raise GraphError(
            f"run `{run_id}` is a run of workflow `{run.workflow}`, not `{workflow}`",
            help="leave out `--workflow`: the run names its workflow",
        )
    if run.workflow not in program.workflows:
        raise GraphError(
            f"`{program.source.file}` has no workflow `{run.workflow}`, which run `{run_id}` runs",
            help="give the file the run was started from, or no file to use the journal's copy",
        )
    return RunGraph(program, run.workflow, run_overlay(store, run), warnings)


def _stored_program(store: Store, run: RunRecord) -> IRProgram:
    from mnlang.ir.load import IRLoadError, parse_ir

    text = store.get_program(run.ir_hash) if run.ir_hash else None
    if text is None:
        raise GraphError(
            f"the journal does not keep the program of run `{run.run_id}`",
            help=f"give the file it was started from: `mnc graph FILE --run {run.run_id}`",
        )
    try:
        return parse_ir(text, f"program {run.ir_hash[:12]}")
    except IRLoadError as e:
        raise GraphError(
            f"the journal's copy of the program of run `{run.run_id}` does not load: {e.message}",
            help=f"give the file it was started from: `mnc graph FILE --run {run.run_id}`",
        ) from None
