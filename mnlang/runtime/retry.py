"""Retry decisions and backoff delays (the policy's meaning is in `mnlang.ir.base.RetryIR`).

Jitter is drawn from a generator seeded by the run, the step and the try, so a run
that is replayed, or resumed after a crash, waits the same delays.

A policy with several entries, unlimited attempts or a `max_elapsed` keeps a `Tally`
of the call: the failures each entry retried and when the first try started. The call
state keeps it in its fiber's notes, so that a run resumed after a crash, or woken by a
retry's durable timer, goes on counting where its last commit stood.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mnlang.ir.base import UNLIMITED, RetryIR

_LONGEST_DELAY_MS = 10 * 365 * 86_400_000
"""Ten years: a delay grown past it is past any deadline, and stays a number."""


@dataclass(slots=True)
class Tally:
    """What a call's retries have used: `counts[i]` failures retried by entry i, and the
    run clock's milliseconds when the first try started (`since_ms`)."""

    counts: list[int]
    since_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "since": self.since_ms}

    @staticmethod
    def from_json(note: dict[str, Any]) -> Tally:
        return Tally([int(n) for n in note["counts"]], int(note["since"]))


def tallied(policy: RetryIR) -> bool:
    """Whether the policy needs a `Tally` (a single bounded entry counts by the attempt)."""
    return bool(policy.more) or any(
        e.attempts == UNLIMITED or e.max_elapsed_ms is not None for e in policy.entries
    )


def new_tally(policy: RetryIR, now_ms: Callable[[], int]) -> Tally | None:
    """A call's tally as its first try starts, None when its policy needs none (and then
    the clock is not read)."""
    return Tally([0] * len(policy.entries), now_ms()) if tallied(policy) else None


def _entry(policy: RetryIR, kind: str) -> tuple[int, RetryIR] | None:
    """The first entry whose `on` has the kind: it alone decides about the failure."""
    return next(((i, e) for i, e in enumerate(policy.entries) if kind in e.on), None)


def should_retry(policy: RetryIR, kind: str, attempt: int) -> bool:
    """Whether try `attempt` (1 for the first), which failed with `kind`, gets another by
    its entry's attempts (`judge` also counts per entry and the time since the first)."""
    found = _entry(policy, kind)
    if found is None:
        return False
    attempts = found[1].attempts
    return not isinstance(attempts, int) or attempt < attempts


def tries_at_most(policy: RetryIR) -> int | None:
    """The most tries of one call by the attempts of its entries (None: unlimited)."""
    tries = 1
    for entry in policy.entries:
        if not isinstance(entry.attempts, int):
            return None
        tries += entry.attempts - 1
    return tries


@dataclass(frozen=True, slots=True)
class Verdict:
    """`delay_ms` before the next try, None for no next try; `entry` is the index of the
    entry that matched the failure's kind; `why` says why it gave up before its attempts
    were used (empty otherwise)."""

    delay_ms: int | None
    entry: int | None = None
    why: str = ""


def judge(
    policy: RetryIR, kind: str, attempt: int, tally: Tally | None, now_ms: int, seed: str
) -> Verdict:
    """Whether try `attempt`, which failed with `kind`, gets another, and after what delay.

    The matching entry counts its own failures (by the tally; without one, every failure
    is the single entry's: `attempt`). A next try that would start after the entry's
    `max_elapsed`, counted from the first try, is not made."""
    found = _entry(policy, kind)
    if found is None:
        return Verdict(None)
    index, entry = found
    failed = tally.counts[index] + 1 if tally is not None else attempt
    if isinstance(entry.attempts, int) and failed >= entry.attempts:
        return Verdict(None, index)
    delay = _delay_ms(entry, failed, f"{seed}#{attempt}")
    if entry.max_elapsed_ms is not None and tally is not None:
        elapsed = now_ms - tally.since_ms
        if elapsed + delay > entry.max_elapsed_ms:
            why = (
                f"gave up after {attempt} {'try' if attempt == 1 else 'tries'}: the next, "
                f"in {_shown(delay)}, would start after `max_elapsed: "
                f"{_shown(entry.max_elapsed_ms)}` (the first try started {_shown(elapsed)} ago)"
            )
            return Verdict(None, index, why)
    return Verdict(delay, index)


def count(tally: Tally | None, verdict: Verdict) -> None:
    """Count a retry the verdict decided against its entry."""
    if tally is not None and verdict.entry is not None:
        tally.counts[verdict.entry] += 1


def _delay_ms(entry: RetryIR, failed: int, seed: str) -> int:
    """Milliseconds to wait after the entry's `failed`-th failure, before the next try."""
    try:
        delay = entry.backoff_ms * entry.factor ** (failed - 1)
    except OverflowError:  # the thousandth retry of an unlimited entry without `max_delay`
        delay = math.inf
    if entry.max_delay_ms is not None:
        delay = min(delay, entry.max_delay_ms)
    if entry.jitter:
        delay *= random.Random(seed).uniform(0.5, 1.0)
    return round(min(delay, _LONGEST_DELAY_MS))


def _shown(ms: int) -> str:
    """A duration for a message: whole units when exact, else seconds with a decimal."""
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms / 1000:.1f}s" if ms >= 1000 else f"{ms}ms"
