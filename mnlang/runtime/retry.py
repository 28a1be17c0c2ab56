"""Retry decisions and backoff delays (the policy's meaning is in `mnlang.ir.base.RetryIR`).

Jitter is drawn from a generator seeded by the run, the step and the try, so a run
that is replayed, or resumed after a crash, waits the same delays.
"""

from __future__ import annotations

import random

from mnlang.ir.base import RetryIR


def should_retry(policy: RetryIR, kind: str, attempt: int) -> bool:
    """Whether try `attempt` (1 for the first), which failed with `kind`, gets another."""
    return attempt < policy.attempts and kind in policy.on


def delay_ms(policy: RetryIR, attempt: int, seed: str) -> int:
    """Milliseconds to wait after try `attempt` failed, before the next one."""
    delay = policy.backoff_ms * policy.factor ** (attempt - 1)
    if policy.max_delay_ms is not None:
        delay = min(delay, policy.max_delay_ms)
    if policy.jitter:
        delay *= random.Random(f"{seed}#{attempt}").uniform(0.5, 1.0)
    return round(delay)
