"""Running calls off the scheduler thread: a thread pool, per-attempt timeouts, the
tools' `limit` (concurrent calls and starts per second), and delayed starts (retry
backoff).

The scheduler submits `CallJob`s and collects `Completion`s with `wait`. The calls in
flight and the next start time of each tool are kept in a `ToolLimits` that every runner
of the process shares (one per virtual clock), so a tool's `limit:` holds across all the
runs a process executes at once; a runner whose call waits for a slot another runner
holds checks again every few milliseconds. A thread call
that outlives its timeout is reported as a `Timeout` at once, but it keeps its place in
the tool's `concurrent` limit until its thread really returns (Python cannot stop a
thread); `isolation: process` calls kill their process instead.

Delays, timeouts and rate limits are timed by the runner's `Clock`: with a virtual clock
(benchmarks), a runner with no call in flight moves the clock to its next delayed start
instead of sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mnlang.errors import Timeout
from mnlang.ir.model import LimitIR
from mnlang.runtime.clock import SYSTEM_CLOCK, Clock
from mnlang.stores.base import StoreError, ToolSlots


@dataclass(eq=False)
class CallJob:
    """One attempt of one call; `owner` is whatever the scheduler needs to route the result."""

    owner: Any
    limit_key: str
    run: Callable[[], Any]
    timeout_s: float | None = None
    """Enforced by the runner (None: none, or the call enforces its own)."""
    limit: LimitIR | None = None
    started: float | None = None
    deadline: float | None = None
    finished: bool = False
    timed_out: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    """The scheduler's notes about the attempt (kind of call, attempt number, ...)."""


class ToolLimits:
    """Calls in flight and the next allowed start, per tool, for the runners sharing it.

    `paced` (real time only): a call's thread also waits, right before the call, until
    `1 / per_second` has passed since the tool's last call began, so that the delays of
    thread scheduling cannot bunch calls that the runner spaced out."""

    def __init__(self, *, paced: bool = False) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._next_start: dict[str, float] = {}
        self._paced = paced
        self._pace_lock = threading.Lock()
        self._last_call: dict[str, float] = {}

    def pace(self, key: str, limit: LimitIR | None) -> None:
        """Wait until the tool may be called again by its `per_second` (paced only)."""
        if not self._paced or limit is None or not limit.per_second:
            return
        gap = 1.0 / limit.per_second + 1e-6
        with self._pace_lock:
            wait = self._last_call.get(key, -gap) + gap - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_call[key] = time.monotonic()

    def take(self, key: str, limit: LimitIR | None, now: float) -> float | None:
        """Take a slot for a call of `key`: the time it may start (`now` or later, for
        `per_second`), or None while `concurrent` calls are in flight."""
        with self._lock:
            count = self._in_flight.get(key, 0)
            if limit is not None and limit.concurrent is not None and count >= limit.concurrent:
                return None
            start = now
            if limit is not None and limit.per_second:
                start = max(now, self._next_start.get(key, now))
                self._next_start[key] = start + 1.0 / limit.per_second
            self._in_flight[key] = count + 1
            return start

    def release(self, key: str) -> None:
        with self._lock:
            self._in_flight[key] -= 1


class SharedToolLimits(ToolLimits):
    """A process's `ToolLimits` whose `concurrent` slots and `per_second` starts are also
    held in the journal (`ToolSlots`), so that a tool's `limit:` holds across every worker
    on it. A slot the journal cannot give (all held elsewhere, or the database out of
    reach) makes the call wait, as a full slot in this process does."""

    def __init__(self, slots: ToolSlots) -> None:
        super().__init__(paced=True)
        self._slots = slots
        self._held: dict[str, list[int]] = {}

    def take(self, key: str, limit: LimitIR | None, now: float) -> float | None:
        if limit is None or (limit.concurrent is None and not limit.per_second):
            return super().take(key, limit, now)
        with self._lock:
            count = self._in_flight.get(key, 0)
            if limit.concurrent is not None and count >= limit.concurrent:
                return None
            try:
                if limit.concurrent is not None:
                    slot = self._slots.try_acquire(key, limit.concurrent)
                    if slot is None:
                        return None
                    self._held.setdefault(key, []).append(slot)
                start = now
                if limit.per_second:
                    start = now + self._slots.reserve_start(key, limit.per_second)
            except StoreError:
                return None
            self._in_flight[key] = count + 1
            return start

    def release(self, key: str) -> None:
        with self._lock:
            self._in_flight[key] -= 1
            held = self._held.get(key)
            slot = held.pop() if held else None
        if slot is not None:
            self._slots.release(key, slot)


