"""The clock that times retry backoff, rate limits and call timeouts.

`SYSTEM_CLOCK` is real time. A `VirtualClock` runs at real speed while calls are in
flight, but when a run has nothing to do except wait for a delayed start (a retry's
backoff, a rate limit's next slot) the call runner moves the clock forward instead of
sleeping: a benchmark that injects a thousand faults does not wait out a thousand
backoffs, and the delays still happen in the order and at the spacing the policies say.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    virtual: bool
    """Whether `advance` may be used: time that nobody waits for in real time."""

    @property
    def skipped(self) -> float:
        """Seconds of waiting let pass at once so far (0 for real time)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes back."""

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass at once (virtual clocks only)."""


class SystemClock:
    virtual = False
    skipped = 0.0

    def monotonic(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        raise RuntimeError("the system clock cannot be advanced; wait instead")


class VirtualClock:
    """Real time plus the waits skipped so far; one per run (or per group of runs that
    only ever wait for each other)."""

    virtual = True

    def __init__(self) -> None:
        self._skipped = 0.0
        self._lock = threading.Lock()

    @property
    def skipped(self) -> float:
        """Seconds of waiting skipped so far."""
        return self._skipped

    def monotonic(self) -> float:
        return time.monotonic() + self._skipped

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._skipped += seconds


SYSTEM_CLOCK = SystemClock()
