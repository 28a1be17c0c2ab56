"""Retention (`mnc gc`): remove ended runs and their rows from the journal, keeping a
tombstone per run and, on request, an archive that `mnc replay --archive` reads.

The unit is a run tree: a top-level run that ended, with its child runs (children go
with their parent, never before it). A tree is kept whole while one of its runs is live
or while a live run was `start`ed (detached) by one of them. Work goes in batches of
trees, each in its own transaction (`Store.remove_runs`); with an archive, a batch's
lines are written and synced to the file before the transaction that deletes it, so a
crash between the two loses nothing: the next gc archives the batch again (a reader keeps
the last copy of a run) and deletes it.

`scope: global` ledger rows outlive their runs (they deduplicate effects across runs)
unless `ledger_older_than` is given: then the rows last written before it go too, and
their keys no longer deduplicate.

The outbox (webhook notifications, `mnlang.outbox`) is cleaned after the runs, a page of
events per transaction (`Store.remove_settled_outbox`): an event whose deliveries were
all delivered goes with its run or once older than `older_than`; one with a delivery
given up (`failed`) only once older than `older_than`, so that it can be redelivered
until then; one with a delivery still pending never.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mnlang.stores.base import TERMINAL_STATUSES, DamagedRow, StoreError, Tombstone

if TYPE_CHECKING:
    from mnlang.ir.model import IRProgram
    from mnlang.replay.recording import Recording
    from mnlang.stores.base import RunRecord, RunStatus, Store

BATCH_TREES = 100
"""Run trees removed per transaction: a bounded write, short enough not to hold the
journal's write lock for long."""
KEY_BATCH = 1000
"""Global ledger rows removed per transaction."""
OUTBOX_BATCH = 1000
"""Outbox events looked at per transaction."""


class RetentionError(StoreError):
    """A retention request that cannot be carried out; nothing was changed."""


@dataclass
class GcReport:
    """What a gc removed (or, in a dry run, would remove) and what it kept, and why."""

    cutoff: float
    """Runs that ended before this time (store clock) were candidates."""
    dry_run: bool
    trees: int = 0
    runs: int = 0
    kept_live: list[str] = field(default_factory=list)
    """Top-level runs kept because a run of their tree is still live."""
    kept_detached: list[str] = field(default_factory=list)
    """Top-level runs kept because a run they (or their children) started is live."""
    kept_damaged: list[str] = field(default_factory=list)
    """Top-level runs kept because a row of their tree does not decode (`mnc db check`)."""
    global_keys: int | None = None
    """Global ledger rows removed (`None`: not asked, or a dry run)."""
    outbox_events: int | None = None
    """Settled outbox events removed with their deliveries (`None`: a dry run)."""
    archive: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "ended_before": self.cutoff,
            "trees": self.trees,
            "runs": self.runs,
            "kept_live": self.kept_live,
            "kept_detached": self.kept_detached,
            "kept_damaged": self.kept_damaged,
            "global_keys": self.global_keys,
            "outbox_events": self.outbox_events,
            "archive": self.archive,
        }