PROCESS_LIMITS: ToolLimits = ToolLimits(paced=True)
"""Shared by every runner on the system clock."""


def use_limits(limits: ToolLimits) -> ToolLimits:
    """Hold tools' limits in `limits` for every runner of the process made from now on
    (`mnc worker` on a store that shares them: a `SharedToolLimits`); returns the limits
    used until now, to put back."""
    global PROCESS_LIMITS
    previous, PROCESS_LIMITS = PROCESS_LIMITS, limits
    return previous


class CallThreads:
    """A runner's call threads: up to `size` threads taking jobs from one queue, started
    as calls need them. A job costs a queue hand-off each way and nothing more (no future,
    no work item, as with a `ThreadPoolExecutor`), which is much of what a quick tool step
    costs. As a pool's, the threads are not daemons: a process waits at exit for a call
    still running on one (a call that timed out), and `close` ends the idle ones."""

    def __init__(self, size: int, work: Callable[[CallJob], None]) -> None:
        self._size = size
        self._work = work
        self._jobs: queue.SimpleQueue[CallJob | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads = 0
        self._closed = False

    def submit(self, job: CallJob) -> None:
        if self._closed:
            raise RuntimeError("the runner's call threads were closed")
        self._jobs.put(job)
        if not self._idle.acquire(blocking=False) and self._threads < self._size:
            self._threads += 1
            threading.Thread(target=self._serve, name=f"mnc-call_{self._threads}").start()

    def _serve(self) -> None:
        jobs, work, idle = self._jobs, self._work, self._idle
        while (job := jobs.get()) is not None:
            work(job)
            idle.release()

    def close(self) -> list[CallJob]:
        """End each thread once it is idle; the jobs that were submitted but never
        started (they will not be)."""
        self._closed = True
        unstarted: list[CallJob] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                unstarted.append(job)
        for _ in range(self._threads):
            self._jobs.put(None)
        return unstarted


BLOCKED_POLL_S = 0.005
"""How often a runner with a call waiting for a slot checks whether one was freed."""


@dataclass(frozen=True, slots=True)
class Completion:
    job: CallJob
    ok: bool
    value: Any
    """The result, or the exception the call raised."""
    elapsed_ms: float


class CallRunner:
    def __init__(
        self, workers: int, clock: Clock = SYSTEM_CLOCK, limits: ToolLimits | None = None
    ) -> None:
        self._clock = clock
        if limits is None:
            limits = ToolLimits() if clock.virtual else PROCESS_LIMITS
        self._limits = limits
        self._workers = workers
        # Made at the first call: a run that calls nothing (one resumed only to take its
        # decided checkpoint, say) builds no thread pool, semaphore included.
        self._threads: CallThreads | None = None
        self._done: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self._running: set[CallJob] = set()
        self._blocked: dict[str, deque[CallJob]] = {}
        self._delayed: list[tuple[float, int, CallJob]] = []
        self._order = itertools.count()

    def close(self) -> None:
        """Stop taking calls; threads still running finish in the background (and give
        their slots back then)."""
        for _, _, job in self._delayed:
            self._drop_slot(job)
        self._delayed = []
        if self._threads is None:
            return
        for job in self._threads.close():
            self._limits.release(job.limit_key)  # it never ran, so never gave it back

    def _drop_slot(self, job: CallJob) -> None:
        """Give back the slot of a job that will not start after all."""
        if job.data.pop("slot_held", False):
            self._limits.release(job.limit_key)

    @property
    def busy(self) -> bool:
        """Calls are running, waiting for a slot, or waiting for their start time."""
        return bool(
            any(not job.timed_out for job in self._running)
            or self._delayed
            or any(self._blocked.values())
        )

    def submit(self, job: CallJob, delay_s: float = 0.0) -> None:
        if delay_s > 0:
            heapq.heappush(
                self._delayed, (self._clock.monotonic() + delay_s, next(self._order), job)
            )
        else:
            self._queue(job)

    def abandon(self, job: CallJob) -> None:
        """Forget a call whose result nobody wants any more (its fiber was cancelled); an
        async call is cancelled."""
        job.timed_out = True
        cancel = job.data.get("cancel")
        if cancel is not None:
            cancel.cancel()
        queued = self._blocked.get(job.limit_key)
        if queued and job in queued:
            queued.remove(job)
        if any(entry[2] is job for entry in self._delayed):
            self._drop_slot(job)
            self._delayed = [entry for entry in self._delayed if entry[2] is not job]
            heapq.heapify(self._delayed)

    def _admit(self, job: CallJob) -> bool:
        """Take a slot and start the job (now, or at its rate-limited start time); False
        when it has to wait for a slot."""
        now = self._clock.monotonic()
        start = self._limits.take(job.limit_key, job.limit, now)
        if start is None:
            return False
        job.data["slot_held"] = True
        if start > now:
            heapq.heappush(self._delayed, (start, next(self._order), job))
        else:
            self._start(job)
        return True

    def _queue(self, job: CallJob) -> None:
        blocked = self._blocked.get(job.limit_key)
        if blocked or not self._admit(job):
            self._blocked.setdefault(job.limit_key, deque()).append(job)

    def _admit_blocked(self) -> None:
        for blocked in self._blocked.values():
            while blocked and self._admit(blocked[0]):
                blocked.popleft()

    def _start(self, job: CallJob) -> None:
        job.data.pop("slot_held", None)
        job.started = self._clock.monotonic()
        if job.timeout_s is not None:
            job.deadline = job.started + job.timeout_s
        self._running.add(job)
        if self._threads is None:
            self._threads = CallThreads(self._workers, self._work)
        self._threads.submit(job)

    def _work(self, job: CallJob) -> None:
        start = time.perf_counter()
        try:
            self._limits.pace(job.limit_key, job.limit)
            value = job.run()
            ok = True
        except BaseException as e:  # the scheduler maps every exception to an error kind
            value, ok = e, False
        finally:
            self._limits.release(job.limit_key)  # here: the runner may be closed by now
        self._done.put(Completion(job, ok, value, (time.perf_counter() - start) * 1000))

    def next_wakeup(self) -> float | None:
        """The monotonic time at which `wait` has something to do without a completion."""
        times = [job.deadline for job in self._running if job.deadline and not job.timed_out]
        if self._delayed:
            times.append(self._delayed[0][0])
        return min(times) if times else None

    def wait(self, timeout_s: float | None) -> list[Completion]:
        """Completions (timeouts included) within `timeout_s`; at least one unless it passed."""
        out: list[Completion] = []
        self._admit_blocked()
        self._start_due()
        wake = self.next_wakeup()
        if wake is not None:
            until = max(0.0, wake - self._clock.monotonic())
            timeout_s = until if timeout_s is None else min(timeout_s, until)
        if any(self._blocked.values()):
            timeout_s = BLOCKED_POLL_S if timeout_s is None else min(timeout_s, BLOCKED_POLL_S)
        if self._clock.virtual and not self._running and timeout_s:
            # No thread can answer before the next delayed start: skip the wait.
            self._clock.advance(timeout_s)
            timeout_s = 0
        try:
            first = self._done.get(timeout=timeout_s) if timeout_s != 0 else self._done.get_nowait()
        except queue.Empty:
            pass
        else:
            self._finish(first, out)
            while True:
                try:
                    self._finish(self._done.get_nowait(), out)
                except queue.Empty:
                    break
        self._expire(out)
        self._start_due()
        return out

    def _finish(self, completion: Completion, out: list[Completion]) -> None:
        job = completion.job
        job.finished = True
        self._running.discard(job)
        self._admit_blocked()
        if not job.timed_out:
            out.append(completion)

    def _expire(self, out: list[Completion]) -> None:
        now = self._clock.monotonic()
        for job in list(self._running):
            if job.deadline is not None and not job.timed_out and now >= job.deadline:
                job.timed_out = True
                error = Timeout(f"no answer after {job.timeout_s:g}s")
                out.append(Completion(job, False, error, (now - (job.started or now)) * 1000))

    def _start_due(self) -> None:
        now = self._clock.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, job = heapq.heappop(self._delayed)
            if job.data.get("slot_held"):
                self._start(job)
            else:
                self._queue(job)
