"""`mnc worker`: the long-running process that moves runs forward.

A worker claims runnable runs from the store (`Store.claim_runs`: running runs nobody
holds, such as those of a crashed process whose lease expired, and waiting runs with a
due timer, a decided checkpoint, a signal they wait for or a cancel request) and
executes each on one of its `concurrency` threads until the run ends or waits again.
It also starts the runs of registered `schedule`s when their time comes.

Leases: each claimed run is held through a lease with an expiry and an epoch. The
interpreter renews it while calls are in flight; a worker that stalls past its lease
(paused, partitioned) loses the run to another worker, and the store refuses its next
commit because its epoch is stale, so it commits nothing more for that run. A run that
cannot be executed now keeps its lease until the lease expires, so it is retried after
`lease_ttl` rather than in a loop.

Quarantine: a run that cannot be executed as stored (a journal row whose JSON does not
decode, a program missing from the journal or that does not load) is set aside in the
journal (`Store.quarantine_run`: when, by which worker, why) and reported once; no
worker claims it again until a person repairs it and releases it (`mnc db release`).

Tools' limits: on a store that shares them (PostgreSQL), a tool's `limit:` is held in the
journal, across every worker on it, rather than per process.

What it serves: a worker advertises in the journal the tool modules it can load (with
the sha256 of each file) of every program there, and the model providers it holds keys
for (`mnlang.runtime.serving`), and claims only runs whose every need it advertised, so
a worker without a run's code or key never claims it. It looks at the programs new to it
before each claim, and at the files again with each heartbeat (code deployed in place).

Heartbeats: a worker records itself in the journal's workers table when it starts and
every third of its lease time after (`mnc workers` lists the live ones with the runs they
hold), and removes itself when it stops.

Group commit: the commits of the runs a worker executes at once share transactions, and
so fsyncs (`mnlang.stores.group_commit`): a commit that finds none in flight goes at
once, alone; the ones that arrive while it is in flight go together right after it.
`group_commit=False` (`mnc worker --no-group-commit`) commits each alone.

Stopping (`stop()`, which `mnc worker` calls on SIGTERM or Ctrl-C): no new run is
claimed; each run in progress stops at its next commit point, once its calls in flight
have returned, and its lease is released so another worker can take it up at once.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from mnlang.deep import steady_recursion_limit
from mnlang.ir.load import IRLoadError, parse_ir
from mnlang.ir.model import IRProgram, SourceIR
from mnlang.models.setup import import_sdks
from mnlang.redact import redact
from mnlang.runtime.call_threads import SharedToolLimits, use_limits
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.decisions import decide_due_timeouts
from mnlang.runtime.journal import Observer
from mnlang.runtime.run import RunError, changed_tools, run_with_lease
from mnlang.runtime.schedules import start_due
from mnlang.runtime.serving import (
    DEFAULT_CHANGED_CODE,
    ChangedCode,
    program_offers,
    provider_offers,
)
from mnlang.stores.base import (
    TERMINAL_STATUSES,
    DamagedRow,
    Lease,
    Need,
    RunNotFound,
    StaleLease,
    Store,
    StoreError,
)

_SCHEDULE_POLL = 0.5
"""Seconds between looks at the schedules (a scheduled run starts at most this late)."""
_CLAIM_AHEAD = 8
"""Runs claimed at most, as a multiple of the concurrency (the rest wait for a thread; a
run that waited a third of its lease's time has the lease renewed before it starts),
unless a backlog makes the worker claim deeper (`_BACKLOG_S`)."""
_BACKLOG_S = 1.0
"""While every claim comes back full (more runs are runnable than it took), the worker
claims up to this many seconds of runs at the rate it has been ending them: the look for
runnable runs costs what is runnable, so a storm of 10,000 due timeouts claimed 56 at a
time paid that look some 180 times (a tenth of a millisecond of CPU a run)."""
_RATE_WINDOW = 256
"""Ended runs the rate is measured over."""
_BUSY_POLL = 0.1
"""Seconds between looks for work while runs are in progress."""
_TIMEOUT_BATCH = 500
"""Due checkpoint timeouts decided at most in one transaction."""
_PROGRAM_CACHE = 32
"""Compiled programs kept in memory, most recently used first."""


@dataclass
class WorkerStats:
    """What a worker did, for its log and for tests."""

    claimed: int = 0
    ended: dict[str, int] = field(default_factory=dict)
    """Runs by the status they were left in: completed, failed, cancelled, waiting, running
    (stopped by shutdown)."""
    lost: int = 0
    """Runs whose lease was taken over (or that could not be executed)."""
    taken_over: int = 0
    """Runs this worker resumed mid-execution (`running`, leased before): their last
    holder died, lost its lease or stopped."""
    scheduled: int = 0
    """Runs started by schedules."""
    quarantined: set[str] = field(default_factory=set)
    """Runs this worker found it cannot execute as stored (a damaged journal row, a
    program that does not load) and quarantined in the journal, so that no worker claims
    them until a person releases them (`mnc db release`). Also kept here, for a run
    whose quarantine could not be written: this worker then leaves it alone anyway."""


Logger = Callable[[str, bool], None]
"""Receives each line of the worker's log, and whether it reports a problem."""


def _redacting(log: Logger) -> Logger:
    """The worker's log lines pass through the one redaction function (`mnlang.redact`)."""

    def write(line: str, problem: bool) -> None:
        log(redact(line), problem)

    return write


def worker_owner() -> str:
    """A lease owner name that says which process holds a run (`host:pid:nonce`)."""
    return f"{socket.gethostname()}:{os.getpid()}:w{uuid.uuid4().hex[:8]}"


class ProgramUnavailable(RunError):
    """A run's program cannot be had from the journal: it is not there, or its stored text
    does not load. No worker can execute the run until a person repairs that."""


class ProgramCache:
    """Programs by IR hash, loaded from the store and kept for the next run that needs them."""

    def __init__(self, store: Store, size: int = _PROGRAM_CACHE) -> None:
        self.store = store
        self.size = size
        self._programs: OrderedDict[str, IRProgram] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, ir_hash: str) -> IRProgram:
        with self._lock:
            found = self._programs.get(ir_hash)
            if found is not None:
                self._programs.move_to_end(ir_hash)
                return found
        text = self.store.get_program(ir_hash)
        if text is None:
            raise ProgramUnavailable(
                f"program {ir_hash[:12]} is not in the journal",
                help="the run was started by a tool that did not keep its program",
            )
        try:
            program = parse_ir(text, f"program {ir_hash[:12]}")
        except IRLoadError as e:
            raise ProgramUnavailable(f"program {ir_hash[:12]}: {e.message}", help=e.help) from None
        with self._lock:
            self._programs[ir_hash] = program
            while len(self._programs) > self.size:
                self._programs.popitem(last=False)
        return program


