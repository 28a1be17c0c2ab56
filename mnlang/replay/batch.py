"""Replaying many runs (`mnc replay --all`): from a journal or archive files, a summary
table, CI exit codes and a JUnit XML file for CI dashboards."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mnlang.ir.model import IRProgram
from mnlang.replay.archive import read_archive
from mnlang.replay.engine import ReplayError, ReplayReport, replay_recording
from mnlang.replay.recording import Recording, recording_from_store
from mnlang.stores.base import RunStatus, Store, StoreError


@dataclass
class BatchItem:
    run_id: str
    workflow: str
    report: ReplayReport | None
    problem: str | None
    """Why the run could not be replayed."""
    seconds: float

    @property
    def verdict(self) -> str:
        if self.report is None:
            return "error"
        return "same" if self.report.same else "diverged"


@dataclass(frozen=True)
class Selection:
    workflow: str | None = None
    status: RunStatus | None = None
    since_s: float | None = None
    """Only runs created this many seconds ago or later."""


def journal_recordings(store: Store, selection: Selection) -> Iterator[Recording]:
    """The top-level runs of a journal the selection names, oldest first."""
    runs = store.list_runs(status=selection.status, workflow=selection.workflow, limit=1_000_000)
    since = None if selection.since_s is None else store.now() - selection.since_s
    chosen = [
        r for r in runs if r.parent_run_id is None and (since is None or r.created_at >= since)
    ]
    for record in sorted(chosen, key=lambda r: r.created_at):
        yield recording_from_store(store, record.run_id)


def archive_recordings(paths: Iterable[str | Path], selection: Selection) -> Iterator[Recording]:
    now = time.time()
    for path in paths:
        for recording in read_archive(path):
            record = recording.root.record
            if selection.workflow is not None and record.workflow != selection.workflow:
                continue
            if selection.status is not None and record.status != selection.status:
                continue
            if selection.since_s is not None and record.created_at < now - selection.since_s:
                continue
            yield recording


def replay_all(
    recordings: Iterable[Recording], program: IRProgram | None = None
) -> list[BatchItem]:
    items: list[BatchItem] = []
    for recording in recordings:
        record = recording.root.record
        started = time.perf_counter()
        report: ReplayReport | None = None
        problem: str | None = None
        try:
            if program is not None and record.workflow not in program.workflows:
                continue  # --program names another workflow's program
            report = replay_recording(recording, program)
        except (ReplayError, StoreError) as e:
            problem = e.message
        items.append(
            BatchItem(
                record.run_id, record.workflow, report, problem, time.perf_counter() - started
            )
        )
    return items


def junit_xml(items: list[BatchItem]) -> str:
    """The items as a JUnit XML test suite: a diverged run is a failure, a run that could
    not be replayed an error."""
    from xml.etree import ElementTree as ET

    suite = ET.Element(
        "testsuite",
        name="mnc replay",
        tests=str(len(items)),
        failures=str(sum(i.verdict == "diverged" for i in items)),
        errors=str(sum(i.verdict == "error" for i in items)),
        time=f"{sum(i.seconds for i in items):.3f}",
    )
    for item in items:
        case = ET.SubElement(
            suite, "testcase", classname=item.workflow, name=item.run_id, time=f"{item.seconds:.3f}"
        )
        if item.problem is not None:
            ET.SubElement(case, "error", message=item.problem)
        elif item.report is not None and item.report.divergence is not None:
            d = item.report.divergence
            failure = ET.SubElement(case, "failure", message=f"diverged at {d.where}: {d.reason}")
            failure.text = f"{d.statement}\nthe run: {d.old}\nthe new program: {d.new}"
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
