"""Archive files: a journal's runs as JSON lines, readable without the journal.

`write_archive` writes them (as the retention command, `mnc gc --archive FILE`, appends
the runs it removes) and `mnc replay --archive FILE` reads them. One JSON object
per line, each with a `type`:

- `{"type": "run", "run": {...}}`: a run's record (the fields of
  `mnlang.stores.base.RunRecord`: `run_id`, `workflow`, `status`, `args`, `result`,
  `error`, `parent_run_id`, `ir_hash`, `meta`, `created_at`, ...). Fields left out take
  empty defaults.
- `{"type": "event", "run_id": ..., "seq": 1, "at": 1733.5, "kind": "tool", "state": ...,
  "branch": "", "data": {...}}`: one journal event, in `seq` order within its run.
- `{"type": "program", "ir_hash": ..., "ir": "<IR JSON text>"}`: a program its runs
  executed (stored once per file).

A file may hold many runs; children name their parent by `parent_run_id` and are
replayed with it. A run written again (a gc that crashed after archiving a batch and
was run again archives it twice) counts once: its last `run` line and the events after
it replace the earlier copy. Unknown `type`s are skipped, so a later writer may add lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import msgspec

from mnlang.replay.recording import RecordedRun, Recording
from mnlang.stores.base import Event, Quarantine, RunRecord

FORMAT_TYPES = ("run", "event", "program")


class ArchiveError(Exception):
    """An archive file that cannot be read; the message names the line."""

    def __init__(self, message: str, *, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


_RECORD_DEFAULTS: dict[str, Any] = {
    "workflow_class": "",
    "args": None,
    "result": None,
    "error": None,
    "parent_run_id": None,
    "meta": {},
    "waiting_for": [],
    "cancel_requested": False,
    "last_seq": 0,
    "lease_owner": None,
    "lease_epoch": 0,
    "lease_expires_at": None,
    "created_at": 0.0,
    "updated_at": 0.0,
    "finished_at": None,
    "damaged": None,
    "quarantine": None,
    "cancel_requested_by": None,
}


def write_archive(recordings: Iterable[Recording], out: IO[str]) -> None:
    """Write run trees as archive lines."""
    written: set[str] = set()
    for recording in recordings:
        for ir_hash, text in recording.programs.items():
            if ir_hash not in written:
                written.add(ir_hash)
                _line(out, {"type": "program", "ir_hash": ir_hash, "ir": text})
        for run in recording.root.walk():
            _line(out, {"type": "run", "run": msgspec.to_builtins(run.record)})
            for e in run.events:
                _line(out, {"type": "event", **msgspec.to_builtins(e)})


def _line(out: IO[str], obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj, ensure_ascii=False, default=list) + "\n")


def read_archive(path: str | Path) -> list[Recording]:
    """The run trees of an archive file, roots in file order."""
    records: dict[str, RunRecord] = {}
    events: dict[str, list[Event]] = {}
    programs: dict[str, str] = {}
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ArchiveError(f"cannot read archive `{path}`: {e}") from None
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
            kind = obj.get("type")
            if kind == "program":
                programs[str(obj["ir_hash"])] = str(obj["ir"])
            elif kind == "run":
                record = _record(obj["run"])
                records[record.run_id] = record
                events[record.run_id] = []  # a later copy of a run replaces the earlier
            elif kind == "event":
                event = Event(
                    str(obj["run_id"]),
                    int(obj["seq"]),
                    float(obj.get("at", 0.0)),
                    str(obj["kind"]),
                    obj.get("state"),
                    str(obj.get("branch", "")),
                    obj.get("data"),
                )
                events.setdefault(event.run_id, []).append(event)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ArchiveError(
                f"{path}:{number}: not an archive line ({type(e).__name__}: {e})",
                help="an archive holds one JSON object per line; docs/testing.md has the format",
            ) from None
    runs = {
        run_id: RecordedRun(record, sorted(events.get(run_id, []), key=lambda e: e.seq))
        for run_id, record in records.items()
    }
    roots: list[RecordedRun] = []
    for run in runs.values():
        parent = runs.get(run.record.parent_run_id or "")
        if parent is None:
            roots.append(run)
        else:
            parent.children.append(run)
    for run in runs.values():
        run.children.sort(key=lambda c: c.record.created_at)
    return [Recording(root, programs) for root in roots]


def _record(given: dict[str, Any]) -> RunRecord:
    values: dict[str, Any] = {}
    for name in RunRecord.__struct_fields__:
        if name in given:
            values[name] = given[name]
        elif name in _RECORD_DEFAULTS:
            values[name] = _RECORD_DEFAULTS[name]
        else:
            raise KeyError(name)
    values["waiting_for"] = list(values["waiting_for"] or [])
    if values["quarantine"] is not None:
        values["quarantine"] = Quarantine(**values["quarantine"])
    return RunRecord(**values)