class Worker:
    def __init__(
        self,
        store: Store,
        *,
        concurrency: int = 4,
        config: RuntimeConfig | None = None,
        lease_ttl: float = 30.0,
        idle_wait: float = 1.0,
        log: Logger | None = None,
        owner: str | None = None,
        changed_code: ChangedCode = DEFAULT_CHANGED_CODE,
        group_commit: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError("a worker needs a concurrency of at least 1")
        self.store = store
        self.concurrency = concurrency
        given = config or RuntimeConfig.from_env()
        self.short_wait = given.short_wait_s
        """`run(until_idle=True)` does not stop while a timer is due within this window."""
        # A worker's run that waits is left waiting, its thread freed: the run is claimed
        # again when its timer is due, however close that is.
        self.config = replace(given, lease_ttl_s=lease_ttl, short_wait_s=0.0)
        self.lease_ttl = lease_ttl
        self.idle_wait = idle_wait
        self.log: Logger = _redacting(log) if log is not None else (lambda _line, _problem: None)
        self.owner = owner or worker_owner()
        self.programs = ProgramCache(store)
        self.stats = WorkerStats()
        self.observer: Observer | None = None
        """Sees every event the runs it executes journal (the worker's metrics)."""
        self._stop = threading.Event()
        self._active = 0
        """Claimed runs not yet done: executing, or queued for a thread."""
        self._claim_depth = _CLAIM_AHEAD * concurrency
        """Claimed runs at most, now (deeper while a backlog lasts)."""
        self._ended_at: deque[float] = deque(maxlen=_RATE_WINDOW)
        """When the last runs ended (monotonic), for the rate the worker ends them at."""
        self._slots = threading.Condition()
        self._schedules_checked = -_SCHEDULE_POLL
        self._timeouts_checked = -_BUSY_POLL
        self._beaten = -lease_ttl
        self.changed_code = changed_code
        self.group_commit = group_commit
        """Commits of runs executing at once share transactions (`mnlang.stores.group_commit`)."""
        self._sources: dict[str, SourceIR | None] = {}
        """Where each program of the journal came from (None: it cannot be loaded)."""
        self._program_offers: dict[str, list[Need]] = {}
        self._providers = provider_offers()
        self._advertised: frozenset[Need] | None = None
        self._offers_checked = -lease_ttl
        self._sdks_imported = False

    def stop(self) -> None:
        """Ask the worker to stop: no new claims, runs in progress stop at a commit point."""
        self._stop.set()
        with self._slots:
            self._slots.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def ready(self) -> bool:
        """Taking work: not stopping, and its last heartbeat reached the journal within
        its lease time (`/readyz`)."""
        return not self._stop.is_set() and time.monotonic() - self._beaten < self.lease_ttl

    def run(self, *, until_idle: bool = False) -> WorkerStats:
        """Work until `stop()` (or, with `until_idle`, until nothing is runnable, no run is
        in progress and no timer is due within `short_wait`); returns what was done."""
        self.log(f"worker {self.owner} started (concurrency {self.concurrency})", False)
        self._advertised = None  # stopping removed what an earlier `run` advertised
        slots = self.store.tool_slots()
        previous = use_limits(SharedToolLimits(slots)) if slots is not None else None
        if self.group_commit:
            self.store.use_group_commit(True)
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="mnc-worker") as pool:
                while not self._stop.is_set():
                    self._heartbeat()
                    if not self._full():
                        # What it serves matters to a claim only (a run ending wakes this
                        # loop, once per run: a full one reads nothing for it).
                        self._advertise()
                    self._start_schedules()
                    self._decide_timeouts()
                    claimed = self._claim()
                    now = time.monotonic()
                    for lease in claimed:
                        pool.submit(self._execute, lease, now)
                    if claimed:
                        continue
                    if until_idle and self._idle():
                        break
                    self._wait()
        finally:
            if previous is not None:
                use_limits(previous)
            if self.group_commit:
                self.store.use_group_commit(False)
        try:
            self.store.worker_stopped(self.owner)
        except StoreError as e:
            self.log(f"cannot remove this worker from the workers table: {e}", True)
        self.log(f"worker {self.owner} stopped", False)
        return self.stats

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now < self._beaten + self.lease_ttl / 3:
            return
        try:
            self.store.worker_heartbeat(
                self.owner,
                host=socket.gethostname(),
                pid=os.getpid(),
                concurrency=self.concurrency,
                ttl=self.lease_ttl,
            )
            self._beaten = now
        except StoreError as e:
            self.log(f"cannot record this worker's heartbeat: {e}", True)

    # --- what it serves ------------------------------------------------------------------

    def _advertise(self) -> None:
        """Work out what this worker serves of the programs new to it (and of every
        program again, with each heartbeat), and advertise it when it changed."""
        try:
            hashes = [h for h, _ in self.store.program_hashes()]
        except StoreError as e:
            self.log(f"cannot list the journal's programs: {e}", True)
            return
        now = time.monotonic()
        again = now >= self._offers_checked + self.lease_ttl / 3
        if again:
            self._offers_checked = now
        for ir_hash in hashes:
            if ir_hash not in self._sources:
                self._sources[ir_hash] = self._source(ir_hash)
            elif not again:
                continue
            source = self._sources[ir_hash]
            self._program_offers[ir_hash] = (
                program_offers(ir_hash, source) if source is not None else []
            )
        offers = frozenset(
            [*self._providers, *(n for found in self._program_offers.values() for n in found)]
        )
        if offers == self._advertised:
            return
        try:
            self.store.advertise(
                self.owner, sorted(offers, key=_need_order), pinned=self.changed_code == "pin"
            )
            self._advertised = offers
        except StoreError as e:
            self.log(f"cannot advertise what this worker serves: {e}", True)

    def _source(self, ir_hash: str) -> SourceIR | None:
        try:
            program = self.programs(ir_hash)
        except (RunError, StoreError) as e:
            self.log(f"program {ir_hash[:12]}: cannot load it: {e}", True)
            return None
        if program.agents and not self._sdks_imported:
            # The model SDKs are imported lazily; a worker imports them beside its work as
            # soon as the journal holds a program with agents, rather than within the first
            # model request of a run it claims. A journal without agents never pays for
            # them (about half a second of CPU).
            self._sdks_imported = True
            threading.Thread(target=import_sdks, name="mnc-import-sdks", daemon=True).start()
        return program.source

    # --- claiming -----------------------------------------------------------------------

    def _full(self) -> bool:
        """Whether more runs are claimed than there are threads: the next claim waits
        until some of them end."""
        with self._slots:
            return self._active > self.concurrency

    def _claim(self) -> list[Lease]:
        """Claim runs in batches that wait behind the runs in progress, so that claiming
        (a scan and a transaction) is paid once per batch, not once per run."""
        with self._slots:
            if self._active > self.concurrency:
                return []
            free = self._claim_depth - self._active
        try:
            leases = self.store.claim_runs(self.owner, self.lease_ttl, limit=free)
        except StoreError as e:
            self.log(f"cannot claim runs: {e}", True)
            return []
        with self._slots:
            self._active += len(leases)
            self._claim_depth = self._next_depth(full=len(leases) == free)
        self.stats.claimed += len(leases)
        return leases

    def _next_depth(self, *, full: bool) -> int:
        """How many runs the next claim may hold (the lock held): deeper after a full
        claim, up to `_BACKLOG_S` of runs at the measured rate, and back to
        `_CLAIM_AHEAD` times the concurrency once a claim finds fewer runs than it could
        take."""
        base = _CLAIM_AHEAD * self.concurrency
        ended = self._ended_at
        if not full or len(ended) < 2 or ended[-1] <= ended[0]:
            return base
        rate = (len(ended) - 1) / (ended[-1] - ended[0])
        return max(base, min(2 * self._claim_depth, int(rate * _BACKLOG_S)))

    def _idle(self) -> bool:
        with self._slots:
            if self._active:
                return False
        return (
            not self.store.runnable_runs(limit=1, served_by=self.owner)
            and not self._schedule_due_within(0)
            and not self._timer_due_within(self.short_wait)
        )

    def _timer_due_within(self, seconds: float) -> bool:
        """Whether a timer becomes due within `seconds` (one due already is either the
        runnable run's, or one whose run cannot move: ended, or queued for a full `limit`)."""
        if seconds <= 0:
            return False
        now = self.store.now()
        soon = self.store.due_timers(now=now + seconds, limit=_TIMEOUT_BATCH)
        return any(timer.due_at > now for timer in soon)

    def _wait(self) -> None:
        """Sleep until a slot frees up or work may be there (or `idle_wait` passes)."""
        with self._slots:
            if self._active > self.concurrency:
                # Woken once a thread could take a new run; meanwhile the schedules and
                # the due timeouts keep their pace.
                self._slots.wait(min(self.idle_wait, _BUSY_POLL))
                return
            if self._active:
                # A run ending may make its parent runnable: look again soon.
                self._slots.wait(min(self.idle_wait, _BUSY_POLL))
                return
        timeout = self.idle_wait
        soonest = self._next_schedule()
        if soonest is not None:
            timeout = max(0.0, min(timeout, soonest - self.store.now()))
        try:
            self.store.wait_for_work(timeout, served_by=self.owner)
        except StoreError as e:
            self.log(f"cannot look for work: {e}", True)
            self._stop.wait(self.idle_wait)

    # --- checkpoint timeouts -------------------------------------------------------------

    def _decide_timeouts(self) -> None:
        """Decide due checkpoint timeouts in batches, one transaction each, so that a run
        woken by its timeout pays one commit (its own) rather than two."""
        now = time.monotonic()
        if now < self._timeouts_checked + _BUSY_POLL:
            return
        try:
            decided = decide_due_timeouts(self.store, limit=_TIMEOUT_BATCH)
        except StoreError as e:
            self.log(f"cannot decide due checkpoint timeouts: {e}", True)
            decided = 0
        # After a full batch more may be due: look again at once.
        self._timeouts_checked = -_BUSY_POLL if decided == _TIMEOUT_BATCH else now

    # --- schedules ----------------------------------------------------------------------

    def _next_schedule(self) -> float | None:
        try:
            schedules = self.store.list_schedules()
        except StoreError:
            return None
        return min((s.next_at for s in schedules if s.paused_at is None), default=None)

    def _schedule_due_within(self, seconds: float) -> bool:
        soonest = self._next_schedule()
        return soonest is not None and soonest <= self.store.now() + seconds

    def _start_schedules(self) -> None:
        now = time.monotonic()
        if now < self._schedules_checked + _SCHEDULE_POLL:
            return
        self._schedules_checked = now
        try:
            for started in start_due(self.store, self.programs):
                self.stats.scheduled += 1
                skipped = f" ({started.skipped} earlier times skipped)" if started.skipped else ""
                self.log(
                    f"schedule {started.schedule}: started run {started.run_id}{skipped}", False
                )
        except (RunError, StoreError) as e:
            self.log(f"cannot start scheduled runs: {e}", True)

    # --- executing ----------------------------------------------------------------------

    def _execute(self, lease: Lease, claimed_at: float) -> None:
        run_id = lease.run_id
        release = True
        try:
            if self._stop.is_set():
                return  # claimed but not started: released at once for another worker
            if run_id in self.stats.quarantined:
                # Its quarantine could not be written: not released, so that the lease
                # runs out rather than the run being claimed again at once.
                release = False
                return
            if time.monotonic() - claimed_at > self.lease_ttl / 3:
                lease = self.store.renew_lease(lease, self.lease_ttl)
            try:
                # The state as of the lease, read once: the program to load is named there.
                state = self.store.load_state(run_id)
            except RunNotFound:
                return
            record = state.run
            program = self.programs(record.ir_hash)
            if record.status == "running" and lease.epoch > 1:
                with self._slots:
                    self.stats.taken_over += 1
            started = time.monotonic()
            end = run_with_lease(
                self.store,
                program,
                record,
                lease,
                self.config,
                self.observer,
                changed_tools(record, program),
                self._stop,
                state,
            )
            took = time.monotonic() - started
            # An ended run's lease no longer matters (only live runs are claimed): not
            # releasing it saves a transaction per run.
            release = end.status not in TERMINAL_STATUSES
            self._count(end.status)
            self.log(f"run {run_id}: {end.status} ({took:.3f}s)", False)
        except StaleLease:
            release = False
            self.stats.lost += 1
            self.log(f"run {run_id}: its lease expired before it started; left to others", True)
        except (DamagedRow, ProgramUnavailable) as e:
            release = self._quarantine(run_id, e.message)
        except RunError as e:
            # A lost lease, or a run that cannot be executed: leave the lease to expire.
            release = False
            self.stats.lost += 1
            self.log(f"run {run_id}: {e.message}", True)
        except StoreError as e:
            release = False
            self.stats.lost += 1
            self.log(f"run {run_id}: journal error: {e}", True)
        except Exception:  # a bug must not take the worker down with the other runs
            release = False
            self.stats.lost += 1
            with steady_recursion_limit():  # 3.11 parses source lines for the carets
                trace = traceback.format_exc().rstrip()
            self.log(f"run {run_id}: internal error\n{trace}", True)
        finally:
            if release:
                self._release(lease)
            with self._slots:
                self._active -= 1
                self._ended_at.append(time.monotonic())
                if self._active <= self.concurrency:
                    # Above that, the loop could claim nothing: it wakes on its own time
                    # (`_wait`) rather than once per ended run.
                    self._slots.notify_all()

    def _quarantine(self, run_id: str, reason: str) -> bool:
        """Set aside a run that cannot be executed as stored, in the journal, so that no
        worker claims it again until a person repairs and releases it; whether that was
        written (then its lease may be released: no claim takes it)."""
        self.stats.quarantined.add(run_id)
        try:
            new = self.store.quarantine_run(run_id, by=self.owner, reason=redact(reason))
        except StoreError as e:
            self.log(
                f"run {run_id}: cannot be executed ({reason}) and its quarantine cannot be "
                f"written: {e}; this worker leaves it alone",
                True,
            )
            return False
        if new:
            self.log(
                f"run {run_id}: quarantined: {reason}; repair it, then `mnc db release {run_id}`",
                True,
            )
        return True

    def _release(self, lease: Lease) -> None:
        try:
            self.store.release_lease(lease)  # a lease taken over meanwhile is left alone
        except StoreError as e:
            self.log(f"run {lease.run_id}: cannot release its lease: {e}", True)

    def _count(self, status: str) -> None:
        with self._slots:
            self.stats.ended[status] = self.stats.ended.get(status, 0) + 1


def _need_order(need: Need) -> tuple[str, str, str]:
    return need.kind, need.scope, need.name