def parse_statuses(text: str) -> list[str]:
    """`completed,failed`: ended statuses; `RetentionError` for any other word."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    wrong = [n for n in names if n not in TERMINAL_STATUSES]
    if not names or wrong:
        raise RetentionError(
            f"`{text}` is not a list of ended statuses",
            help="give some of completed, failed, cancelled, comma-separated "
            "(live runs are never removed)",
        )
    return sorted(set(names))


def collect_garbage(
    store: Store,
    *,
    older_than: float,
    statuses: Sequence[str] = tuple(sorted(TERMINAL_STATUSES)),
    archive: str | Path | None = None,
    ledger_older_than: float | None = None,
    dry_run: bool = False,
    keep_going: Callable[[], bool] = lambda: True,
) -> GcReport:
    """Remove the run trees whose top-level run ended more than `older_than` seconds ago
    with one of `statuses` (and, with `ledger_older_than` seconds, the global ledger rows
    last written before then); see the module docstring. `archive` names a file the
    removed runs are appended to first. `keep_going` is asked before each batch (a
    stopping worker ends its gc there)."""
    if older_than < 0 or (ledger_older_than is not None and ledger_older_than < 0):
        raise RetentionError("an age cannot be negative", help="give a span such as 30d or 12h")
    wanted = parse_statuses(",".join(statuses))
    target = Path(archive) if archive is not None else None
    if target is not None:
        _check_writable(target)
    now = store.now()
    report = GcReport(now - older_than, dry_run, archive=str(target) if target else None)
    programs = TombstoneWriter(store)
    # Read once a pass: a run that starts later is checked by the store's own transaction.
    starters = _live_starters(store)
    after: tuple[float, str] | None = None
    while keep_going():
        page = store.ended_roots(
            ended_before=report.cutoff, statuses=wanted, after=after, limit=BATCH_TREES
        )
        if not page:
            break
        after = page[-1]
        batch: list[Recording] = []
        for _, root in page:
            try:
                recording = _recording(store, root)
            except DamagedRow:
                report.kept_damaged.append(root)
                continue
            if recording is not None:
                batch.append(recording)
        removable: list[Recording] = []
        for recording in batch:
            records = [run.record for run in recording.root.walk()]
            if any(r.status not in TERMINAL_STATUSES for r in records):
                report.kept_live.append(recording.root.record.run_id)
            elif starters.intersection(r.run_id for r in records):
                report.kept_detached.append(recording.root.record.run_id)
            else:
                removable.append(recording)
        if dry_run:
            report.trees += len(removable)
            report.runs += sum(len(r.root.walk()) for r in removable)
            continue
        if not removable:
            continue
        if target is not None:
            _append_archive(target, removable)
        trees = [[programs.tombstone(run.record) for run in r.root.walk()] for r in removable]
        removed = set(store.remove_runs(trees))
        report.trees += len(removed)
        report.runs += sum(len(t) for t in trees if t[0].run_id in removed)
    if not dry_run:
        report.outbox_events = _remove_settled_outbox(store, report.cutoff, keep_going)
    if ledger_older_than is not None and not dry_run:
        report.global_keys = 0
        while True:
            n = store.remove_global_keys(now - ledger_older_than, KEY_BATCH)
            report.global_keys += n
            if n < KEY_BATCH:
                break
    return report


def _remove_settled_outbox(store: Store, cutoff: float, keep_going: Callable[[], bool]) -> int:
    removed, after = 0, ""
    while keep_going():
        count, following = store.remove_settled_outbox(cutoff, after=after, limit=OUTBOX_BATCH)
        removed += count
        if following is None:
            break
        after = following
    return removed


def _recording(store: Store, run_id: str) -> Recording | None:
    from mnlang.replay.recording import recording_from_store
    from mnlang.stores.base import RunNotFound

    try:
        recording = recording_from_store(store, run_id)
    except RunNotFound:  # another gc removed it since it was listed
        return None
    # Reading a tree takes several queries; another gc may remove it meanwhile (in one
    # transaction), leaving this copy part-read. If the root is still there after the
    # last read, every read came before any removal, and the copy is whole.
    return recording if store.get_run(run_id, args=False) is not None else None


def _live_starters(store: Store) -> set[str]:
    """The runs that `start`ed a run still live: they are kept, with their trees."""
    from mnlang.runtime.pauses import STARTED_BY

    found: set[str] = set()
    live: tuple[RunStatus, ...] = ("running", "waiting")
    for status in live:
        for record in store.list_runs(status=status, limit=2**62):
            starter = record.meta.get(STARTED_BY)
            if isinstance(starter, str):
                found.add(starter)
    return found


def _check_writable(target: Path) -> None:
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise RetentionError(f"archive `{target}` is a directory", help="name a file")
    if not folder.is_dir():
        raise RetentionError(
            f"archive folder `{folder}` does not exist", help="create it first, or name another"
        )
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise RetentionError(f"archive `{target}` is not writable")


def _append_archive(target: Path, recordings: list[Recording]) -> None:
    """Append the runs and sync the file: only then may their rows be deleted. The file
    is locked meanwhile, so two workers' gcs never interleave their lines."""
    import fcntl

    from mnlang.replay.archive import write_archive

    with target.open("a", encoding="utf-8") as out:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX)
        write_archive(recordings, out)
        out.flush()
        os.fsync(out.fileno())


class TombstoneWriter:
    """Makes the tombstones of runs: their programs parsed once per hash, to hash the
    input of the runs they ran."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.parsed: dict[str, IRProgram | None] = {}

    def tombstone(self, record: RunRecord) -> Tombstone:
        return Tombstone(
            record.run_id,
            record.workflow,
            record.ir_hash,
            self._input_hash(record),
            record.status,
            record.created_at,
            record.finished_at,
        )

    def _input_hash(self, record: RunRecord) -> str:
        from mnlang.runtime.run import RunError, input_hash

        program = self._program(record.ir_hash)
        workflow = program.workflows.get(record.workflow) if program is not None else None
        if program is None or workflow is None:
            return ""
        try:
            return input_hash(program, workflow, record.args)
        except (RunError, ValueError):
            return ""

    def _program(self, ir_hash: str) -> IRProgram | None:
        if ir_hash not in self.parsed:
            from mnlang.ir.load import IRLoadError, parse_ir

            text = self.store.get_program(ir_hash)
            try:
                self.parsed[ir_hash] = parse_ir(text, ir_hash[:12]) if text else None
            except IRLoadError:
                self.parsed[ir_hash] = None
        return self.parsed[ir_hash]


@dataclass(frozen=True)
class GcPolicy:
    """A worker's retention schedule (`mnc worker --gc-older-than 30d --gc-every 1h`)."""

    older_than: float
    every: float = 3600.0
    statuses: tuple[str, ...] = tuple(sorted(TERMINAL_STATUSES))
    archive: str | None = None
    ledger_older_than: float | None = None


class GcSchedule:
    """Runs a worker's gc in a thread of its own: at once, then every `policy.every`
    seconds, until stopped. Several workers may do it on one journal: each removal is
    checked again inside its transaction, and a run archived twice reads once."""

    def __init__(self, store: Store, policy: GcPolicy, log: Callable[[str, bool], None]) -> None:
        import threading

        self.store = store
        self.policy = policy
        self.log = log
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="mnc-gc", daemon=True)
        self.passes = 0

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()

    def _loop(self) -> None:
        delay = 0.0
        while not self.stopped.wait(delay):
            delay = self.policy.every
            try:
                report = collect_garbage(
                    self.store,
                    older_than=self.policy.older_than,
                    statuses=self.policy.statuses,
                    archive=self.policy.archive,
                    ledger_older_than=self.policy.ledger_older_than,
                    keep_going=lambda: not self.stopped.is_set(),
                )
            except StoreError as e:
                self.log(f"gc failed: {e.message}" + (f" ({e.help})" if e.help else ""), True)
                continue
            self.passes += 1
            keys = f", {report.global_keys} global keys" if report.global_keys else ""
            if report.outbox_events:
                keys += f", {report.outbox_events} outbox events"
            self.log(
                f"gc: removed {report.runs} ended runs ({report.trees} top-level){keys}", False
            )
